//! Rule edges that `cargo mutants` over the domain found no test holding
//! (issue 17; the run and its figures are in docs/assurance.md). Each test
//! states the rule and where it comes from.

use std::sync::atomic::Ordering;

use cpis_domain::ports::{Page, PlanStore, StoreError, StoredPlan, UploadLedger, UploadReceipt};
use cpis_domain::sequencing::{HeadState, UPLOAD_LEASE};
use cpis_domain::{
    process_upload, rewind_sequence, AccessSummary, Accessor, AccessorKind, HistoryAnswer,
    LedgerHead, NhsNumber, NhsNumberError, OdsCode, Plan, PlanKey, PlanType, Rbac, RecordDetail,
    RecordOutcomeCode, RewindError, UploadError, VisibilityPolicy,
};
use cpis_store_memory::MemoryStore;
use serde_json::json;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

fn la(code: &str) -> OdsCode {
    OdsCode::parse(code).unwrap()
}

fn accessor(user: &str, organisation: &str) -> Accessor {
    Accessor {
        job_role: None,
        kind: AccessorKind::User,
        user_id: user.into(),
        rbac: Rbac::B0107,
        organisation_ods: la(organisation),
        organisation_name: format!("Hospital {organisation}"),
        setting: "emergency-department".into(),
    }
}

/// The 24-hour collapse is per author: the same user at the same
/// organisation (DMS QueryResponse rule, brief §5). The stores key the
/// collapse on `author_key`, so it must tell authors apart exactly as
/// `same_author` does.
#[test]
fn the_collapse_key_tells_authors_apart_as_the_rule_does() {
    let pairs = [
        (accessor("dr-1", "RJ1"), accessor("dr-1", "RJ1"), true),
        (accessor("dr-1", "RJ1"), accessor("dr-2", "RJ1"), false),
        (accessor("dr-1", "RJ1"), accessor("dr-1", "RK2"), false),
        (accessor("dr-1", "RJ1"), accessor("dr-2", "RK2"), false),
    ];
    for (a, b, same) in pairs {
        assert_eq!(a.same_author(&b), same, "{a:?} {b:?}");
        assert_eq!(a.author_key() == b.author_key(), same, "{a:?} {b:?}");
    }
    // A different setting or name is still the same author.
    let mut moved = accessor("dr-1", "RJ1");
    moved.setting = "urgent-treatment-centre".into();
    assert_eq!(moved.author_key(), accessor("dr-1", "RJ1").author_key());
}

/// A permitted history answer hands back its entries; a refused one is
/// empty, the same answer as a child with no history (brief §7).
#[test]
fn a_permitted_history_answer_keeps_its_entries() {
    let entry = AccessSummary {
        organisation_ods: la("RJ1"),
        organisation_name: "Hospital RJ1".into(),
        setting: "emergency-department".into(),
        accessed_at: NOW,
    };
    assert_eq!(
        HistoryAnswer::Permitted(vec![entry.clone()]).into_entries(),
        vec![entry]
    );
    assert!(HistoryAnswer::NotPermitted.into_entries().is_empty());
}

/// Plan types travel as the DMS codes CPP, LAC and UCPP (brief §3).
#[test]
fn plan_types_are_written_as_their_codes() {
    for (plan_type, code) in [
        (PlanType::ChildProtection, "CPP"),
        (PlanType::LookedAfter, "LAC"),
        (PlanType::UnbornChildProtection, "UCPP"),
    ] {
        assert_eq!(plan_type.code(), code);
        assert_eq!(plan_type.to_string(), code);
        assert_eq!(PlanType::parse(code), Some(plan_type));
    }
}

/// Spaces are allowed only as the NHS writes them, 3-3-4 (brief §3): a
/// single space elsewhere in a 12-character input is not a grouping.
#[test]
fn only_the_3_3_4_grouping_is_accepted() {
    for bad in ["999 00000018", "9990000 0018", "999 0000 018"] {
        assert_eq!(
            NhsNumber::parse(bad),
            Err(NhsNumberError::WrongShape),
            "{bad:?}"
        );
    }
    assert!(NhsNumber::parse("999 000 0018").is_ok());
}

/// An older sequence sent again with another body is a reuse (409), not a
/// replay of the first answer: a replay is only for the same body
/// (brief §4, idempotent by sequence; README "Uploads").
#[tokio::test]
async fn an_older_sequence_with_another_body_is_refused_not_replayed() {
    let store = MemoryStore::new();
    let council = la("E09000033");
    let send = |body: serde_json::Value| {
        let store = &store;
        let council = &council;
        async move {
            process_upload(
                store,
                council,
                body.to_string().as_bytes(),
                NOW,
                &VisibilityPolicy::default(),
            )
            .await
        }
    };
    let first = json!({"sequence": 1, "mode": "delta", "records": [
        {"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-01"}]});
    send(first.clone()).await.expect("1");
    send(json!({"sequence": 2, "mode": "delta", "records": [
        {"nhs_number": "9990000026", "plan_type": "CPP", "start_date": "2026-01-01"}]}))
    .await
    .expect("2");
    assert!(send(first).await.expect("the same body").replayed);
    let changed = json!({"sequence": 1, "mode": "delta", "records": [
        {"nhs_number": "9990000034", "plan_type": "LAC", "start_date": "2026-01-01"}]});
    assert!(matches!(
        send(changed).await,
        Err(UploadError::SequenceReused { sequence: 1 })
    ));
}

/// The upload ports of a memory store, with one move made by another
/// caller just before this upload's first attempt to mark its sequence
/// done: what a retry taking the claim over, or a newer sequence taking a
/// lapsed lease, does in a real race.
struct Overtaken {
    inner: MemoryStore,
    /// The head another caller swaps in, from the claimed one, at that moment.
    rival: Box<dyn Fn(&LedgerHead) -> LedgerHead + Send + Sync>,
    done: std::sync::atomic::AtomicBool,
}

impl PlanStore for Overtaken {
    async fn plans_for_child(&self, n: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        self.inner.plans_for_child(n).await
    }
    async fn plans_for_authority(
        &self,
        a: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        self.inner.plans_for_authority(a, cursor, limit).await
    }
    async fn plan_keys_for_authority(&self, a: &OdsCode) -> Result<Vec<PlanKey>, StoreError> {
        self.inner.plan_keys_for_authority(a).await
    }
    async fn apply_changes(
        &self,
        a: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        self.inner.apply_changes(a, upserts, withdrawals).await
    }
}

impl UploadLedger for Overtaken {
    async fn receipt(&self, a: &OdsCode, s: u64) -> Result<Option<UploadReceipt>, StoreError> {
        self.inner.receipt(a, s).await
    }
    async fn record_receipt(
        &self,
        a: &OdsCode,
        r: &UploadReceipt,
    ) -> Result<UploadReceipt, StoreError> {
        self.inner.record_receipt(a, r).await
    }
    async fn ledger_head(&self, a: &OdsCode) -> Result<Option<LedgerHead>, StoreError> {
        self.inner.ledger_head(a).await
    }
    async fn swap_ledger_head(
        &self,
        a: &OdsCode,
        expected: Option<&LedgerHead>,
        new: &LedgerHead,
    ) -> Result<bool, StoreError> {
        if new.state == HeadState::Done && !self.done.swap(true, Ordering::SeqCst) {
            let claimed = expected.expect("a release swaps from its claim");
            assert!(
                self.inner
                    .swap_ledger_head(a, Some(claimed), &(self.rival)(claimed))
                    .await?
            );
        }
        self.inner.swap_ledger_head(a, expected, new).await
    }
    async fn retire_receipts_above(&self, a: &OdsCode, s: u64) -> Result<usize, StoreError> {
        self.inner.retire_receipts_above(a, s).await
    }
}

async fn upload_overtaken(
    rival: impl Fn(&LedgerHead) -> LedgerHead + Send + Sync + 'static,
) -> Option<LedgerHead> {
    let store = Overtaken {
        inner: MemoryStore::new(),
        rival: Box::new(rival),
        done: Default::default(),
    };
    let body = json!({"sequence": 4, "mode": "delta", "records": [
        {"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-01"}]});
    process_upload(
        &store,
        &la("E09000033"),
        body.to_string().as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .expect("applied");
    assert!(store.done.load(Ordering::SeqCst), "the rival moved");
    store.inner.ledger_head(&la("E09000033")).await.unwrap()
}

/// A retry of the same body resumed the claim (renewing its lease) while
/// the first run was finishing: the first run marks the renewed claim done,
/// or the council would wait out a 16-minute lease for nothing
/// (`sequencing.rs`: a crash neither loses the upload nor locks the sequence).
#[tokio::test]
async fn an_upload_whose_claim_a_retry_renewed_still_releases_it() {
    let head = upload_overtaken(|claimed| LedgerHead {
        state: HeadState::Pending {
            lease_until: NOW + UPLOAD_LEASE + time::Duration::minutes(1),
        },
        version: claimed.version + 1,
        ..claimed.clone()
    })
    .await
    .expect("a head");
    assert_eq!((head.sequence, head.state), (4, HeadState::Done));
}

/// A newer sequence took the council over (the first run's lease had
/// lapsed): the first run must leave that claim alone, or the newer
/// upload's claim would be marked done before it was applied.
#[tokio::test]
async fn an_upload_overtaken_by_a_newer_sequence_leaves_its_claim_alone() {
    let rival = |claimed: &LedgerHead| LedgerHead {
        sequence: 5,
        digest: "0".repeat(64),
        state: HeadState::Pending {
            lease_until: NOW + UPLOAD_LEASE + time::Duration::minutes(1),
        },
        version: claimed.version + 1,
    };
    let head = upload_overtaken(rival).await.expect("a head");
    assert_eq!(head.sequence, 5);
    assert!(
        matches!(head.state, HeadState::Pending { .. }),
        "the newer claim is still pending: {head:?}"
    );
}

/// The way back from a wrong sequence (issue 17; README "Uploads"): after a
/// rewind to `to` the council continues above `to`, receipts above it are
/// retired, plans stay, and a second rewind finds nothing more to do.
#[tokio::test]
async fn a_rewind_lets_the_council_continue_from_its_target() {
    let store = MemoryStore::new();
    let council = la("E09000033");
    let body = |sequence: u64, nhs: &str| {
        json!({"sequence": sequence, "mode": "full", "records": [
            {"nhs_number": nhs, "plan_type": "CPP", "start_date": "2026-01-01"}]})
        .to_string()
    };
    let policy = VisibilityPolicy::default();
    let send = |text: String| {
        let (store, council) = (&store, &council);
        async move { process_upload(store, council, text.as_bytes(), NOW, &policy).await }
    };
    send(body(1, "9990000018")).await.expect("1");
    send(body(cpis_domain::MAX_SEQUENCE, "9990000026"))
        .await
        .expect("the wrong one");
    assert!(matches!(
        send(body(2, "9990000034")).await,
        Err(UploadError::StaleSequence { sequence: 2, .. })
    ));
    let rewind = rewind_sequence(&store, &council, 1, NOW)
        .await
        .expect("rewind");
    assert_eq!(
        (rewind.sequence, rewind.previous, rewind.retired),
        (1, cpis_domain::MAX_SEQUENCE, 1)
    );
    let head = store.ledger_head(&council).await.unwrap().expect("a head");
    assert_eq!((head.sequence, head.state), (1, HeadState::Done));
    assert_eq!(
        store.plan_keys_for_authority(&council).await.unwrap().len(),
        1,
        "plans stay"
    );
    let again = rewind_sequence(&store, &council, 1, NOW)
        .await
        .expect("again");
    assert_eq!((again.previous, again.retired), (1, 0));
    assert!(matches!(
        rewind_sequence(&store, &council, 2, NOW).await,
        Err(RewindError::AboveLatest { to: 2, latest: 1 })
    ));
    send(body(2, "9990000034"))
        .await
        .expect("2 after the rewind");
}

/// A member name repeated anywhere outside a record is CPF01 pointing at
/// the repeat (`parse_batch`), even inside a list that is not `records` or
/// `withdrawals`: only a record's own repeats fail that record alone.
#[tokio::test]
async fn a_repeat_inside_another_list_is_cpf01_at_the_repeat() {
    let store = MemoryStore::new();
    let body = r#"{"sequence":1,"mode":[{"a":1,"a":2}],"records":[{"nhs_number":"9990000018","plan_type":"CPP","start_date":"2026-01-01"}]}"#;
    match process_upload(
        &store,
        &la("E09000033"),
        body.as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    {
        Err(UploadError::Malformed { pointer, .. }) => assert_eq!(pointer, "/mode/0/a"),
        other => panic!("{other:?}"),
    }
}

/// A rewind took the council over after the upload's lease lapsed (its
/// claim keeps the sequence and marks its digest): the late upload must not
/// mark the rewind's claim done, or the rewind would not finish as asked.
#[tokio::test]
async fn an_upload_overtaken_by_a_rewind_leaves_its_claim_alone() {
    let head = upload_overtaken(|claimed| LedgerHead {
        digest: "rewind:1".to_owned(),
        state: HeadState::Pending {
            lease_until: NOW + UPLOAD_LEASE + time::Duration::minutes(1),
        },
        version: claimed.version + 1,
        ..claimed.clone()
    })
    .await
    .expect("a head");
    assert_eq!((head.sequence, head.digest.as_str()), (4, "rewind:1"));
    assert!(
        matches!(head.state, HeadState::Pending { .. }),
        "the rewind's claim is still pending: {head:?}"
    );
}

/// A delete date on the start date is not before it (brief section 3: the
/// record is withdrawn from that date): the record is accepted, and as it
/// can never be visible nothing is stored (data minimisation).
#[tokio::test]
async fn a_delete_date_on_the_start_date_is_accepted_and_not_stored() {
    let store = MemoryStore::new();
    let body = json!({"sequence": 1, "mode": "delta", "records": [
        {"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-11-20",
         "delete_date": "2026-11-20"}]});
    let ack = process_upload(
        &store,
        &la("E09000033"),
        body.to_string().as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .expect("accepted")
    .acknowledgement;
    assert_eq!(ack.records[0].outcome, RecordOutcomeCode::Success);
    assert_eq!(ack.records[0].detail, Some(RecordDetail::ExpiredNotStored));
    assert!(store
        .plan_keys_for_authority(&la("E09000033"))
        .await
        .unwrap()
        .is_empty());
}

/// A UCPP's due date on its start date is not before it: the plan is
/// loaded and shown until 28 days after the due date (brief section 3).
#[tokio::test]
async fn a_due_date_on_the_start_date_is_accepted() {
    let store = MemoryStore::new();
    let body = json!({"sequence": 1, "mode": "delta", "records": [
        {"nhs_number": "9990000018", "plan_type": "UCPP", "start_date": "2026-11-20",
         "due_date": "2026-11-20"}]});
    let ack = process_upload(
        &store,
        &la("E09000033"),
        body.to_string().as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .expect("accepted")
    .acknowledgement;
    assert_eq!(
        (ack.records[0].outcome, ack.records[0].detail),
        (RecordOutcomeCode::Success, None)
    );
    assert_eq!(
        store
            .plan_keys_for_authority(&la("E09000033"))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A plan that ends on its start date is not "end before start" (brief
/// section 3: the end date is not before the start date): it is loaded and
/// shown for the 12-month tail.
#[tokio::test]
async fn an_end_date_on_the_start_date_is_accepted() {
    let store = MemoryStore::new();
    let body = json!({"sequence": 1, "mode": "delta", "records": [
        {"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-11-20",
         "end_date": "2026-11-20"}]});
    let ack = process_upload(
        &store,
        &la("E09000033"),
        body.to_string().as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .expect("accepted")
    .acknowledgement;
    assert_eq!(
        (ack.records[0].outcome, ack.records[0].detail),
        (RecordOutcomeCode::Success, None)
    );
    assert_eq!(
        store
            .plan_keys_for_authority(&la("E09000033"))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Every head a council's ledger held, in order, as swapped in.
struct Recorded {
    inner: MemoryStore,
    heads: std::sync::Mutex<Vec<LedgerHead>>,
}

impl PlanStore for Recorded {
    async fn plans_for_child(&self, n: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        self.inner.plans_for_child(n).await
    }
    async fn plans_for_authority(
        &self,
        a: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        self.inner.plans_for_authority(a, cursor, limit).await
    }
    async fn plan_keys_for_authority(&self, a: &OdsCode) -> Result<Vec<PlanKey>, StoreError> {
        self.inner.plan_keys_for_authority(a).await
    }
    async fn apply_changes(
        &self,
        a: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        self.inner.apply_changes(a, upserts, withdrawals).await
    }
}

impl UploadLedger for Recorded {
    async fn receipt(&self, a: &OdsCode, s: u64) -> Result<Option<UploadReceipt>, StoreError> {
        self.inner.receipt(a, s).await
    }
    async fn record_receipt(
        &self,
        a: &OdsCode,
        r: &UploadReceipt,
    ) -> Result<UploadReceipt, StoreError> {
        self.inner.record_receipt(a, r).await
    }
    async fn ledger_head(&self, a: &OdsCode) -> Result<Option<LedgerHead>, StoreError> {
        self.inner.ledger_head(a).await
    }
    async fn swap_ledger_head(
        &self,
        a: &OdsCode,
        expected: Option<&LedgerHead>,
        new: &LedgerHead,
    ) -> Result<bool, StoreError> {
        let swapped = self.inner.swap_ledger_head(a, expected, new).await?;
        if swapped {
            self.heads.lock().unwrap().push(new.clone());
        }
        Ok(swapped)
    }
    async fn retire_receipts_above(&self, a: &OdsCode, s: u64) -> Result<usize, StoreError> {
        self.inner.retire_receipts_above(a, s).await
    }
}

/// Stores swap the ledger head on its version alone (`sequencing.rs`:
/// "bumped by every swap"), so every swap must move the version forward:
/// a head that came back to an earlier version would let a caller holding
/// that earlier head swap over newer work (the ABA problem). Uploads,
/// releases, a rewind and its finish, in turn; then no earlier head swaps.
#[tokio::test]
async fn every_ledger_swap_moves_the_version_forward() {
    let store = Recorded {
        inner: MemoryStore::new(),
        heads: Default::default(),
    };
    let council = la("E09000033");
    let policy = VisibilityPolicy::default();
    let body = |sequence: u64| {
        json!({"sequence": sequence, "mode": "delta", "records": [
            {"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-01"}]})
        .to_string()
    };
    for sequence in [1, 2] {
        process_upload(&store, &council, body(sequence).as_bytes(), NOW, &policy)
            .await
            .expect("applied");
    }
    rewind_sequence(&store, &council, 1, NOW)
        .await
        .expect("rewound");
    process_upload(&store, &council, body(2).as_bytes(), NOW, &policy)
        .await
        .expect("applied after the rewind");
    let heads = store.heads.lock().unwrap().clone();
    // Two per upload (claim, release) and two for the rewind.
    assert_eq!(heads.len(), 8, "{heads:?}");
    for pair in heads.windows(2) {
        assert!(pair[1].version > pair[0].version, "{pair:?}");
    }
    let current = heads.last().unwrap().clone();
    for earlier in &heads[..heads.len() - 1] {
        let probe = LedgerHead {
            version: current.version + 100,
            ..current.clone()
        };
        assert!(
            !store
                .inner
                .swap_ledger_head(&council, Some(earlier), &probe)
                .await
                .unwrap(),
            "a swap from an earlier head succeeded: {earlier:?}"
        );
    }
}

/// A lease lapses at its `lease_until` instant, for a rewind as for an
/// upload (`sequencing.rs`: a holder past its lease is gone).
#[test]
fn a_rewind_may_take_over_the_instant_a_lease_ends() {
    use cpis_domain::sequencing::{decide, decide_rewind, Decision, RewindDecision};
    let held = |until| LedgerHead {
        sequence: 3,
        digest: "a".repeat(64),
        state: HeadState::Pending { lease_until: until },
        version: 5,
    };
    let second = time::Duration::seconds(1);
    assert!(matches!(
        decide_rewind(Some(&held(NOW)), 1, NOW),
        RewindDecision::Claim(_)
    ));
    assert!(matches!(
        decide_rewind(Some(&held(NOW + second)), 1, NOW),
        RewindDecision::Busy { .. }
    ));
    // An upload of the next sequence agrees on the same instant.
    assert!(matches!(
        decide(Some(&held(NOW)), 4, &"b".repeat(64), NOW),
        Decision::Claim(_)
    ));
}
