//! The DynamoDB store: every storage port on one service table (single-table
//! design, partitioned by child) and an append-only audit table. The key
//! design is documented in the crate README; keep the two in step.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::sns::TopicSync;

type Item = HashMap<String, AttributeValue>;

/// How many gsi1 partitions one council's plan listing is spread over, so
/// that a council's bulk upload never writes to a single index partition.
pub const PLAN_SHARDS: u64 = 8;
/// The outbox's sparse gsi2 partition: present only while an ASN is undelivered.
const PENDING: &str = "PENDING";
/// An ASN id from a queue message longer than this cannot be ours (poison).
const MAX_ASN_ID: usize = 128;

/// Every storage port on DynamoDB. Cheap to clone: the client is shared.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    audit_table: String,
    topics: Option<TopicSync>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
            topics: None,
        }
    }

    /// Keeps each council's SNS subscriptions in step with its directory
    /// entry on every `put_authority` (plan-upload only).
    pub fn with_topic_sync(mut self, topics: TopicSync) -> Self {
        self.topics = Some(topics);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

mod accesses;
mod audit;
mod batch;
mod directory;
mod feeds;
mod inbox;
mod item;
mod keys;
mod mailboxes;
mod outbox;
mod plans;
mod portal;
mod query;
mod retention;
mod uploads;

#[cfg(test)]
mod tests;
