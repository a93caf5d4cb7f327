//! Composition root: typed settings and the clients once at init (a missing
//! or malformed variable stops the cold start with one JSON error line naming
//! it), then the runtime.

// The runtime's service future nests the dispatcher's per-message spans and
// the SDK's calls deeper than rustc's default layout query depth.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::SqsEvent;
use cpis_lambda::settings::FromEnv;
use cpis_lambda::{Clients, DispatchSettings, StartError};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cpis_lambda::start(run).await
}

async fn run() -> Result<(), StartError> {
    let settings = DispatchSettings::from_env()?;
    let clients = Clients::from_env()?;
    let store = clients.store(&settings.tables);
    let channel = clients.channel(&settings.topic_arn_prefix);
    let (store, channel, view_url) = (&store, &channel, settings.view_url.as_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let now = time::OffsetDateTime::now_utc();
        let batch =
            notification_dispatch::handle_batch(store, channel, view_url, &event.payload, now);
        Ok::<_, Error>(batch.await)
    }))
    .await?;
    Ok(())
}
