//! The H10/H11 decision (issue 17): when the audit trail cannot take an
//! event (a full disk, a failing audit table), a check is still answered
//! with the flag, and every lost event is an error-level log line naming
//! the request and the action (and, on `cpis serve`, readiness reports the
//! audit trail failing: `crates/store-sqlite`). Refusing the check would
//! hide the flag from the clinician for an audit outage.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::Method;
use common::*;
use cpis_conformance::fixtures::{la, plan, stored};
use cpis_domain::ports::{
    AccessLog, AccessWrite, AuditReader, AuditTrail, AuthorityDirectory, CheckLedger,
    CheckReceipts, CheckWrite, NotificationInbox, Page, PlanStore, StoreError, StoredPlan,
};
use cpis_domain::{
    AccessRecord, Asn, AuditEvent, Authority, ManualClock, NhsNumber, OdsCode, Plan, PlanKey,
    PlanType, VisibilityPolicy,
};
use cpis_http::{AppState, Authenticator, CallerClaims};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use serde_json::Value;
use time::macros::date;
use time::OffsetDateTime;

/// The memory store, with an audit trail that can be switched off, and a
/// list of the writes the service asked of it.
#[derive(Clone, Default)]
struct AuditOutage {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    writes: Arc<Mutex<Vec<&'static str>>>,
}

impl AuditOutage {
    fn wrote(&self, write: &'static str) {
        self.writes.lock().unwrap().push(write);
    }

    fn take_writes(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.writes.lock().unwrap())
    }
}

impl AuditTrail for AuditOutage {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.wrote("append");
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "appending an audit event failed (DiskFull)".to_owned(),
            ));
        }
        self.inner.append(event).await
    }
}

impl PlanStore for AuditOutage {
    async fn plans_for_child(&self, nhs_number: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        self.inner.plans_for_child(nhs_number).await
    }
    async fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        self.inner
            .plans_for_authority(authority, cursor, limit)
            .await
    }
    async fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> Result<Vec<PlanKey>, StoreError> {
        self.inner.plan_keys_for_authority(authority).await
    }
    async fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        self.inner
            .apply_changes(authority, upserts, withdrawals)
            .await
    }
}

impl AuthorityDirectory for AuditOutage {
    async fn authority(&self, ods_code: &OdsCode) -> Result<Option<Authority>, StoreError> {
        self.inner.authority(ods_code).await
    }
    async fn put_authority(&self, authority: &Authority) -> Result<(), StoreError> {
        self.inner.put_authority(authority).await
    }
}

impl AccessLog for AuditOutage {
    async fn record_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> Result<AccessWrite, StoreError> {
        self.wrote("record_access");
        self.inner.record_access(access, asns, collapse_since).await
    }
    async fn recent_accesses(
        &self,
        nhs_number: &NhsNumber,
        limit: usize,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        self.inner.recent_accesses(nhs_number, limit).await
    }
}

impl CheckLedger for AuditOutage {
    /// The audit event goes with the check's writes: an outage refuses the
    /// whole write while it carries one.
    async fn record_check(
        &self,
        write: &CheckWrite<'_>,
    ) -> Result<Option<AccessWrite>, StoreError> {
        self.wrote(match (write.access.is_some(), write.audit.is_some()) {
            (true, true) => "record_check(receipt, access, audit)",
            (false, true) => "record_check(receipt, audit)",
            (true, false) => "record_check(receipt, access)",
            (false, false) => "record_check(receipt)",
        });
        if write.audit.is_some() && self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "committing a check's writes failed (DiskFull)".to_owned(),
            ));
        }
        self.inner.record_check(write).await
    }
}

impl CheckReceipts for AuditOutage {
    async fn note_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.wrote("note_check");
        self.inner.note_check(nhs_number, organisation, at).await
    }
    async fn last_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        self.inner.last_check(nhs_number, organisation).await
    }
}

struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A check router over `store`, which holds a CPP for CHILD_1, and a
/// token minter for it.
async fn check_app(store: &AuditOutage) -> (axum::Router, impl Fn(CallerClaims) -> String) {
    let child = NhsNumber::parse(CHILD_1).unwrap();
    store
        .apply_changes(
            &la(COUNCIL_A),
            &[stored(&plan(
                COUNCIL_A,
                child,
                PlanType::ChildProtection,
                date!(2025 - 09 - 01),
            ))],
            &[],
        )
        .await
        .unwrap();
    let keys = cpis_http::LocalKeys::ephemeral().unwrap();
    let state = AppState {
        store: store.clone(),
        queue: RecordingQueue::default(),
        clock: Arc::new(ManualClock::new(start())),
        policy: VisibilityPolicy::default(),
        pseudonymiser: pseudonymiser(),
        auth: Authenticator::Local(keys.verifier()),
        volume: Default::default(),
    };
    let router = cpis_http::finish(cpis_http::check_router(state));
    let token = move |claims: CallerClaims| {
        keys.mint(&claims, OffsetDateTime::now_utc(), time::Duration::hours(1))
            .unwrap()
    };
    (router, token)
}

/// `POST /v1/checks` for `child` with `token`.
async fn post_check(router: &axum::Router, token: &str, child: &str, unscheduled: bool) -> Reply {
    send_to(
        router,
        request(
            Method::POST,
            "/v1/checks",
            Some(token),
            Some(serde_json::json!({ "nhs_number": child, "unscheduled": unscheduled })),
        ),
    )
    .await
}

#[tokio::test]
async fn a_check_whose_audit_cannot_be_written_is_answered_and_logged_at_error_level() {
    let store = AuditOutage::default();
    let (router, token) = check_app(&store).await;
    store.take_writes();
    store.down.store(true, Ordering::SeqCst);

    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || Captured(writer.clone()))
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // An unscheduled check (it writes the access and its ASN) and a silent one.
    let mut answers = Vec::new();
    for (rbac, unscheduled) in [("B0107", true), ("B0170", false)] {
        let token = token(clinician("dr-1", TRUST_X, rbac));
        answers.push(post_check(&router, &token, CHILD_1, unscheduled).await);
    }
    let flag = send_to(
        &router,
        axum::http::Request::builder()
            .method(Method::GET)
            .uri(format!(
                "/FHIR/R4/Flag{}",
                patient_query(NHS_SYSTEM, CHILD_1)
            ))
            .header(
                "authorization",
                format!("Bearer {}", token(clinician("dr-1", TRUST_X, "B0170"))),
            )
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    drop(guard);
    // Each check tried its writes with the event, then without it (the
    // flag is shown), then the event alone; the Flag read likewise.
    assert_eq!(
        store.take_writes(),
        [
            "record_check(receipt, access, audit)",
            "record_check(receipt, access)",
            "append",
            "record_check(receipt, audit)",
            "record_check(receipt)",
            "append",
            "record_check(receipt, audit)",
            "record_check(receipt)",
            "append",
        ]
    );

    for reply in &answers {
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        assert_eq!(reply.json["plans"][0]["plan_type"], "CPP", "{}", reply.text);
    }
    assert_eq!(flag.status.as_u16(), 200, "{}", flag.text);
    assert_eq!(flag.json["total"], 1, "{}", flag.text);
    assert!(
        store
            .inner
            .audit_events(usize::MAX)
            .await
            .unwrap()
            .is_empty(),
        "nothing reached the trail"
    );

    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    assert_no_nhs_number(&text);
    let lost: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["fields"]["message"] == "could not write the audit event")
        .collect();
    assert_eq!(lost.len(), 3, "one error line per lost event: {text}");
    for line in &lost {
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["fields"]["action"], "Check");
        assert!(line["fields"]["request_id"].is_string());
    }
}

/// Issue 16: a check waits for one durable write, which carries its audit
/// event; a check of a child with no plan writes the event alone.
#[tokio::test]
async fn each_check_makes_one_write_carrying_its_audit_event() {
    let store = AuditOutage::default();
    let (router, token) = check_app(&store).await;
    store.take_writes();
    for (child, rbac, unscheduled, expected) in [
        (
            CHILD_1,
            "B0107",
            true,
            "record_check(receipt, access, audit)",
        ),
        (CHILD_1, "B0170", false, "record_check(receipt, audit)"),
        (CHILD_2, "B0107", true, "append"),
    ] {
        let token = token(clinician("dr-1", TRUST_X, rbac));
        let reply = post_check(&router, &token, child, unscheduled).await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        assert_eq!(
            store.take_writes(),
            [expected],
            "{rbac} {unscheduled} {}",
            reply.text
        );
    }
    let events = store.inner.audit_events(usize::MAX).await.unwrap();
    assert_eq!(events.len(), 3, "one event per check");
    assert!(events
        .iter()
        .all(|e| e.outcome == cpis_domain::AuditOutcome::Allowed
            && e.action == cpis_domain::AuditAction::Check));
    // The flagged check's ASN went with it.
    assert_eq!(
        store
            .inner
            .notifications(&la(COUNCIL_A), None, 10)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}
