//! Issue 18: an upload body is read by the strict JSON reader. A member name
//! repeated outside a record refuses the batch (CPF01, with a pointer); one
//! repeated inside a record or withdrawal fails that record alone (CPR07,
//! `REPEATED_MEMBER`). And the sequence number is bounded to what a JSON
//! client can send exactly.

use cpis_domain::ports::{PlanStore, UploadLedger};
use cpis_domain::upload::MAX_SEQUENCE;
use cpis_domain::{
    process_upload, FileOutcome, NhsNumber, OdsCode, RecordDetail, RecordOutcomeCode, UploadError,
    UploadResult, VisibilityPolicy,
};
use cpis_store_memory::MemoryStore;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);
const COUNCIL: &str = "E09000033";

fn la() -> OdsCode {
    OdsCode::parse(COUNCIL).unwrap()
}

async fn upload(store: &MemoryStore, body: &str) -> Result<UploadResult, UploadError> {
    process_upload(
        store,
        &la(),
        body.as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
}

fn record(nhs_number: &str, plan_type: &str, start: &str) -> String {
    format!(r#"{{"nhs_number":"{nhs_number}","plan_type":"{plan_type}","start_date":"{start}"}}"#)
}

/// The newest sequence the council's ledger holds.
async fn latest(store: &MemoryStore) -> Option<u64> {
    store
        .ledger_head(&la())
        .await
        .unwrap()
        .map(|head| head.sequence)
}

async fn count(store: &MemoryStore, n: &str) -> usize {
    store
        .plans_for_child(&NhsNumber::parse(n).unwrap())
        .await
        .unwrap()
        .len()
}

/// Three of the council's children on plans.
async fn seed(store: &MemoryStore) {
    let body = format!(
        r#"{{"sequence":1,"mode":"delta","records":[{},{},{}]}}"#,
        record("9990000018", "CPP", "2026-01-01"),
        record("9990000026", "LAC", "2025-01-01"),
        record("9990000034", "CPP", "2026-03-01"),
    );
    upload(store, &body).await.unwrap();
}

fn cpf01_pointer(result: Result<UploadResult, UploadError>) -> String {
    match result {
        Err(UploadError::Malformed { pointer, .. }) => pointer,
        other => panic!("expected CPF01, got {other:?}"),
    }
}

#[tokio::test]
async fn a_repeated_mode_is_cpf01_and_never_runs_as_a_full_snapshot() {
    let store = MemoryStore::new();
    seed(&store).await;
    // The issue's case: "delta" then "full" ran as a snapshot and withdrew
    // three other children's plans.
    let body = format!(
        r#"{{"sequence":2,"mode":"delta","mode":"full","records":[{}]}}"#,
        record("9990000018", "CPP", "2026-01-01")
    );
    assert_eq!(cpf01_pointer(upload(&store, &body).await), "/mode");
    for child in ["9990000018", "9990000026", "9990000034"] {
        assert_eq!(count(&store, child).await, 1, "{child}'s plan was touched");
    }
    assert_eq!(latest(&store).await, Some(1));
}

#[tokio::test]
async fn a_repeated_batch_member_is_cpf01_with_its_pointer() {
    let store = MemoryStore::new();
    let one = record("9990000018", "CPP", "2026-01-01");
    let two = record("9990000026", "CPP", "2026-01-01");
    for (body, pointer) in [
        // `records` twice silently dropped the first list.
        (
            format!(r#"{{"sequence":1,"mode":"delta","records":[{one}],"records":[{two}]}}"#),
            "/records",
        ),
        (
            format!(r#"{{"sequence":1,"sequence":2,"mode":"delta","records":[{one}]}}"#),
            "/sequence",
        ),
        (
            format!(
                r#"{{"sequence":1,"mode":"delta","records":[{one}],"withdrawals":[],"withdrawals":[]}}"#
            ),
            "/withdrawals",
        ),
        // A key that is not a plain name is never echoed.
        (
            format!(
                r#"{{"sequence":1,"mode":"delta","records":[{one}],"9990000018":1,"9990000018":1}}"#
            ),
            "/_",
        ),
    ] {
        assert_eq!(
            cpf01_pointer(upload(&store, &body).await),
            pointer,
            "{body}"
        );
    }
    assert_eq!(count(&store, "9990000018").await, 0);
    assert_eq!(latest(&store).await, None);
}

#[tokio::test]
async fn a_record_with_a_repeated_member_fails_alone_with_its_pointer() {
    let store = MemoryStore::new();
    let body = format!(
        r#"{{"sequence":1,"mode":"delta","records":[{},
            {{"nhs_number":"9990000026","plan_type":"CPP","plan_type":"LAC","start_date":"2026-01-01"}},
            {{"nhs_number":"9990000034","plan_type":"CPP","start_date":"2026-01-01","local_id":{{"a":1,"a":2}}}}]}}"#,
        record("9990000018", "CPP", "2026-01-01"),
    );
    let ack = upload(&store, &body).await.unwrap().acknowledgement;
    assert_eq!(
        (ack.file_outcome, ack.loaded, ack.rejected),
        (FileOutcome::Partial, 1, 2)
    );
    assert_eq!(ack.records[0].outcome, RecordOutcomeCode::Success);
    for (index, location) in [(1, "/records/1/plan_type"), (2, "/records/2/local_id/a")] {
        let outcome = &ack.records[index];
        assert_eq!(outcome.outcome, RecordOutcomeCode::Failure);
        assert_eq!(outcome.detail, Some(RecordDetail::RepeatedMember));
        assert_eq!(outcome.location.as_deref(), Some(location));
    }
    assert_eq!(count(&store, "9990000018").await, 1);
    assert_eq!(count(&store, "9990000026").await, 0);
}

#[tokio::test]
async fn a_repeated_member_in_a_snapshot_record_protects_that_childs_plans() {
    let store = MemoryStore::new();
    seed(&store).await;
    let body = format!(
        r#"{{"sequence":2,"mode":"full","records":[{},
            {{"nhs_number":"9990000026","plan_type":"LAC","start_date":"2025-01-01","end_date":null,"end_date":"2026-01-01"}}]}}"#,
        record("9990000018", "CPP", "2026-01-01"),
    );
    let ack = upload(&store, &body).await.unwrap().acknowledgement;
    assert_eq!((ack.file_outcome, ack.withdrawn), (FileOutcome::Partial, 1));
    assert_eq!(ack.records[1].detail, Some(RecordDetail::RepeatedMember));
    assert_eq!(
        count(&store, "9990000026").await,
        1,
        "the failed record's child lost a plan"
    );
    assert_eq!(count(&store, "9990000034").await, 0);
}

#[tokio::test]
async fn a_repeated_nhs_number_in_a_snapshot_record_holds_back_every_withdrawal() {
    let store = MemoryStore::new();
    seed(&store).await;
    // Which child was meant is unknowable, so no child's plans may go.
    let body = format!(
        r#"{{"sequence":2,"mode":"full","records":[{},
            {{"nhs_number":"9990000018","nhs_number":"9990000034","plan_type":"CPP","start_date":"2026-03-01"}}]}}"#,
        record("9990000018", "CPP", "2026-01-01"),
    );
    let ack = upload(&store, &body).await.unwrap().acknowledgement;
    assert_eq!(ack.records[1].detail, Some(RecordDetail::RepeatedMember));
    assert_eq!(
        ack.records[1].location.as_deref(),
        Some("/records/1/nhs_number")
    );
    assert_eq!(ack.withdrawn, 0);
    assert!(ack.withdrawals_held_back.is_some());
    for child in ["9990000026", "9990000034"] {
        assert_eq!(
            count(&store, child).await,
            1,
            "{child}'s plan was withdrawn"
        );
    }
}

#[tokio::test]
async fn a_withdrawal_with_a_repeated_member_fails_alone() {
    let store = MemoryStore::new();
    seed(&store).await;
    let body = format!(
        r#"{{"sequence":2,"mode":"delta","withdrawals":[
            {{"nhs_number":"9990000026","plan_type":"LAC","start_date":"2025-01-01","start_date":"2025-01-01"}},
            {}]}}"#,
        record("9990000034", "CPP", "2026-03-01"),
    );
    let ack = upload(&store, &body).await.unwrap().acknowledgement;
    assert_eq!(
        ack.withdrawals[0].detail,
        Some(RecordDetail::RepeatedMember)
    );
    assert_eq!(
        ack.withdrawals[0].location.as_deref(),
        Some("/withdrawals/0/start_date")
    );
    assert_eq!(ack.withdrawals[1].outcome, RecordOutcomeCode::Success);
    assert_eq!(ack.withdrawn, 1);
    assert_eq!(count(&store, "9990000026").await, 1);
    assert_eq!(count(&store, "9990000034").await, 0);
}

#[tokio::test]
async fn sequence_is_bounded_to_what_a_json_client_sends_exactly() {
    assert_eq!(MAX_SEQUENCE, 9_007_199_254_740_991);
    let one = record("9990000018", "CPP", "2026-01-01");
    for bad in [
        "0",
        "-1",
        "1.5",
        "1e3",
        "\"1\"",
        "9007199254740992",
        "18446744073709551615",
        "18446744073709551616",
    ] {
        let store = MemoryStore::new();
        let body = format!(r#"{{"sequence":{bad},"mode":"delta","records":[{one}]}}"#);
        assert_eq!(
            cpf01_pointer(upload(&store, &body).await),
            "/sequence",
            "{bad}"
        );
    }
    let store = MemoryStore::new();
    let body = format!(r#"{{"sequence":9007199254740991,"mode":"delta","records":[{one}]}}"#);
    let ack = upload(&store, &body).await.unwrap().acknowledgement;
    assert_eq!(ack.sequence, MAX_SEQUENCE);
}
