//! Delivering ASN notices through each council's SNS topic, and keeping that
//! topic's subscriptions in step with the council's directory entry.

use std::collections::BTreeSet;

use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::PublishBatchRequestEntry;
use aws_sdk_sns::Client;
use cpis_domain::ports::{DeliveryError, NotificationChannel};
use cpis_domain::{Authority, NoticeText, OdsCode};

use crate::errors::failure;

/// A council's topic: `cpis-la-<ODS>` (ODS codes are valid topic-name characters).
pub fn topic_name(ods: &OdsCode) -> String {
    format!("cpis-la-{ods}")
}

/// Error codes that retrying will not fix: the message goes to the DLQ via
/// maxReceiveCount and the alarm fires, rather than spinning.
const PERMANENT_CODES: [&str; 6] = [
    "NotFound",
    "InvalidParameter",
    "InvalidParameterValue",
    "AuthorizationError",
    "KMSDisabled",
    "KMSNotFound",
];

/// Publishes one message per ASN to the council's topic; SNS fans it out to
/// the duty team's email and SMS subscriptions.
#[derive(Debug, Clone)]
pub struct SnsChannel {
    client: Client,
    /// `arn:aws:sns:<region>:<account>:cpis-la-`: the dispatcher needs no
    /// CreateTopic or ListTopics permission to find a topic.
    topic_arn_prefix: String,
}

impl SnsChannel {
    pub fn new(client: Client, topic_arn_prefix: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn_prefix: topic_arn_prefix.into(),
        }
    }

    pub fn topic_arn(&self, ods: &OdsCode) -> String {
        format!("{}{ods}", self.topic_arn_prefix)
    }
}

/// PublishBatch takes at most 10 entries.
const PUBLISH_BATCH_MAX: usize = 10;

/// One message per protocol; the notice is already free of personal data.
fn message_of(notice: &NoticeText) -> String {
    serde_json::json!({
        "default": notice.sms,
        "sms": notice.sms,
        "email": notice.email_body,
    })
    .to_string()
}

/// A failure named by its SNS error code alone.
fn delivery_error(what: &str, code: &str) -> DeliveryError {
    if PERMANENT_CODES.contains(&code) {
        DeliveryError::Permanent(format!("{what}: {code}"))
    } else {
        DeliveryError::Transient(format!("{what}: {code}"))
    }
}

/// One answer per entry of a PublishBatch (entry ids are `0..count`): `Ok`
/// for an entry SNS lists as successful, its error for one it lists as
/// failed, and a transient error for one it does not list (not known to be
/// sent: retried).
fn entry_answers<'a>(
    count: usize,
    successful: impl IntoIterator<Item = &'a str>,
    failed: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Result<(), DeliveryError>> {
    let mut answers: Vec<Result<(), DeliveryError>> = (0..count)
        .map(|_| {
            Err(DeliveryError::Transient(
                "SNS publish batch: no answer for the entry".to_owned(),
            ))
        })
        .collect();
    let slot = |id: &str| id.parse::<usize>().ok().filter(|i| *i < count);
    for (id, code) in failed {
        if let Some(i) = slot(id) {
            answers[i] = Err(delivery_error("SNS publish batch entry", code));
        }
    }
    for id in successful {
        if let Some(i) = slot(id) {
            answers[i] = Ok(());
        }
    }
    answers
}

impl SnsChannel {
    /// One PublishBatch of at most 10 notices to one topic: one answer each.
    async fn publish_batch(
        &self,
        topic_arn: String,
        notices: &[&NoticeText],
    ) -> Vec<Result<(), DeliveryError>> {
        let mut entries = Vec::with_capacity(notices.len());
        for (i, notice) in notices.iter().enumerate() {
            let entry = PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .message_structure("json")
                .message(message_of(notice))
                .subject(&notice.email_subject)
                .build();
            match entry {
                Ok(entry) => entries.push(entry),
                Err(_) => {
                    return notices
                        .iter()
                        .map(|_| {
                            Err(DeliveryError::Permanent(
                                "SNS publish batch: an entry could not be built".to_owned(),
                            ))
                        })
                        .collect()
                }
            }
        }
        let published = self
            .client
            .publish_batch()
            .topic_arn(topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await;
        match published {
            Ok(out) => entry_answers(
                notices.len(),
                out.successful().iter().filter_map(|e| e.id()),
                out.failed().iter().map(|e| (e.id(), e.code())),
            ),
            Err(e) => {
                let code = e.code().unwrap_or("no response from the service");
                notices
                    .iter()
                    .map(|_| Err(delivery_error("SNS publish batch", code)))
                    .collect()
            }
        }
    }
}

impl NotificationChannel for SnsChannel {
    async fn deliver(
        &self,
        authority: &Authority,
        notice: &NoticeText,
    ) -> Result<(), DeliveryError> {
        let published = self
            .client
            .publish()
            .topic_arn(self.topic_arn(&authority.ods_code))
            .message_structure("json")
            .message(message_of(notice))
            .subject(&notice.email_subject)
            .send()
            .await;
        match published {
            Ok(_) => Ok(()),
            Err(e) => Err(delivery_error(
                "SNS publish",
                e.code().unwrap_or("no response from the service"),
            )),
        }
    }

    /// One `PublishBatch` per council's topic and 10 notices; a single
    /// notice is one `Publish`. Each entry answers for itself: SNS reports
    /// which entries of a batch failed, and only those are retried.
    async fn deliver_batch(
        &self,
        notices: &[(&Authority, &NoticeText)],
    ) -> Vec<Result<(), DeliveryError>> {
        let mut answers: Vec<Option<Result<(), DeliveryError>>> =
            notices.iter().map(|_| None).collect();
        let mut topics: Vec<&OdsCode> = Vec::new();
        for (authority, _) in notices {
            if !topics.contains(&&authority.ods_code) {
                topics.push(&authority.ods_code);
            }
        }
        for ods in topics {
            let places: Vec<usize> = (0..notices.len())
                .filter(|i| &notices[*i].0.ods_code == ods)
                .collect();
            for chunk in places.chunks(PUBLISH_BATCH_MAX) {
                if let [only] = chunk {
                    let (authority, notice) = notices[*only];
                    answers[*only] = Some(self.deliver(authority, notice).await);
                    continue;
                }
                let batch: Vec<&NoticeText> = chunk.iter().map(|i| notices[*i].1).collect();
                let sent = self.publish_batch(self.topic_arn(ods), &batch).await;
                for (i, answer) in chunk.iter().zip(sent) {
                    answers[*i] = Some(answer);
                }
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(DeliveryError::Transient(
                        "SNS publish batch: not attempted".to_owned(),
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn each_entry_of_a_publish_batch_answers_for_itself() {
        let answers = entry_answers(
            4,
            ["0", "2"],
            [("1", "InternalError"), ("3", "InvalidParameter")],
        );
        assert!(answers[0].is_ok());
        assert!(matches!(answers[1], Err(DeliveryError::Transient(_))));
        assert!(answers[2].is_ok());
        assert!(matches!(answers[3], Err(DeliveryError::Permanent(_))));
    }

    #[test]
    fn an_entry_sns_does_not_mention_is_retried_and_stray_ids_are_ignored() {
        let answers = entry_answers(3, ["0", "7", "x"], [("9", "InternalError")]);
        assert!(answers[0].is_ok());
        assert!(matches!(answers[1], Err(DeliveryError::Transient(_))));
        assert!(matches!(answers[2], Err(DeliveryError::Transient(_))));
    }
}

/// What one sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub topic_arn: String,
    pub subscribed: usize,
    pub unsubscribed: usize,
}

/// Creates a council's topic and keeps its subscriptions equal to the
/// directory entry's email addresses and SMS numbers.
#[derive(Debug, Clone)]
pub struct TopicSync {
    client: Client,
    kms_key_id: Option<String>,
    dlq_arn: Option<String>,
}

/// Why a council's subscriptions could not be brought in step with its
/// directory entry: an SNS failure, named by the service's error code only.
/// Not a [`StoreError`](cpis_domain::ports::StoreError): the directory entry
/// itself is stored before the sync runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyncError(String);

impl SyncError {
    fn sns<E: ProvideErrorMetadata>(what: &str, err: &E) -> Self {
        Self(failure(what, err))
    }
}

/// SNS shows a subscription awaiting confirmation with this in place of an ARN.
fn is_pending(arn: &str) -> bool {
    arn.eq_ignore_ascii_case("PendingConfirmation")
        || arn.eq_ignore_ascii_case("pending confirmation")
}

impl TopicSync {
    pub fn new(client: Client, kms_key_id: Option<String>, dlq_arn: Option<String>) -> Self {
        Self {
            client,
            kms_key_id,
            dlq_arn,
        }
    }

    /// Idempotent: CreateTopic returns the existing topic, and only the
    /// differences between SNS and the entry are subscribed or unsubscribed.
    pub async fn sync(&self, authority: &Authority) -> Result<SyncReport, SyncError> {
        let mut create = self
            .client
            .create_topic()
            .name(topic_name(&authority.ods_code));
        if let Some(key) = &self.kms_key_id {
            create = create.attributes("KmsMasterKeyId", key);
        }
        let topic_arn = create
            .send()
            .await
            .map_err(|e| SyncError::sns("creating the council topic", &e))?
            .topic_arn
            .ok_or_else(|| SyncError("SNS returned no topic ARN".to_owned()))?;

        let wanted: BTreeSet<(&str, &str)> = authority
            .notify_emails
            .iter()
            .map(|e| ("email", e.as_str()))
            .chain(authority.notify_sms.iter().map(|n| ("sms", n.as_str())))
            .collect();

        let mut present: BTreeSet<(String, String)> = BTreeSet::new();
        let mut stale: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_subscriptions_by_topic()
                .topic_arn(&topic_arn)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| SyncError::sns("listing the council's subscriptions", &e))?;
            for sub in out.subscriptions() {
                let (Some(protocol), Some(endpoint)) = (sub.protocol(), sub.endpoint()) else {
                    continue;
                };
                let arn = sub.subscription_arn().unwrap_or_default();
                let managed = protocol == "email" || protocol == "sms";
                if managed && !wanted.contains(&(protocol, endpoint)) {
                    // A pending subscription has no ARN to unsubscribe; it
                    // lapses unconfirmed after three days.
                    if !is_pending(arn) && !arn.is_empty() {
                        stale.push(arn.to_owned());
                    }
                } else {
                    present.insert((protocol.to_owned(), endpoint.to_owned()));
                }
            }
            token = out.next_token;
            if token.is_none() {
                break;
            }
        }

        let mut report = SyncReport {
            topic_arn: topic_arn.clone(),
            ..Default::default()
        };
        for (protocol, endpoint) in wanted {
            if present.contains(&(protocol.to_owned(), endpoint.to_owned())) {
                continue;
            }
            let mut subscribe = self
                .client
                .subscribe()
                .topic_arn(&topic_arn)
                .protocol(protocol)
                .endpoint(endpoint)
                .return_subscription_arn(true);
            if let Some(dlq) = &self.dlq_arn {
                subscribe = subscribe.attributes(
                    "RedrivePolicy",
                    serde_json::json!({ "deadLetterTargetArn": dlq }).to_string(),
                );
            }
            subscribe
                .send()
                .await
                .map_err(|e| SyncError::sns("subscribing a duty-team channel", &e))?;
            report.subscribed += 1;
        }
        for arn in stale {
            self.client
                .unsubscribe()
                .subscription_arn(arn)
                .send()
                .await
                .map_err(|e| SyncError::sns("removing a duty-team channel", &e))?;
            report.unsubscribed += 1;
        }
        Ok(report)
    }
}
