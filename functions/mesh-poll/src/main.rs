//! Composition root: typed settings, the store and the MESH client once at
//! init (a missing or malformed variable, or a MESH secret that cannot be
//! read or used, stops the cold start with one JSON error line naming the
//! variable), the handshake, then the runtime.
//! EventBridge invokes it every 5 minutes; the operator invokes it directly
//! to link and unlink councils' mailboxes (README, "MESH on AWS").

use cpis_domain::{Clock, SystemClock};
use cpis_lambda::settings::{FromEnv, MeshTimeouts};
use cpis_lambda::{Clients, PollSettings, StartError};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use mesh_poll::{Handshakes, MeshPoll};

// mimalloc: the check path takes a quarter fewer instructions than with
// glibc's malloc (BENCHMARKS.md 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cpis_lambda::start(run).await
}

async fn run() -> Result<(), StartError> {
    let settings = PollSettings::from_env()?;
    let clients = Clients::from_env()?;
    let poller = MeshPoll {
        mailbox: clients
            .mesh_client(&settings.mesh, MeshTimeouts::POLL)
            .await?,
        store: clients.store(&settings.tables),
        exchange: settings.exchange,
        handshakes: Handshakes::default(),
    };
    poller.start(SystemClock.now()).await?;
    let poller = &poller;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, Error>(poller.handle(&event.payload, &SystemClock).await?)
        },
    ))
    .await?;
    Ok(())
}
