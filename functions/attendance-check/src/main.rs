//! Composition root: typed settings, the clients once at init (a missing or
//! malformed variable stops the cold start with one JSON error line naming
//! it), then the runtime.

use cpis_lambda::settings::FromEnv;
use cpis_lambda::{CheckSettings, Clients, StartError};

// mimalloc: the check path takes a quarter fewer instructions than with
// glibc's malloc (BENCHMARKS.md 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cpis_lambda::start(run).await
}

async fn run() -> Result<(), StartError> {
    let settings = CheckSettings::from_env()?;
    let clients = Clients::from_env()?;
    let pseudonymiser = clients.pseudonymiser(&settings.api.pseudonym_key).await?;
    let store = clients.store(&settings.api.tables);
    // ASNs are written to the outbox with the access; the queue only speeds
    // them to the dispatcher (the relay sends any the queue missed).
    let queue = clients.queue(&settings.asn_queue_url);
    let state = cpis_lambda::gateway_state(settings.api.visibility, pseudonymiser, store, queue);
    Ok(cpis_http::lambda::run(attendance_check::app(state)).await?)
}
