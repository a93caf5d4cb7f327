//! Uploads through the domain, receipts and the ledger head (`UploadLedger`).

use cpis_domain::ports::UploadReceipt;
use cpis_domain::{FileOutcome, PlanType, UploadError};
use time::macros::date;

use crate::fixtures::*;
use crate::support::*;
use crate::Store;

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
        received_at: Some(NOW + time::Duration::minutes(1)),
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
            received_at: None,
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
