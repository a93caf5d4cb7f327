//! The upload body through the domain's entry point (`process_upload`) on a
//! fresh in-memory store: any bytes are either refused as a whole (CPF01 or
//! too many records) or acknowledged with one outcome per record, what was
//! stored matches the acknowledgement, the same body again is a replay, and
//! nothing a council is told holds an NHS number.
#![no_main]

use std::sync::OnceLock;

use cpis_domain::ports::PlanStore;
use cpis_domain::upload::parse_batch;
use cpis_domain::{
    find_nhs_numbers, process_upload, FileOutcome, OdsCode, RecordDetail, RecordOutcomeCode,
    UploadError, VisibilityPolicy,
};
use cpis_store_memory::MemoryStore;
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;

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

fuzz_target!(|body: &[u8]| {
    let parsed = parse_batch(body);
    let council = OdsCode::parse("E09000033").expect("a valid ODS code");
    let now = datetime!(2026-03-02 10:00 UTC);
    let policy = VisibilityPolicy::default();
    let store = MemoryStore::new();

    runtime().block_on(async {
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
                assert!(store
                    .plan_keys_for_authority(&council)
                    .await
                    .expect("memory")
                    .is_empty());
                return;
            }
            Err(UploadError::TooManyRecords) => {
                assert!(parsed.is_err());
                return;
            }
            Err(other) => panic!("a fresh store refused a batch for another reason: {other}"),
            Ok(result) => result,
        };
        let batch = parsed.expect("the upload accepted what the parser refused");
        let ack = &result.acknowledgement;
        assert!(!result.replayed, "a fresh store has nothing to replay");
        assert_eq!(ack.sequence, batch.sequence);
        assert_eq!(ack.mode, batch.mode);
        assert_eq!(ack.records.len(), batch.records.len());
        assert_eq!(ack.withdrawals.len(), batch.withdrawals.len());
        assert_eq!(ack.loaded + ack.rejected, ack.records.len());
        assert_eq!(ack.withdrawn, 0, "a fresh store holds nothing to withdraw");

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

        // Exactly the acknowledged, unexpired records were stored.
        let keys = store
            .plan_keys_for_authority(&council)
            .await
            .expect("memory");
        assert_eq!(keys.len(), stored);

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
        assert_eq!(
            store
                .plan_keys_for_authority(&council)
                .await
                .expect("memory")
                .len(),
            stored
        );
    });
});
