//! Composition root: typed settings, the clients once at init, the OpenID
//! Connect client secret read once from Secrets Manager and the issuer
//! discovered (a missing or malformed variable, an unreadable secret or an
//! issuer that cannot be used stops the cold start with one JSON error line
//! naming the variable), then the runtime.

use cpis_http::portal::{PortalConfig, SignIn};
use cpis_lambda::settings::FromEnv;
use cpis_lambda::{Clients, PortalSettings, StartError};

// mimalloc: the check path takes a quarter fewer instructions than with
// glibc's malloc (BENCHMARKS.md 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cpis_lambda::start(run).await
}

async fn run() -> Result<(), StartError> {
    let settings = PortalSettings::from_env()?;
    let clients = Clients::from_env()?;
    let api = &settings.check.api;
    let pseudonymiser = clients.pseudonymiser(&api.pseudonym_key).await?;
    let oidc = settings.oidc.sign_in(&clients).await?;
    // The directory page keeps the council's SNS subscriptions in step, as
    // the API's update does; the check page queues its ASNs as the check
    // function does (the relay sends any the queue missed).
    let store = clients
        .store(&api.tables)
        .with_topic_sync(clients.topic_sync(&settings.topic_sync));
    let queue = clients.queue(&settings.check.asn_queue_url);
    let state = cpis_lambda::gateway_state(api.visibility, pseudonymiser, store, queue);
    let config = PortalConfig {
        // No data directory here: OpenID Connect is the only way in.
        sign_in: SignIn {
            ticket: None,
            oidc: Some(oidc),
        },
        // Always HTTPS behind API Gateway.
        secure_cookies: true,
        feed_stale_after: settings.feed_stale_after,
    };
    Ok(lambda_http::run(portal::app(state, config)).await?)
}
