//! Composition root: typed settings, the clients once at init (a missing or
//! malformed variable stops the cold start with one JSON error line naming
//! it), then the runtime.

use cpis_lambda::settings::FromEnv;
use cpis_lambda::{Clients, NoQueue, StartError, UploadSettings};

// mimalloc: the check path takes a quarter fewer instructions than with
// glibc's malloc (BENCHMARKS.md 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cpis_lambda::start(run).await
}

async fn run() -> Result<(), StartError> {
    let settings = UploadSettings::from_env()?;
    let clients = Clients::from_env()?;
    let pseudonymiser = clients.pseudonymiser(&settings.api.pseudonym_key).await?;
    // Directory updates keep the council's SNS subscriptions in step.
    let store = clients
        .store(&settings.api.tables)
        .with_topic_sync(clients.topic_sync(&settings.topic_sync));
    let state = cpis_lambda::gateway_state(settings.api.visibility, pseudonymiser, store, NoQueue);
    Ok(cpis_http::lambda::run(plan_upload::app(state)).await?)
}
