//! The upload body through the domain's entry point (`process_upload`) on a
//! store that already holds plans (for this council and for another), so
//! that updates, full-snapshot reconciliation and withdrawals are reached:
//! any bytes are either refused as a whole (CPF01 or too many records, the
//! store untouched) or acknowledged with one outcome per record; what is
//! stored afterwards matches the acknowledgement (withdrawn counts the plans
//! that went, a failed record never withdraws its child's plans, another
//! council's plan is never touched); the same body again is a replay; and
//! nothing a council is told holds an NHS number.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use cpis_domain::ports::{PlanStore, StoredPlan};
use cpis_domain::upload::parse_batch;
use cpis_domain::UploadMode;
use cpis_domain::{
    find_nhs_numbers, process_upload, FileOutcome, NhsNumber, OdsCode, Plan, PlanKey, PlanType,
    RecordDetail, RecordOutcomeCode, UploadError, VisibilityPolicy,
};
use cpis_store_memory::MemoryStore;
use libfuzzer_sys::fuzz_target;
use time::macros::{date, datetime};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fn assert_no_nhs_number(text: &str) {
    assert!(
        find_nhs_numbers(text).is_empty(),
        "an NHS number in: {text}"
    );
}

const COUNCIL: &str = "E09000033";
const OTHER_COUNCIL: &str = "E06000001";

fn open_plan(council: &str, nhs: &str, plan_type: PlanType, start: time::Date) -> StoredPlan {
    StoredPlan {
        plan: Plan {
            authority: OdsCode::parse(council).expect("an ODS code"),
            nhs_number: NhsNumber::parse(nhs).expect("a synthetic NHS number"),
            plan_type,
            start_date: start,
            end_date: None,
            delete_date: None,
            due_date: None,
            local_id: Some("CASE-1".to_owned()),
            upload_sequence: None,
        },
        purge_from: None,
    }
}

/// The plans held before the upload: identities the seed corpus updates,
/// withdraws or leaves out, and one of another council for the same child.
fn seeded() -> (Vec<StoredPlan>, StoredPlan) {
    let ours = vec![
        open_plan(
            COUNCIL,
            "9990000018",
            PlanType::ChildProtection,
            date!(2025 - 09 - 01),
        ),
        open_plan(
            COUNCIL,
            "9990000026",
            PlanType::LookedAfter,
            date!(2024 - 01 - 31),
        ),
        open_plan(
            COUNCIL,
            "9990000042",
            PlanType::ChildProtection,
            date!(2025 - 09 - 01),
        ),
        open_plan(
            COUNCIL,
            "9990000050",
            PlanType::LookedAfter,
            date!(2025 - 06 - 01),
        ),
    ];
    let theirs = open_plan(
        OTHER_COUNCIL,
        "9990000018",
        PlanType::ChildProtection,
        date!(2025 - 09 - 01),
    );
    (ours, theirs)
}

async fn keys(store: &MemoryStore, council: &OdsCode) -> BTreeSet<PlanKey> {
    store
        .plan_keys_for_authority(council)
        .await
        .expect("memory")
        .into_iter()
        .collect()
}

fuzz_target!(|body: &[u8]| {
    let parsed = parse_batch(body);
    let council = OdsCode::parse("E09000033").expect("a valid ODS code");
    let now = datetime!(2026-03-02 10:00 UTC);
    let policy = VisibilityPolicy::default();
    let store = MemoryStore::new();
    let other = OdsCode::parse(OTHER_COUNCIL).expect("an ODS code");
    let (ours, theirs) = seeded();

    runtime().block_on(async {
        store
            .apply_changes(&council, &ours, &[])
            .await
            .expect("memory");
        store
            .apply_changes(&other, std::slice::from_ref(&theirs), &[])
            .await
            .expect("memory");
        let before = keys(&store, &council).await;
        let theirs_before = keys(&store, &other).await;
        let first = process_upload(&store, &council, body, now, &policy).await;
        let result = match first {
            Err(UploadError::Malformed { detail, pointer }) => {
                assert!(
                    parsed.is_err(),
                    "the parser accepted what the upload refused"
                );
                assert_no_nhs_number(&detail);
                assert_no_nhs_number(&pointer);
                assert!(pointer.is_empty() || pointer.starts_with('/'));
                assert_eq!(keys(&store, &council).await, before, "nothing changed");
                return;
            }
            Err(UploadError::TooManyRecords) => {
                assert!(parsed.is_err());
                assert_eq!(keys(&store, &council).await, before, "nothing changed");
                return;
            }
            Err(other) => {
                panic!("a council with no upload yet refused a batch for another reason: {other}")
            }
            Ok(result) => result,
        };
        let batch = parsed.expect("the upload accepted what the parser refused");
        let ack = &result.acknowledgement;
        assert!(!result.replayed, "no upload yet, so nothing to replay");
        assert_eq!(ack.sequence, batch.sequence);
        assert_eq!(ack.mode, batch.mode);
        assert_eq!(ack.records.len(), batch.records.len());
        assert_eq!(ack.withdrawals.len(), batch.withdrawals.len());
        assert_eq!(ack.loaded + ack.rejected, ack.records.len());

        let mut succeeded = 0;
        let mut stored = 0;
        for outcomes in [&ack.records, &ack.withdrawals] {
            for (index, outcome) in outcomes.iter().enumerate() {
                assert_eq!(outcome.index, index);
                match (outcome.outcome, outcome.detail) {
                    (RecordOutcomeCode::Success, None) => {}
                    (RecordOutcomeCode::Success, Some(RecordDetail::ExpiredNotStored)) => {}
                    (RecordOutcomeCode::Failure, Some(detail)) => {
                        assert_ne!(detail, RecordDetail::ExpiredNotStored);
                        assert!(outcome
                            .location
                            .as_deref()
                            .is_some_and(|l| l.starts_with('/')));
                    }
                    other => panic!("inconsistent outcome {other:?}"),
                }
            }
        }
        for outcome in &ack.records {
            if outcome.outcome == RecordOutcomeCode::Success {
                succeeded += 1;
                if outcome.detail.is_none() {
                    stored += 1;
                }
            }
        }
        assert_eq!(succeeded, ack.loaded);
        let expected_outcome = match (ack.loaded, ack.rejected) {
            (_, 0) => FileOutcome::AllLoaded,
            (0, _) => FileOutcome::NoneLoaded,
            _ => FileOutcome::Partial,
        };
        assert_eq!(ack.file_outcome, expected_outcome);

        // What is stored now: what was held and what was loaded, less what
        // was withdrawn, and `withdrawn` counts exactly what went.
        let after = keys(&store, &council).await;
        let loaded: BTreeSet<PlanKey> = ack
            .records
            .iter()
            .filter(|o| o.outcome == RecordOutcomeCode::Success && o.detail.is_none())
            .map(|o| record_key(&council, &batch.records[o.index].value))
            .collect();
        assert_eq!(loaded.len(), stored, "one plan per stored record");
        // Accepted records past their purge day: not stored, and the copy an
        // earlier upload stored is withdrawn with them.
        let expired: BTreeSet<PlanKey> = ack
            .records
            .iter()
            .filter(|o| o.detail == Some(RecordDetail::ExpiredNotStored))
            .map(|o| record_key(&council, &batch.records[o.index].value))
            .collect();
        let candidates: BTreeSet<PlanKey> = before.union(&loaded).cloned().collect();
        assert!(after.is_subset(&candidates), "a plan from nowhere");
        assert!(after.is_disjoint(&expired), "an expired plan is still held");
        assert_eq!(ack.withdrawn, candidates.difference(&after).count());
        assert_eq!(
            keys(&store, &other).await,
            theirs_before,
            "another council's plan"
        );
        match batch.mode {
            UploadMode::Delta => {
                // What the batch withdrew is gone, and nothing else went.
                for o in &ack.withdrawals {
                    if o.outcome == RecordOutcomeCode::Success {
                        let key = record_key(&council, &batch.withdrawals[o.index].value);
                        assert!(!after.contains(&key), "a withdrawn plan is still held");
                    }
                }
                for gone in candidates.difference(&after) {
                    assert!(
                        expired.contains(gone)
                            || ack.withdrawals.iter().any(|o| {
                                o.outcome == RecordOutcomeCode::Success
                                    && record_key(&council, &batch.withdrawals[o.index].value)
                                        == *gone
                            })
                    );
                }
            }
            UploadMode::Full if ack.withdrawals_held_back.is_some() => {
                // Only the snapshot's withdrawal of what it leaves out is held
                // back; an expired record still takes its stored copy.
                let kept: BTreeSet<PlanKey> = before.difference(&expired).cloned().collect();
                assert!(kept.is_subset(&after), "held back, yet a plan went");
                assert_eq!(ack.withdrawn, before.intersection(&expired).count());
            }
            UploadMode::Full => {
                // Brief section 4: a failed record never withdraws the plan it
                // was meant to update; every other plan not in the snapshot goes.
                let failed: BTreeSet<NhsNumber> = ack
                    .records
                    .iter()
                    .filter(|o| o.outcome == RecordOutcomeCode::Failure)
                    .filter_map(|o| batch.records[o.index].value.get("nhs_number"))
                    .filter_map(|v| v.as_str().and_then(|s| NhsNumber::parse(s).ok()))
                    .collect();
                // Accepted but expired records are in the snapshot too.
                let listed: BTreeSet<PlanKey> = ack
                    .records
                    .iter()
                    .filter(|o| o.outcome == RecordOutcomeCode::Success)
                    .map(|o| record_key(&council, &batch.records[o.index].value))
                    .collect();
                for key in &before {
                    let kept = after.contains(key);
                    let expected = !expired.contains(key)
                        && (listed.contains(key) || failed.contains(&key.nhs_number));
                    assert_eq!(kept, expected, "a full snapshot and a held plan");
                }
            }
        }

        // The sequence is the council's own number, echoed as sent (checked
        // above); it may happen to pass Modulus 11, so it is left out here.
        let mut text = serde_json::to_value(ack).expect("an acknowledgement serialises");
        text["sequence"] = serde_json::Value::Null;
        assert_no_nhs_number(&text.to_string());

        // The same body again is the same acknowledgement, marked as a replay.
        let again = process_upload(&store, &council, body, now, &policy)
            .await
            .expect("a repeat of an accepted batch is a replay");
        assert!(again.replayed);
        assert_eq!(&again.acknowledgement, ack);
        assert_eq!(keys(&store, &council).await, after);
    });
});

/// The identity a successful record or withdrawal names (it parsed, so
/// each field is there and valid).
fn record_key(council: &OdsCode, record: &serde_json::Value) -> PlanKey {
    let field = |name: &str| record[name].as_str().expect("a parsed field");
    PlanKey {
        authority: council.clone(),
        nhs_number: NhsNumber::parse(field("nhs_number")).expect("parsed"),
        plan_type: PlanType::parse(field("plan_type")).expect("parsed"),
        start_date: cpis_domain::dates::parse_iso_date(field("start_date")).expect("parsed"),
    }
}
