//! Audit (`AuditTrail`, `AuditReader`), and an ASN's retention past its plan.

use cpis_domain::{AuditAction, AuditEvent, AuditOutcome, PlanType, Principal};
use time::macros::date;
use time::Duration;

use crate::fixtures::*;
use crate::support::*;
use crate::Store;

/// An ASN outlives its child's last plan until its council has had it: the
/// duty team alerted at night finds it in the morning (issue: an inbox of 33
/// held 32 after a restart's purge).
pub async fn an_asn_outlives_its_plan_until_its_retention_ends<S: Store>(store: &S) {
    let a = la(COUNCIL_A);
    let only = plan(
        COUNCIL_A,
        child(5),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    );
    store
        .apply_changes(&a, &[stored(&only)], &[])
        .await
        .expect("plan");
    let mut asns = Vec::new();
    for (n, user) in ["user-1", "user-2"].into_iter().enumerate() {
        let record = access(
            child(5),
            NOW + Duration::hours(n as i64),
            accessor("RJ1", user),
        );
        let asn = accessed(store, &record, std::slice::from_ref(&only)).await;
        store
            .finish_delivery(&asn[0].id, NOW)
            .await
            .expect("deliver");
        asns.push(asn[0].clone());
    }
    // The morning after, the full snapshot withdrew the plan; the purge runs.
    store
        .apply_changes(&a, &[], &[only.key()])
        .await
        .expect("withdraw");
    let today = NOW.date() + Duration::days(1);
    assert_eq!(store.purge(today).await.expect("purge").notifications, 0);
    assert_eq!(
        whole_inbox(store, COUNCIL_A, 10).await.len(),
        2,
        "both still in the inbox"
    );
    store
        .acknowledge(&a, &asns[0].id, NOW + Duration::days(1), None)
        .await
        .expect("ack")
        .expect("found");
    // Acknowledged: kept through day 30 after the access, gone after.
    let day = |n: i64| NOW.date() + Duration::days(n);
    assert_eq!(store.purge(day(30)).await.expect("purge").notifications, 0);
    assert_eq!(store.purge(day(31)).await.expect("purge").notifications, 1);
    assert_eq!(
        store.notification(&a, &asns[0].id).await.expect("read"),
        None
    );
    // Never acknowledged: kept for a year.
    assert_eq!(store.purge(day(365)).await.expect("purge").notifications, 0);
    assert!(store
        .notification(&a, &asns[1].id)
        .await
        .expect("read")
        .is_some());
    assert_eq!(store.purge(day(366)).await.expect("purge").notifications, 1);
    assert_eq!(
        whole_inbox(store, COUNCIL_A, 10).await,
        Vec::<cpis_domain::Asn>::new()
    );
}

pub async fn audit_appends_and_reads_back<S: Store>(store: &S) {
    assert!(store.audit_events(10).await.expect("read").is_empty());
    let council = Principal::Council {
        authority: la(COUNCIL_A),
        client_id: "client-a".to_owned(),
    };
    let events: Vec<AuditEvent> = [
        (AuditAction::Upload, AuditOutcome::Allowed, None),
        (
            AuditAction::Check,
            AuditOutcome::Denied,
            Some("p1-abcdefabcdefabcd".to_owned()),
        ),
        (AuditAction::ListNotifications, AuditOutcome::Allowed, None),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (action, outcome, subject))| {
        AuditEvent::new(
            Some(&council),
            action,
            subject,
            outcome,
            NOW + Duration::seconds(i as i64),
            &format!("trace-{i}"),
        )
    })
    .collect();
    for event in &events {
        store.append(event).await.expect("append");
    }
    let anonymous = AuditEvent::new(
        None,
        AuditAction::Check,
        None,
        AuditOutcome::Invalid,
        NOW + Duration::seconds(10),
        "trace-anon",
    );
    store.append(&anonymous).await.expect("append");
    let mut expected = events.clone();
    expected.push(anonymous);
    assert_eq!(
        store.audit_events(10).await.expect("read"),
        expected,
        "every event, oldest first, intact"
    );
    assert_eq!(
        store.audit_events(2).await.expect("read"),
        expected[2..].to_vec(),
        "the most recent `limit`"
    );
}
