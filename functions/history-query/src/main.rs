//! Composition root: typed settings, the clients once at init (a missing or
//! malformed variable stops the cold start with one JSON error line naming
//! it), then the runtime.

use cpis_lambda::settings::{FromEnv, HistorySettings};
use cpis_lambda::{Clients, NoQueue, StartError};

// mimalloc: the check path takes a quarter fewer instructions than with
// glibc's malloc (BENCHMARKS.md 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cpis_lambda::start(run).await
}

async fn run() -> Result<(), StartError> {
    let settings = HistorySettings::from_env()?;
    let clients = Clients::from_env()?;
    let pseudonymiser = clients.pseudonymiser(&settings.pseudonym_key).await?;
    // Reads only (and audit appends): its IAM policy grants no other write.
    let store = clients.store(&settings.tables);
    let state = cpis_lambda::gateway_state(settings.visibility, pseudonymiser, store, NoQueue);
    Ok(cpis_http::lambda::run(history_query::app(state)).await?)
}
