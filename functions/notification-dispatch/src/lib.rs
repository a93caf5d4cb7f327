//! The dispatcher's handler: one SQS batch of ASN ids in, the ASNs delivered
//! through the domain's idempotent `dispatch_batch_with` (one SNS publish per
//! council of the batch, not per ASN), and a partial batch response naming
//! only the messages to retry. Where the deployment has MESH, a council the
//! operator linked to a mailbox also gets each ASN as a file, sent first and
//! per ASN (the domain's `MeshFiles` over `cpis_mesh::MeshAsnFiles`; tracking
//! by the ASN id makes it idempotent); without MESH the file leg is `NoFiles`
//! and nothing else changes.
//!
//! Which messages are reported as failures (and so come back after the
//! visibility timeout, and reach the DLQ after maxReceiveCount):
//! - a store, SNS or MESH-unavailable error: worth retrying;
//! - `InProgress`: another invocation holds the delivery lease; if it
//!   crashed, the lease lapses and the retry delivers;
//! - `Unknown` and unparseable bodies (poison): retrying cannot help, but
//!   reporting them is what routes them to the DLQ and its alarm instead of
//!   deleting them silently.
//!
//! `Delivered`, `AlreadyDelivered` (a duplicate) and `NoChannels` are done,
//! even when the delivery's audit event could not be written: a retry would
//! find the delivery recorded and write nothing, so that failure is logged at
//! error level (and alarmed on) instead.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use cpis_domain::ports::{AsnOutbox, AuditTrail, AuthorityDirectory, NotificationChannel};
use cpis_domain::{
    dispatch_batch_with, dispatch_with, DispatchError, DispatchOutcome, Dispatched, FileDelivery,
    FileLeg, NoFiles,
};
use cpis_telemetry::event;
use time::OffsetDateTime;

/// What happened to one message, for the log line (ids only, never content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageResult {
    Done(DispatchOutcome),
    Retry(DispatchOutcome),
    Poison,
    Failed,
}

impl MessageResult {
    fn is_failure(self) -> bool {
        !matches!(self, Self::Done(_))
    }
}

/// Handles one message body without the MESH leg ([`handle_message_with`]
/// and `NoFiles`).
pub async fn handle_message<S, C>(
    store: &S,
    channel: &C,
    view_url: &str,
    body: Option<&str>,
    now: OffsetDateTime,
) -> MessageResult
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
{
    handle_message_with(store, channel, &NoFiles, view_url, body, now).await
}

/// Handles one message body: the file leg `files` first, then SMS and email.
/// An ASN whose file cannot be made or that MESH refuses is logged at error
/// level (its id and why, no personal data); its SMS and email still go and
/// it stays in the council's inbox.
pub async fn handle_message_with<S, C, F>(
    store: &S,
    channel: &C,
    files: &F,
    view_url: &str,
    body: Option<&str>,
    now: OffsetDateTime,
) -> MessageResult
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
    F: FileLeg,
{
    let Some(id) = body.and_then(cpis_aws::parse_message_body) else {
        return MessageResult::Poison;
    };
    classify(
        &id,
        dispatch_with(store, channel, files, &id, now, view_url).await,
    )
}

/// What a delivery's answer means for its message; logs a failure, and an
/// ASN file that could not be sent (the ASN id and why only).
fn classify(id: &str, answer: Result<Dispatched, DispatchError>) -> MessageResult {
    match answer {
        Ok(dispatched) => {
            if let FileDelivery::Impossible(why) = &dispatched.file {
                tracing::error!(asn_id = %id, why = %why, "the ASN file could not be sent to the council's MESH mailbox; its SMS and email went, and it stays in the council's inbox");
            }
            match dispatched.outcome {
                DispatchOutcome::Unknown => MessageResult::Poison,
                outcome @ DispatchOutcome::InProgress => MessageResult::Retry(outcome),
                outcome => MessageResult::Done(outcome),
            }
        }
        Err(DispatchError::Audit { outcome, source }) => {
            tracing::error!(event = event::DELIVERY_AUDIT_FAILED, asn_id = %id, error = %source, "delivery finished but its audit event could not be written");
            MessageResult::Done(outcome)
        }
        Err(e) => {
            tracing::warn!(asn_id = %id, error = %e, "delivery failed; the message will be retried");
            MessageResult::Failed
        }
    }
}

/// Handles a batch without the MESH leg ([`handle_batch_with`] and `NoFiles`).
pub async fn handle_batch<S, C>(
    store: &S,
    channel: &C,
    view_url: &str,
    event: &SqsEvent,
    now: OffsetDateTime,
) -> SqsBatchResponse
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
{
    handle_batch_with(store, channel, &NoFiles, view_url, event, now).await
}

/// Handles a batch through the domain's [`dispatch_batch_with`]: the leases
/// one by one, the councils' entries in one read, the file leg `files` per
/// ASN (before any SMS or email; an ASN whose file failed for now goes no
/// further and is retried), each council's notices in one publish and their
/// records in one write. A repeated ASN id is delivered once. Reports only
/// the failed message ids. What each message came to is logged in a span of
/// its own (`asn_message`, with its SQS message id), so every line about a
/// message says which message it is; an ASN whose file cannot be made or
/// that MESH refuses is logged there at error level (its id and why, no
/// personal data): its SMS and email still go.
pub async fn handle_batch_with<S, C, F>(
    store: &S,
    channel: &C,
    files: &F,
    view_url: &str,
    event: &SqsEvent,
    now: OffsetDateTime,
) -> SqsBatchResponse
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
    F: FileLeg,
{
    let parsed: Vec<Option<String>> = event
        .records
        .iter()
        .map(|record| {
            record
                .body
                .as_deref()
                .and_then(cpis_aws::parse_message_body)
        })
        .collect();
    let ids: Vec<&str> = parsed.iter().flatten().map(String::as_str).collect();
    let mut answers = dispatch_batch_with(store, channel, files, &ids, now, view_url)
        .await
        .into_iter();
    let mut response = SqsBatchResponse::default();
    for (record, id) in event.records.iter().zip(&parsed) {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let span = tracing::info_span!("asn_message", message_id);
        let result = span.in_scope(|| {
            let result = match id {
                Some(id) => match answers.next() {
                    Some(answer) => classify(id, answer),
                    None => MessageResult::Failed,
                },
                None => MessageResult::Poison,
            };
            tracing::info!(event = event::ASN_MESSAGE_HANDLED, message_id, result = ?result, "ASN message handled");
            result
        });
        if result.is_failure() {
            response.add_failure(message_id);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::ports::{AccessLog, DeliveryError};
    use cpis_domain::{
        AccessRecord, Accessor, AccessorKind, Asn, Authority, NhsNumber, NoticeText, OdsCode,
        PlanType, Rbac,
    };
    use cpis_store_memory::MemoryStore;
    use std::sync::{Arc, Mutex};
    use time::macros::datetime;

    const NORMAL: &str = include_str!("../../../events/sqs/normal-batch.json");
    const DUPLICATE: &str = include_str!("../../../events/sqs/duplicate-delivery.json");
    const POISON: &str = include_str!("../../../events/sqs/poison-message.json");
    const IDS: [&str; 3] = [
        "0f6d1c2e-0000-4000-8000-000000000001",
        "0f6d1c2e-0000-4000-8000-000000000002",
        "0f6d1c2e-0000-4000-8000-000000000003",
    ];
    const NOW: OffsetDateTime = datetime!(2025-03-01 10:00 UTC);

    #[derive(Clone, Default)]
    struct Recording(Arc<Mutex<Vec<NoticeText>>>);

    impl NotificationChannel for Recording {
        async fn deliver(&self, _: &Authority, notice: &NoticeText) -> Result<(), DeliveryError> {
            self.0.lock().unwrap().push(notice.clone());
            Ok(())
        }
    }

    async fn seeded() -> MemoryStore {
        let store = MemoryStore::new();
        let ods = OdsCode::parse("E09000033").unwrap();
        store
            .put_authority(&Authority {
                ods_code: ods.clone(),
                name: "Example".into(),
                office_hours_phone: "020 7946 0000".into(),
                emergency_duty_phone: "020 7946 0999".into(),
                notify_emails: vec!["duty@example.gov.uk".into()],
                notify_sms: vec![],
            })
            .await
            .unwrap();
        let accessor = Accessor {
            job_role: None,
            kind: AccessorKind::User,
            user_id: "u1".into(),
            rbac: Rbac::B0107,
            organisation_ods: OdsCode::parse("RJ1").unwrap(),
            organisation_name: "Hospital".into(),
            setting: "ED".into(),
        };
        for (i, id) in IDS.iter().enumerate() {
            let access = AccessRecord {
                id: format!("access-{i}"),
                nhs_number: NhsNumber::parse("9990000018").unwrap(),
                accessed_at: NOW,
                accessor: Accessor {
                    user_id: format!("u{i}"),
                    ..accessor.clone()
                },
            };
            let asn = Asn {
                id: (*id).into(),
                authority: ods.clone(),
                nhs_number: access.nhs_number,
                plans: vec![cpis_domain::AsnPlan {
                    upload_sequence: None,
                    plan_type: PlanType::ChildProtection,
                    local_id: None,
                }],
                accessed_at: NOW,
                accessor: access.accessor.clone(),
                access_id: access.id.clone(),
                acknowledged_at: None,
                acknowledgement_note: None,
            };
            store
                .record_access(&access, &[asn], NOW - time::Duration::hours(24))
                .await
                .unwrap();
        }
        store
    }

    fn event(json: &str) -> SqsEvent {
        serde_json::from_str(json).unwrap()
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_normal_batch_delivers_each_asn_once_and_reports_no_failure() {
        let store = seeded().await;
        let channel = Recording::default();
        let response = handle_batch(&store, &channel, "https://v", &event(NORMAL), NOW).await;
        assert!(failures(&response).is_empty());
        let refs: Vec<String> = channel
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.reference.clone())
            .collect();
        assert_eq!(refs, IDS);
    }

    #[tokio::test]
    async fn a_poison_message_is_the_only_failure_reported() {
        let store = seeded().await;
        let channel = Recording::default();
        let response = handle_batch(&store, &channel, "https://v", &event(POISON), NOW).await;
        assert_eq!(
            failures(&response),
            ["b1f0a000-0000-4000-8000-000000000022"]
        );
        assert_eq!(channel.0.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_duplicate_in_the_batch_and_the_batch_again_publish_once() {
        let store = seeded().await;
        let channel = Recording::default();
        for _ in 0..2 {
            let response =
                handle_batch(&store, &channel, "https://v", &event(DUPLICATE), NOW).await;
            assert!(failures(&response).is_empty());
        }
        assert_eq!(channel.0.lock().unwrap().len(), 2, "two distinct ASNs");
    }

    #[tokio::test]
    async fn an_unknown_asn_id_is_poison_too() {
        let store = MemoryStore::new();
        let channel = Recording::default();
        let result = handle_message(
            &store,
            &channel,
            "https://v",
            Some(r#"{"asn_id":"no-such-asn"}"#),
            NOW,
        )
        .await;
        assert_eq!(result, MessageResult::Poison);
    }

    /// Records each batch call; fails the entries of the ASNs in `failing`.
    #[derive(Clone, Default)]
    struct Batches {
        calls: Arc<Mutex<Vec<Vec<String>>>>,
        failing: Arc<Mutex<Vec<String>>>,
    }

    impl NotificationChannel for Batches {
        async fn deliver(&self, a: &Authority, n: &NoticeText) -> Result<(), DeliveryError> {
            self.deliver_batch(&[(a, n)]).await.remove(0)
        }

        async fn deliver_batch(
            &self,
            notices: &[(&Authority, &NoticeText)],
        ) -> Vec<Result<(), DeliveryError>> {
            let failing = self.failing.lock().unwrap().clone();
            let mut sent = Vec::new();
            let answers = notices
                .iter()
                .map(|(_, n)| {
                    if failing.contains(&n.reference) {
                        Err(DeliveryError::Transient("entry failed".into()))
                    } else {
                        sent.push(n.reference.clone());
                        Ok(())
                    }
                })
                .collect();
            self.calls.lock().unwrap().push(sent);
            answers
        }
    }

    #[tokio::test]
    async fn one_publish_per_council_and_a_failed_entry_is_retried_alone() {
        let store = seeded().await;
        let channel = Batches::default();
        *channel.failing.lock().unwrap() = vec![IDS[1].to_owned()];
        let batch = event(NORMAL);
        let response = handle_batch(&store, &channel, "https://v", &batch, NOW).await;
        assert_eq!(
            failures(&response),
            [batch.records[1].message_id.as_deref().unwrap()]
        );
        assert_eq!(
            *channel.calls.lock().unwrap(),
            [vec![IDS[0].to_owned(), IDS[2].to_owned()]],
            "one call for the council's three notices"
        );
        // The whole batch again, after the failed one's lease lapsed: only
        // the entry that failed is sent.
        channel.failing.lock().unwrap().clear();
        let later = NOW + cpis_domain::dispatch::DELIVERY_LEASE;
        let response = handle_batch(&store, &channel, "https://v", &batch, later).await;
        assert!(failures(&response).is_empty());
        assert_eq!(channel.calls.lock().unwrap()[1], [IDS[1].to_owned()]);
    }

    /// A MESH leg that is unavailable for `IDS[1]` and cannot make a file of
    /// `IDS[2]`.
    struct SomeFiles;

    impl FileLeg for SomeFiles {
        async fn deliver_file(
            &self,
            asn: &Asn,
            _: Option<&Authority>,
            _: OffsetDateTime,
        ) -> Result<FileDelivery, DispatchError> {
            if asn.id == IDS[1] {
                Err(DeliveryError::Transient("MESH unavailable".into()).into())
            } else if asn.id == IDS[2] {
                Ok(FileDelivery::Impossible("no job role".into()))
            } else {
                Ok(FileDelivery::Sent)
            }
        }
    }

    #[tokio::test]
    async fn the_batch_runs_the_file_leg_first_per_asn() {
        let lines = cpis_telemetry::capture::this_thread();
        let store = seeded().await;
        let channel = Batches::default();
        let batch = event(NORMAL);
        let response =
            handle_batch_with(&store, &channel, &SomeFiles, "https://v", &batch, NOW).await;
        // The file that failed for now: retried, and no SMS or email for it.
        assert_eq!(
            failures(&response),
            [batch.records[1].message_id.as_deref().unwrap()]
        );
        assert_eq!(
            *channel.calls.lock().unwrap(),
            [vec![IDS[0].to_owned(), IDS[2].to_owned()]],
            "the impossible file's SMS and email still go"
        );
        // The impossible file is logged at error level, by ASN id, in its
        // message's span.
        let text = lines.text();
        let errors: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|line| line["level"] == "ERROR")
            .collect();
        assert_eq!(errors.len(), 1, "{text}");
        assert_eq!(errors[0]["fields"]["asn_id"], IDS[2], "{text}");
        assert_eq!(
            errors[0]["span"]["message_id"],
            batch.records[2].message_id.as_deref().unwrap()
        );
    }

    /// A channel that is down: every delivery fails for now.
    struct Down;

    impl NotificationChannel for Down {
        async fn deliver(&self, _: &Authority, _: &NoticeText) -> Result<(), DeliveryError> {
            Err(DeliveryError::Transient("down".into()))
        }
    }

    #[tokio::test]
    async fn each_message_is_handled_in_a_span_naming_its_message_id() {
        let lines = cpis_telemetry::capture::this_thread();
        let store = seeded().await;
        let batch = event(NORMAL);
        let response = handle_batch(&store, &Down, "https://v", &batch, NOW).await;
        assert_eq!(failures(&response).len(), 3, "each delivery failed");
        let text = lines.text();
        let logged: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        // The delivery's own warning, written deep inside `dispatch`, says
        // which message it belongs to through the span alone.
        let spans_of = |message: &str| -> Vec<String> {
            logged
                .iter()
                .filter(|line| line["fields"]["message"] == message)
                .map(|line| {
                    assert_eq!(line["span"]["name"], "asn_message", "{line}");
                    line["span"]["message_id"].as_str().unwrap().to_owned()
                })
                .collect()
        };
        let ids: Vec<String> = batch
            .records
            .iter()
            .map(|r| r.message_id.clone().unwrap())
            .collect();
        assert_eq!(
            spans_of("delivery failed; the message will be retried"),
            ids
        );
        assert_eq!(spans_of("ASN message handled"), ids);
    }
}
