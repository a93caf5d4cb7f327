//! Composition root: settings, the one `SdkConfig` and the clients once at
//! init (a missing variable stops the cold start), then the runtime.

use cpis_aws::{DynamoStore, TopicSync};
use http_common::NoQueue;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cpis_telemetry::init(cpis_telemetry::Style::Lambda);
    let (settings, sdk, pseudonymiser) = http_common::init().await?;
    // Directory updates keep the council's SNS subscriptions in step.
    let store = DynamoStore::from_config(&sdk, &settings)
        .with_topic_sync(TopicSync::from_config(&sdk, &settings));
    let state = http_common::gateway_state(settings.visibility, pseudonymiser, store, NoQueue);
    lambda_http::run(plan_upload::app(state)).await
}
