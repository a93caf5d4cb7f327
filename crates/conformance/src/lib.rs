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

use cpis_domain::ports::{
    AccessLog, AsnOutbox, AuditReader, AuditTrail, AuthorityDirectory, CheckLedger, CheckReceipts,
    MailboxMap, NotificationInbox, PlanStore, Retention, UploadLedger,
};

pub mod capture;
pub mod concurrent;
pub mod faults;
pub mod feeds;
pub mod fixtures;

mod accesses;
mod audit;
mod directory;
mod inbox;
mod mailboxes;
mod outbox;
mod plans;
mod portal;
mod retention;
mod support;
mod uploads;

pub use accesses::*;
pub use audit::*;
pub use concurrent::*;
pub use directory::*;
pub use feeds::*;
pub use inbox::*;
pub use mailboxes::*;
pub use outbox::*;
pub use plans::*;
pub use portal::*;
pub use retention::*;
pub use uploads::*;

// concurrent.rs takes these from the crate root.
use support::{accessed, plans_at_both_councils};

/// Every port, as one bound: what an adapter must implement to be tested.
pub trait Store:
    PlanStore
    + UploadLedger
    + AuthorityDirectory
    + AccessLog
    + CheckReceipts
    + CheckLedger
    + NotificationInbox
    + AsnOutbox
    + Retention
    + AuditTrail
    + AuditReader
    + cpis_domain::FeedLog
    + MailboxMap
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
        + CheckLedger
        + NotificationInbox
        + AsnOutbox
        + Retention
        + AuditTrail
        + AuditReader
        + cpis_domain::FeedLog
        + MailboxMap
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
                directory_reads_many_councils_at_once,
                record_access_writes_access_and_asns_together,
                same_author_within_window_is_collapsed,
                different_author_or_older_access_is_recorded,
                history_is_newest_first_and_bounded,
                check_receipts_keep_the_latest,
                record_check_writes_receipt_access_asns_and_audit,
                a_collapsed_check_still_writes_its_receipt_and_audit,
                a_check_without_access_or_audit_writes_only_its_receipt,
                inbox_is_newest_first_and_pages,
                another_councils_asn_is_not_found,
                acknowledge_is_idempotent,
                claimed_asns_wait_for_the_lease,
                delivered_asns_are_never_claimed,
                begin_delivery_answers_every_state,
                deliveries_are_recorded_with_their_audit_events,
                purge_removes_expired_plans_and_orphaned_data,
                an_asn_outlives_its_plan_until_its_retention_ends,
                audit_appends_and_reads_back,
                feeds_move_only_forward_and_list_every_council,
                mailbox_links_are_one_to_one_both_ways,
                racing_mailbox_links_keep_the_map_one_to_one,
                plans_accesses_and_asns_keep_what_an_asn_file_names,
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
