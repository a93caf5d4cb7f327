//! The minute's work on AWS: the sweep, then the signals the operators'
//! alarms read (outbox age, stale feeds, councils nobody can reach), each
//! printed to stdout as EMF so no alarm depends on the log level.

use std::collections::BTreeSet;

use cpis_aws::{ChannelStatus, DynamoStore, SqsQueue};
use cpis_domain::ports::StoreError;
use cpis_domain::OdsCode;
use time::{Duration, OffsetDateTime};

use crate::{channel_gaps, ChannelGaps, DutyTeamChannels};

/// The councils' SNS topics, with the account's opted-out numbers read once per sweep.
struct SnsChannels<'a> {
    status: &'a ChannelStatus,
    opted_out: BTreeSet<String>,
}

impl DutyTeamChannels for SnsChannels<'_> {
    async fn confirmed_channels(&self, ods: &OdsCode) -> Result<usize, StoreError> {
        self.status.confirmed_channels(ods, &self.opted_out).await
    }
}

async fn channel_check(
    store: &DynamoStore,
    status: &ChannelStatus,
) -> Result<ChannelGaps, StoreError> {
    let channels = SnsChannels {
        status,
        opted_out: status.opted_out_numbers().await?,
    };
    channel_gaps(store, &channels).await
}

/// Sweeps the outbox and prints the minute's metrics; the answer counts
/// what was relayed and which feeds are stale.
pub async fn sweep_minute(
    store: &DynamoStore,
    queue: &SqsQueue,
    channel_status: &ChannelStatus,
    now: OffsetDateTime,
    stale_after: Duration,
) -> Result<serde_json::Value, crate::SweepError> {
    let report = crate::sweep(store, queue, now).await?;
    println!("{}", crate::outbox_age_metric(&report, now));
    let relayed = report.relayed;
    let stale = crate::stale(store, now, stale_after).await?;
    for (council, age) in &stale {
        tracing::warn!(%council, hours = age.whole_hours(), "council feed is stale: no accepted full snapshot");
    }
    println!("{}", crate::stale_feeds_metric(stale.len(), now));
    // A failure here is an error line (its alarm) and no channel metric
    // this minute; the sweep itself has been done.
    match channel_check(store, channel_status).await {
        Ok(gaps) => {
            for council in &gaps.without_directory_entry {
                tracing::warn!(%council, "council holds a feed but has no directory entry: flags carry no phone number, ASNs reach no duty team");
            }
            for council in &gaps.without_confirmed_channel {
                tracing::warn!(%council, "council has no confirmed duty-team subscription: ASNs wait in its inbox only");
            }
            println!("{}", crate::channel_gaps_metric(&gaps, now));
        }
        Err(error) => tracing::error!(%error, "duty-team channel check failed"),
    }
    tracing::info!(relayed, stale_feeds = stale.len(), "outbox swept");
    Ok(serde_json::json!({ "relayed": relayed, "stale_feeds": stale.len() }))
}
