//! Upload rules through `process_upload`, against the in-memory store.

use cpis_domain::ports::{PlanStore, UploadLedger};
use cpis_domain::{
    process_upload, FileOutcome, NhsNumber, OdsCode, RecordDetail, RecordOutcomeCode, UploadError,
    UploadResult, VisibilityPolicy,
};
use cpis_store_memory::MemoryStore;
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

fn la(code: &str) -> OdsCode {
    OdsCode::parse(code).unwrap()
}

fn nhs(n: &str) -> NhsNumber {
    NhsNumber::parse(n).unwrap()
}

async fn upload(
    store: &MemoryStore,
    authority: &str,
    body: Value,
) -> Result<UploadResult, UploadError> {
    process_upload(
        store,
        &la(authority),
        body.to_string().as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
}

fn record(nhs_number: &str, plan_type: &str, start: &str) -> Value {
    json!({ "nhs_number": nhs_number, "plan_type": plan_type, "start_date": start })
}

#[tokio::test]
async fn a_valid_delta_loads_every_record() {
    let store = MemoryStore::new();
    let result = upload(&store, "E09000033", json!({
        "sequence": 1, "mode": "delta",
        "records": [record("9990000018", "CPP", "2026-01-01"), record("999 000 0026", "LAC", "2025-06-01")]
    }))
    .await
    .unwrap();
    let ack = result.acknowledgement;
    assert_eq!(
        (ack.file_outcome, ack.loaded, ack.rejected, ack.withdrawn),
        (FileOutcome::AllLoaded, 2, 0, 0)
    );
    assert!(ack
        .records
        .iter()
        .all(|r| r.outcome == RecordOutcomeCode::Success));
    assert_eq!(
        store
            .plans_for_child(&nhs("9990000026"))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn each_invalid_record_gets_its_detail_and_pointer() {
    let cases = [
        (
            json!("not an object"),
            RecordDetail::NotAnObject,
            "/records/0",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-01", "name": "x"}),
            RecordDetail::UnexpectedField,
            "/records/0/name",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-01", "9990000026": "x"}),
            RecordDetail::UnexpectedField,
            "/records/0/_",
        ),
        (
            json!({"plan_type": "CPP", "start_date": "2026-01-01"}),
            RecordDetail::MissingNhsNumber,
            "/records/0/nhs_number",
        ),
        (
            json!({"plan_type": "UCPP", "start_date": "2026-01-01"}),
            RecordDetail::MissingMothersNhsNumber,
            "/records/0/nhs_number",
        ),
        (
            json!({"nhs_number": "9990000010", "plan_type": "CPP", "start_date": "2026-01-01"}),
            RecordDetail::InvalidNhsNumber,
            "/records/0/nhs_number",
        ),
        (
            json!({"nhs_number": 9990000018u64, "plan_type": "CPP", "start_date": "2026-01-01"}),
            RecordDetail::InvalidNhsNumber,
            "/records/0/nhs_number",
        ),
        (
            json!({"nhs_number": "9990000018", "start_date": "2026-01-01"}),
            RecordDetail::MissingPlanType,
            "/records/0/plan_type",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CIN", "start_date": "2026-01-01"}),
            RecordDetail::UnknownPlanType,
            "/records/0/plan_type",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP"}),
            RecordDetail::MissingStartDate,
            "/records/0/start_date",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "01/01/2026"}),
            RecordDetail::InvalidDate,
            "/records/0/start_date",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-02-30"}),
            RecordDetail::InvalidDate,
            "/records/0/start_date",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-11-26"}),
            RecordDetail::StartDateInFuture,
            "/records/0/start_date",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-02", "end_date": "2026-01-01"}),
            RecordDetail::EndBeforeStart,
            "/records/0/end_date",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-02", "delete_date": "2026-01-01"}),
            RecordDetail::DeleteBeforeStart,
            "/records/0/delete_date",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "LAC", "start_date": "2026-01-02", "due_date": "2026-05-01"}),
            RecordDetail::DueDateNotUnborn,
            "/records/0/due_date",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "UCPP", "start_date": "2026-01-02", "due_date": "2026-01-01"}),
            RecordDetail::DueBeforeStart,
            "/records/0/due_date",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-02", "local_id": "x".repeat(65)}),
            RecordDetail::InvalidLocalId,
            "/records/0/local_id",
        ),
        (
            json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-02", "local_id": 42}),
            RecordDetail::InvalidLocalId,
            "/records/0/local_id",
        ),
    ];
    for (raw, detail, pointer) in cases {
        let store = MemoryStore::new();
        let ack = upload(
            &store,
            "E09000033",
            json!({"sequence": 1, "mode": "delta", "records": [raw]}),
        )
        .await
        .unwrap()
        .acknowledgement;
        assert_eq!(ack.file_outcome, FileOutcome::NoneLoaded, "{detail:?}");
        let outcome = &ack.records[0];
        assert_eq!(outcome.outcome, RecordOutcomeCode::Failure);
        assert_eq!(outcome.detail, Some(detail));
        assert_eq!(outcome.location.as_deref(), Some(pointer), "{detail:?}");
        assert!(
            store
                .plans_for_child(&nhs("9990000018"))
                .await
                .unwrap()
                .is_empty(),
            "{detail:?} stored"
        );
    }
}

#[tokio::test]
async fn null_optional_fields_are_absent() {
    let store = MemoryStore::new();
    let raw = json!({"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-02", "end_date": null, "local_id": null});
    let ack = upload(
        &store,
        "E09000033",
        json!({"sequence": 1, "mode": "delta", "records": [raw]}),
    )
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!(ack.file_outcome, FileOutcome::AllLoaded);
}

#[tokio::test]
async fn some_invalid_records_make_a_partial_load() {
    let store = MemoryStore::new();
    let ack = upload(
        &store,
        "E09000033",
        json!({"sequence": 1, "mode": "delta", "records": [
            record("9990000018", "CPP", "2026-01-01"),
            record("9990000010", "CPP", "2026-01-01"),
        ]}),
    )
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!(
        (ack.file_outcome, ack.loaded, ack.rejected),
        (FileOutcome::Partial, 1, 1)
    );
}

#[tokio::test]
async fn every_duplicate_identity_in_a_batch_is_rejected() {
    let store = MemoryStore::new();
    let ack = upload(&store, "E09000033", json!({"sequence": 1, "mode": "delta", "records": [
        record("9990000018", "CPP", "2026-01-01"),
        record("9990000026", "CPP", "2026-01-01"),
        {"nhs_number": "999 000 0018", "plan_type": "CPP", "start_date": "2026-01-01", "end_date": "2026-02-01"},
    ]}))
    .await
    .unwrap()
    .acknowledgement;
    let details: Vec<_> = ack.records.iter().map(|r| r.detail).collect();
    assert_eq!(
        details,
        [
            Some(RecordDetail::DuplicateInBatch),
            None,
            Some(RecordDetail::DuplicateInBatch)
        ]
    );
    assert!(store
        .plans_for_child(&nhs("9990000018"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn malformed_batches_load_nothing() {
    let store = MemoryStore::new();
    let bodies = [
        (b"{not json".to_vec(), ""),
        (b"[]".to_vec(), ""),
        (json!({"mode": "delta", "records": []}).to_string().into_bytes(), "/sequence"),
        (json!({"sequence": 0, "mode": "delta", "records": []}).to_string().into_bytes(), "/sequence"),
        (json!({"sequence": 1, "mode": "snapshot", "records": []}).to_string().into_bytes(), "/mode"),
        (json!({"sequence": 1, "mode": "full", "records": {}}).to_string().into_bytes(), "/records"),
        (json!({"sequence": 1, "mode": "full", "records": []}).to_string().into_bytes(), "/records"),
        (json!({"sequence": 1, "mode": "delta", "records": []}).to_string().into_bytes(), "/records"),
        (json!({"sequence": 1, "mode": "full", "records": [record("9990000018", "CPP", "2026-01-01")], "withdrawals": []}).to_string().into_bytes(), "/withdrawals"),
        (json!({"sequence": 1, "mode": "delta", "records": [], "extra": 1}).to_string().into_bytes(), "/extra"),
    ];
    for (body, expected) in bodies {
        let result = process_upload(
            &store,
            &la("E09000033"),
            &body,
            NOW,
            &VisibilityPolicy::default(),
        )
        .await;
        match result {
            Err(UploadError::Malformed { pointer, .. }) => assert_eq!(pointer, expected),
            other => panic!(
                "expected CPF01 for {}, got {other:?}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
    assert_eq!(
        store
            .ledger_head(&la("E09000033"))
            .await
            .unwrap()
            .map(|h| h.sequence),
        None
    );
}

#[tokio::test]
async fn more_than_ten_thousand_records_is_refused_whole() {
    let store = MemoryStore::new();
    let records: Vec<Value> = (0..10_001)
        .map(|_| record("9990000018", "CPP", "2026-01-01"))
        .collect();
    let result = upload(
        &store,
        "E09000033",
        json!({"sequence": 1, "mode": "delta", "records": records}),
    )
    .await;
    assert!(matches!(result, Err(UploadError::TooManyRecords)));
}

#[tokio::test]
async fn a_repeated_sequence_returns_the_stored_acknowledgement() {
    let store = MemoryStore::new();
    let body = json!({"sequence": 7, "mode": "delta", "records": [record("9990000018", "CPP", "2026-01-01")]});
    let first = upload(&store, "E09000033", body.clone()).await.unwrap();
    let again = upload(&store, "E09000033", body).await.unwrap();
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(first.acknowledgement, again.acknowledgement);
}

#[tokio::test]
async fn a_reused_sequence_with_other_content_is_refused() {
    let store = MemoryStore::new();
    upload(&store, "E09000033", json!({"sequence": 7, "mode": "delta", "records": [record("9990000018", "CPP", "2026-01-01")]})).await.unwrap();
    let other = upload(&store, "E09000033", json!({"sequence": 7, "mode": "delta", "records": [record("9990000026", "CPP", "2026-01-01")]})).await;
    assert!(matches!(
        other,
        Err(UploadError::SequenceReused { sequence: 7 })
    ));
    assert!(store
        .plans_for_child(&nhs("9990000026"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_older_sequence_is_refused_but_another_council_has_its_own() {
    let store = MemoryStore::new();
    upload(&store, "E09000033", json!({"sequence": 7, "mode": "delta", "records": [record("9990000018", "CPP", "2026-01-01")]})).await.unwrap();
    let stale = upload(&store, "E09000033", json!({"sequence": 6, "mode": "delta", "records": [record("9990000026", "CPP", "2026-01-01")]})).await;
    assert!(matches!(
        stale,
        Err(UploadError::StaleSequence {
            sequence: 6,
            latest: 7
        })
    ));
    let other_council = upload(&store, "E06000001", json!({"sequence": 1, "mode": "delta", "records": [record("9990000026", "CPP", "2026-01-01")]})).await;
    assert!(other_council.is_ok());
}

async fn seed_three_plans(store: &MemoryStore) {
    upload(
        store,
        "E09000033",
        json!({"sequence": 1, "mode": "delta", "records": [
            record("9990000018", "CPP", "2026-01-01"),
            record("9990000026", "LAC", "2025-01-01"),
            record("9990000034", "CPP", "2026-03-01"),
        ]}),
    )
    .await
    .unwrap();
    upload(store, "E06000001", json!({"sequence": 1, "mode": "delta", "records": [record("9990000042", "CPP", "2026-01-01")]}))
        .await
        .unwrap();
}

async fn count(store: &MemoryStore, n: &str) -> usize {
    store.plans_for_child(&nhs(n)).await.unwrap().len()
}

#[tokio::test]
async fn a_full_snapshot_withdraws_the_councils_missing_plans_only() {
    let store = MemoryStore::new();
    seed_three_plans(&store).await;
    let ack = upload(&store, "E09000033", json!({"sequence": 2, "mode": "full", "records": [record("9990000018", "CPP", "2026-01-01")]}))
        .await
        .unwrap()
        .acknowledgement;
    assert_eq!(ack.withdrawn, 2);
    assert_eq!(
        [
            count(&store, "9990000018").await,
            count(&store, "9990000026").await,
            count(&store, "9990000034").await
        ],
        [1, 0, 0]
    );
    assert_eq!(
        count(&store, "9990000042").await,
        1,
        "another council's plan was touched"
    );
}

#[tokio::test]
async fn a_snapshot_that_loads_nothing_withdraws_nothing() {
    let store = MemoryStore::new();
    seed_three_plans(&store).await;
    let ack = upload(&store, "E09000033", json!({"sequence": 2, "mode": "full", "records": [record("9990000010", "CPP", "2026-01-01")]}))
        .await
        .unwrap()
        .acknowledgement;
    assert_eq!(
        (ack.file_outcome, ack.withdrawn),
        (FileOutcome::NoneLoaded, 0)
    );
    assert!(ack.withdrawals_held_back.is_some());
    assert_eq!(count(&store, "9990000026").await, 1);
}

#[tokio::test]
async fn a_failed_record_never_withdraws_the_plan_it_meant_to_update() {
    let store = MemoryStore::new();
    seed_three_plans(&store).await;
    // 9990000026's record fails (end before start): its plans stay; 9990000034 is withdrawn.
    let ack = upload(&store, "E09000033", json!({"sequence": 2, "mode": "full", "records": [
        record("9990000018", "CPP", "2026-01-01"),
        {"nhs_number": "9990000026", "plan_type": "LAC", "start_date": "2025-01-01", "end_date": "2024-01-01"},
    ]}))
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!((ack.file_outcome, ack.withdrawn), (FileOutcome::Partial, 1));
    assert_eq!(count(&store, "9990000026").await, 1);
    assert_eq!(count(&store, "9990000034").await, 0);
}

#[tokio::test]
async fn a_failed_record_without_a_valid_nhs_number_holds_back_every_withdrawal() {
    let store = MemoryStore::new();
    seed_three_plans(&store).await;
    let ack = upload(
        &store,
        "E09000033",
        json!({"sequence": 2, "mode": "full", "records": [
            record("9990000018", "CPP", "2026-01-01"),
            record("9990000011", "LAC", "2025-01-01"),
        ]}),
    )
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!((ack.loaded, ack.withdrawn), (1, 0));
    assert!(ack.withdrawals_held_back.is_some());
    assert_eq!(count(&store, "9990000034").await, 1);
}

#[tokio::test]
async fn delta_withdrawals_count_only_existing_plans_and_report_each() {
    let store = MemoryStore::new();
    seed_three_plans(&store).await;
    let ack = upload(
        &store,
        "E09000033",
        json!({"sequence": 2, "mode": "delta", "withdrawals": [
            record("9990000018", "CPP", "2026-01-01"),
            record("9990000018", "CPP", "2025-01-01"),
            record("9990000042", "CPP", "2026-01-01"),
            {"nhs_number": "9990000010", "plan_type": "CPP", "start_date": "2026-01-01"},
        ]}),
    )
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!(ack.withdrawn, 1);
    assert_eq!(ack.withdrawals.len(), 4);
    assert_eq!(
        ack.withdrawals[3].location.as_deref(),
        Some("/withdrawals/3/nhs_number")
    );
    assert_eq!(count(&store, "9990000018").await, 0);
    assert_eq!(
        count(&store, "9990000042").await,
        1,
        "a council withdrew another council's plan"
    );
}

#[tokio::test]
async fn re_uploading_an_identity_updates_it_and_a_new_start_date_is_a_new_plan() {
    let store = MemoryStore::new();
    upload(&store, "E09000033", json!({"sequence": 1, "mode": "delta", "records": [record("9990000018", "CPP", "2026-01-01")]})).await.unwrap();
    upload(&store, "E09000033", json!({"sequence": 2, "mode": "delta", "records": [
        {"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-01", "end_date": "2026-06-01", "local_id": "CASE-1"},
        record("9990000018", "CPP", "2026-07-01"),
    ]}))
    .await
    .unwrap();
    let plans = store.plans_for_child(&nhs("9990000018")).await.unwrap();
    assert_eq!(plans.len(), 2);
    assert!(plans
        .iter()
        .any(|p| p.local_id.as_deref() == Some("CASE-1") && p.end_date.is_some()));
}

#[tokio::test]
async fn a_record_already_past_visibility_is_acknowledged_but_not_stored() {
    let store = MemoryStore::new();
    let ack = upload(&store, "E09000033", json!({"sequence": 1, "mode": "delta", "records": [
        {"nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2020-01-01", "end_date": "2020-06-01"},
    ]}))
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!(ack.records[0].outcome, RecordOutcomeCode::Success);
    assert_eq!(ack.records[0].detail, Some(RecordDetail::ExpiredNotStored));
    assert_eq!(count(&store, "9990000018").await, 0);
}

// Tests that kill the mutants a mutation run found surviving (issue 17).

#[tokio::test]
async fn exactly_ten_thousand_records_are_accepted() {
    let store = MemoryStore::new();
    let records: Vec<Value> = (0..10_000)
        .map(|_| record("9990000018", "CPP", "2026-01-01"))
        .collect();
    let ack = upload(
        &store,
        "E09000033",
        json!({"sequence": 1, "mode": "delta", "records": records}),
    )
    .await
    .expect("10,000 is the limit, not past it")
    .acknowledgement;
    // Every record is the same identity: all rejected, none guessed at.
    assert_eq!((ack.loaded, ack.rejected), (0, 10_000));
}

#[tokio::test]
async fn a_plan_that_starts_today_is_accepted_and_tomorrow_is_refused() {
    let store = MemoryStore::new();
    let ack = upload(&store, "E09000033", json!({
        "sequence": 1, "mode": "delta",
        "records": [record("9990000018", "CPP", "2026-11-25"), record("9990000026", "CPP", "2026-11-26")]
    }))
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!(ack.records[0].outcome, RecordOutcomeCode::Success);
    assert_eq!(ack.records[1].detail, Some(RecordDetail::StartDateInFuture));
    assert_eq!(
        store
            .plans_for_child(&nhs("9990000018"))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_plan_is_never_stored_on_its_own_purge_day() {
    let store = MemoryStore::new();
    // Hidden from its delete date, so purged from it: today is too late.
    let ack = upload(&store, "E09000033", json!({
        "sequence": 1, "mode": "delta",
        "records": [
            { "nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-01", "delete_date": "2026-11-25" },
            { "nhs_number": "9990000026", "plan_type": "CPP", "start_date": "2026-01-01", "delete_date": "2026-11-26" },
        ]
    }))
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!(ack.records[0].detail, Some(RecordDetail::ExpiredNotStored));
    assert_eq!(ack.records[1].detail, None);
    assert!(store
        .plans_for_child(&nhs("9990000018"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .plans_for_child(&nhs("9990000026"))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_full_snapshot_listing_a_child_twice_keeps_that_childs_other_plans() {
    let store = MemoryStore::new();
    upload(&store, "E09000033", json!({
        "sequence": 1, "mode": "delta",
        "records": [record("9990000018", "CPP", "2026-01-01"), record("9990000018", "LAC", "2025-01-01"),
                    record("9990000026", "CPP", "2026-01-01"), record("9990000034", "CPP", "2026-01-01")]
    }))
    .await
    .unwrap();
    let ack = upload(&store, "E09000033", json!({
        "sequence": 2, "mode": "full",
        "records": [record("9990000018", "CPP", "2026-01-01"), record("9990000018", "CPP", "2026-01-01"),
                    record("9990000026", "CPP", "2026-01-01")]
    }))
    .await
    .unwrap()
    .acknowledgement;
    assert_eq!(ack.records[0].detail, Some(RecordDetail::DuplicateInBatch));
    assert_eq!(ack.withdrawn, 1, "only the child the snapshot left out");
    assert_eq!(
        store
            .plans_for_child(&nhs("9990000018"))
            .await
            .unwrap()
            .len(),
        2,
        "a child the council listed twice keeps every plan"
    );
    assert!(store
        .plans_for_child(&nhs("9990000034"))
        .await
        .unwrap()
        .is_empty());
}

/// A council that ends a plan by sending it again with a delete date of
/// today: the copy it stored earlier is withdrawn, in a delta and in a full
/// snapshot, and a plan of another type for the child stays ("never after
/// delete_date", brief "Visibility"; found by the HL7 v3 work, issue 13).
#[tokio::test]
async fn a_stored_plan_sent_again_past_its_delete_date_is_withdrawn() {
    for mode in ["delta", "full"] {
        let store = MemoryStore::new();
        upload(&store, "E09000033", json!({
            "sequence": 1, "mode": "delta",
            "records": [record("9990000018", "CPP", "2026-01-01"), record("9990000018", "LAC", "2026-02-01")]
        }))
        .await
        .unwrap();
        let ack = upload(&store, "E09000033", json!({
            "sequence": 2, "mode": mode,
            "records": [
                { "nhs_number": "9990000018", "plan_type": "CPP", "start_date": "2026-01-01", "delete_date": "2026-11-25" },
                record("9990000018", "LAC", "2026-02-01"),
            ]
        }))
        .await
        .unwrap()
        .acknowledgement;
        assert_eq!(
            ack.records[0].detail,
            Some(RecordDetail::ExpiredNotStored),
            "{mode}"
        );
        assert_eq!(ack.withdrawn, 1, "{mode}");
        let plans = store.plans_for_child(&nhs("9990000018")).await.unwrap();
        let types: Vec<_> = plans.iter().map(|p| p.plan_type.code()).collect();
        assert_eq!(types, ["LAC"], "{mode}");
    }
}

/// The one upload use case (`receive_upload`): one audit event per upload,
/// its outcome from the result, naming whoever sent it and the trace id;
/// the feed moves for an accepted full snapshot only, never for its replay.
#[tokio::test]
async fn receiving_an_upload_audits_it_once_and_counts_only_accepted_full_snapshots() {
    use cpis_domain::ports::AuditReader;
    use cpis_domain::{receive_upload, AuditAction, AuditOutcome, FeedLog, Principal};

    let store = MemoryStore::new();
    let council = la("E09000033");
    let mailbox = Principal::Council {
        authority: council.clone(),
        client_id: "mesh:X26ABC1".to_owned(),
    };
    let later = NOW + time::Duration::hours(1);
    let send = |body: Value, trace: &'static str| {
        let (store, council, mailbox) = (store.clone(), council.clone(), mailbox.clone());
        async move {
            let body = body.to_string();
            receive_upload(
                &store,
                &mailbox,
                &council,
                body.as_bytes(),
                if trace == "m-1" { NOW } else { later },
                &VisibilityPolicy::default(),
                trace,
            )
            .await
        }
    };
    let full = json!({"sequence": 1, "mode": "full", "records": [record("9990000018", "CPP", "2026-01-01")]});
    let first = send(full.clone(), "m-1").await;
    assert!(first.feed_error.is_none() && first.audit_error.is_none());
    assert!(!first.result.unwrap().replayed);
    assert_eq!(store.last_full_snapshot(&council).await.unwrap(), Some(NOW));
    // A replay (an hour later) is answered and audited, and the feed is
    // not counted again.
    assert!(send(full, "m-2").await.result.unwrap().replayed);
    // A refused upload is audited as invalid, and is not a feed.
    let stale = json!({"sequence": 1, "mode": "full", "records": [record("9990000026", "CPP", "2026-01-01")]});
    assert!(matches!(
        send(stale, "m-3").await.result,
        Err(UploadError::SequenceReused { sequence: 1 })
    ));
    let delta = json!({"sequence": 2, "mode": "delta", "records": [record("9990000026", "CPP", "2026-01-01")]});
    assert!(send(delta, "m-4").await.result.is_ok());
    assert_eq!(store.last_full_snapshot(&council).await.unwrap(), Some(NOW));

    let events = store.audit_events(100).await.unwrap();
    let seen: Vec<(&str, AuditOutcome)> = events
        .iter()
        .map(|e| (e.trace_id.as_str(), e.outcome))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("m-1", AuditOutcome::Allowed),
            ("m-2", AuditOutcome::Allowed),
            ("m-3", AuditOutcome::Invalid),
            ("m-4", AuditOutcome::Allowed),
        ]
    );
    for event in &events {
        assert_eq!(event.action, AuditAction::Upload);
        assert_eq!(
            (event.actor_id.as_str(), event.organisation.as_str()),
            ("mesh:X26ABC1", "E09000033")
        );
        assert_eq!(event.subject, None);
    }
}

/// An ASN file names the upload file a plan came from: each stored plan
/// remembers the sequence of the upload that last stored it.
#[tokio::test]
async fn each_stored_plan_remembers_the_upload_that_last_stored_it() {
    let store = MemoryStore::new();
    let body = |sequence: u64, records: Vec<Value>| json!({"sequence": sequence, "mode": "delta", "records": records});
    upload(
        &store,
        "E09000033",
        body(
            7,
            vec![
                record("9990000018", "CPP", "2026-01-01"),
                record("9990000026", "LAC", "2025-06-01"),
            ],
        ),
    )
    .await
    .unwrap();
    upload(
        &store,
        "E09000033",
        body(8, vec![record("9990000018", "CPP", "2026-01-01")]),
    )
    .await
    .unwrap();
    let sequence_of = |nhs_number: &'static str| {
        let store = store.clone();
        async move { store.plans_for_child(&nhs(nhs_number)).await.unwrap()[0].upload_sequence }
    };
    assert_eq!(sequence_of("9990000018").await, Some(8));
    assert_eq!(sequence_of("9990000026").await, Some(7));
}
