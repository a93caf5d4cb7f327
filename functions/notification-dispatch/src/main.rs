//! Composition root: typed settings and the clients once at init (a missing
//! or malformed variable, or a MESH secret that cannot be read or used, stops
//! the cold start with one JSON error line naming it), then the runtime.
//! Without MESH (no `CPIS_MESH_SECRET_ARN`) the file leg is `NoFiles`: the
//! dispatcher is exactly what it was.

// The runtime's service future nests the dispatcher's per-message spans and
// the SDK's calls deeper than rustc's default layout query depth.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::SqsEvent;
use cpis_aws::{DynamoStore, SnsChannel};
use cpis_domain::{FileLeg, MeshFiles, NoFiles};
use cpis_lambda::settings::{FromEnv, MeshTimeouts};
use cpis_lambda::{Clients, DispatchSettings, StartError};
use cpis_mesh::MeshAsnFiles;
use lambda_runtime::{service_fn, Error, LambdaEvent};

// mimalloc: the check path takes a quarter fewer instructions than with
// glibc's malloc (BENCHMARKS.md 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cpis_lambda::start(run).await
}

async fn run() -> Result<(), StartError> {
    let settings = DispatchSettings::from_env()?;
    let clients = Clients::from_env()?;
    let store = clients.store(&settings.tables);
    let channel = clients.channel(&settings.topic_arn_prefix);
    let view_url = settings.view_url.as_str();
    match &settings.asn_files {
        None => serve(&store, &channel, &NoFiles, view_url).await,
        Some(asn_files) => {
            let client = clients
                .mesh_client(&asn_files.mesh, MeshTimeouts::DISPATCH)
                .await?;
            let files = MeshFiles {
                map: store.clone(),
                channel: MeshAsnFiles::new(client, asn_files.workflow.clone()),
            };
            serve(&store, &channel, &files, view_url).await
        }
    }
}

async fn serve<F: FileLeg>(
    store: &DynamoStore,
    channel: &SnsChannel,
    files: &F,
    view_url: &str,
) -> Result<(), StartError> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let now = time::OffsetDateTime::now_utc();
        let batch = notification_dispatch::handle_batch_with(
            store,
            channel,
            files,
            view_url,
            &event.payload,
            now,
        );
        Ok::<_, Error>(batch.await)
    }))
    .await?;
    Ok(())
}
