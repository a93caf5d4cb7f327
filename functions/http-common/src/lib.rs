//! What the three HTTP functions (`plan-upload`, `attendance-check`,
//! `history-query`) share, so each `main.rs` stays a composition root and
//! each `lib.rs` only says which routers it serves.

use std::sync::Arc;

use cpis_aws::{ConfigError, Settings};
use cpis_domain::ports::{AsnQueue, StoreError};
use cpis_domain::{Pseudonymiser, SystemClock, VisibilityPolicy};
use cpis_http::{AppState, Authenticator};

#[cfg(feature = "test-support")]
pub mod testing;

/// The state every HTTP function runs with: API Gateway's verified claims,
/// the wall clock, and the visibility policy from the settings.
pub fn gateway_state<S, Q>(
    policy: VisibilityPolicy,
    pseudonymiser: Pseudonymiser,
    store: S,
    queue: Q,
) -> AppState<S, Q> {
    AppState {
        store,
        queue,
        clock: Arc::new(SystemClock),
        policy,
        pseudonymiser,
        auth: Authenticator::Gateway,
        volume: Default::default(),
    }
}

/// Settings, the one `SdkConfig` and the pseudonymiser, read once at init;
/// any failure stops the cold start with the variable's name.
pub async fn init() -> Result<(Settings, aws_config::SdkConfig, Pseudonymiser), ConfigError> {
    let settings = Settings::from_env()?;
    let sdk = cpis_aws::load_sdk_config().await;
    let pseudonymiser = settings.pseudonymiser(&sdk).await?;
    Ok((settings, sdk, pseudonymiser))
}

/// The queue of a function whose routes never hand an ASN to the dispatcher
/// (uploads, the directory, the inbox, history). It refuses, so such a
/// function needs neither the queue's URL nor `sqs:SendMessage`; a wiring
/// fault that did reach it would leave the ASN in the outbox for the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQueue;

impl AsnQueue for NoQueue {
    async fn enqueue(&self, _ids: &[String]) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            "this function has no ASN queue".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_refusing_queue_refuses() {
        assert!(NoQueue.enqueue(&["a".to_owned()]).await.is_err());
    }
}
