//! The concurrent section: the suite's invariants with callers racing, and
//! the upload ledger's crash and rewind paths.
//!
//! Races run two callers at once with `tokio::join!`. Each upload goes through
//! [`Interleaved`], which yields to the scheduler a seeded number of times
//! before every store call, so the two interleave at every await point: on the
//! in-memory store the interleavings are exactly repeatable for a seed; on
//! SQLite and DynamoDB real I/O adds its own. The checker compares the final
//! state with a sequential model of the operations that were acknowledged.

use std::collections::BTreeSet;
use std::sync::Mutex;

use cpis_domain::ports::{
    AccessWrite, CheckWrite, DeliveryStart, NewAccess, Page, PlanStore, StoreError, StoredPlan,
    UploadLedger, UploadReceipt,
};
use cpis_domain::sequencing::{HeadState, LedgerHead, UPLOAD_LEASE};
use cpis_domain::upload::body_digest;
use cpis_domain::{
    process_upload, rewind_sequence, AuditEvent, NhsNumber, OdsCode, Plan, PlanKey, RewindError,
    UploadError, UploadResult, VisibilityPolicy,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{Duration, OffsetDateTime};

use crate::fixtures::*;
use cpis_domain::check::notifications_for;

use crate::{plans_at_both_councils, Store};

/// Race trials per behaviour: enough to meet both orders many times on every
/// store, few enough for DynamoDB on moto in CI.
const TRIALS: u64 = 24;

/// Delegates the upload ports to `store`, yielding 0 to 3 times (seeded)
/// before each call.
struct Interleaved<'a, S> {
    store: &'a S,
    rng: Mutex<StdRng>,
}

impl<'a, S> Interleaved<'a, S> {
    fn new(store: &'a S, seed: u64) -> Self {
        Self {
            store,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    async fn pause(&self) {
        let turns = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gen_range(0..4);
        for _ in 0..turns {
            tokio::task::yield_now().await;
        }
    }
}

impl<S: Store> PlanStore for Interleaved<'_, S> {
    async fn plans_for_child(&self, nhs: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        self.pause().await;
        self.store.plans_for_child(nhs).await
    }

    async fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        self.pause().await;
        self.store
            .plans_for_authority(authority, cursor, limit)
            .await
    }

    async fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> Result<Vec<PlanKey>, StoreError> {
        self.pause().await;
        self.store.plan_keys_for_authority(authority).await
    }

    async fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        self.pause().await;
        self.store
            .apply_changes(authority, upserts, withdrawals)
            .await
    }
}

impl<S: Store> UploadLedger for Interleaved<'_, S> {
    async fn receipt(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<Option<UploadReceipt>, StoreError> {
        self.pause().await;
        self.store.receipt(authority, sequence).await
    }

    async fn record_receipt(
        &self,
        authority: &OdsCode,
        receipt: &UploadReceipt,
    ) -> Result<UploadReceipt, StoreError> {
        self.pause().await;
        self.store.record_receipt(authority, receipt).await
    }

    async fn ledger_head(&self, authority: &OdsCode) -> Result<Option<LedgerHead>, StoreError> {
        self.pause().await;
        self.store.ledger_head(authority).await
    }

    async fn swap_ledger_head(
        &self,
        authority: &OdsCode,
        expected: Option<&LedgerHead>,
        new: &LedgerHead,
    ) -> Result<bool, StoreError> {
        self.pause().await;
        self.store.swap_ledger_head(authority, expected, new).await
    }

    async fn retire_receipts_above(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<usize, StoreError> {
        self.pause().await;
        self.store.retire_receipts_above(authority, sequence).await
    }
}

/// A council of its own per trial, so trials never see each other.
fn trial_council(trial: u64) -> String {
    format!("T{trial:05}")
}

/// A full snapshot of CPP plans for the given children.
fn snapshot(sequence: u64, children: &[usize]) -> Vec<u8> {
    let records: Vec<_> = children
        .iter()
        .map(|i| serde_json::json!({"nhs_number": CHILDREN[*i], "plan_type": "CPP", "start_date": "2025-01-10"}))
        .collect();
    serde_json::json!({"sequence": sequence, "mode": "full", "records": records})
        .to_string()
        .into_bytes()
}

async fn send<U: PlanStore + UploadLedger>(
    store: &U,
    council: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<UploadResult, UploadError> {
    process_upload(store, &la(council), body, now, &VisibilityPolicy::default()).await
}

async fn children_of<S: Store>(store: &S, council: &str) -> BTreeSet<String> {
    store
        .plan_keys_for_authority(&la(council))
        .await
        .expect("keys")
        .into_iter()
        .map(|k| k.nhs_number.expose().to_owned())
        .collect()
}

fn names(children: &[usize]) -> BTreeSet<String> {
    children.iter().map(|i| CHILDREN[*i].to_owned()).collect()
}

/// A refusal a racing upload may get: never a store fault, never a reuse.
fn assert_orderly_refusal(error: &UploadError) {
    assert!(
        matches!(
            error,
            UploadError::StaleSequence { .. } | UploadError::InProgress { .. }
        ),
        "unexpected refusal: {error}"
    );
}

/// Sequence 1 = {P, Q}; then 3 = {P} and 2 = {Q} at once. Whatever the
/// interleaving, the council ends with the snapshot of the highest
/// acknowledged sequence: an older snapshot never wins.
pub async fn racing_snapshots_never_let_an_older_one_win<S: Store>(store: &S) {
    let mut newer_won = 0;
    for trial in 0..TRIALS {
        let council = trial_council(trial);
        send(store, &council, &snapshot(1, &[0, 1]), NOW)
            .await
            .expect("the first snapshot");
        let newer = snapshot(3, &[0]);
        let older = snapshot(2, &[1]);
        let (a, b) = (
            Interleaved::new(store, trial * 2),
            Interleaved::new(store, trial * 2 + 1),
        );
        let (newer_result, older_result) = tokio::join!(
            send(&a, &council, &newer, NOW),
            send(&b, &council, &older, NOW)
        );
        // The sequential model: acknowledged snapshots in sequence order.
        let mut acknowledged = vec![(1, vec![0, 1])];
        match &newer_result {
            Ok(r) => {
                assert!(!r.replayed);
                acknowledged.push((3, vec![0]));
            }
            Err(e) => assert_orderly_refusal(e),
        }
        match &older_result {
            Ok(r) => {
                assert!(!r.replayed);
                acknowledged.push((2, vec![1]));
            }
            Err(e) => assert_orderly_refusal(e),
        }
        acknowledged.sort();
        let expected = names(&acknowledged.last().expect("sequence 1").1);
        assert_eq!(
            children_of(store, &council).await,
            expected,
            "trial {trial}"
        );
        newer_won += usize::from(newer_result.is_ok());
        // The refused one, sent again once the other is done, gets a final
        // answer and never locks the council out: 2 after 3 is stale; 3
        // after 2 is applied, and then it is the newest snapshot.
        if older_result.is_err() {
            assert!(matches!(
                send(store, &council, &older, NOW).await,
                Err(UploadError::StaleSequence {
                    sequence: 2,
                    latest: 3
                })
            ));
        }
        if newer_result.is_err() {
            send(store, &council, &newer, NOW)
                .await
                .expect("3 after 2 is applied");
        }
        assert_eq!(
            children_of(store, &council).await,
            names(&[0]),
            "trial {trial}"
        );
    }
    assert!(
        newer_won > 0,
        "the newer snapshot was never acknowledged first"
    );
}

/// One sequence, two bodies, at once: one is stored, the other is a 409 that
/// stored nothing.
pub async fn one_sequence_with_two_bodies_stores_one<S: Store>(store: &S) {
    for trial in 0..TRIALS {
        let council = trial_council(trial);
        let (left, right) = (snapshot(5, &[2]), snapshot(5, &[3]));
        let (a, b) = (
            Interleaved::new(store, 1000 + trial * 2),
            Interleaved::new(store, 1001 + trial * 2),
        );
        let (l, r) = tokio::join!(
            send(&a, &council, &left, NOW),
            send(&b, &council, &right, NOW)
        );
        let winner = match (&l, &r) {
            (Ok(w), Err(UploadError::SequenceReused { sequence: 5 })) => {
                assert!(!w.replayed);
                vec![2]
            }
            (Err(UploadError::SequenceReused { sequence: 5 }), Ok(w)) => {
                assert!(!w.replayed);
                vec![3]
            }
            other => panic!("trial {trial}: {other:?}"),
        };
        assert_eq!(
            children_of(store, &council).await,
            names(&winner),
            "trial {trial}"
        );
        let receipt = store
            .receipt(&la(&council), 5)
            .await
            .expect("read")
            .expect("stored");
        let body = if winner == [2] { &left } else { &right };
        assert_eq!(receipt.digest, body_digest(body));
    }
}

/// The same body sent twice at once (a client's retry racing its first
/// try): both answers are the one acknowledgement.
pub async fn one_body_sent_twice_at_once_is_applied_once<S: Store>(store: &S) {
    for trial in 0..TRIALS {
        let council = trial_council(trial);
        let body = snapshot(7, &[4, 5]);
        let (a, b) = (
            Interleaved::new(store, 2000 + trial * 2),
            Interleaved::new(store, 2001 + trial * 2),
        );
        let (l, r) = tokio::join!(
            send(&a, &council, &body, NOW),
            send(&b, &council, &body, NOW)
        );
        let (l, r) = (l.expect("first"), r.expect("second"));
        assert_eq!(l.acknowledgement, r.acknowledgement, "trial {trial}");
        assert_eq!(children_of(store, &council).await, names(&[4, 5]));
        assert_eq!(
            store
                .ledger_head(&la(&council))
                .await
                .expect("head")
                .map(|h| (h.sequence, h.state)),
            Some((7, HeadState::Done)),
            "trial {trial}: the sequence is released"
        );
    }
}

/// A run that claimed its sequence and crashed part-way: a newer sequence
/// waits; the retry of the same body completes it with the state one
/// uninterrupted run gives; once a lease runs out a newer sequence may take
/// the council over, and the abandoned one is then stale.
pub async fn a_crashed_upload_is_completed_by_its_retry<S: Store>(store: &S) {
    let council = la(COUNCIL_A);
    send(store, COUNCIL_A, &snapshot(1, &[0, 1, 2]), NOW)
        .await
        .expect("first");
    let body = snapshot(2, &[1, 3]);
    let head = store.ledger_head(&council).await.expect("head");
    let crashed = LedgerHead {
        sequence: 2,
        digest: body_digest(&body),
        state: HeadState::Pending {
            lease_until: NOW + UPLOAD_LEASE,
        },
        version: head.as_ref().map_or(1, |h| h.version + 1),
    };
    assert!(store
        .swap_ledger_head(&council, head.as_ref(), &crashed)
        .await
        .expect("claim"));
    // Part of the work done before the crash: child 3's plan upserted.
    let partial = plan(
        COUNCIL_A,
        child(3),
        cpis_domain::PlanType::ChildProtection,
        time::macros::date!(2025 - 01 - 10),
    );
    store
        .apply_changes(
            &council,
            &[stored(&Plan {
                local_id: None,
                ..partial
            })],
            &[],
        )
        .await
        .expect("partial");

    match send(
        store,
        COUNCIL_A,
        &snapshot(3, &[0]),
        NOW + Duration::minutes(1),
    )
    .await
    {
        Err(UploadError::InProgress {
            retry_after_seconds,
        }) => {
            assert!(retry_after_seconds > 0 && retry_after_seconds <= 16 * 60)
        }
        other => panic!("a newer sequence must wait: {other:?}"),
    }
    let resumed = send(store, COUNCIL_A, &body, NOW + Duration::minutes(1))
        .await
        .expect("the retry completes it");
    assert!(!resumed.replayed);
    assert_eq!(
        (
            resumed.acknowledgement.loaded,
            resumed.acknowledgement.rejected
        ),
        (2, 0)
    );
    assert_eq!(children_of(store, COUNCIL_A).await, names(&[1, 3]));
    let replay = send(store, COUNCIL_A, &body, NOW + Duration::minutes(2))
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.acknowledgement, resumed.acknowledgement);

    // A claim whose holder is gone for good: after the lease, 5 takes over.
    let head = store.ledger_head(&council).await.expect("head");
    let abandoned_body = snapshot(4, &[5]);
    let abandoned = LedgerHead {
        sequence: 4,
        digest: body_digest(&abandoned_body),
        state: HeadState::Pending {
            lease_until: NOW + Duration::minutes(3),
        },
        version: head.as_ref().map_or(1, |h| h.version + 1),
    };
    assert!(store
        .swap_ledger_head(&council, head.as_ref(), &abandoned)
        .await
        .expect("claim"));
    let later = NOW + Duration::minutes(3);
    send(store, COUNCIL_A, &snapshot(5, &[6]), later)
        .await
        .expect("a lapsed lease is taken over");
    assert!(matches!(
        send(store, COUNCIL_A, &abandoned_body, later).await,
        Err(UploadError::StaleSequence {
            sequence: 4,
            latest: 5
        })
    ));
    assert_eq!(children_of(store, COUNCIL_A).await, names(&[6]));
}

/// The way back from a wrong sequence: a rewind retires the receipts above
/// its target, plans stay, and the council continues from the target.
pub async fn a_rewind_lets_a_council_continue_after_a_wrong_sequence<S: Store>(store: &S) {
    let council = la(COUNCIL_A);
    send(store, COUNCIL_A, &snapshot(1, &[0]), NOW)
        .await
        .expect("1");
    let wrong = snapshot(9_007_199_254_740_991, &[0, 1]);
    send(store, COUNCIL_A, &wrong, NOW)
        .await
        .expect("the wrong one");
    assert!(matches!(
        send(store, COUNCIL_A, &snapshot(2, &[2]), NOW).await,
        Err(UploadError::StaleSequence { .. })
    ));
    assert!(matches!(
        rewind_sequence(store, &council, 9_007_199_254_740_992, NOW).await,
        Err(RewindError::AboveLatest { .. })
    ));
    let rewind = rewind_sequence(store, &council, 1, NOW)
        .await
        .expect("rewind");
    assert_eq!(
        (rewind.sequence, rewind.previous, rewind.retired),
        (1, 9_007_199_254_740_991, 1)
    );
    assert_eq!(
        children_of(store, COUNCIL_A).await,
        names(&[0, 1]),
        "plans stay"
    );
    // Again: idempotent, nothing more to retire.
    let again = rewind_sequence(store, &council, 1, NOW)
        .await
        .expect("rewind again");
    assert_eq!((again.previous, again.retired), (1, 0));
    assert!(
        send(store, COUNCIL_A, &snapshot(1, &[0]), NOW)
            .await
            .expect("replay")
            .replayed,
        "receipts up to the target stay"
    );
    send(store, COUNCIL_A, &snapshot(2, &[2]), NOW)
        .await
        .expect("2 after the rewind");
    assert_eq!(children_of(store, COUNCIL_A).await, names(&[2]));
    assert!(
        send(store, COUNCIL_A, &snapshot(2, &[2]), NOW)
            .await
            .expect("replay")
            .replayed,
        "the sequence after the rewind is the council's own again"
    );
    // Another council's ledger is its own.
    let theirs = rewind_sequence(store, &la(COUNCIL_B), 0, NOW)
        .await
        .expect("a rewind to 0 of a council with no uploads");
    assert_eq!((theirs.previous, theirs.retired), (0, 0));
    assert_eq!(
        store
            .ledger_head(&council)
            .await
            .expect("head")
            .map(|h| h.sequence),
        Some(2)
    );
}

/// The 24-hour collapse with two checks by one author at once, through the
/// check's one write (`record_check`): one history entry, one set of ASNs,
/// and both checks' receipts and audit events.
pub async fn simultaneous_checks_by_one_author_record_one_access<S: Store>(store: &S) {
    let plans = plans_at_both_councils();
    let since = NOW - cpis_domain::COLLAPSE_WINDOW;
    for trial in 0..TRIALS as usize {
        let who = accessor("RJ1", &format!("user-{trial}"));
        let (first, second) = (
            access(child(0), NOW, who.clone()),
            access(child(0), NOW, who.clone()),
        );
        let (a1, a2) = (
            notifications_for(&first, &plans),
            notifications_for(&second, &plans),
        );
        let (e1, e2) = (
            AuditEvent::check_allowed(&who, None, NOW, "first"),
            AuditEvent::check_allowed(&who, None, NOW, "second"),
        );
        let child = child(0);
        let write = |record, asns, audit| CheckWrite {
            receipt: (&child, &who.organisation_ods, NOW),
            access: Some(NewAccess {
                record,
                asns,
                collapse_since: since,
            }),
            audit: Some(audit),
        };
        let (w1, w2) = (write(&first, &a1, &e1), write(&second, &a2, &e2));
        let (w1, w2) = tokio::join!(store.record_check(&w1), store.record_check(&w2));
        let mut outcomes = [w1.expect("first"), w2.expect("second")];
        outcomes.sort_by_key(|w| *w == Some(AccessWrite::Collapsed));
        assert_eq!(
            outcomes,
            [Some(AccessWrite::Recorded), Some(AccessWrite::Collapsed)],
            "trial {trial}"
        );
    }
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 1000)
        .await
        .expect("claim");
    assert_eq!(
        claimed.len(),
        2 * TRIALS as usize,
        "one pair of ASNs per check pair"
    );
    let events = store.audit_events(10_000).await.expect("audit read");
    assert_eq!(
        events.len(),
        2 * TRIALS as usize,
        "an event for every check"
    );
}

/// Two dispatchers and two acknowledgements at once: one delivery lease,
/// one acknowledgement time.
pub async fn one_asn_is_delivered_and_acknowledged_once<S: Store>(store: &S) {
    let record = access(child(0), NOW, accessor("RJ1", "user-1"));
    let asns = crate::accessed(store, &record, &plans_at_both_councils()).await;
    for asn in &asns {
        let (a, b) = tokio::join!(
            store.begin_delivery(&asn.id, NOW, Duration::minutes(2)),
            store.begin_delivery(&asn.id, NOW, Duration::minutes(2))
        );
        let proceeded = [a.expect("a"), b.expect("b")]
            .iter()
            .filter(|s| matches!(s, DeliveryStart::Proceed(_)))
            .count();
        assert_eq!(proceeded, 1, "exactly one dispatcher proceeds");
        let (x, y) = tokio::join!(
            store.acknowledge(&asn.authority, &asn.id, NOW + Duration::minutes(1), None),
            store.acknowledge(&asn.authority, &asn.id, NOW + Duration::minutes(2), None)
        );
        let (x, y) = (x.expect("x").expect("found"), y.expect("y").expect("found"));
        assert_eq!(
            x.acknowledged_at, y.acknowledged_at,
            "one acknowledgement time"
        );
    }
}

/// The purge racing an upload: the purge takes what was due (an expired plan,
/// the history of a child with no plan left) and nothing the upload loaded,
/// whichever runs first.
pub async fn a_purge_racing_an_upload_takes_only_what_was_due<S: Store>(store: &S) {
    let today = NOW.date();
    for trial in 0..TRIALS {
        let council = trial_council(trial);
        let ended = Plan {
            end_date: Some(time::macros::date!(2024 - 01 - 31)),
            ..plan(
                &council,
                child(0),
                cpis_domain::PlanType::LookedAfter,
                time::macros::date!(2023 - 01 - 10),
            )
        };
        store
            .apply_changes(&la(&council), &[stored(&ended)], &[])
            .await
            .expect("an ended plan, due for purge");
        // A delta: only the purge can remove the ended plan.
        let body = serde_json::json!({"sequence": 1, "mode": "delta", "records": [
            {"nhs_number": CHILDREN[1], "plan_type": "CPP", "start_date": "2025-01-10"},
            {"nhs_number": CHILDREN[2], "plan_type": "CPP", "start_date": "2025-01-10"},
        ]})
        .to_string()
        .into_bytes();
        let racer = Interleaved::new(store, 3000 + trial);
        let (purged, uploaded) =
            tokio::join!(store.purge(today), send(&racer, &council, &body, NOW));
        purged.expect("purge");
        let ack = uploaded.expect("upload").acknowledgement;
        assert_eq!(ack.loaded, 2, "trial {trial}");
        // The full snapshot withdrew the ended plan if the purge had not.
        assert_eq!(
            children_of(store, &council).await,
            names(&[1, 2]),
            "trial {trial}"
        );
        store.purge(today).await.expect("purge again");
        assert_eq!(
            children_of(store, &council).await,
            names(&[1, 2]),
            "trial {trial}"
        );
    }
}

/// Writers per council in the directory race, and entries each one puts.
const DIRECTORY_WRITERS: usize = 3;
const ENTRIES_PER_WRITER: usize = 3;

/// Entry `step` of `writer`: every channel names its writer and step, and
/// the lists differ in length, so a mix of two entries or a dropped channel
/// cannot pass for a whole entry. SMS numbers are Ofcom's drama range.
fn directory_entry(council: &str, writer: usize, step: usize) -> cpis_domain::Authority {
    let tag = (writer * ENTRIES_PER_WRITER + step) * 10;
    cpis_domain::Authority {
        ods_code: la(council),
        name: format!("Council {council}, entry {writer}.{step}"),
        office_hours_phone: "020 7946 0000".to_owned(),
        emergency_duty_phone: "020 7946 0999".to_owned(),
        notify_emails: (0..=step)
            .map(|k| format!("duty-{writer}-{step}-{k}@example.gov.uk"))
            .collect(),
        notify_sms: (0..=writer)
            .map(|k| format!("+447700900{:03}", tag + k))
            .collect(),
    }
}

/// One writer's entries, in order, each after a seeded number of yields.
async fn put_entries<S: Store>(store: &S, council: &str, writer: usize, seed: u64) {
    let paced = Interleaved::new(store, seed);
    for step in 0..ENTRIES_PER_WRITER {
        paced.pause().await;
        store
            .put_authority(&directory_entry(council, writer, step))
            .await
            .expect("a directory update");
    }
}

/// Councils replace their entry whole, so the sequential model is a
/// register: after writers race, each council's entry is exactly the last
/// entry of one writer (the last write of some order that keeps each
/// writer's own order), with every one of its channels; never a mix of two
/// entries, never another council's. Two councils race at once.
pub async fn racing_directory_updates_lose_no_channel<S: Store>(store: &S) {
    let mut winners = BTreeSet::new();
    for trial in 0..TRIALS {
        let (x, y) = (trial_council(trial), format!("U{trial:05}"));
        let seed = 4000 + trial * 8;
        tokio::join!(
            put_entries(store, &x, 0, seed),
            put_entries(store, &y, 0, seed + 1),
            put_entries(store, &x, 1, seed + 2),
            put_entries(store, &y, 1, seed + 3),
            put_entries(store, &x, 2, seed + 4),
            put_entries(store, &y, 2, seed + 5),
        );
        for council in [&x, &y] {
            let stored = store
                .authority(&la(council))
                .await
                .expect("read")
                .expect("listed");
            let last = ENTRIES_PER_WRITER - 1;
            let winner = (0..DIRECTORY_WRITERS)
                .find(|w| stored == directory_entry(council, *w, last))
                .unwrap_or_else(|| {
                    panic!("trial {trial}: {council}'s entry is no writer's last: {stored:?}")
                });
            winners.insert(winner);
        }
        // Sequential again: the next update replaces the entry whole.
        let next = directory_entry(&x, 0, 0);
        store.put_authority(&next).await.expect("put");
        assert_eq!(
            store.authority(&la(&x)).await.expect("read"),
            Some(next),
            "trial {trial}"
        );
    }
    assert!(winners.len() > 1, "the writers never raced: {winners:?}");
}
