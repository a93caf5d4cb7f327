//! `PlanStore`: upserts, withdrawals, listings and their cursors.

use std::collections::HashSet;

use cpis_domain::ports::{StoreError, StoredPlan};
use cpis_domain::{Plan, PlanKey, PlanType};
use time::macros::date;

use crate::fixtures::*;
use crate::support::*;
use crate::Store;

pub async fn plan_upsert_updates_by_identity<S: Store>(store: &S) {
    let original = plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    );
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&original)], &[])
        .await
        .expect("first upsert");
    let updated = Plan {
        end_date: Some(date!(2025 - 12 - 31)),
        local_id: Some("case-renumbered".to_owned()),
        ..original.clone()
    };
    let withdrawn = store
        .apply_changes(&la(COUNCIL_A), &[stored(&updated)], &[])
        .await
        .expect("second upsert");
    assert_eq!(withdrawn, 0);
    assert_eq!(
        store.plans_for_child(&child(0)).await.expect("read"),
        vec![updated.clone()],
        "the same identity updates the plan in place"
    );
    assert_eq!(
        store
            .plan_keys_for_authority(&la(COUNCIL_A))
            .await
            .expect("keys"),
        vec![updated.key()]
    );
}

pub async fn plan_with_changed_start_date_is_a_different_plan<S: Store>(store: &S) {
    let first = plan(
        COUNCIL_A,
        child(0),
        PlanType::LookedAfter,
        date!(2025 - 01 - 10),
    );
    let restarted = Plan {
        start_date: date!(2025 - 02 - 01),
        ..first.clone()
    };
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&first)], &[])
        .await
        .expect("upsert");
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&restarted)], &[])
        .await
        .expect("upsert");
    assert_eq!(
        sorted(store.plans_for_child(&child(0)).await.expect("read")),
        sorted(vec![first, restarted])
    );
}

pub async fn withdrawals_count_only_plans_that_existed<S: Store>(store: &S) {
    let kept = plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    );
    let gone = plan(
        COUNCIL_A,
        child(1),
        PlanType::LookedAfter,
        date!(2025 - 01 - 10),
    );
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&kept), stored(&gone)], &[])
        .await
        .expect("upsert");
    let never_stored = plan(
        COUNCIL_A,
        child(2),
        PlanType::LookedAfter,
        date!(2025 - 01 - 10),
    )
    .key();
    let withdrawn = store
        .apply_changes(&la(COUNCIL_A), &[], &[gone.key(), never_stored.clone()])
        .await
        .expect("withdraw");
    assert_eq!(withdrawn, 1, "only the plan that existed counts");
    assert!(store
        .plans_for_child(&child(1))
        .await
        .expect("read")
        .is_empty());
    let again = store
        .apply_changes(&la(COUNCIL_A), &[], &[gone.key()])
        .await
        .expect("withdraw again");
    assert_eq!(again, 0, "a second withdrawal finds nothing");
    assert_eq!(
        store.plans_for_child(&child(0)).await.expect("read"),
        vec![kept]
    );
}

pub async fn another_councils_key_never_touches_a_plan<S: Store>(store: &S) {
    let theirs = plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    );
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&theirs)], &[])
        .await
        .expect("upsert");
    // Council B names A's key outright, then its own key for the same child.
    let same_identity_under_b = PlanKey {
        authority: la(COUNCIL_B),
        ..theirs.key()
    };
    let withdrawn = store
        .apply_changes(&la(COUNCIL_B), &[], &[theirs.key(), same_identity_under_b])
        .await
        .expect("withdraw");
    assert_eq!(withdrawn, 0);
    assert_eq!(
        store.plans_for_child(&child(0)).await.expect("read"),
        vec![theirs]
    );
}

pub async fn upserts_for_another_council_are_ignored<S: Store>(store: &S) {
    let theirs = plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    );
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&theirs)], &[])
        .await
        .expect("upsert");
    let forged = Plan {
        end_date: Some(date!(2025 - 02 - 01)),
        ..theirs.clone()
    };
    store
        .apply_changes(&la(COUNCIL_B), &[stored(&forged)], &[])
        .await
        .expect("upsert under B");
    assert_eq!(
        store.plans_for_child(&child(0)).await.expect("read"),
        vec![theirs]
    );
    assert!(store
        .plan_keys_for_authority(&la(COUNCIL_B))
        .await
        .expect("keys")
        .is_empty());
}

/// Seven plans for A (several per child, all three types) and two for B.
async fn seed_listing<S: Store>(store: &S) -> Vec<Plan> {
    let mut mine = Vec::new();
    for (index, (kind, start)) in [
        (PlanType::ChildProtection, date!(2025 - 01 - 10)),
        (PlanType::LookedAfter, date!(2025 - 01 - 10)),
        (PlanType::ChildProtection, date!(2025 - 03 - 01)),
        (PlanType::UnbornChildProtection, date!(2025 - 02 - 01)),
        (PlanType::LookedAfter, date!(2024 - 12 - 31)),
        (PlanType::ChildProtection, date!(2025 - 01 - 11)),
        (PlanType::LookedAfter, date!(2025 - 06 - 30)),
    ]
    .into_iter()
    .enumerate()
    {
        mine.push(plan(COUNCIL_A, child(index % 4), kind, start));
    }
    // Upserted in a scrambled order: the listing order is the store's, not ours.
    let mut scrambled: Vec<StoredPlan> = mine.iter().rev().map(stored).collect();
    scrambled.swap(0, 3);
    store
        .apply_changes(&la(COUNCIL_A), &scrambled, &[])
        .await
        .expect("seed A");
    let others = [
        plan(
            COUNCIL_B,
            child(0),
            PlanType::ChildProtection,
            date!(2025 - 01 - 10),
        ),
        plan(
            COUNCIL_B,
            child(9),
            PlanType::LookedAfter,
            date!(2025 - 01 - 10),
        ),
    ];
    store
        .apply_changes(&la(COUNCIL_B), &others.map(|p| stored(&p)), &[])
        .await
        .expect("seed B");
    mine
}

pub async fn plans_for_authority_pages_without_duplicates_or_gaps<S: Store>(store: &S) {
    let mine = seed_listing(store).await;
    for limit in [1, 2, 3, 7, 100] {
        let pages = all_plans_of(store, COUNCIL_A, limit).await;
        let listed: Vec<Plan> = pages.iter().flatten().cloned().collect();
        assert_eq!(
            listed.len(),
            mine.len(),
            "limit {limit}: every plan exactly once"
        );
        assert_eq!(
            sorted(listed.clone()),
            sorted(mine.clone()),
            "limit {limit}"
        );
        let distinct: HashSet<PlanKey> = listed.iter().map(Plan::key).collect();
        assert_eq!(distinct.len(), mine.len(), "limit {limit}: no duplicates");
        assert!(
            pages.iter().rev().skip(1).all(|p| p.len() == limit),
            "limit {limit}: only the last page may be short"
        );
        // Stable: listing again gives the same order.
        let again: Vec<Plan> = all_plans_of(store, COUNCIL_A, limit)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(again, listed, "limit {limit}: the order is stable");
    }
    let whole = all_plans_of(store, COUNCIL_A, 100).await;
    assert_eq!(whole.len(), 1, "one page when everything fits");
}

pub async fn plans_for_authority_cursor_survives_a_withdrawal<S: Store>(store: &S) {
    let mine = seed_listing(store).await;
    let first = store
        .plans_for_authority(&la(COUNCIL_A), None, 3)
        .await
        .expect("page 1");
    let cursor = first.next_cursor.clone().expect("more pages");
    // The plan the cursor points at disappears between pages.
    let last_seen = first.items.last().expect("a full page").key();
    store
        .apply_changes(&la(COUNCIL_A), &[], std::slice::from_ref(&last_seen))
        .await
        .expect("withdraw");
    let mut rest = Vec::new();
    let mut next = Some(cursor);
    while let Some(cursor) = next {
        let page = store
            .plans_for_authority(&la(COUNCIL_A), Some(&cursor), 3)
            .await
            .expect("later page");
        rest.extend(page.items);
        next = page.next_cursor;
    }
    let mut listed: Vec<Plan> = first.items.clone();
    listed.extend(rest);
    assert_eq!(listed.len(), mine.len(), "no plan skipped or repeated");
    assert_eq!(sorted(listed), sorted(mine));
}

pub async fn invalid_cursors_are_refused<S: Store>(store: &S) {
    seed_listing(store).await;
    for bad in ["not-a-cursor", "!!!", "9990000018"] {
        let plans = store
            .plans_for_authority(&la(COUNCIL_A), Some(bad), 2)
            .await;
        assert!(
            matches!(plans, Err(StoreError::InvalidCursor)),
            "plans cursor {bad:?}: {plans:?}"
        );
        let inbox = store.notifications(&la(COUNCIL_A), Some(bad), 2).await;
        assert!(
            matches!(inbox, Err(StoreError::InvalidCursor)),
            "inbox cursor {bad:?}: {inbox:?}"
        );
    }
}

pub async fn plan_keys_for_authority_lists_only_that_council<S: Store>(store: &S) {
    let mine = seed_listing(store).await;
    let keys = store
        .plan_keys_for_authority(&la(COUNCIL_A))
        .await
        .expect("keys");
    assert_eq!(
        sorted_keys(keys),
        sorted_keys(mine.iter().map(Plan::key).collect())
    );
    assert_eq!(
        store
            .plan_keys_for_authority(&la(COUNCIL_B))
            .await
            .expect("keys")
            .len(),
        2
    );
    assert!(store
        .plan_keys_for_authority(&la("E10000016"))
        .await
        .expect("keys")
        .is_empty());
}

pub async fn plans_for_child_spans_councils<S: Store>(store: &S) {
    let a = plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    );
    let a_lac = plan(
        COUNCIL_A,
        child(0),
        PlanType::LookedAfter,
        date!(2025 - 02 - 10),
    );
    let b = Plan {
        end_date: Some(date!(2025 - 09 - 01)),
        delete_date: Some(date!(2026 - 09 - 01)),
        ..plan(
            COUNCIL_B,
            child(0),
            PlanType::ChildProtection,
            date!(2024 - 05 - 01),
        )
    };
    let unborn = Plan {
        due_date: Some(date!(2026 - 05 - 01)),
        local_id: None,
        ..plan(
            COUNCIL_B,
            child(1),
            PlanType::UnbornChildProtection,
            date!(2025 - 11 - 01),
        )
    };
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&a), stored(&a_lac)], &[])
        .await
        .expect("A");
    store
        .apply_changes(&la(COUNCIL_B), &[stored(&b), stored(&unborn)], &[])
        .await
        .expect("B");
    assert_eq!(
        sorted(store.plans_for_child(&child(0)).await.expect("read")),
        sorted(vec![a, a_lac, b]),
        "every council's plans, every field intact"
    );
    assert_eq!(
        store.plans_for_child(&child(1)).await.expect("read"),
        vec![unborn]
    );
    assert!(store
        .plans_for_child(&child(2))
        .await
        .expect("read")
        .is_empty());
}
