//! Composition root: settings, the one `SdkConfig` and the clients once at
//! init (a missing variable stops the cold start), then the runtime.

use cpis_aws::DynamoStore;
use http_common::NoQueue;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cpis_telemetry::init(cpis_telemetry::Style::Lambda);
    let (settings, sdk, pseudonymiser) = http_common::init().await?;
    // Reads only (and audit appends): its IAM policy grants no other write.
    let store = DynamoStore::from_config(&sdk, &settings);
    let state = http_common::gateway_state(settings.visibility, pseudonymiser, store, NoQueue);
    lambda_http::run(history_query::app(state)).await
}
