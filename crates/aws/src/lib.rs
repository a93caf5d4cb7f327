//! AWS adapters for every CP-IS port: the DynamoDB store (service table and
//! append-only audit table), the SQS hand-off to the dispatcher, the SNS
//! channel that delivers ASNs, and the topic sync that keeps a council's SNS
//! subscriptions in step with its directory entry.
//!
//! The table design is in this crate's README. Nothing here decides a CP-IS
//! rule: the domain does; these adapters only store and move what it decides.

mod directory_sync;
mod dynamo;
mod errors;
mod http_client;
#[cfg(feature = "test-support")]
pub mod moto;
mod sns;
mod sns_status;
mod sqs;

pub use dynamo::{DynamoStore, PLAN_SHARDS};
pub use http_client::https_client;
pub use sns::{topic_name, SnsChannel, SyncError, SyncReport, TopicSync};
pub use sns_status::{reaches_duty_team, ChannelStatus};
pub use sqs::{parse_message_body, SqsQueue};
