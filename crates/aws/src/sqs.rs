//! The hand-off of ASN ids to the dispatcher over SQS.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use cpis_domain::ports::{AsnQueue, QueueError};
use serde::{Deserialize, Serialize};

use crate::errors::failure;

/// SendMessageBatch takes at most 10 entries.
const SEND_BATCH_MAX: usize = 10;
/// Attempts at the entries SQS failed before the hand-off is reported failed.
const SEND_ATTEMPTS: usize = 3;

/// The message body: the ASN id only. The dispatcher reads the ASN from the
/// store, so nothing personal ever sits in the queue or its DLQ.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AsnMessage {
    asn_id: String,
}

/// The ASN id in a message body, or `None` for a body that is not ours (poison).
pub fn parse_message_body(body: &str) -> Option<String> {
    serde_json::from_str::<AsnMessage>(body)
        .ok()
        .map(|m| m.asn_id)
        .filter(|id| !id.is_empty())
}

fn message_body(id: &str) -> String {
    serde_json::json!({ "asn_id": id }).to_string()
}

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl AsnQueue for SqsQueue {
    async fn enqueue(&self, ids: &[String]) -> Result<(), QueueError> {
        for chunk in ids.chunks(SEND_BATCH_MAX) {
            // Entry ids are batch-local positions; SQS reports failures by them.
            let mut pending: Vec<(usize, &String)> = chunk.iter().enumerate().collect();
            for _ in 0..SEND_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let entries = pending
                    .iter()
                    .map(|(i, id)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(message_body(id))
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| QueueError("an SQS request could not be built".to_owned()))?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| QueueError(failure("the ASN hand-off", &e)))?;
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                pending.retain(|(i, _)| failed.contains(&i.to_string().as_str()));
            }
            if !pending.is_empty() {
                return Err(QueueError(format!(
                    "SQS refused {} ASN message(s)",
                    pending.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_anything_else_is_poison() {
        assert_eq!(
            parse_message_body(&message_body("a1")).as_deref(),
            Some("a1")
        );
        for poison in [
            "",
            "a1",
            "{}",
            r#"{"asn_id":""}"#,
            r#"{"asn_id":1}"#,
            r#"{"asn_id":"a","x":1}"#,
        ] {
            assert_eq!(parse_message_body(poison), None, "{poison}");
        }
    }
}
