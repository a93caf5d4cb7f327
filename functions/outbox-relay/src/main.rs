//! Composition root: configuration and clients once at init, then the runtime.
//! EventBridge invokes it every minute (the outbox sweep, then the feed
//! freshness, outbox age and duty-team channel metrics) and once a day with
//! `{"task": "purge"}`.

use cpis_aws::{load_sdk_config, ChannelStatus, DynamoStore, Settings, SqsQueue};
use cpis_domain::ports::StoreError;
use cpis_domain::{Clock, OdsCode, SystemClock};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use outbox_relay::{DutyTeamChannels, Task};

/// The councils' SNS topics, with the account's opted-out numbers read once per sweep.
struct SnsChannels<'a> {
    status: &'a ChannelStatus,
    opted_out: std::collections::BTreeSet<String>,
}

impl DutyTeamChannels for SnsChannels<'_> {
    async fn confirmed_channels(&self, ods: &OdsCode) -> Result<usize, StoreError> {
        self.status.confirmed_channels(ods, &self.opted_out).await
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    cpis_aws::telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = load_sdk_config().await;
    let store = DynamoStore::from_config(&sdk, &settings);
    let queue = SqsQueue::from_config(&sdk, &settings)?;
    let channel_status = ChannelStatus::from_config(&sdk, &settings)?;
    let stale_after = settings.feed_stale_after;
    let (store, queue, channel_status) = (&store, &queue, &channel_status);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let clock = SystemClock;
            match Task::of(&event.payload)? {
                Task::Sweep => {
                    let now = clock.now();
                    let report = outbox_relay::sweep(store, queue, now).await?;
                    // Straight to stdout, like StaleFeeds: every sweep, at any LogLevel.
                    println!("{}", outbox_relay::outbox_age_metric(&report, now));
                    let relayed = report.relayed;
                    let stale = outbox_relay::stale(store, now, stale_after).await?;
                    for (council, age) in &stale {
                        tracing::warn!(%council, hours = age.whole_hours(), "council feed is stale: no accepted full snapshot");
                    }
                    // Straight to stdout: the alarm must not depend on LogLevel.
                    println!("{}", outbox_relay::stale_feeds_metric(stale.len(), now));
                    // A failure here is an error line (its alarm) and no channel
                    // metric this minute; the sweep itself has been done.
                    match channel_check(store, channel_status).await {
                        Ok(gaps) => {
                            for council in &gaps.without_directory_entry {
                                tracing::warn!(%council, "council holds a feed but has no directory entry: flags carry no phone number, ASNs reach no duty team");
                            }
                            for council in &gaps.without_confirmed_channel {
                                tracing::warn!(%council, "council has no confirmed duty-team subscription: ASNs wait in its inbox only");
                            }
                            println!("{}", outbox_relay::channel_gaps_metric(&gaps, now));
                        }
                        Err(error) => tracing::error!(%error, "duty-team channel check failed"),
                    }
                    tracing::info!(relayed, stale_feeds = stale.len(), "outbox swept");
                    Ok::<_, Error>(serde_json::json!({ "relayed": relayed, "stale_feeds": stale.len() }))
                }
                Task::Purge => {
                    let report = outbox_relay::purge(store, clock.today()).await?;
                    tracing::info!(?report, "purged");
                    Ok(serde_json::json!({
                        "plans": report.plans,
                        "accesses": report.accesses,
                        "notifications": report.notifications,
                        "receipts": report.receipts,
                    }))
                }
            }
        },
    ))
    .await
}

async fn channel_check(
    store: &DynamoStore,
    status: &ChannelStatus,
) -> Result<outbox_relay::ChannelGaps, StoreError> {
    let channels = SnsChannels {
        status,
        opted_out: status.opted_out_numbers().await?,
    };
    outbox_relay::channel_gaps(store, &channels).await
}
