//! Everything written survives closing the store and opening the file again.

use cpis_conformance::fixtures::{
    access, accessor, authority, child, la, plan, stored, COUNCIL_A, COUNCIL_B, NOW,
};
use cpis_domain::check::notifications_for;
use cpis_domain::ports::{
    AccessLog, AccessWrite, AsnOutbox, AuditReader, AuditTrail, AuthorityDirectory, CheckReceipts,
    DeliveryStart, NotificationInbox, PlanStore, UploadLedger,
};
use cpis_domain::{
    process_upload, AuditAction, AuditEvent, AuditOutcome, PlanType, VisibilityPolicy,
};
use cpis_store_sqlite::SqliteStore;
use time::macros::date;
use time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_file_holds_everything_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    let plans = vec![
        plan(
            COUNCIL_A,
            child(0),
            PlanType::ChildProtection,
            date!(2025 - 01 - 10),
        ),
        plan(
            COUNCIL_B,
            child(0),
            PlanType::LookedAfter,
            date!(2025 - 02 - 01),
        ),
    ];
    let body = br#"{"sequence": 7, "mode": "delta", "records": [
        {"nhs_number": "9990000026", "plan_type": "UCPP", "start_date": "2025-12-01", "due_date": "2026-06-01"}]}"#;
    let record = access(child(0), NOW, accessor("RJ1", "user-1"));
    let asns = notifications_for(&record, &plans);
    let event = AuditEvent::new(
        None,
        AuditAction::Check,
        Some("p1-abc".into()),
        AuditOutcome::Allowed,
        NOW,
        "trace",
    );

    let ack = {
        let store = SqliteStore::open(&path).unwrap();
        store
            .apply_changes(&la(COUNCIL_A), &[stored(&plans[0])], &[])
            .await
            .unwrap();
        store
            .apply_changes(&la(COUNCIL_B), &[stored(&plans[1])], &[])
            .await
            .unwrap();
        let ack = process_upload(
            &store,
            &la(COUNCIL_A),
            body,
            NOW,
            &VisibilityPolicy::default(),
        )
        .await
        .unwrap()
        .acknowledgement;
        store
            .put_authority(&authority(COUNCIL_A, "Example Borough Council"))
            .await
            .unwrap();
        assert_eq!(
            store
                .record_access(&record, &asns, NOW - Duration::hours(24))
                .await
                .unwrap(),
            AccessWrite::Recorded
        );
        store.note_check(&child(0), &la("RJ1"), NOW).await.unwrap();
        store
            .acknowledge(&asns[0].authority, &asns[0].id, NOW, None)
            .await
            .unwrap();
        store.finish_delivery(&asns[0].id, NOW).await.unwrap();
        store.append(&event).await.unwrap();
        ack
    };

    let store = SqliteStore::open(&path).unwrap();
    let mut found = store.plans_for_child(&child(0)).await.unwrap();
    found.sort_by_key(|p| p.key());
    let mut expected = plans.clone();
    expected.sort_by_key(|p| p.key());
    assert_eq!(found, expected);
    assert_eq!(store.plans_for_child(&child(1)).await.unwrap().len(), 1);
    assert_eq!(
        store
            .ledger_head(&la(COUNCIL_A))
            .await
            .unwrap()
            .map(|h| h.sequence),
        Some(7)
    );
    assert_eq!(
        store
            .receipt(&la(COUNCIL_A), 7)
            .await
            .unwrap()
            .unwrap()
            .acknowledgement,
        ack
    );
    assert_eq!(
        store.authority(&la(COUNCIL_A)).await.unwrap(),
        Some(authority(COUNCIL_A, "Example Borough Council"))
    );
    assert_eq!(
        store.recent_accesses(&child(0), 25).await.unwrap(),
        vec![record.clone()]
    );
    assert_eq!(
        store.last_check(&child(0), &la("RJ1")).await.unwrap(),
        Some(NOW)
    );
    let first = store
        .notification(&asns[0].authority, &asns[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.acknowledged_at, Some(NOW));
    assert_eq!(
        store
            .begin_delivery(&asns[0].id, NOW, Duration::minutes(1))
            .await
            .unwrap(),
        DeliveryStart::AlreadyDelivered
    );
    assert_eq!(
        store
            .begin_delivery(&asns[1].id, NOW, Duration::minutes(1))
            .await
            .unwrap(),
        DeliveryStart::Proceed(Box::new(asns[1].clone()))
    );
    assert_eq!(store.audit_events(10).await.unwrap(), vec![event]);
    // The collapse window reaches across the restart too.
    let repeat = access(
        child(0),
        NOW + Duration::hours(1),
        accessor("RJ1", "user-1"),
    );
    assert_eq!(
        store
            .record_access(
                &repeat,
                &notifications_for(&repeat, &plans),
                NOW + Duration::hours(1) - Duration::hours(24)
            )
            .await
            .unwrap(),
        AccessWrite::Collapsed
    );
}

/// A sign-in ticket used once stays used after a restart, and a session
/// survives one (issue 14: a reused link fails across restarts too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_tickets_and_sessions_survive_a_reopen() {
    use cpis_domain::session::PortalSessions;
    use cpis_domain::{PortalSession, Principal, SecretDigest};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    let expires = NOW + Duration::minutes(10);
    let session = PortalSession::new(
        SecretDigest::of("a session id"),
        Principal::Council {
            authority: la(COUNCIL_A),
            client_id: "duty-1".into(),
        },
        "csrf".into(),
        NOW,
    );
    {
        let store = SqliteStore::open(&path).unwrap();
        assert!(store.redeem_ticket("ticket-1", expires).await.unwrap());
        store.create_session(&session).await.unwrap();
    }
    let store = SqliteStore::open_existing(&path).unwrap();
    assert!(!store.redeem_ticket("ticket-1", expires).await.unwrap());
    let touched = store
        .touch_session(&session.id, NOW + Duration::minutes(1))
        .await;
    assert_eq!(
        touched.unwrap().map(|s| s.principal),
        Some(session.principal)
    );
}
