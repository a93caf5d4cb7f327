//! The one conformance suite every store adapter passes.
//!
//! Each behaviour is a `pub async fn` generic over [`Store`] (every port at
//! once) that takes a fresh, empty store. [`conformance_suite!`] expands into
//! one `#[tokio::test]` per behaviour, inside a module named for the adapter:
//!
//! ```ignore
//! cpis_conformance::conformance_suite!(memory, async { MemoryStore::new() });
//! // A factory may also return `(store, guard)`: the guard (a temporary
//! // directory, a moto server) lives as long as the test.
//! cpis_conformance::conformance_suite!(sqlite, async { fresh_sqlite().await });
//! ```
//!
//! The expansion uses `#[tokio::test(flavor = "multi_thread")]`, so the
//! instantiating crate needs `tokio` (with `macros` and `rt-multi-thread`)
//! among its dev-dependencies.
//!
//! Test data: synthetic NHS numbers in the 999 range only.

use std::collections::{BTreeMap, HashSet};

use cpis_domain::access::most_recent;
use cpis_domain::check::notifications_for;
use cpis_domain::ports::{
    AccessLog, AccessWrite, AsnOutbox, AuditReader, AuditTrail, AuthorityDirectory, CheckReceipts,
    DeliveryStart, NotificationInbox, PlanStore, Retention, StoreError, StoredPlan, UploadLedger,
    UploadReceipt,
};
use cpis_domain::{
    process_upload, AccessRecord, Asn, AuditAction, AuditEvent, AuditOutcome, FileOutcome, Plan,
    PlanKey, PlanType, Principal, UploadError, VisibilityPolicy,
};
use time::macros::date;
use time::Duration;

pub mod capture;
pub mod concurrent;
pub mod faults;
pub mod feeds;

pub use concurrent::*;
pub use feeds::*;

use fixtures::*;

/// Every port, as one bound: what an adapter must implement to be tested.
pub trait Store:
    PlanStore
    + UploadLedger
    + AuthorityDirectory
    + AccessLog
    + CheckReceipts
    + NotificationInbox
    + AsnOutbox
    + Retention
    + AuditTrail
    + AuditReader
    + cpis_domain::FeedLog
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: PlanStore
        + UploadLedger
        + AuthorityDirectory
        + AccessLog
        + CheckReceipts
        + NotificationInbox
        + AsnOutbox
        + Retention
        + AuditTrail
        + AuditReader
        + cpis_domain::FeedLog
        + Send
        + Sync
        + 'static
{
}

/// What a factory hands the suite: a fresh store, and whatever must outlive
/// the test for the store to keep working (a temporary directory, a server).
pub struct Fresh<S> {
    store: S,
    _keep_alive: Option<Box<dyn std::any::Any + Send>>,
}

impl<S: Store> Fresh<S> {
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S: Store> From<S> for Fresh<S> {
    fn from(store: S) -> Self {
        Self {
            store,
            _keep_alive: None,
        }
    }
}

impl<S: Store, G: Send + 'static> From<(S, G)> for Fresh<S> {
    fn from((store, guard): (S, G)) -> Self {
        Self {
            store,
            _keep_alive: Some(Box::new(guard)),
        }
    }
}

/// Instantiates the whole suite for one adapter: `conformance_suite!(name, factory)`
/// where `factory` is an expression of a future (e.g. an `async` block)
/// yielding a fresh, empty store, or `(store, guard)`. It is evaluated once
/// per test, so every test gets its own store.
#[macro_export]
macro_rules! conformance_suite {
    ($adapter:ident, $factory:expr $(,)?) => {
        $crate::__conformance_tests!(
            $adapter,
            $factory,
            [
                plan_upsert_updates_by_identity,
                plan_with_changed_start_date_is_a_different_plan,
                withdrawals_count_only_plans_that_existed,
                another_councils_key_never_touches_a_plan,
                upserts_for_another_council_are_ignored,
                plans_for_authority_pages_without_duplicates_or_gaps,
                plans_for_authority_cursor_survives_a_withdrawal,
                invalid_cursors_are_refused,
                plan_keys_for_authority_lists_only_that_council,
                plans_for_child_spans_councils,
                full_snapshot_withdraws_missing_plans,
                rejected_full_snapshot_withdraws_nothing,
                upload_replay_returns_the_stored_acknowledgement,
                record_receipt_keeps_the_first,
                ledger_heads_swap_only_from_the_expected_version,
                retiring_receipts_keeps_those_at_or_below_the_target,
                racing_snapshots_never_let_an_older_one_win,
                one_sequence_with_two_bodies_stores_one,
                one_body_sent_twice_at_once_is_applied_once,
                a_crashed_upload_is_completed_by_its_retry,
                a_rewind_lets_a_council_continue_after_a_wrong_sequence,
                simultaneous_checks_by_one_author_record_one_access,
                one_asn_is_delivered_and_acknowledged_once,
                a_purge_racing_an_upload_takes_only_what_was_due,
                racing_directory_updates_lose_no_channel,
                directory_put_and_get,
                record_access_writes_access_and_asns_together,
                same_author_within_window_is_collapsed,
                different_author_or_older_access_is_recorded,
                history_is_newest_first_and_bounded,
                check_receipts_keep_the_latest,
                inbox_is_newest_first_and_pages,
                another_councils_asn_is_not_found,
                acknowledge_is_idempotent,
                claimed_asns_wait_for_the_lease,
                delivered_asns_are_never_claimed,
                begin_delivery_answers_every_state,
                purge_removes_expired_plans_and_orphaned_data,
                an_asn_outlives_its_plan_until_its_retention_ends,
                audit_appends_and_reads_back,
                feeds_move_only_forward_and_list_every_council,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($adapter:ident, $factory:expr, [$($behaviour:ident),* $(,)?]) => {
        mod $adapter {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let fresh: $crate::Fresh<_> = ($factory).await.into();
                    $crate::$behaviour(fresh.store()).await;
                }
            )*
        }
    };
}

/// Builders for synthetic test data, shared with adapters' own tests.
pub mod fixtures {
    use cpis_domain::ports::StoredPlan;
    use cpis_domain::{
        AccessRecord, Accessor, AccessorKind, Authority, NhsNumber, OdsCode, Plan, PlanType, Rbac,
        VisibilityPolicy,
    };
    use time::macros::datetime;
    use time::{Date, OffsetDateTime};

    pub const NOW: OffsetDateTime = datetime!(2026-03-02 10:00 UTC);

    /// Synthetic NHS numbers (999 range, valid Modulus 11 check digits).
    pub const CHILDREN: [&str; 12] = [
        "9990000018",
        "9990000026",
        "9990000034",
        "9990000042",
        "9990000050",
        "9990000069",
        "9990000077",
        "9990000085",
        "9990000093",
        "9990000107",
        "9990000115",
        "9990000123",
    ];

    pub const COUNCIL_A: &str = "E09000033";
    pub const COUNCIL_B: &str = "E06000001";

    pub fn la(code: &str) -> OdsCode {
        OdsCode::parse(code).expect("a valid test ODS code")
    }

    pub fn child(index: usize) -> NhsNumber {
        NhsNumber::parse(CHILDREN[index]).expect("a valid synthetic NHS number")
    }

    pub fn plan(council: &str, nhs_number: NhsNumber, plan_type: PlanType, start: Date) -> Plan {
        Plan {
            authority: la(council),
            nhs_number,
            plan_type,
            start_date: start,
            end_date: None,
            delete_date: None,
            due_date: None,
            local_id: Some(format!("case-{}-{}", plan_type.code(), start)),
        }
    }

    /// As `process_upload` stores it: with the domain's purge day.
    pub fn stored(plan: &Plan) -> StoredPlan {
        StoredPlan {
            plan: plan.clone(),
            purge_from: plan.purge_from(&VisibilityPolicy::default()),
        }
    }

    pub fn accessor(organisation: &str, user_id: &str) -> Accessor {
        Accessor {
            kind: AccessorKind::User,
            user_id: user_id.to_owned(),
            rbac: Rbac::B0107,
            organisation_ods: la(organisation),
            organisation_name: format!("Trust {organisation}"),
            setting: "Emergency department".to_owned(),
        }
    }

    pub fn access(nhs_number: NhsNumber, at: OffsetDateTime, accessor: Accessor) -> AccessRecord {
        AccessRecord {
            id: uuid::Uuid::new_v4().to_string(),
            nhs_number,
            accessed_at: at,
            accessor,
        }
    }

    pub fn authority(code: &str, name: &str) -> Authority {
        Authority {
            ods_code: la(code),
            name: name.to_owned(),
            office_hours_phone: "020 7946 0000".to_owned(),
            emergency_duty_phone: "020 7946 0999".to_owned(),
            notify_emails: vec!["duty@example.gov.uk".to_owned()],
            notify_sms: vec!["+447700900123".to_owned()],
        }
    }
}

fn sorted(mut plans: Vec<Plan>) -> Vec<Plan> {
    plans.sort_by_key(Plan::key);
    plans
}

fn sorted_keys(mut keys: Vec<PlanKey>) -> Vec<PlanKey> {
    keys.sort();
    keys
}

fn ids(asns: &[Asn]) -> Vec<String> {
    asns.iter().map(|a| a.id.clone()).collect()
}

fn sorted_ids(asns: &[Asn]) -> Vec<String> {
    let mut ids = ids(asns);
    ids.sort();
    ids
}

/// Records an access (not collapsible) with one ASN per council holding one of `plans`.
async fn accessed<S: Store>(store: &S, access: &AccessRecord, plans: &[Plan]) -> Vec<Asn> {
    let asns = notifications_for(access, plans);
    let written = store
        .record_access(access, &asns, access.accessed_at)
        .await
        .expect("record_access");
    assert_eq!(written, AccessWrite::Recorded);
    asns
}

async fn all_plans_of<S: Store>(store: &S, council: &str, limit: usize) -> Vec<Vec<Plan>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .plans_for_authority(&la(council), cursor.as_deref(), limit)
            .await
            .expect("plans_for_authority");
        assert!(page.items.len() <= limit, "a page holds at most `limit`");
        pages.push(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
        assert!(pages.len() <= 100, "pagination does not end");
    }
}

async fn whole_inbox<S: Store>(store: &S, council: &str, limit: usize) -> Vec<Asn> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = store
            .notifications(&la(council), cursor.as_deref(), limit)
            .await
            .expect("notifications");
        assert!(page.items.len() <= limit, "a page holds at most `limit`");
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("inbox pagination does not end");
}

// ---------------------------------------------------------------- PlanStore

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

// ----------------------------------------------------- Upload through domain

async fn upload<S: Store>(
    store: &S,
    council: &str,
    body: serde_json::Value,
) -> Result<cpis_domain::UploadResult, UploadError> {
    process_upload(
        store,
        &la(council),
        body.to_string().as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
}

fn record(index: usize, plan_type: &str, start: &str) -> serde_json::Value {
    serde_json::json!({ "nhs_number": CHILDREN[index], "plan_type": plan_type, "start_date": start })
}

pub async fn full_snapshot_withdraws_missing_plans<S: Store>(store: &S) {
    let delta = serde_json::json!({ "sequence": 1, "mode": "delta", "records": [
        record(0, "CPP", "2025-01-10"), record(1, "LAC", "2025-02-01"), record(2, "CPP", "2025-03-01"),
    ]});
    let ack = upload(store, COUNCIL_A, delta)
        .await
        .expect("delta")
        .acknowledgement;
    assert_eq!((ack.loaded, ack.file_outcome), (3, FileOutcome::AllLoaded));
    let neighbour = plan(
        COUNCIL_B,
        child(2),
        PlanType::ChildProtection,
        date!(2025 - 03 - 01),
    );
    store
        .apply_changes(&la(COUNCIL_B), &[stored(&neighbour)], &[])
        .await
        .expect("B");

    let full = serde_json::json!({ "sequence": 2, "mode": "full", "records": [
        record(0, "CPP", "2025-01-10"), record(1, "LAC", "2025-02-01"),
    ]});
    let ack = upload(store, COUNCIL_A, full)
        .await
        .expect("full")
        .acknowledgement;
    assert_eq!(ack.withdrawn, 1, "the plan missing from the snapshot");
    let keys = store
        .plan_keys_for_authority(&la(COUNCIL_A))
        .await
        .expect("keys");
    assert_eq!(
        sorted_keys(keys),
        sorted_keys(vec![
            plan(
                COUNCIL_A,
                child(0),
                PlanType::ChildProtection,
                date!(2025 - 01 - 10)
            )
            .key(),
            plan(
                COUNCIL_A,
                child(1),
                PlanType::LookedAfter,
                date!(2025 - 02 - 01)
            )
            .key(),
        ])
    );
    assert_eq!(
        store.plans_for_child(&child(2)).await.expect("read"),
        vec![neighbour],
        "another council's plan for the same child stays"
    );
}

pub async fn rejected_full_snapshot_withdraws_nothing<S: Store>(store: &S) {
    let delta = serde_json::json!({ "sequence": 1, "mode": "delta", "records": [
        record(0, "CPP", "2025-01-10"), record(1, "LAC", "2025-02-01"),
    ]});
    upload(store, COUNCIL_A, delta).await.expect("delta");
    let rejected = serde_json::json!({ "sequence": 2, "mode": "full", "records": [
        { "nhs_number": "9990000010", "plan_type": "CPP", "start_date": "2025-01-10" },
        { "nhs_number": CHILDREN[3], "plan_type": "CIN", "start_date": "2025-01-10" },
    ]});
    let ack = upload(store, COUNCIL_A, rejected)
        .await
        .expect("full")
        .acknowledgement;
    assert_eq!(
        (ack.file_outcome, ack.withdrawn),
        (FileOutcome::NoneLoaded, 0)
    );
    assert_eq!(
        store
            .plan_keys_for_authority(&la(COUNCIL_A))
            .await
            .expect("keys")
            .len(),
        2,
        "a rejected snapshot withdraws nothing"
    );
}

pub async fn upload_replay_returns_the_stored_acknowledgement<S: Store>(store: &S) {
    let body = serde_json::json!({ "sequence": 4, "mode": "delta", "records": [record(0, "CPP", "2025-01-10")]});
    let first = upload(store, COUNCIL_A, body.clone()).await.expect("first");
    assert!(!first.replayed);
    let replay = upload(store, COUNCIL_A, body).await.expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.acknowledgement, first.acknowledgement);
    let different = serde_json::json!({ "sequence": 4, "mode": "delta", "records": [record(1, "CPP", "2025-01-10")]});
    assert!(matches!(
        upload(store, COUNCIL_A, different).await,
        Err(UploadError::SequenceReused { sequence: 4 })
    ));
    assert!(
        store
            .plans_for_child(&child(1))
            .await
            .expect("read")
            .is_empty(),
        "a refused batch loads nothing"
    );
    // The same sequence is fresh for another council.
    let theirs = serde_json::json!({ "sequence": 4, "mode": "delta", "records": [record(1, "LAC", "2025-01-10")]});
    assert!(!upload(store, COUNCIL_B, theirs).await.expect("B").replayed);
}

pub async fn record_receipt_keeps_the_first<S: Store>(store: &S) {
    let ack = upload(
        store,
        COUNCIL_A,
        serde_json::json!({ "sequence": 1, "mode": "delta", "records": [record(0, "CPP", "2025-01-10")]}),
    )
    .await
    .expect("upload")
    .acknowledgement;
    let original = store
        .receipt(&la(COUNCIL_A), 1)
        .await
        .expect("receipt")
        .expect("stored by the upload");
    assert_eq!(original.acknowledgement, ack);
    let rival = UploadReceipt {
        sequence: 1,
        digest: "a different digest".to_owned(),
        acknowledgement: cpis_domain::Acknowledgement {
            loaded: 0,
            ..ack.clone()
        },
    };
    let kept = store
        .record_receipt(&la(COUNCIL_A), &rival)
        .await
        .expect("record");
    assert_eq!(kept, original, "the first receipt stays");
    assert_eq!(
        store.receipt(&la(COUNCIL_A), 1).await.expect("receipt"),
        Some(original.clone())
    );
    assert_eq!(
        store.receipt(&la(COUNCIL_B), 1).await.expect("receipt"),
        None
    );
    assert_eq!(
        store.receipt(&la(COUNCIL_A), 2).await.expect("receipt"),
        None
    );
    // Another council's receipt under the same sequence is its own.
    let theirs = UploadReceipt {
        digest: "theirs".to_owned(),
        ..rival
    };
    assert_eq!(
        store
            .record_receipt(&la(COUNCIL_B), &theirs)
            .await
            .expect("record"),
        theirs
    );
}

pub async fn ledger_heads_swap_only_from_the_expected_version<S: Store>(store: &S) {
    use cpis_domain::sequencing::{HeadState, LedgerHead};
    let council = la(COUNCIL_A);
    assert_eq!(store.ledger_head(&council).await.expect("read"), None);
    // The whole range accepted from JSON, in numeric (not textual) order.
    let head = |sequence: u64, version: u64, state: HeadState| LedgerHead {
        sequence,
        digest: format!("digest-{sequence}"),
        state,
        version,
    };
    let first = head(9, 1, HeadState::Pending { lease_until: NOW });
    assert!(store
        .swap_ledger_head(&council, None, &first)
        .await
        .expect("swap"));
    assert!(
        !store
            .swap_ledger_head(&council, None, &first)
            .await
            .expect("swap"),
        "a second first head loses"
    );
    let done = head(cpis_domain::MAX_SEQUENCE, 2, HeadState::Done);
    assert!(store
        .swap_ledger_head(&council, Some(&first), &done)
        .await
        .expect("swap"));
    let stale_rival = head(10, 2, HeadState::Done);
    assert!(
        !store
            .swap_ledger_head(&council, Some(&first), &stale_rival)
            .await
            .expect("swap"),
        "a swap from an old version loses"
    );
    assert_eq!(store.ledger_head(&council).await.expect("read"), Some(done));
    assert_eq!(
        store.ledger_head(&la(COUNCIL_B)).await.expect("read"),
        None,
        "per council"
    );
}

pub async fn retiring_receipts_keeps_those_at_or_below_the_target<S: Store>(store: &S) {
    let ack = upload(
        store,
        COUNCIL_A,
        serde_json::json!({ "sequence": 3, "mode": "delta", "records": [record(0, "CPP", "2025-01-10")]}),
    )
    .await
    .expect("upload")
    .acknowledgement;
    for sequence in [9, 10, cpis_domain::MAX_SEQUENCE, 2] {
        let receipt = UploadReceipt {
            sequence,
            digest: format!("digest-{sequence}"),
            acknowledgement: cpis_domain::Acknowledgement {
                sequence,
                ..ack.clone()
            },
        };
        store
            .record_receipt(&la(COUNCIL_A), &receipt)
            .await
            .expect("record");
        store
            .record_receipt(&la(COUNCIL_B), &receipt)
            .await
            .expect("record");
    }
    assert_eq!(
        store
            .retire_receipts_above(&la(COUNCIL_A), 9)
            .await
            .expect("retire"),
        2
    );
    for (sequence, kept) in [
        (2, true),
        (3, true),
        (9, true),
        (10, false),
        (cpis_domain::MAX_SEQUENCE, false),
    ] {
        assert_eq!(
            store
                .receipt(&la(COUNCIL_A), sequence)
                .await
                .expect("read")
                .is_some(),
            kept,
            "{sequence}"
        );
    }
    assert!(
        store
            .receipt(&la(COUNCIL_B), 10)
            .await
            .expect("read")
            .is_some(),
        "another council's receipts stay"
    );
}

// ----------------------------------------------------------- Directory

pub async fn directory_put_and_get<S: Store>(store: &S) {
    assert_eq!(store.authority(&la(COUNCIL_A)).await.expect("read"), None);
    let entry = authority(COUNCIL_A, "Example Borough Council");
    store.put_authority(&entry).await.expect("put");
    assert_eq!(
        store.authority(&la(COUNCIL_A)).await.expect("read"),
        Some(entry.clone())
    );
    let renamed = cpis_domain::Authority {
        name: "Example Borough Council (Children's Services)".to_owned(),
        notify_emails: vec![],
        notify_sms: vec!["+447700900124".to_owned(), "+447700900125".to_owned()],
        ..entry
    };
    store.put_authority(&renamed).await.expect("put again");
    assert_eq!(
        store.authority(&la(COUNCIL_A)).await.expect("read"),
        Some(renamed),
        "the council's latest entry replaces the old one"
    );
    assert_eq!(store.authority(&la(COUNCIL_B)).await.expect("read"), None);
}

// ----------------------------------------------------------- Access log

fn plans_at_both_councils() -> Vec<Plan> {
    vec![
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
            date!(2025 - 01 - 10),
        ),
    ]
}

pub async fn record_access_writes_access_and_asns_together<S: Store>(store: &S) {
    let access = access(child(0), NOW, accessor("RJ1", "user-1"));
    let asns = accessed(store, &access, &plans_at_both_councils()).await;
    assert_eq!(asns.len(), 2);
    assert_eq!(
        store.recent_accesses(&child(0), 25).await.expect("read"),
        vec![access.clone()]
    );
    let for_a: Vec<&Asn> = asns
        .iter()
        .filter(|a| a.authority == la(COUNCIL_A))
        .collect();
    let for_b: Vec<&Asn> = asns
        .iter()
        .filter(|a| a.authority == la(COUNCIL_B))
        .collect();
    assert_eq!(
        whole_inbox(store, COUNCIL_A, 10).await,
        for_a.into_iter().cloned().collect::<Vec<_>>()
    );
    assert_eq!(
        whole_inbox(store, COUNCIL_B, 10).await,
        for_b.into_iter().cloned().collect::<Vec<_>>()
    );
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 10)
        .await
        .expect("claim");
    assert_eq!(
        sorted_ids(&claimed),
        sorted_ids(&asns),
        "both in the outbox"
    );
    assert!(store
        .recent_accesses(&child(1), 25)
        .await
        .expect("read")
        .is_empty());
}

pub async fn same_author_within_window_is_collapsed<S: Store>(store: &S) {
    let plans = plans_at_both_councils();
    let first = access(child(0), NOW, accessor("RJ1", "user-1"));
    accessed(store, &first, &plans).await;
    // (how much later, collapse since): the last starts the window exactly
    // at the first access, which still collapses (`at or after`).
    for (later, since) in [
        (Duration::ZERO, NOW - cpis_domain::COLLAPSE_WINDOW),
        (
            Duration::hours(1),
            NOW + Duration::hours(1) - cpis_domain::COLLAPSE_WINDOW,
        ),
        (Duration::hours(30), NOW),
    ] {
        let repeat = access(child(0), NOW + later, accessor("RJ1", "user-1"));
        let repeat_asns = notifications_for(&repeat, &plans);
        let written = store
            .record_access(&repeat, &repeat_asns, since)
            .await
            .expect("record");
        assert_eq!(written, AccessWrite::Collapsed, "{later}");
        for asn in &repeat_asns {
            assert_eq!(
                store
                    .notification(&asn.authority, &asn.id)
                    .await
                    .expect("read"),
                None,
                "a collapsed access writes no ASN"
            );
        }
    }
    assert_eq!(
        store.recent_accesses(&child(0), 25).await.expect("read"),
        vec![first]
    );
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2, "only the first access's ASNs");
}

pub async fn different_author_or_older_access_is_recorded<S: Store>(store: &S) {
    let plans = plans_at_both_councils();
    let first = access(child(0), NOW, accessor("RJ1", "user-1"));
    accessed(store, &first, &plans).await;
    let since = NOW + Duration::hours(1) - cpis_domain::COLLAPSE_WINDOW;
    let cases = [
        (
            "another user, same organisation",
            accessor("RJ1", "user-2"),
            child(0),
        ),
        (
            "same user id, another organisation",
            accessor("RQM", "user-1"),
            child(0),
        ),
        (
            "same author, another child",
            accessor("RJ1", "user-1"),
            child(1),
        ),
    ];
    let mut expected_asns = 2;
    for (case, who, nhs) in cases {
        let repeat = access(nhs, NOW + Duration::hours(1), who);
        let asns = notifications_for(&repeat, &plans);
        expected_asns += asns.len();
        assert_eq!(
            store
                .record_access(&repeat, &asns, since)
                .await
                .expect("record"),
            AccessWrite::Recorded,
            "{case}"
        );
    }
    // The same author again, once the earlier access is older than the window.
    let next_day = access(
        child(0),
        NOW + Duration::hours(25),
        accessor("RJ1", "user-1"),
    );
    let asns = notifications_for(&next_day, &plans);
    expected_asns += asns.len();
    assert_eq!(
        store
            .record_access(&next_day, &asns, NOW + Duration::seconds(1))
            .await
            .expect("record"),
        AccessWrite::Recorded
    );
    assert_eq!(
        store
            .recent_accesses(&child(0), 25)
            .await
            .expect("read")
            .len(),
        4
    );
    assert_eq!(
        store
            .recent_accesses(&child(1), 25)
            .await
            .expect("read")
            .len(),
        1
    );
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), expected_asns);
}

pub async fn history_is_newest_first_and_bounded<S: Store>(store: &S) {
    let plans = plans_at_both_councils();
    let mut all: Vec<AccessRecord> = Vec::new();
    // 31 accesses by distinct authors, written out of time order, two of
    // them at the same instant (ties break by id).
    for i in 0..31i64 {
        let minutes = (i * 17) % 31;
        let at = NOW + Duration::minutes(minutes) + Duration::nanoseconds(123);
        let record = access(
            child(0),
            // The last shares an instant with the first.
            match all.first() {
                Some(first) if i == 30 => first.accessed_at,
                _ => at,
            },
            accessor("RJ1", &format!("user-{i}")),
        );
        accessed(store, &record, &plans).await;
        all.push(record);
    }
    let other = access(child(1), NOW + Duration::days(1), accessor("RJ1", "user-x"));
    accessed(store, &other, &plans).await;

    let stored = store.recent_accesses(&child(0), 25).await.expect("read");
    assert!(
        stored.iter().all(|r| r.nhs_number == child(0)),
        "only this child's accesses"
    );
    let shown = most_recent(stored);
    let expected = most_recent(all.clone());
    assert_eq!(shown.len(), cpis_domain::HISTORY_LIMIT);
    assert_eq!(shown, expected, "the 25 newest, newest first, intact");
    assert!(shown
        .windows(2)
        .all(|w| w[0].accessed_at >= w[1].accessed_at));
}

// ----------------------------------------------------------- Check receipts

pub async fn check_receipts_keep_the_latest<S: Store>(store: &S) {
    let trust = la("RJ1");
    assert_eq!(
        store.last_check(&child(0), &trust).await.expect("read"),
        None
    );
    store
        .note_check(&child(0), &trust, NOW)
        .await
        .expect("note");
    store
        .note_check(&child(0), &trust, NOW + Duration::hours(2))
        .await
        .expect("note");
    assert_eq!(
        store.last_check(&child(0), &trust).await.expect("read"),
        Some(NOW + Duration::hours(2))
    );
    // A late-arriving older check does not move it back.
    store
        .note_check(&child(0), &trust, NOW + Duration::hours(1))
        .await
        .expect("note");
    assert_eq!(
        store.last_check(&child(0), &trust).await.expect("read"),
        Some(NOW + Duration::hours(2))
    );
    assert_eq!(
        store.last_check(&child(0), &la("RQM")).await.expect("read"),
        None
    );
    assert_eq!(
        store.last_check(&child(1), &trust).await.expect("read"),
        None
    );
}

// ----------------------------------------------------------- Inbox

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
            .acknowledge(&la(COUNCIL_B), id, NOW)
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
            .acknowledge(&la(COUNCIL_A), &unknown, NOW)
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
        .acknowledge(&la(COUNCIL_A), &mine.id, first_ack)
        .await
        .expect("ack")
        .expect("found");
    assert_eq!(
        acked,
        Asn {
            acknowledged_at: Some(first_ack),
            ..mine.clone()
        }
    );
    let again = store
        .acknowledge(&la(COUNCIL_A), &mine.id, first_ack + Duration::hours(1))
        .await
        .expect("ack")
        .expect("found");
    assert_eq!(
        again.acknowledged_at,
        Some(first_ack),
        "the first time is kept"
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

// ----------------------------------------------------------- Outbox

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

// ----------------------------------------------------------- Retention

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

// ----------------------------------------------------------- Audit

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
        .acknowledge(&a, &asns[0].id, NOW + Duration::days(1))
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
