//! Composition root: settings, the one `SdkConfig` and the clients once at
//! init (a missing variable stops the cold start), then the runtime.

use cpis_aws::{DynamoStore, SqsQueue};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cpis_telemetry::init(cpis_telemetry::Style::Lambda);
    let (settings, sdk, pseudonymiser) = http_common::init().await?;
    let store = DynamoStore::from_config(&sdk, &settings);
    // ASNs are written to the outbox with the access; the queue only speeds
    // them to the dispatcher (the relay sends any the queue missed).
    let queue = SqsQueue::from_config(&sdk, &settings)?;
    let state = http_common::gateway_state(settings.visibility, pseudonymiser, store, queue);
    lambda_http::run(attendance_check::app(state)).await
}
