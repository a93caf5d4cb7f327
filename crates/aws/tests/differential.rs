//! The DynamoDB store on moto must behave exactly like the in-memory
//! reference store: each scenario runs the same calls on both and compares
//! every answer. (The shared conformance suite runs in `conformance.rs`.)

use cpis_aws::moto;
use cpis_domain::ports::{
    AccessLog, AccessWrite, AsnOutbox, AuditReader, AuditTrail, AuthorityDirectory, CheckReceipts,
    DeliveryStart, NotificationInbox, Page, PlanStore, PurgeReport, Retention, StoreError,
    UploadLedger,
};
use cpis_domain::{
    process_upload, AccessRecord, Accessor, AccessorKind, Acknowledgement, Asn, AsnPlan,
    AuditAction, AuditEvent, AuditOutcome, Authority, NhsNumber, OdsCode, Plan, PlanKey, PlanType,
    Rbac, VisibilityPolicy,
};
use cpis_store_memory::MemoryStore;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

/// Every answer a scenario observed, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Upload(Result<(Acknowledgement, bool), String>),
    Plans(Vec<Plan>),
    PlanPage(Page<Plan>),
    Keys(Vec<PlanKey>),
    Sequence(Option<u64>),
    Receipt(Option<(u64, String)>),
    Purge(PurgeReport),
    Error(String),
    Authority(Option<Authority>),
    Access(AccessWrite),
    Accesses(Vec<AccessRecord>),
    LastCheck(Option<OffsetDateTime>),
    Inbox(Page<Asn>),
    Asn(Option<Asn>),
    Claimed(Vec<String>),
    Delivery(String),
    Audit(Vec<AuditEvent>),
}

fn nhs(n: &str) -> NhsNumber {
    NhsNumber::parse(n).unwrap()
}

fn sorted(mut plans: Vec<Plan>) -> Vec<Plan> {
    plans.sort_by_key(Plan::key);
    plans
}

fn err_kind(e: StoreError) -> String {
    match e {
        StoreError::InvalidCursor => "invalid cursor".into(),
        other => format!("other: {other}"),
    }
}

const NOW: OffsetDateTime = datetime!(2025-03-01 10:00 UTC);

async fn upload<S: PlanStore + UploadLedger>(store: &S, ods: &OdsCode, body: &str) -> Seen {
    Seen::Upload(
        process_upload(
            store,
            ods,
            body.as_bytes(),
            NOW,
            &VisibilityPolicy::default(),
        )
        .await
        .map(|r| (r.acknowledgement, r.replayed))
        .map_err(|e| e.to_string()),
    )
}

async fn plan_scenario<S>(store: &S, a: &OdsCode, b: &OdsCode) -> Vec<Seen>
where
    S: PlanStore + UploadLedger + Retention,
{
    let mut seen = Vec::new();
    let first = r#"{"sequence":1,"mode":"full","records":[
        {"nhs_number":"9990000018","plan_type":"CPP","start_date":"2024-01-10"},
        {"nhs_number":"999 000 0018","plan_type":"LAC","start_date":"2023-02-01","end_date":"2024-06-01","local_id":"case-18"},
        {"nhs_number":"9990000026","plan_type":"CPP","start_date":"2024-05-05","local_id":"case-26"},
        {"nhs_number":"9990000034","plan_type":"UCPP","start_date":"2024-11-01","due_date":"2025-04-01"},
        {"nhs_number":"9990000042","plan_type":"LAC","start_date":"2020-01-01","end_date":"2023-01-01"},
        {"nhs_number":"9990000050","plan_type":"LAC","start_date":"2024-01-01","delete_date":"2026-01-01"},
        {"nhs_number":"9990000010","plan_type":"CPP","start_date":"2024-01-10"}
    ]}"#;
    seen.push(upload(store, a, first).await);
    seen.push(upload(store, a, first).await);
    seen.push(upload(store, a, &first.replace("case-26", "case-X")).await);
    let other = r#"{"sequence":5,"mode":"delta","records":[
        {"nhs_number":"9990000018","plan_type":"CPP","start_date":"2024-03-01","local_id":"b-1"}
    ]}"#;
    seen.push(upload(store, b, other).await);
    seen.push(upload(store, b, r#"{"sequence":4,"mode":"delta","records":[]}"#).await);
    for child in ["9990000018", "9990000026", "9990000034", "9990000042"] {
        seen.push(Seen::Plans(sorted(
            store.plans_for_child(&nhs(child)).await.unwrap(),
        )));
    }
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .plans_for_authority(a, cursor.as_deref(), 2)
            .await
            .unwrap();
        cursor = page.next_cursor.clone();
        seen.push(Seen::PlanPage(page));
        if cursor.is_none() {
            break;
        }
    }
    seen.push(Seen::PlanPage(
        store.plans_for_authority(a, None, 100).await.unwrap(),
    ));
    seen.push(Seen::Error(
        store
            .plans_for_authority(a, Some("not-a-cursor"), 2)
            .await
            .map(|_| ())
            .map_err(err_kind)
            .err()
            .unwrap_or_default(),
    ));
    let mut keys = store.plan_keys_for_authority(a).await.unwrap();
    keys.sort();
    seen.push(Seen::Keys(keys));
    for ods in [a, b] {
        seen.push(Seen::Sequence(
            store.ledger_head(ods).await.unwrap().map(|h| h.sequence),
        ));
    }
    seen.push(Seen::Receipt(
        store
            .receipt(a, 1)
            .await
            .unwrap()
            .map(|r| (r.sequence, r.digest)),
    ));
    seen.push(Seen::Receipt(
        store
            .receipt(a, 2)
            .await
            .unwrap()
            .map(|r| (r.sequence, r.digest)),
    ));

    // A snapshot naming one plan withdraws the rest; a delta withdraws by key.
    let snapshot = r#"{"sequence":2,"mode":"full","records":[
        {"nhs_number":"9990000026","plan_type":"CPP","start_date":"2024-05-05","end_date":"2025-01-31"},
        {"nhs_number":"9990000050","plan_type":"LAC","start_date":"2024-01-01","delete_date":"2026-01-01"}
    ]}"#;
    seen.push(upload(store, a, snapshot).await);
    let delta = r#"{"sequence":3,"mode":"delta","records":[],"withdrawals":[
        {"nhs_number":"9990000050","plan_type":"LAC","start_date":"2024-01-01"},
        {"nhs_number":"9990000042","plan_type":"CPP","start_date":"2024-01-01"}
    ]}"#;
    seen.push(upload(store, a, delta).await);
    seen.push(Seen::PlanPage(
        store.plans_for_authority(a, None, 10).await.unwrap(),
    ));
    seen.push(Seen::Sequence(
        store.ledger_head(a).await.unwrap().map(|h| h.sequence),
    ));

    // Purge: the 2025-01-31 CPP is purged from 2026-02-01.
    seen.push(Seen::Purge(
        store.purge(date!(2026 - 01 - 31)).await.unwrap(),
    ));
    seen.push(Seen::Purge(
        store.purge(date!(2026 - 02 - 01)).await.unwrap(),
    ));
    seen.push(Seen::Plans(sorted(
        store.plans_for_child(&nhs("9990000026")).await.unwrap(),
    )));
    seen.push(Seen::Plans(sorted(
        store.plans_for_child(&nhs("9990000018")).await.unwrap(),
    )));
    seen
}

#[tokio::test]
async fn uploads_listings_withdrawals_and_purge_match_the_reference_store() {
    let dynamo = moto::fresh_store().await;
    let a = moto::unique_ods();
    let b = moto::unique_ods();
    let expected = plan_scenario(&MemoryStore::new(), &a, &b).await;
    let actual = plan_scenario(&dynamo, &a, &b).await;
    assert_eq!(actual, expected);
    // The scenario is not trivially empty: it loaded, paged and purged.
    assert!(expected.len() > 20);
    assert!(expected
        .iter()
        .any(|s| matches!(s, Seen::Purge(r) if r.plans == 1)));
}

fn accessor(user: &str, org: &str) -> Accessor {
    Accessor {
        job_role: None,
        kind: AccessorKind::User,
        user_id: user.into(),
        rbac: Rbac::B0107,
        organisation_ods: OdsCode::parse(org).unwrap(),
        organisation_name: format!("Hospital {org}"),
        setting: "Emergency department".into(),
    }
}

struct AccessFixture {
    accesses: Vec<(AccessRecord, Vec<Asn>, OffsetDateTime)>,
}

fn asn(id: &str, authority: &OdsCode, access: &AccessRecord, plan_type: PlanType) -> Asn {
    Asn {
        id: id.into(),
        authority: authority.clone(),
        nhs_number: access.nhs_number,
        plans: vec![AsnPlan {
            upload_sequence: None,
            plan_type,
            local_id: Some(format!("local-{id}")),
        }],
        accessed_at: access.accessed_at,
        accessor: access.accessor.clone(),
        access_id: access.id.clone(),
        acknowledged_at: None,
        acknowledgement_note: None,
    }
}

fn access_fixture(a: &OdsCode, b: &OdsCode) -> AccessFixture {
    let child = nhs("9990000018");
    let other_child = nhs("9990000026");
    let t = datetime!(2025-03-01 09:00 UTC);
    let record = |id: &str, who: Accessor, at: OffsetDateTime, child: NhsNumber| AccessRecord {
        id: id.into(),
        nhs_number: child,
        accessed_at: at,
        accessor: who,
    };
    let u1 = accessor("u1", "RJ1");
    let u2 = accessor("u2", "RJ1");
    let u1_elsewhere = accessor("u1", "RX9");
    let window = Duration::hours(24);
    let mut accesses = Vec::new();
    let r1 = record("acc-1", u1.clone(), t, child);
    accesses.push((
        r1.clone(),
        vec![
            asn("asn-1a", a, &r1, PlanType::ChildProtection),
            asn("asn-1b", b, &r1, PlanType::LookedAfter),
        ],
        t - window,
    ));
    // Same author an hour later: collapsed, its ASN never written.
    let r2 = record("acc-2", u1.clone(), t + Duration::hours(1), child);
    accesses.push((
        r2.clone(),
        vec![asn("asn-2a", a, &r2, PlanType::ChildProtection)],
        r2.accessed_at - window,
    ));
    let r3 = record("acc-3", u2, t + Duration::hours(2), child);
    accesses.push((
        r3.clone(),
        vec![asn("asn-3a", a, &r3, PlanType::ChildProtection)],
        r3.accessed_at - window,
    ));
    // Same user id at another organisation is another author.
    let r4 = record("acc-4", u1_elsewhere, t + Duration::hours(3), child);
    accesses.push((
        r4.clone(),
        vec![asn("asn-4a", a, &r4, PlanType::ChildProtection)],
        r4.accessed_at - window,
    ));
    // Exactly 24 hours later is still inside the window (collapse_since inclusive).
    let r5 = record("acc-5", u1.clone(), t + window, child);
    accesses.push((
        r5.clone(),
        vec![asn("asn-5a", a, &r5, PlanType::ChildProtection)],
        r5.accessed_at - window,
    ));
    let r6 = record(
        "acc-6",
        u1.clone(),
        t + window + Duration::nanoseconds(1),
        child,
    );
    accesses.push((
        r6.clone(),
        vec![asn("asn-6a", a, &r6, PlanType::ChildProtection)],
        r6.accessed_at - window,
    ));
    let r7 = record("acc-7", u1, t, other_child);
    accesses.push((
        r7.clone(),
        vec![asn("asn-7b", b, &r7, PlanType::LookedAfter)],
        t - window,
    ));
    AccessFixture { accesses }
}

fn directory_entry(ods: &OdsCode) -> Authority {
    Authority {
        ods_code: ods.clone(),
        name: format!("Council {ods}"),
        office_hours_phone: "020 7946 0000".into(),
        emergency_duty_phone: "020 7946 0999".into(),
        notify_emails: vec!["duty@example.gov.uk".into(), "edt@example.gov.uk".into()],
        notify_sms: vec!["+447700900123".into()],
    }
}

async fn delivery<S: AsnOutbox>(store: &S, id: &str, at: OffsetDateTime) -> Seen {
    Seen::Delivery(
        match store.begin_delivery(id, at, Duration::seconds(60)).await {
            Ok(DeliveryStart::Proceed(asn)) => format!("proceed {}", asn.id),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("error {e}"),
        },
    )
}

async fn access_scenario<S>(store: &S, a: &OdsCode, b: &OdsCode) -> Vec<Seen>
where
    S: AccessLog
        + CheckReceipts
        + NotificationInbox
        + AsnOutbox
        + AuthorityDirectory
        + Retention
        + AuditTrail
        + AuditReader,
{
    let mut seen = Vec::new();
    let fixture = access_fixture(a, b);
    let child = nhs("9990000018");

    store.put_authority(&directory_entry(a)).await.unwrap();
    let mut changed = directory_entry(a);
    changed.notify_sms.clear();
    store.put_authority(&changed).await.unwrap();
    seen.push(Seen::Authority(store.authority(a).await.unwrap()));
    seen.push(Seen::Authority(store.authority(b).await.unwrap()));

    for (access, asns, since) in &fixture.accesses {
        seen.push(Seen::Access(
            store.record_access(access, asns, *since).await.unwrap(),
        ));
    }
    seen.push(Seen::Accesses(
        store.recent_accesses(&child, 25).await.unwrap(),
    ));
    seen.push(Seen::Accesses(
        store.recent_accesses(&child, 2).await.unwrap(),
    ));

    let rj1 = OdsCode::parse("RJ1").unwrap();
    store.note_check(&child, &rj1, NOW).await.unwrap();
    store
        .note_check(&child, &rj1, NOW - Duration::hours(1))
        .await
        .unwrap();
    seen.push(Seen::LastCheck(
        store.last_check(&child, &rj1).await.unwrap(),
    ));
    seen.push(Seen::LastCheck(
        store
            .last_check(&child, &OdsCode::parse("RX9").unwrap())
            .await
            .unwrap(),
    ));

    let mut cursor: Option<String> = None;
    loop {
        let page = store.notifications(a, cursor.as_deref(), 2).await.unwrap();
        cursor = page.next_cursor.clone();
        seen.push(Seen::Inbox(page));
        if cursor.is_none() {
            break;
        }
    }
    seen.push(Seen::Inbox(store.notifications(b, None, 10).await.unwrap()));
    seen.push(Seen::Error(
        store
            .notifications(a, Some("garbage"), 2)
            .await
            .map(|_| ())
            .map_err(err_kind)
            .err()
            .unwrap_or_default(),
    ));
    seen.push(Seen::Asn(store.notification(a, "asn-1a").await.unwrap()));
    seen.push(Seen::Asn(store.notification(a, "asn-1b").await.unwrap()));
    seen.push(Seen::Asn(store.notification(a, "asn-2a").await.unwrap()));
    seen.push(Seen::Asn(
        store.acknowledge(a, "asn-1a", NOW, None).await.unwrap(),
    ));
    seen.push(Seen::Asn(
        store
            .acknowledge(a, "asn-1a", NOW + Duration::hours(1), None)
            .await
            .unwrap(),
    ));
    seen.push(Seen::Asn(
        store.acknowledge(a, "asn-1b", NOW, None).await.unwrap(),
    ));
    seen.push(Seen::Asn(
        store.acknowledge(a, "nope", NOW, None).await.unwrap(),
    ));

    let lease = Duration::seconds(60);
    let ids = |asns: Vec<Asn>| asns.into_iter().map(|a| a.id).collect::<Vec<_>>();
    seen.push(Seen::Claimed(ids(store
        .claim_undelivered(NOW, lease, 2)
        .await
        .unwrap())));
    seen.push(Seen::Claimed(ids(store
        .claim_undelivered(NOW, lease, 10)
        .await
        .unwrap())));
    seen.push(Seen::Claimed(ids(store
        .claim_undelivered(NOW, lease, 10)
        .await
        .unwrap())));

    seen.push(delivery(store, "asn-1a", NOW).await);
    seen.push(delivery(store, "asn-1a", NOW + Duration::seconds(30)).await);
    seen.push(delivery(store, "asn-1a", NOW + Duration::seconds(60)).await);
    store.finish_delivery("asn-1a", NOW).await.unwrap();
    store
        .finish_delivery("asn-1a", NOW + Duration::hours(1))
        .await
        .unwrap();
    store.finish_delivery("unknown-id", NOW).await.unwrap();
    seen.push(delivery(store, "asn-1a", NOW + Duration::hours(2)).await);
    seen.push(delivery(store, "asn-2a", NOW).await);
    seen.push(delivery(store, "", NOW).await);
    store.finish_delivery("asn-7b", NOW).await.unwrap();
    // The claims lapsed: every undelivered ASN is claimable again, oldest first.
    seen.push(Seen::Claimed(ids(store
        .claim_undelivered(NOW + Duration::seconds(61), lease, 10)
        .await
        .unwrap())));

    for (i, action) in [
        AuditAction::Check,
        AuditAction::ReadHistory,
        AuditAction::Upload,
    ]
    .into_iter()
    .enumerate()
    {
        let mut event = AuditEvent::new(
            None,
            action,
            Some("p1-abc".into()),
            AuditOutcome::Allowed,
            NOW + Duration::seconds(i as i64),
            "trace",
        );
        event.id = format!("audit-{i}");
        store.append(&event).await.unwrap();
    }
    seen.push(Seen::Audit(store.audit_events(2).await.unwrap()));

    // No plan is stored for these children: the purge takes their accesses,
    // check receipts and delivered ASNs, and keeps undelivered ASNs.
    seen.push(Seen::Purge(store.purge(NOW.date()).await.unwrap()));
    seen.push(Seen::Accesses(
        store.recent_accesses(&child, 25).await.unwrap(),
    ));
    seen.push(Seen::Asn(store.notification(a, "asn-1a").await.unwrap()));
    seen.push(Seen::Asn(store.notification(a, "asn-3a").await.unwrap()));
    seen
}

#[tokio::test]
async fn accesses_collapse_inbox_outbox_and_audit_match_the_reference_store() {
    let dynamo = moto::fresh_store().await;
    let a = moto::unique_ods();
    let b = moto::unique_ods();
    let expected = access_scenario(&MemoryStore::new(), &a, &b).await;
    let actual = access_scenario(&dynamo, &a, &b).await;
    for (i, (x, y)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(x, y, "observation {i} differs");
    }
    assert_eq!(actual.len(), expected.len());
    assert!(expected.contains(&Seen::Access(AccessWrite::Collapsed)));
    assert!(expected.contains(&Seen::Delivery("AlreadyDelivered".into())));
}
