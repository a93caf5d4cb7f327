//! The delivery chain on moto — DynamoDB outbox, SQS queue, SNS topic, a
//! probe queue subscribed to the council's topic — with a crash injected at
//! each step. Every test counts what the duty team would receive.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::Message;
use cpis_aws::{moto, DynamoStore, SnsChannel, SqsQueue};
use cpis_domain::dispatch::DELIVERY_LEASE;
use cpis_domain::ports::{
    AsnOutbox, AsnQueue, AuditReader, AuthorityDirectory, DeliveryError, DeliveryStart,
    NotificationChannel, QueueError,
};
use cpis_domain::{
    check, find_nhs_numbers, process_upload, AccessEffect, AccessorKind, AuditAction, AuditEvent,
    AuditOutcome, Authority, Clinician, NhsNumber, NoticeText, OdsCode, Rbac, VisibilityPolicy,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2025-03-01 10:00 UTC);
const VIEW_URL: &str = "https://council.cpis.example/notifications";
const CHILD: &str = "9990000018";

struct World {
    store: DynamoStore,
    sqs: aws_sdk_sqs::Client,
    queue: SqsQueue,
    queue_url: String,
    channel: SnsChannel,
    probe_url: String,
    ods: OdsCode,
}

async fn world() -> World {
    let topics = moto::TopicWorld::new().await;
    let ods = moto::unique_ods();
    let probe_url = topics
        .list_with_probe(&Authority {
            ods_code: ods.clone(),
            name: "Example Council".into(),
            office_hours_phone: "020 7946 0000".into(),
            emergency_duty_phone: "020 7946 0999".into(),
            notify_emails: vec!["duty@example.gov.uk".into()],
            notify_sms: vec!["+447700900123".into()],
        })
        .await;
    let channel = topics.channel();
    let moto::TopicWorld { store, sqs, .. } = topics;
    let (queue_url, _) = moto::create_queue(&sqs, &moto::unique("asn")).await;
    let body = format!(
        r#"{{"sequence":1,"mode":"delta","records":[{{"nhs_number":"{CHILD}","plan_type":"CPP","start_date":"2024-01-10","local_id":"case-1"}}]}}"#
    );
    process_upload(
        &store,
        &ods,
        body.as_bytes(),
        NOW,
        &VisibilityPolicy::default(),
    )
    .await
    .unwrap();
    World {
        store,
        queue: SqsQueue::new(sqs.clone(), queue_url.clone()),
        sqs,
        queue_url,
        channel,
        probe_url,
        ods,
    }
}

fn clinician(user: &str) -> Clinician {
    Clinician {
        job_role: None,
        kind: AccessorKind::User,
        user_id: user.into(),
        rbac: Rbac::B0107,
        organisation_ods: OdsCode::parse("RJ1").unwrap(),
        organisation_name: "St Example's Hospital".into(),
        setting: "Emergency department".into(),
    }
}

/// An unscheduled check by `user`, handing its ASN to `queue`.
async fn attend<Q: AsnQueue>(w: &World, queue: &Q, user: &str) -> AccessEffect {
    let child = NhsNumber::parse(CHILD).unwrap();
    let who = clinician(user);
    check(
        &w.store,
        queue,
        &who,
        &child,
        true,
        NOW,
        &VisibilityPolicy::default(),
        &cpis_domain::AuditEvent::check_allowed(&who, None, NOW, "faults"),
    )
    .await
    .unwrap()
    .effect
}

/// Receives what is on the ASN queue as the Lambda service would hand it over.
async fn receive(w: &World) -> (SqsEvent, Vec<Message>) {
    let mut messages = Vec::new();
    for _ in 0..3 {
        let out = w
            .sqs
            .receive_message()
            .queue_url(&w.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        messages.extend(out.messages.unwrap_or_default());
        if !messages.is_empty() {
            break;
        }
    }
    let event = serde_json::from_value(moto::lambda_sqs_event(&messages)).unwrap();
    (event, messages)
}

/// What the Lambda service does with the response: deletes the successes and
/// returns the failures to the queue (their visibility timeout lapses).
async fn settle(w: &World, messages: &[Message], response: &SqsBatchResponse) {
    for m in messages {
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| Some(f.item_identifier.as_str()) == m.message_id());
        if failed {
            make_visible(w, m).await;
        } else {
            w.sqs
                .delete_message()
                .queue_url(&w.queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// A crashed invocation deletes nothing: the message comes back.
async fn make_visible(w: &World, m: &Message) {
    w.sqs
        .change_message_visibility()
        .queue_url(&w.queue_url)
        .receipt_handle(m.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
}

async fn dispatch_batch(w: &World, event: &SqsEvent, now: OffsetDateTime) -> SqsBatchResponse {
    notification_dispatch::handle_batch(&w.store, &w.channel, VIEW_URL, event, now).await
}

/// Every message the duty team's topic published, checked for personal data.
async fn published(w: &World) -> Vec<String> {
    let bodies: Vec<String> = moto::drain(&w.sqs, &w.probe_url)
        .await
        .iter()
        .map(|m| m.body().unwrap_or_default().to_owned())
        .collect();
    for body in &bodies {
        assert!(find_nhs_numbers(body).is_empty(), "an NHS number left AWS");
        assert!(!body.contains("case-1"), "a local id left AWS");
        assert!(!body.contains("Hospital"), "the setting left AWS");
    }
    bodies
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn a_poison_message_on_the_real_queue_is_exactly_the_failure_reported() {
    let w = world().await;
    assert!(matches!(
        attend(&w, &w.queue, "u1").await,
        AccessEffect::Recorded { queued: true, .. }
    ));
    let poison = w
        .sqs
        .send_message()
        .queue_url(&w.queue_url)
        .message_body("{\"not\":\"an ASN\"}")
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();
    let (event, messages) = receive(&w).await;
    assert_eq!(event.records.len(), 2);
    let response = dispatch_batch(&w, &event, NOW).await;
    assert_eq!(failed_ids(&response), [poison.as_str()]);
    settle(&w, &messages, &response).await;
    assert_eq!(published(&w).await.len(), 1);
}

#[tokio::test]
async fn the_same_sqs_batch_delivered_twice_publishes_once() {
    let w = world().await;
    attend(&w, &w.queue, "u1").await;
    attend(&w, &w.queue, "u2").await;
    let (event, messages) = receive(&w).await;
    assert_eq!(event.records.len(), 2);
    let first = dispatch_batch(&w, &event, NOW).await;
    let second = dispatch_batch(&w, &event, NOW + Duration::seconds(5)).await;
    assert!(first.batch_item_failures.is_empty());
    assert!(second.batch_item_failures.is_empty());
    settle(&w, &messages, &second).await;
    let bodies = published(&w).await;
    assert_eq!(bodies.len(), 2, "one per ASN: {bodies:?}");
    // One audit event per delivery on the append-only audit table, none for
    // the duplicates, each naming the council and no child.
    let deliveries: Vec<AuditEvent> = w
        .store
        .audit_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::DeliverNotification)
        .collect();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    for event in &deliveries {
        assert_eq!(event.outcome, AuditOutcome::Allowed);
        assert_eq!(event.organisation, w.ods.to_string());
        assert_eq!(event.subject, None);
    }
}

#[tokio::test]
async fn crash_after_access_written_before_queued_loses_nothing() {
    let w = world().await;
    // The hand-off fails (the process dies or SQS is down) after the
    // transaction wrote the access and its ASN.
    struct Down;
    impl AsnQueue for Down {
        async fn enqueue(&self, _: &[String]) -> Result<(), QueueError> {
            Err(QueueError("crashed before SendMessageBatch".into()))
        }
    }
    assert_eq!(
        attend(&w, &Down, "u1").await,
        AccessEffect::Recorded {
            notifications: 1,
            queued: false
        }
    );
    assert!(receive(&w).await.0.records.is_empty(), "nothing was queued");
    // The scheduled relay finds it in the outbox and queues it.
    assert_eq!(
        outbox_relay::sweep(&w.store, &w.queue, NOW + Duration::minutes(1))
            .await
            .unwrap()
            .relayed,
        1
    );
    let (event, messages) = receive(&w).await;
    let response = dispatch_batch(&w, &event, NOW + Duration::minutes(1)).await;
    settle(&w, &messages, &response).await;
    assert_eq!(published(&w).await.len(), 1);
    // Delivered: later sweeps relay nothing.
    assert_eq!(
        outbox_relay::sweep(&w.store, &w.queue, NOW + Duration::hours(1))
            .await
            .unwrap()
            .relayed,
        0
    );
}

#[tokio::test]
async fn crash_after_queued_before_published_loses_nothing() {
    let w = world().await;
    attend(&w, &w.queue, "u1").await;
    let (event, messages) = receive(&w).await;
    let id = cpis_aws::parse_message_body(event.records[0].body.as_deref().unwrap()).unwrap();
    // The dispatcher took the lease, then died before publishing.
    assert!(matches!(
        w.store
            .begin_delivery(&id, NOW, DELIVERY_LEASE)
            .await
            .unwrap(),
        DeliveryStart::Proceed(_)
    ));
    make_visible(&w, &messages[0]).await;

    // Redelivered while the dead lease still stands: retried, not dropped.
    let (event, messages) = receive(&w).await;
    let response = dispatch_batch(&w, &event, NOW + Duration::seconds(10)).await;
    assert_eq!(failed_ids(&response).len(), 1, "InProgress is retried");
    settle(&w, &messages, &response).await;
    assert!(published(&w).await.is_empty());

    // After the lease lapses the retry delivers.
    let (event, messages) = receive(&w).await;
    let response = dispatch_batch(&w, &event, NOW + DELIVERY_LEASE).await;
    assert!(response.batch_item_failures.is_empty());
    settle(&w, &messages, &response).await;
    assert_eq!(published(&w).await.len(), 1);
}

#[tokio::test]
async fn crash_after_published_before_delivery_recorded_duplicates_at_most_once() {
    let w = world().await;
    attend(&w, &w.queue, "u1").await;
    let (event, messages) = receive(&w).await;
    let id = cpis_aws::parse_message_body(event.records[0].body.as_deref().unwrap()).unwrap();
    // Lease, publish... and the process dies before finish_delivery.
    let DeliveryStart::Proceed(asn) = w
        .store
        .begin_delivery(&id, NOW, DELIVERY_LEASE)
        .await
        .unwrap()
    else {
        panic!("expected the lease");
    };
    let authority = w.store.authority(&w.ods).await.unwrap().unwrap();
    w.channel
        .deliver(&authority, &asn.notice(VIEW_URL))
        .await
        .unwrap();
    make_visible(&w, &messages[0]).await;

    // This is the documented duplicate window: the retry after the lease
    // publishes again, and records delivery.
    let (event, messages) = receive(&w).await;
    let response = dispatch_batch(&w, &event, NOW + DELIVERY_LEASE).await;
    assert!(response.batch_item_failures.is_empty());
    // The Lambda service redelivers once more (say the delete was lost): no third publish.
    make_visible(&w, &messages[0]).await;
    let (event, messages) = receive(&w).await;
    let response = dispatch_batch(&w, &event, NOW + DELIVERY_LEASE * 3).await;
    assert!(response.batch_item_failures.is_empty());
    settle(&w, &messages, &response).await;

    let bodies = published(&w).await;
    assert_eq!(bodies.len(), 2, "the original and exactly one duplicate");
    assert_eq!(bodies[0], bodies[1], "the duplicate is the same notice");
}

#[tokio::test]
async fn crash_after_delivery_recorded_before_message_deleted_publishes_once() {
    let w = world().await;
    attend(&w, &w.queue, "u1").await;
    let (event, messages) = receive(&w).await;
    let response = dispatch_batch(&w, &event, NOW).await;
    assert!(response.batch_item_failures.is_empty());
    // The invocation died before the Lambda service deleted the message.
    make_visible(&w, &messages[0]).await;
    let (event, messages) = receive(&w).await;
    assert_eq!(event.records.len(), 1, "redelivered");
    let response = dispatch_batch(&w, &event, NOW + Duration::seconds(30)).await;
    assert!(response.batch_item_failures.is_empty());
    settle(&w, &messages, &response).await;
    assert_eq!(published(&w).await.len(), 1);
    assert!(
        receive(&w).await.0.records.is_empty(),
        "nothing left to deliver"
    );
}

/// SNS as it is, except that it answers for one ASN's entry of a batch as
/// failed without sending it, as PublishBatch reports an entry of its own.
struct FailsOneEntry<'a> {
    sns: &'a SnsChannel,
    failing: String,
}

impl NotificationChannel for FailsOneEntry<'_> {
    async fn deliver(
        &self,
        authority: &Authority,
        notice: &NoticeText,
    ) -> Result<(), DeliveryError> {
        if notice.reference == self.failing {
            return Err(DeliveryError::Transient(
                "SNS publish: InternalError".into(),
            ));
        }
        self.sns.deliver(authority, notice).await
    }

    async fn deliver_batch(
        &self,
        notices: &[(&Authority, &NoticeText)],
    ) -> Vec<Result<(), DeliveryError>> {
        let others: Vec<(&Authority, &NoticeText)> = notices
            .iter()
            .filter(|(_, n)| n.reference != self.failing)
            .copied()
            .collect();
        let mut sent = self.sns.deliver_batch(&others).await.into_iter();
        notices
            .iter()
            .map(|(_, n)| {
                if n.reference == self.failing {
                    Err(DeliveryError::Transient(
                        "SNS publish batch entry: InternalError".into(),
                    ))
                } else {
                    sent.next().expect("an answer per entry")
                }
            })
            .collect()
    }
}

fn asn_ids(event: &SqsEvent) -> Vec<String> {
    event
        .records
        .iter()
        .map(|r| cpis_aws::parse_message_body(r.body.as_deref().unwrap()).unwrap())
        .collect()
}

fn deliveries_audited(events: Vec<AuditEvent>, outcome: AuditOutcome) -> usize {
    events
        .iter()
        .filter(|e| e.action == AuditAction::DeliverNotification && e.outcome == outcome)
        .count()
}

#[tokio::test]
async fn a_publish_batch_entry_that_failed_is_retried_alone_and_the_rest_never_again() {
    let w = world().await;
    for user in ["u1", "u2", "u3"] {
        attend(&w, &w.queue, user).await;
    }
    let (event, messages) = receive(&w).await;
    assert_eq!(event.records.len(), 3);
    let ids = asn_ids(&event);
    let failing = FailsOneEntry {
        sns: &w.channel,
        failing: ids[1].clone(),
    };
    let response =
        notification_dispatch::handle_batch(&w.store, &failing, VIEW_URL, &event, NOW).await;
    let second_message = event.records[1].message_id.as_deref().unwrap();
    assert_eq!(failed_ids(&response), [second_message], "only its message");
    assert_eq!(published(&w).await.len(), 2, "the other two went out");

    // The failed entry's message comes back (its lease lapsed); say the
    // others came back too (a lost delete): only the failed one is sent.
    for m in &messages {
        make_visible(&w, m).await;
    }
    let (event, messages) = receive(&w).await;
    assert_eq!(event.records.len(), 3);
    let response = dispatch_batch(&w, &event, NOW + DELIVERY_LEASE).await;
    assert!(response.batch_item_failures.is_empty());
    settle(&w, &messages, &response).await;
    let bodies = published(&w).await;
    assert_eq!(bodies.len(), 1, "only the entry that failed: {bodies:?}");
    assert!(bodies[0].contains(&ids[1]));

    let trail = w.store.audit_events(100).await.unwrap();
    assert_eq!(deliveries_audited(trail.clone(), AuditOutcome::Allowed), 3);
    assert_eq!(
        deliveries_audited(trail, AuditOutcome::Failed),
        1,
        "the failed attempt is audited"
    );
}

#[tokio::test]
async fn crash_after_a_publish_batch_before_its_record_duplicates_that_batch_at_most_once() {
    let w = world().await;
    attend(&w, &w.queue, "u1").await;
    attend(&w, &w.queue, "u2").await;
    let (event, messages) = receive(&w).await;
    assert_eq!(event.records.len(), 2);
    // Leases, one PublishBatch for both... and the process dies before
    // their records.
    let mut notices = Vec::new();
    for id in asn_ids(&event) {
        let DeliveryStart::Proceed(asn) = w
            .store
            .begin_delivery(&id, NOW, DELIVERY_LEASE)
            .await
            .unwrap()
        else {
            panic!("expected the lease");
        };
        notices.push(asn.notice(VIEW_URL));
    }
    let authority = w.store.authority(&w.ods).await.unwrap().unwrap();
    let batch: Vec<(&Authority, &NoticeText)> = notices.iter().map(|n| (&authority, n)).collect();
    let sent = w.channel.deliver_batch(&batch).await;
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    for m in &messages {
        make_visible(&w, m).await;
    }

    // The documented window, a batch wide: the retry sends both again, once.
    let (event, messages) = receive(&w).await;
    let response = dispatch_batch(&w, &event, NOW + DELIVERY_LEASE).await;
    assert!(response.batch_item_failures.is_empty());
    for m in &messages {
        make_visible(&w, m).await;
    }
    let (event, messages) = receive(&w).await;
    let response = dispatch_batch(&w, &event, NOW + DELIVERY_LEASE * 3).await;
    assert!(response.batch_item_failures.is_empty());
    settle(&w, &messages, &response).await;
    assert_eq!(
        published(&w).await.len(),
        4,
        "each of the two and exactly one duplicate each"
    );
}
