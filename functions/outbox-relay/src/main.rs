//! Composition root: typed settings and the clients once at init (a missing
//! or malformed variable stops the cold start with one JSON error line naming
//! it), then the runtime.
//! EventBridge invokes it every minute (the outbox sweep, then the feed
//! freshness, outbox age and duty-team channel metrics) and once a day with
//! `{"task": "purge"}`.

use cpis_domain::{Clock, SystemClock};
use cpis_lambda::settings::FromEnv;
use cpis_lambda::{Clients, RelaySettings, StartError};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use outbox_relay::Task;

// mimalloc: the check path takes a quarter fewer instructions than with
// glibc's malloc (BENCHMARKS.md 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cpis_lambda::start(run).await
}

async fn run() -> Result<(), StartError> {
    let settings = RelaySettings::from_env()?;
    let clients = Clients::from_env()?;
    let store = clients.store(&settings.tables);
    let queue = clients.queue(&settings.asn_queue_url);
    let channel_status = clients.channel_status(&settings.topic_arn_prefix);
    let stale_after = settings.feed_stale_after;
    let (store, queue, channel_status) = (&store, &queue, &channel_status);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let clock = SystemClock;
            match Task::of(&event.payload)? {
                Task::Sweep => Ok::<_, Error>(
                    outbox_relay::minute::sweep_minute(
                        store,
                        queue,
                        channel_status,
                        clock.now(),
                        stale_after,
                    )
                    .await?,
                ),
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
    .await?;
    Ok(())
}
