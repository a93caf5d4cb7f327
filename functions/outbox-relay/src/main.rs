//! Composition root: configuration and clients once at init, then the runtime
//! (invoked by an EventBridge schedule every minute; the event is ignored).

use cpis_aws::{load_sdk_config, DynamoStore, Settings, SqsQueue};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cpis_aws::telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = load_sdk_config().await;
    let store = DynamoStore::from_config(&sdk, &settings);
    let queue = SqsQueue::from_config(&sdk, &settings)?;
    let (store, queue) = (&store, &queue);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let relayed =
                outbox_relay::sweep(store, queue, time::OffsetDateTime::now_utc()).await?;
            tracing::info!(relayed, "outbox swept");
            Ok::<_, Error>(serde_json::json!({ "relayed": relayed }))
        },
    ))
    .await
}
