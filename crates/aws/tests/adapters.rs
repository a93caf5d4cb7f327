//! What only the AWS adapters have: split receipts, sharded listings, TTL
//! attributes, the collapse condition under concurrency, SQS hand-off, SNS
//! delivery and topic subscriptions kept in step with the directory.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use cpis_aws::{moto, parse_message_body, SnsChannel, SqsQueue, TopicSync};
use cpis_domain::ports::{
    AccessLog, AccessWrite, AsnQueue, AuthorityDirectory, DeliveryError, NotificationChannel,
    PlanStore, UploadLedger,
};
use cpis_domain::{
    find_nhs_numbers, process_upload, AccessRecord, Accessor, AccessorKind, Authority, FileOutcome,
    NhsNumber, NoticeText, OdsCode, Rbac, VisibilityPolicy,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2025-03-01 10:00 UTC);

/// Valid synthetic numbers in the 999 range (Modulus 11), as many as asked.
fn synthetic_numbers(count: usize) -> Vec<String> {
    (0..)
        .map(|i: u64| format!("{:010}", 9_990_000_000u64 + i))
        .filter_map(|candidate| {
            let nine = &candidate[..9];
            (0..10)
                .map(|d| format!("{nine}{d}"))
                .find(|c| NhsNumber::parse(c).is_ok())
                .filter(|c| c == &candidate)
        })
        .take(count)
        .collect()
}

#[tokio::test]
async fn a_bulk_upload_spreads_over_every_listing_shard_and_pages_back_complete() {
    let store = moto::fresh_store().await;
    let ods = moto::unique_ods();
    let numbers = synthetic_numbers(600);
    let records: Vec<String> = numbers
        .iter()
        .map(|n| format!(r#"{{"nhs_number":"{n}","plan_type":"LAC","start_date":"2024-01-01"}}"#))
        .collect();
    let body = format!(
        r#"{{"sequence":1,"mode":"full","records":[{}]}}"#,
        records.join(",")
    );
    let result = process_upload(
        &store,
        &ods,
        body.as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!(result.acknowledgement.file_outcome, FileOutcome::AllLoaded);
    assert_eq!(result.acknowledgement.loaded, 600);

    // Every shard of the council's listing holds some of them.
    for shard in 0..cpis_aws::PLAN_SHARDS {
        let out = store
            .client()
            .query()
            .table_name(store.table())
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(format!("AUTHPLANS#{ods}#{shard}")),
            )
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .unwrap();
        assert!(out.count() > 20, "shard {shard} holds {}", out.count());
    }

    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .plans_for_authority(&ods, cursor.as_deref(), 250)
            .await
            .unwrap();
        listed.extend(page.items.iter().map(|p| p.nhs_number.expose()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut expected = numbers.clone();
    expected.sort();
    assert_eq!(listed, expected, "complete, in order, no repeats");

    // A snapshot of one plan withdraws the other 599 (batched deletes).
    let one = format!(
        r#"{{"sequence":2,"mode":"full","records":[{}]}}"#,
        records[0]
    );
    let result = process_upload(
        &store,
        &ods,
        one.as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!(result.acknowledgement.withdrawn, 599);
    assert_eq!(store.plan_keys_for_authority(&ods).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_acknowledgement_larger_than_one_item_is_stored_in_parts_and_replayed_whole() {
    let store = moto::fresh_store().await;
    let ods = moto::unique_ods();
    // Every record rejected with a pointer: a large acknowledgement, nothing stored.
    let records =
        vec![r#"{"nhs_number":"9990000010","plan_type":"CPP","start_date":"2024-01-10"}"#; 6000];
    let body = format!(
        r#"{{"sequence":7,"mode":"delta","records":[{}]}}"#,
        records.join(",")
    );
    let first = process_upload(
        &store,
        &ods,
        body.as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .unwrap();
    let size = serde_json::to_string(&first.acknowledgement).unwrap().len();
    assert!(size > 400_000, "acknowledgement of {size} bytes");
    let again = process_upload(
        &store,
        &ods,
        body.as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .unwrap();
    assert!(again.replayed);
    assert_eq!(again.acknowledgement, first.acknowledgement);
    assert_eq!(
        store.ledger_head(&ods).await.unwrap().map(|h| h.sequence),
        Some(7)
    );
}

#[tokio::test]
async fn plans_carry_their_purge_day_as_the_ttl_attribute() {
    let store = moto::fresh_store().await;
    let ods = moto::unique_ods();
    let body = r#"{"sequence":1,"mode":"delta","records":[
        {"nhs_number":"9990000018","plan_type":"CPP","start_date":"2024-01-10","end_date":"2024-12-31"},
        {"nhs_number":"9990000026","plan_type":"CPP","start_date":"2024-01-10"}
    ]}"#;
    process_upload(
        &store,
        &ods,
        body.as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .unwrap();
    let ttl = |nhs: &str| {
        let store = store.clone();
        let sk = format!("PLAN#{ods}#CPP#2024-01-10");
        let pk = format!("CHILD#{nhs}");
        async move {
            let item = store
                .client()
                .get_item()
                .table_name(store.table())
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            item.get("expires_at").map(|v| v.as_n().unwrap().clone())
        }
    };
    // Ended 2024-12-31, visible 365 days after: purged from 2026-01-01 00:00 UTC.
    let purge = datetime!(2026-01-01 00:00 UTC).unix_timestamp().to_string();
    assert_eq!(ttl("9990000018").await, Some(purge));
    assert_eq!(ttl("9990000026").await, None, "open plans never expire");
}

#[tokio::test]
async fn concurrent_accesses_by_one_author_write_exactly_one_entry() {
    let store = moto::fresh_store().await;
    let child = NhsNumber::parse("9990000034").unwrap();
    let accessor = Accessor {
        job_role: None,
        kind: AccessorKind::User,
        user_id: "u1".into(),
        rbac: Rbac::B0107,
        organisation_ods: OdsCode::parse("RJ1").unwrap(),
        organisation_name: "Hospital".into(),
        setting: "ED".into(),
    };
    let attempts = (0..5).map(|i| {
        let store = store.clone();
        let access = AccessRecord {
            id: format!("acc-{i}"),
            nhs_number: child,
            accessed_at: NOW + Duration::seconds(i),
            accessor: accessor.clone(),
        };
        tokio::spawn(async move {
            store
                .record_access(&access, &[], access.accessed_at - Duration::hours(24))
                .await
                .unwrap()
        })
    });
    let mut recorded = 0;
    for attempt in attempts {
        if attempt.await.unwrap() == AccessWrite::Recorded {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(store.recent_accesses(&child, 25).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_queue_carries_only_asn_ids_in_batches() {
    let sdk = moto::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (url, _) = moto::create_queue(&sqs, &moto::unique("asn")).await;
    let queue = SqsQueue::new(sqs.clone(), url.clone());
    let ids: Vec<String> = (0..23).map(|i| format!("asn-{i}")).collect();
    queue.enqueue(&ids).await.unwrap();
    let got: BTreeSet<String> = moto::drain(&sqs, &url)
        .await
        .iter()
        .filter_map(|m| m.body().and_then(parse_message_body))
        .collect();
    assert_eq!(got, ids.into_iter().collect());
}

fn entry(ods: &OdsCode, emails: &[&str], sms: &[&str]) -> Authority {
    Authority {
        ods_code: ods.clone(),
        name: "Example Council".into(),
        office_hours_phone: "020 7946 0000".into(),
        emergency_duty_phone: "020 7946 0999".into(),
        notify_emails: emails.iter().map(|s| (*s).to_owned()).collect(),
        notify_sms: sms.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn subscriptions(sns: &aws_sdk_sns::Client, topic_arn: &str) -> BTreeSet<(String, String)> {
    sns.list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .unwrap()
        .subscriptions()
        .iter()
        .map(|s| {
            (
                s.protocol().unwrap_or_default().to_owned(),
                s.endpoint().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_directory_put_keeps_the_topic_subscriptions_in_step() {
    let sdk = moto::sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let store = moto::fresh_store()
        .await
        .with_topic_sync(TopicSync::new(sns.clone(), None, None));
    let ods = moto::unique_ods();
    let topic_arn = format!("{}{ods}", moto::topic_arn_prefix());

    store
        .put_authority(&entry(
            &ods,
            &["duty@example.gov.uk", "edt@example.gov.uk"],
            &["+447700900123"],
        ))
        .await
        .unwrap();
    let pair = |p: &str, e: &str| (p.to_owned(), e.to_owned());
    assert_eq!(
        subscriptions(&sns, &topic_arn).await,
        BTreeSet::from([
            pair("email", "duty@example.gov.uk"),
            pair("email", "edt@example.gov.uk"),
            pair("sms", "+447700900123"),
        ])
    );

    // One email dropped, one SMS number swapped, one unchanged; a probe
    // subscription that is not a duty-team channel is left alone.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    moto::probe_queue(&sns, &sqs, &topic_arn).await;
    store
        .put_authority(&entry(&ods, &["duty@example.gov.uk"], &["+447700900456"]))
        .await
        .unwrap();
    let now: BTreeSet<_> = subscriptions(&sns, &topic_arn)
        .await
        .into_iter()
        .filter(|(p, _)| p != "sqs")
        .collect();
    assert_eq!(
        now,
        BTreeSet::from([
            pair("email", "duty@example.gov.uk"),
            pair("sms", "+447700900456"),
        ])
    );
    assert_eq!(subscriptions(&sns, &topic_arn).await.len(), 3, "probe kept");

    // Idempotent: the same entry again changes nothing.
    let report = TopicSync::new(sns.clone(), None, None)
        .sync(&entry(&ods, &["duty@example.gov.uk"], &["+447700900456"]))
        .await
        .unwrap();
    assert_eq!((report.subscribed, report.unsubscribed), (0, 0));
    assert_eq!(report.topic_arn, topic_arn);
}

#[tokio::test]
async fn delivery_publishes_the_notice_to_the_council_topic_and_nothing_personal() {
    let sdk = moto::sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ods = moto::unique_ods();
    let authority = entry(&ods, &["duty@example.gov.uk"], &[]);
    let report = TopicSync::new(sns.clone(), None, None)
        .sync(&authority)
        .await
        .unwrap();
    let probe = moto::probe_queue(&sns, &sqs, &report.topic_arn).await;
    let channel = SnsChannel::new(sns.clone(), moto::topic_arn_prefix());
    let notice = NoticeText {
        reference: "ref-1".into(),
        sms: "CP-IS: a child on one of your plans attended. Ref ref-1.".into(),
        email_subject: "CP-IS access notification ref-1".into(),
        email_body: "Reference: ref-1".into(),
    };
    channel.deliver(&authority, &notice).await.unwrap();
    let messages = moto::drain(&sqs, &probe).await;
    assert_eq!(messages.len(), 1);
    let body = messages[0].body().unwrap_or_default();
    assert!(body.contains("ref-1"), "{body}");
    assert!(find_nhs_numbers(body).is_empty());

    // A council without a topic is a permanent failure, not a retry loop.
    let missing = entry(&moto::unique_ods(), &["x@example.gov.uk"], &[]);
    assert!(matches!(
        channel.deliver(&missing, &notice).await,
        Err(DeliveryError::Permanent(_))
    ));
}

#[tokio::test]
async fn an_unreadable_asn_item_neither_fails_the_sweep_nor_hides_the_inbox() {
    use cpis_conformance::fixtures::{access, accessor, child, plan, COUNCIL_A};
    use cpis_domain::check::notifications_for;
    use cpis_domain::ports::{AsnOutbox, NotificationInbox};
    use cpis_domain::PlanType;

    let store = moto::fresh_store().await;
    let plans = [plan(
        COUNCIL_A,
        child(0),
        PlanType::ChildProtection,
        time::macros::date!(2025 - 01 - 10),
    )];
    let mut expected = Vec::new();
    for (i, user) in ["u0", "u1", "u2"].into_iter().enumerate() {
        let record = access(
            child(0),
            NOW + Duration::seconds(i as i64),
            accessor("RJ1", user),
        );
        let asns = notifications_for(&record, &plans);
        expected.extend(asns.iter().map(|a| a.id.clone()));
        store.record_access(&record, &asns, NOW).await.unwrap();
    }
    // The middle one becomes what another build (or a hand edit) might leave.
    let poison = expected.remove(1);
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("ASN#{poison}")))
        .key("sk", AttributeValue::S("ASN".into()))
        .update_expression("SET asn = :broken")
        .expression_attribute_values(":broken", AttributeValue::S("{\"id\":".into()))
        .send()
        .await
        .unwrap();

    let mut claimed: Vec<String> = store
        .claim_undelivered(NOW, Duration::seconds(60), 10)
        .await
        .expect("one unreadable item must not fail the sweep")
        .into_iter()
        .map(|a| a.id)
        .collect();
    claimed.sort();
    expected.sort();
    assert_eq!(claimed, expected);
    assert!(store
        .claim_undelivered(NOW + Duration::seconds(1), Duration::seconds(60), 10)
        .await
        .unwrap()
        .is_empty());

    // Page by page, one item a page: the cursor passes the unreadable item.
    let council = OdsCode::parse(COUNCIL_A).unwrap();
    let (mut listed, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = store
            .notifications(&council, cursor.as_deref(), 1)
            .await
            .expect("one unreadable item must not fail the listing");
        listed.extend(page.items.into_iter().map(|a| a.id));
        pages += 1;
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    listed.sort();
    assert_eq!(listed, expected);
    assert_eq!(
        pages, 3,
        "the unreadable item still takes its place in the paging"
    );
}
