//! AWS adapters for every CP-IS port: the DynamoDB store (service table and
//! append-only audit table), the SQS hand-off to the dispatcher, the SNS
//! channel that delivers ASNs, and the topic sync that keeps a council's SNS
//! subscriptions in step with its directory entry.
//!
//! The table design is in this crate's README. Nothing here decides a CP-IS
//! rule: the domain does; these adapters only store and move what it decides.

pub mod config;
mod dynamo;
mod errors;
#[cfg(feature = "test-support")]
pub mod moto;
mod sns;
mod sqs;

pub use config::{load_sdk_config, ConfigError, Settings};
pub use dynamo::{DynamoStore, PLAN_SHARDS};
pub use sns::{topic_name, SnsChannel, SyncReport, TopicSync};
pub use sqs::{parse_message_body, SqsQueue};

/// Feed freshness is not kept on DynamoDB yet (issue 17: a metric and an
/// alarm in the stack are to come): the trait's defaults say "not tracked",
/// so `GET /v1/authority` on AWS carries no `feed` member rather than a
/// wrong "never".
/// Clients are built once per function from the one `SdkConfig`.
impl DynamoStore {
    pub fn from_config(sdk: &aws_config::SdkConfig, settings: &Settings) -> Self {
        Self::new(
            aws_sdk_dynamodb::Client::new(sdk),
            settings.table_name.clone(),
            settings.audit_table_name.clone(),
        )
    }
}

impl SqsQueue {
    pub fn from_config(
        sdk: &aws_config::SdkConfig,
        settings: &Settings,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aws_sdk_sqs::Client::new(sdk),
            settings.require_queue_url()?,
        ))
    }
}

impl SnsChannel {
    pub fn from_config(
        sdk: &aws_config::SdkConfig,
        settings: &Settings,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aws_sdk_sns::Client::new(sdk),
            settings.require_topic_arn_prefix()?,
        ))
    }
}

impl TopicSync {
    pub fn from_config(sdk: &aws_config::SdkConfig, settings: &Settings) -> Self {
        Self::new(
            aws_sdk_sns::Client::new(sdk),
            settings.sns_kms_key_id.clone(),
            settings.sns_dlq_arn.clone(),
        )
    }
}
