//! Retention (issue 7, suite 8), end to end through the HTTP API, on the
//! in-memory store and on the SQLite store `cpis serve` uses: with the clock
//! moved, a plan is shown on its last visible day and on no day after; the
//! purge (the embedded service's sweep calls `Retention::purge` with the
//! clock's date) removes it and the child's orphaned history, and nothing
//! else; the audit trail keeps every event, naming the child only by its
//! pseudonym.
//!
//! `cargo test -p cpis-http --test retention -- --nocapture` prints the figures.

mod common;

use std::sync::Arc;

use axum::http::Method;
use axum::Router;
use common::*;
use cpis_domain::ports::{AsnOutbox, AuditReader, PurgeReport, Retention};
use cpis_domain::{AuditOutcome, ManualClock, NhsNumber, OdsCode, Pseudonymiser, VisibilityPolicy};
use cpis_http::{AppState, Authenticator, CallerClaims, CheckStore, CouncilStore, HistoryStore};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use cpis_store_sqlite::SqliteStore;
use serde_json::{json, Value};
use time::macros::date;
use time::{Date, OffsetDateTime};

/// Every port the scenario drives or inspects.
trait Store:
    CouncilStore + CheckStore + HistoryStore + Retention + AsnOutbox + AuditReader + Send + Sync
{
}
impl<T> Store for T where
    T: CouncilStore + CheckStore + HistoryStore + Retention + AsnOutbox + AuditReader + Send + Sync
{
}

struct Service<S> {
    store: S,
    clock: Arc<ManualClock>,
    keys: cpis_http::LocalKeys,
    router: Router,
    _dir: tempfile::TempDir,
}

impl<S: Store> Service<S> {
    fn new(store: S) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = cpis_http::LocalKeys::ephemeral().expect("keys");
        let clock = Arc::new(ManualClock::new(start()));
        let state = AppState {
            store: store.clone(),
            queue: RecordingQueue::default(),
            clock: clock.clone(),
            policy: VisibilityPolicy::default(),
            pseudonymiser: pseudonymiser(),
            auth: Authenticator::Local(keys.verifier()),
            volume: Default::default(),
        };
        Self {
            store,
            clock,
            router: cpis_http::service_router(state),
            keys,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        who: &CallerClaims,
        body: Option<Value>,
    ) -> Reply {
        let token = self
            .keys
            .mint(who, OffsetDateTime::now_utc(), time::Duration::hours(1))
            .expect("mint");
        send_to(&self.router, request(method, path, Some(&token), body)).await
    }

    /// The plan types a check by a (silent) clinician shows today, and the
    /// same through the FHIR Flag search.
    async fn shown(&self, nhs: &str) -> Vec<String> {
        let silent = clinician("dr-170", TRUST_Y, "B0170");
        let reply = self
            .call(
                Method::POST,
                "/v1/checks",
                &silent,
                Some(json!({ "nhs_number": nhs, "unscheduled": false })),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        let shown: Vec<String> = reply.json["plans"]
            .as_array()
            .expect("plans")
            .iter()
            .map(|p| p["plan_type"].as_str().expect("a type").to_owned())
            .collect();
        let token = self
            .keys
            .mint(&silent, OffsetDateTime::now_utc(), time::Duration::hours(1))
            .expect("mint");
        let flag = request(
            Method::GET,
            &format!("/FHIR/R4/Flag?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{nhs}"),
            Some(&token),
            None,
        );
        let flag = send_to(&self.router, flag).await;
        assert_eq!(flag.status.as_u16(), 200, "{}", flag.text);
        assert_eq!(
            flag.json["total"],
            shown.len(),
            "the FHIR Flag search agrees: {}",
            flag.text
        );
        shown
    }

    fn set_day(&self, day: Date) {
        self.clock
            .set(day.with_time(time::macros::time!(10:00)).assume_utc());
    }
}

fn nhs(n: &str) -> NhsNumber {
    NhsNumber::parse(n).expect("synthetic")
}

/// Child 1: a CPP that ended on 1 March 2026 (shown through day 365 after).
/// Child 3: a UCPP due on 1 April 2026 (shown through 28 days after).
/// Child 4: a CPP withdrawn from 1 June 2026 by its delete date.
/// Child 2: an open LAC plan, never purged.
fn batch() -> Value {
    json!({
        "sequence": 1,
        "mode": "delta",
        "records": [
            { "nhs_number": CHILD_1, "plan_type": "CPP", "start_date": "2025-06-01", "end_date": "2026-03-01", "local_id": "case-1" },
            { "nhs_number": CHILD_2, "plan_type": "LAC", "start_date": "2025-06-01", "local_id": "case-2" },
            { "nhs_number": CHILD_3, "plan_type": "UCPP", "start_date": "2025-12-01", "due_date": "2026-04-01", "local_id": "case-3" },
            { "nhs_number": CHILD_4, "plan_type": "CPP", "start_date": "2025-06-01", "delete_date": "2026-06-01", "local_id": "case-4" }
        ]
    })
}

/// (child, plan type, last day shown) in the order the days come.
const ENDINGS: [(&str, &str, Date); 3] = [
    (CHILD_3, "UCPP", date!(2026 - 04 - 29)),
    (CHILD_4, "CPP", date!(2026 - 05 - 31)),
    (CHILD_1, "CPP", date!(2027 - 03 - 01)),
];

async fn retention_end_to_end<S: Store>(store: S, name: &str) {
    let service = Service::new(store);
    let a = council(COUNCIL_A);
    let la = OdsCode::parse(COUNCIL_A).expect("ods");
    let doctor = clinician("dr-107", TRUST_X, "B0107");
    assert_eq!(
        service
            .call(
                Method::PUT,
                "/v1/authority",
                &a,
                Some(authority_body(COUNCIL_A))
            )
            .await
            .status
            .as_u16(),
        200
    );
    let upload = service
        .call(Method::POST, "/v1/uploads", &a, Some(batch()))
        .await;
    assert_eq!(upload.json["loaded"], 4, "{}", upload.text);

    // Day 0: every child attends; the council is notified, the ASNs are
    // delivered (as the dispatcher would) and acknowledged by the duty team,
    // so that the purge may take them with the plan (they are all over 30
    // days old by then: AsnCutoffs).
    for child in [CHILD_1, CHILD_2, CHILD_3, CHILD_4] {
        let reply = service
            .call(
                Method::POST,
                "/v1/checks",
                &doctor,
                Some(json!({ "nhs_number": child, "unscheduled": true })),
            )
            .await;
        assert_eq!(
            reply.json["plans"].as_array().map(Vec::len),
            Some(1),
            "{}",
            reply.text
        );
    }
    let inbox = service
        .store
        .notifications(&la, None, 100)
        .await
        .expect("inbox");
    assert_eq!(inbox.items.len(), 4);
    for asn in &inbox.items {
        service
            .store
            .finish_delivery(&asn.id, start())
            .await
            .expect("deliver");
        service
            .store
            .acknowledge(&la, &asn.id, start(), None)
            .await
            .expect("acknowledge");
    }

    let mut purged = PurgeReport::default();
    let mut boundary_checks = 0;
    for (child, plan_type, last_day) in ENDINGS {
        // The last day: still shown, and the sweep on that day keeps it.
        service.set_day(last_day);
        assert_eq!(
            service.shown(child).await,
            vec![plan_type],
            "{name}: {child} on {last_day}"
        );
        let kept = service.store.purge(last_day).await.expect("purge");
        assert_eq!(kept.plans, 0, "{name}: purged on its last visible day");
        // The day after: not shown, even before the sweep has run.
        let day_after = last_day.next_day().expect("a day");
        service.set_day(day_after);
        assert!(
            service.shown(child).await.is_empty(),
            "{name}: {child} shown on {day_after}"
        );
        assert_eq!(
            service
                .store
                .plans_for_child(&nhs(child))
                .await
                .expect("read")
                .len(),
            1,
            "{name}: stored until the sweep"
        );
        boundary_checks += 2;

        // The sweep: the plan, the child's accesses, check receipts and
        // delivered ASN go; nothing else does.
        let report = service.store.purge(day_after).await.expect("purge");
        assert_eq!(report.plans, 1, "{name}: {child}");
        assert_eq!(report.accesses, 1, "{name}: {child}");
        assert_eq!(report.notifications, 1, "{name}: {child}");
        assert!(report.receipts >= 1, "{name}: {child}: {report:?}");
        purged.plans += report.plans;
        purged.accesses += report.accesses;
        purged.notifications += report.notifications;
        purged.receipts += report.receipts;

        let gone = nhs(child);
        assert!(service
            .store
            .plans_for_child(&gone)
            .await
            .expect("read")
            .is_empty());
        assert!(service
            .store
            .recent_accesses(&gone, 25)
            .await
            .expect("read")
            .is_empty());
        for organisation in [TRUST_X, TRUST_Y] {
            let organisation = OdsCode::parse(organisation).expect("ods");
            assert_eq!(
                service
                    .store
                    .last_check(&gone, &organisation)
                    .await
                    .expect("read"),
                None
            );
        }
        // Through the API: not in the council's plans, no history for anyone.
        let plans = service.call(Method::GET, "/v1/plans", &a, None).await;
        assert!(!plans.text.contains(child), "{name}: {}", plans.text);
        for who in [&a, &doctor] {
            let history = service
                .call(
                    Method::POST,
                    "/v1/history",
                    who,
                    Some(json!({ "nhs_number": child })),
                )
                .await;
            assert_eq!(history.json, json!({ "access_history": [] }), "{name}");
        }
    }

    // The open plan, its history and its ASN outlive every sweep.
    let kept = nhs(CHILD_2);
    assert_eq!(
        service
            .store
            .plans_for_child(&kept)
            .await
            .expect("read")
            .len(),
        1
    );
    assert_eq!(
        service
            .store
            .recent_accesses(&kept, 25)
            .await
            .expect("read")
            .len(),
        1
    );
    let council_history = service
        .call(
            Method::POST,
            "/v1/history",
            &a,
            Some(json!({ "nhs_number": CHILD_2 })),
        )
        .await;
    assert_eq!(
        council_history.json["access_history"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(service.shown(CHILD_2).await, vec!["LAC"]);
    let inbox = service
        .store
        .notifications(&la, None, 100)
        .await
        .expect("inbox");
    assert_eq!(
        inbox.items.len(),
        1,
        "{name}: only the open plan's ASN is left"
    );
    assert_eq!(inbox.items[0].nhs_number, kept);

    // The audit trail: nothing purged, and the children only as pseudonyms.
    let audit = service.store.audit_events(usize::MAX).await.expect("audit");
    let text = serde_json::to_string(&audit).expect("serialise");
    assert_no_nhs_number(&text);
    let pseudonymiser: Pseudonymiser = pseudonymiser();
    for child in [CHILD_1, CHILD_2, CHILD_3, CHILD_4] {
        let pseudonym = pseudonymiser.pseudonym(&nhs(child));
        let checks = audit
            .iter()
            .filter(|e| e.subject.as_deref() == Some(pseudonym.as_str()))
            .count();
        // The first check, and the silent checks either side of each boundary.
        assert!(checks >= 2, "{name}: {child}'s events were lost ({checks})");
    }
    for subject in audit.iter().filter_map(|e| e.subject.as_deref()) {
        let letters = subject.strip_prefix("p1-").expect("a versioned pseudonym");
        assert!(letters.bytes().all(|b| b.is_ascii_lowercase()), "{subject}");
    }
    assert!(audit.iter().all(|e| e.outcome != AuditOutcome::Failed));

    println!(
        "retention ({name}): {boundary_checks} boundary checks (last day shown, day after not), purged {} plans, {} accesses, {} delivered ASNs, {} check receipts; 1 open plan kept with its history; {} audit events kept, 0 NHS numbers in them",
        purged.plans, purged.accesses, purged.notifications, purged.receipts, audit.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_retention_through_the_api() {
    retention_end_to_end(MemoryStore::new(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_retention_through_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("cpis.db")).expect("store");
    retention_end_to_end(store, "sqlite").await;
}

/// The purge must also erase: a purged child's NHS number must not survive in
/// the database files. SQLite keeps deleted content in the WAL and in free
/// page space unless `PRAGMA secure_delete = ON` is set and the WAL is
/// checkpointed with `TRUNCATE` after the purge; the store does both (either
/// alone left 100 or more copies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_hold_no_purged_nhs_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("cpis.db")).expect("store");
    retention_end_to_end(store.clone(), "sqlite files").await;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("the data directory") {
        let path = entry.expect("an entry").path();
        let bytes = std::fs::read(&path).expect("readable");
        for (child, _, _) in ENDINGS {
            let copies = bytes.windows(10).filter(|w| *w == child.as_bytes()).count();
            if copies > 0 {
                found.push(format!(
                    "{}: {copies} copies of a purged child's number",
                    path.display()
                ));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
