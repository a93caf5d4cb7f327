//! API Gateway (HTTP API, payload v2) for the three HTTP functions: the JWT
//! authorizer's claims, attached to each request for
//! [`cpis_http::Authenticator::Gateway`], and the state such a function runs
//! with.
//!
//! The claims code itself is `cpis_http::lambda` (feature `lambda`, which
//! brings `lambda_http` but no AWS SDK, so the check-path benchmark runs the
//! same conversion without the SDK); it is re-exported here so that the
//! functions take all their glue from this crate. It moves here whole once
//! `crates/http/src/lib.rs` is free to lose its `lambda` module.

use std::sync::Arc;

use cpis_domain::ports::{AsnQueue, QueueError};
use cpis_domain::{Pseudonymiser, SystemClock, VisibilityPolicy};
use cpis_http::{AppState, Authenticator};

pub use cpis_http::lambda::{attach_gateway_claims, gateway_app, gateway_claims};

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

/// The queue of a function whose routes never hand an ASN to the dispatcher
/// (uploads, the directory, the inbox, history). It refuses, so such a
/// function needs neither the queue's URL nor `sqs:SendMessage`; a wiring
/// fault that did reach it would leave the ASN in the outbox for the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQueue;

impl AsnQueue for NoQueue {
    async fn enqueue(&self, _ids: &[String]) -> Result<(), QueueError> {
        Err(QueueError("this function has no ASN queue".to_owned()))
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
