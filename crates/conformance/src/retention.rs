//! `Retention`: the purge.

use std::collections::BTreeMap;

use cpis_domain::ports::StoredPlan;
use cpis_domain::{Plan, PlanType, VisibilityPolicy};
use time::macros::date;
use time::Duration;

use crate::fixtures::*;
use crate::support::*;
use crate::Store;

pub async fn purge_removes_expired_plans_and_orphaned_data<S: Store>(store: &S) {
    let today = date!(2026 - 03 - 02);
    let a = la(COUNCIL_A);
    // child 0: purge day passed; child 1: purge day is today (purged);
    // child 2: purge day tomorrow (kept); child 3: open plan (kept);
    // child 4: one plan purged, another council's plan still open (kept).
    let ended_on = |index: usize, end| Plan {
        end_date: Some(end),
        ..plan(
            COUNCIL_A,
            child(index),
            PlanType::ChildProtection,
            date!(2024 - 01 - 10),
        )
    };
    // Ended E: purged from E + 366 days (the domain's rule, checked below).
    let purged_today = today - Duration::days(366);
    let expired = [
        ended_on(0, purged_today - Duration::days(3)),
        ended_on(1, purged_today),
        ended_on(4, purged_today - Duration::days(1)),
    ];
    let kept = [
        ended_on(2, purged_today + Duration::days(1)),
        plan(
            COUNCIL_A,
            child(3),
            PlanType::LookedAfter,
            date!(2024 - 01 - 10),
        ),
    ];
    let policy = VisibilityPolicy::default();
    assert_eq!(expired[1].purge_from(&policy), Some(today));
    assert_eq!(
        kept[0].purge_from(&policy),
        Some(today.next_day().expect("a day"))
    );
    let all: Vec<StoredPlan> = expired.iter().chain(kept.iter()).map(stored).collect();
    store.apply_changes(&a, &all, &[]).await.expect("plans");
    let b_open = plan(
        COUNCIL_B,
        child(4),
        PlanType::LookedAfter,
        date!(2024 - 01 - 10),
    );
    store
        .apply_changes(&la(COUNCIL_B), &[stored(&b_open)], &[])
        .await
        .expect("B plan");

    let at = NOW - Duration::days(400);
    let mut delivered = BTreeMap::new();
    let mut undelivered = BTreeMap::new();
    for index in 0..5 {
        let plans = vec![plan(
            COUNCIL_A,
            child(index),
            PlanType::ChildProtection,
            date!(2024 - 01 - 10),
        )];
        for (n, user) in ["user-1", "user-2"].into_iter().enumerate() {
            let record = access(
                child(index),
                at + Duration::hours(n as i64),
                accessor("RJ1", user),
            );
            let asns = accessed(store, &record, &plans).await;
            if n == 0 {
                for asn in &asns {
                    store.finish_delivery(&asn.id, at).await.expect("deliver");
                }
                delivered.insert(index, asns);
            } else {
                undelivered.insert(index, asns);
            }
        }
        store
            .note_check(&child(index), &la("RJ1"), at)
            .await
            .expect("check");
        store
            .note_check(&child(index), &la("RQM"), at)
            .await
            .expect("check");
    }

    let report = store.purge(today).await.expect("purge");
    assert_eq!(report.plans, 3, "purge_from on or before today");
    assert_eq!(report.accesses, 4, "two each for children 0 and 1");
    assert_eq!(report.receipts, 4, "two each for children 0 and 1");
    assert_eq!(
        report.notifications, 2,
        "the delivered ASN of children 0 and 1"
    );

    for index in [0, 1] {
        assert!(store
            .plans_for_child(&child(index))
            .await
            .expect("read")
            .is_empty());
        assert!(store
            .recent_accesses(&child(index), 25)
            .await
            .expect("read")
            .is_empty());
        assert_eq!(
            store
                .last_check(&child(index), &la("RJ1"))
                .await
                .expect("read"),
            None
        );
        for asn in &delivered[&index] {
            assert_eq!(store.notification(&a, &asn.id).await.expect("read"), None);
        }
        for asn in &undelivered[&index] {
            assert!(
                store
                    .notification(&a, &asn.id)
                    .await
                    .expect("read")
                    .is_some(),
                "an undelivered ASN is never lost"
            );
        }
    }
    for index in [2, 3, 4] {
        assert_eq!(
            store
                .plans_for_child(&child(index))
                .await
                .expect("read")
                .len(),
            1
        );
        assert_eq!(
            store
                .recent_accesses(&child(index), 25)
                .await
                .expect("read")
                .len(),
            2
        );
        assert_eq!(
            store
                .last_check(&child(index), &la("RQM"))
                .await
                .expect("read"),
            Some(at)
        );
        for asn in delivered[&index].iter().chain(&undelivered[&index]) {
            assert!(store
                .notification(&a, &asn.id)
                .await
                .expect("read")
                .is_some());
        }
    }
    assert_eq!(
        store.plans_for_child(&child(4)).await.expect("read"),
        vec![b_open]
    );
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 5, "every undelivered ASN is still pending");
    assert_eq!(
        store.purge(today).await.expect("purge again"),
        cpis_domain::ports::PurgeReport::default(),
        "a second sweep finds nothing"
    );
}
