//! `NotificationInbox`: paging, council scoping, acknowledgement.

use cpis_domain::{Asn, PlanType};
use time::macros::date;
use time::Duration;

use crate::fixtures::*;
use crate::support::*;
use crate::Store;

pub async fn inbox_is_newest_first_and_pages<S: Store>(store: &S) {
    let mut for_a = Vec::new();
    let only_a = vec![plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    )];
    let only_b = vec![plan(
        COUNCIL_B,
        child(1),
        PlanType::LookedAfter,
        date!(2025 - 01 - 10),
    )];
    // Seven for A, out of order, three of them at one instant; three for B.
    for (i, minutes) in [5i64, 1, 9, 3, 3, 3, 7].into_iter().enumerate() {
        let record = access(
            child(0),
            NOW + Duration::minutes(minutes),
            accessor("RJ1", &format!("user-{i}")),
        );
        for_a.extend(accessed(store, &record, &only_a).await);
    }
    for i in 0..3i64 {
        let record = access(
            child(1),
            NOW + Duration::minutes(i * 4),
            accessor("RJ1", &format!("user-b{i}")),
        );
        accessed(store, &record, &only_b).await;
    }
    for limit in [1, 2, 3, 7, 50] {
        let listed = whole_inbox(store, COUNCIL_A, limit).await;
        assert_eq!(
            listed.len(),
            for_a.len(),
            "limit {limit}: each exactly once"
        );
        assert_eq!(sorted_ids(&listed), sorted_ids(&for_a), "limit {limit}");
        assert!(
            listed
                .windows(2)
                .all(|w| w[0].accessed_at >= w[1].accessed_at),
            "limit {limit}: newest first"
        );
        let again = whole_inbox(store, COUNCIL_A, limit).await;
        assert_eq!(ids(&again), ids(&listed), "limit {limit}: stable order");
    }
    assert_eq!(whole_inbox(store, COUNCIL_B, 50).await.len(), 3);
    assert!(whole_inbox(store, "E10000016", 50).await.is_empty());
}

pub async fn another_councils_asn_is_not_found<S: Store>(store: &S) {
    let record = access(child(0), NOW, accessor("RJ1", "user-1"));
    let only_a = vec![plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    )];
    let asns = accessed(store, &record, &only_a).await;
    let id = &asns[0].id;
    assert_eq!(
        store.notification(&la(COUNCIL_A), id).await.expect("read"),
        Some(asns[0].clone())
    );
    assert_eq!(
        store.notification(&la(COUNCIL_B), id).await.expect("read"),
        None
    );
    assert_eq!(
        store
            .acknowledge(&la(COUNCIL_B), id, NOW, None)
            .await
            .expect("ack"),
        None
    );
    assert_eq!(
        store
            .notification(&la(COUNCIL_A), id)
            .await
            .expect("read")
            .and_then(|a| a.acknowledged_at),
        None,
        "another council's acknowledgement changed nothing"
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        store
            .notification(&la(COUNCIL_A), &unknown)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store
            .acknowledge(&la(COUNCIL_A), &unknown, NOW, None)
            .await
            .expect("ack"),
        None
    );
}

pub async fn acknowledge_is_idempotent<S: Store>(store: &S) {
    let record = access(child(0), NOW, accessor("RJ1", "user-1"));
    let asns = accessed(store, &record, &plans_at_both_councils()).await;
    let mine = asns
        .iter()
        .find(|a| a.authority == la(COUNCIL_A))
        .expect("an ASN for A");
    let first_ack = NOW + Duration::minutes(3);
    let acked = store
        .acknowledge(&la(COUNCIL_A), &mine.id, first_ack, None)
        .await
        .expect("ack")
        .expect("found");
    assert_eq!(
        acked,
        Asn {
            acknowledged_at: Some(first_ack),
            acknowledgement_note: None,
            ..mine.clone()
        }
    );
    // A later acknowledgement keeps the first time, and gives the note
    // (the first note given stays: a third cannot replace it).
    let note = |text: &str| {
        cpis_domain::AckNote::parse(text)
            .expect("valid")
            .expect("given")
    };
    let first_note = note("Rang the ward at 02:40; social worker visiting.");
    let again = store
        .acknowledge(
            &la(COUNCIL_A),
            &mine.id,
            first_ack + Duration::hours(1),
            Some(&first_note),
        )
        .await
        .expect("ack")
        .expect("found");
    assert_eq!(
        again.acknowledged_at,
        Some(first_ack),
        "the first time is kept"
    );
    assert_eq!(
        again.acknowledgement_note.as_deref(),
        Some(first_note.as_str())
    );
    let third = store
        .acknowledge(
            &la(COUNCIL_A),
            &mine.id,
            first_ack + Duration::hours(2),
            Some(&note("another")),
        )
        .await
        .expect("ack")
        .expect("found");
    assert_eq!(
        third.acknowledgement_note.as_deref(),
        Some(first_note.as_str())
    );
    let listed = whole_inbox(store, COUNCIL_A, 10).await;
    assert_eq!(
        listed
            .iter()
            .find(|a| a.id == mine.id)
            .and_then(|a| a.acknowledgement_note.clone())
            .as_deref(),
        Some(first_note.as_str()),
        "the inbox listing carries the note too"
    );
    // Another council cannot put a note on it either.
    assert_eq!(
        store
            .acknowledge(&la(COUNCIL_B), &mine.id, NOW, Some(&note("theirs")))
            .await
            .expect("ack"),
        None
    );
    assert_eq!(
        store
            .notification(&la(COUNCIL_A), &mine.id)
            .await
            .expect("read")
            .and_then(|a| a.acknowledged_at),
        Some(first_ack)
    );
    let theirs = asns
        .iter()
        .find(|a| a.authority == la(COUNCIL_B))
        .expect("an ASN for B");
    assert_eq!(
        store
            .notification(&la(COUNCIL_B), &theirs.id)
            .await
            .expect("read")
            .and_then(|a| a.acknowledged_at),
        None,
        "acknowledging one ASN leaves the other council's alone"
    );
    // Acknowledging is not delivering: the outbox still holds both.
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
}
