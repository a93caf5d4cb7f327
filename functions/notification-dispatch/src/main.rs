//! Composition root: configuration and clients once at init, then the runtime.

use aws_lambda_events::sqs::SqsEvent;
use cpis_aws::{load_sdk_config, DynamoStore, Settings, SnsChannel};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cpis_telemetry::init(cpis_telemetry::Style::Lambda);
    let settings = Settings::from_env()?;
    let sdk = load_sdk_config().await;
    let store = DynamoStore::from_config(&sdk, &settings);
    let channel = SnsChannel::from_config(&sdk, &settings)?;
    let view_url = settings.require_view_url()?.to_owned();
    let (store, channel, view_url) = (&store, &channel, view_url.as_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            notification_dispatch::handle_batch(
                store,
                channel,
                view_url,
                &event.payload,
                time::OffsetDateTime::now_utc(),
            )
            .await,
        )
    }))
    .await
}
