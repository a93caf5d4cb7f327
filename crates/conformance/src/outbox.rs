//! `AsnOutbox`: claims, leases and delivery.

use std::collections::BTreeMap;

use cpis_domain::ports::{DeliveryRecord, DeliveryStart};
use cpis_domain::{Asn, AuditAction, AuditEvent, AuditOutcome, PlanType};
use time::macros::date;
use time::Duration;

use crate::fixtures::*;
use crate::support::*;
use crate::Store;

async fn three_pending<S: Store>(store: &S) -> Vec<Asn> {
    let only_a = vec![plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    )];
    let mut asns = Vec::new();
    for i in 0..3i64 {
        let record = access(
            child(0),
            NOW + Duration::seconds(i),
            accessor("RJ1", &format!("user-{i}")),
        );
        asns.extend(accessed(store, &record, &only_a).await);
    }
    asns
}

pub async fn claimed_asns_wait_for_the_lease<S: Store>(store: &S) {
    let all = three_pending(store).await;
    let lease = Duration::minutes(5);
    let first = store.claim_undelivered(NOW, lease, 2).await.expect("claim");
    assert_eq!(first.len(), 2, "at most `limit`");
    let second = store
        .claim_undelivered(NOW + Duration::minutes(1), lease, 10)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1, "only the one nobody holds");
    let mut both: Vec<Asn> = first.clone();
    both.extend(second.clone());
    assert_eq!(
        sorted_ids(&both),
        sorted_ids(&all),
        "claims carry whole ASNs"
    );
    let by_id: BTreeMap<&str, &Asn> = all.iter().map(|a| (a.id.as_str(), a)).collect();
    assert!(both.iter().all(|a| by_id.get(a.id.as_str()) == Some(&a)));
    assert!(store
        .claim_undelivered(NOW + Duration::minutes(4), lease, 10)
        .await
        .expect("claim")
        .is_empty());
    // The first lease lapses at NOW + 5 min; the second holds until NOW + 6 min.
    let redelivered = store
        .claim_undelivered(NOW + Duration::minutes(5), lease, 10)
        .await
        .expect("claim");
    assert_eq!(sorted_ids(&redelivered), sorted_ids(&first));
    let later = store
        .claim_undelivered(NOW + Duration::minutes(6), lease, 10)
        .await
        .expect("claim");
    assert_eq!(sorted_ids(&later), sorted_ids(&second));
}

pub async fn delivered_asns_are_never_claimed<S: Store>(store: &S) {
    let all = three_pending(store).await;
    store
        .finish_delivery(&all[1].id, NOW)
        .await
        .expect("finish");
    let claimed = store
        .claim_undelivered(NOW + Duration::days(1), Duration::minutes(5), 10)
        .await
        .expect("claim");
    assert_eq!(
        sorted_ids(&claimed),
        sorted_ids(&[all[0].clone(), all[2].clone()])
    );
    for asn in &claimed {
        store
            .finish_delivery(&asn.id, NOW + Duration::days(1))
            .await
            .expect("finish");
    }
    assert!(store
        .claim_undelivered(NOW + Duration::days(30), Duration::minutes(5), 10)
        .await
        .expect("claim")
        .is_empty());
}

pub async fn begin_delivery_answers_every_state<S: Store>(store: &S) {
    let all = three_pending(store).await;
    let lease = Duration::minutes(2);
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        store
            .begin_delivery(&unknown, NOW, lease)
            .await
            .expect("begin"),
        DeliveryStart::Unknown
    );
    // The relay's claim does not stand in the dispatcher's way.
    store
        .claim_undelivered(NOW, Duration::minutes(5), 10)
        .await
        .expect("claim");
    let id = &all[0].id;
    assert_eq!(
        store.begin_delivery(id, NOW, lease).await.expect("begin"),
        DeliveryStart::Proceed(Box::new(all[0].clone()))
    );
    assert_eq!(
        store
            .begin_delivery(id, NOW + Duration::minutes(1), lease)
            .await
            .expect("begin"),
        DeliveryStart::InProgress
    );
    // The dispatcher died: once its lease lapses another may proceed.
    assert!(matches!(
        store
            .begin_delivery(id, NOW + Duration::minutes(2), lease)
            .await
            .expect("begin"),
        DeliveryStart::Proceed(_)
    ));
    store
        .finish_delivery(id, NOW + Duration::minutes(3))
        .await
        .expect("finish");
    for at in [NOW + Duration::minutes(3), NOW + Duration::days(1)] {
        assert_eq!(
            store.begin_delivery(id, at, lease).await.expect("begin"),
            DeliveryStart::AlreadyDelivered
        );
    }
    // Finishing twice, or an unknown id, is harmless.
    store
        .finish_delivery(id, NOW + Duration::minutes(9))
        .await
        .expect("finish again");
    store
        .finish_delivery(&unknown, NOW)
        .await
        .expect("finish unknown");
    assert_eq!(
        store
            .begin_delivery(&unknown, NOW, lease)
            .await
            .expect("begin"),
        DeliveryStart::Unknown
    );
    assert!(matches!(
        store
            .begin_delivery(&all[1].id, NOW, lease)
            .await
            .expect("begin"),
        DeliveryStart::Proceed(_)
    ));
}

/// Deliveries recorded together with their audit events (the dispatcher's
/// batch): each is recorded as `finish_delivery` records it, and its event
/// is in the trail; recording again (a retry) changes no record.
pub async fn deliveries_are_recorded_with_their_audit_events<S: Store>(store: &S) {
    let all = three_pending(store).await;
    let event = |asn: &Asn, outcome| {
        AuditEvent::system(
            "notification-dispatch",
            &asn.authority,
            AuditAction::DeliverNotification,
            outcome,
            NOW + Duration::minutes(1),
            &asn.id,
        )
    };
    let events = [
        event(&all[0], AuditOutcome::Allowed),
        event(&all[2], AuditOutcome::Failed),
    ];
    let deliveries = [
        (all[0].id.as_str(), &events[0]),
        (all[2].id.as_str(), &events[1]),
    ];
    let at = NOW + Duration::minutes(1);
    for _ in 0..2 {
        let answers = store.record_deliveries(&deliveries, at).await;
        assert_eq!(answers.len(), 2, "one answer per delivery");
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Ok(DeliveryRecord::Audited))),
            "{answers:?}"
        );
    }
    for (asn, expected) in [
        (&all[0], DeliveryStart::AlreadyDelivered),
        (&all[2], DeliveryStart::AlreadyDelivered),
    ] {
        assert_eq!(
            store
                .begin_delivery(&asn.id, at, Duration::minutes(2))
                .await
                .expect("begin"),
            expected
        );
    }
    assert!(matches!(
        store
            .begin_delivery(&all[1].id, at, Duration::minutes(2))
            .await
            .expect("begin"),
        DeliveryStart::Proceed(_)
    ));
    assert!(store
        .claim_undelivered(NOW + Duration::days(1), Duration::minutes(5), 10)
        .await
        .expect("claim")
        .iter()
        .all(|a| a.id == all[1].id));
    let trail = store.audit_events(10).await.expect("read");
    assert!(
        events.iter().all(|e| trail.contains(e)),
        "each event in the trail, intact"
    );
    assert!(store.record_deliveries(&[], at).await.is_empty());
}
