//! `GET /health/ready`: whether the embedded service can take writes and
//! audit events now. `GET /health` stays liveness (the process answers).
//!
//! 200 `{"status":"ready","components":{...}}` or 503
//! `{"status":"not_ready","components":{...}}`, where each of `database`,
//! `writes` and `audit` is `{"status":"ok"}` or `{"status":"failing",
//! "reason":"..."}`. Reasons are the store's own words and SQLite error
//! codes: never personal data and never a path (the route is anonymous, for
//! load balancers and supervisors). A not-ready answer is logged at error
//! level once per change, with the failing components.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cpis_store_sqlite::{Component, Readiness, SqliteStore};
use serde_json::{json, Value};

/// The route table's entry: the fail-closed gate admits only what it lists.
pub const PATH: &str = cpis_http::routes::HEALTH_READY.path;

/// How long the write probe may wait for the writer (it queues behind the
/// writes of the moment, each a few milliseconds).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Probe {
    store: SqliteStore,
    /// The last answer was not ready: log each change once.
    degraded: Arc<AtomicBool>,
}

pub fn router(store: SqliteStore) -> Router {
    let probe = Probe {
        store,
        degraded: Arc::default(),
    };
    Router::new().route(PATH, get(move || ready(probe.clone())))
}

async fn ready(probe: Probe) -> Response {
    let readiness = probe.store.readiness(PROBE_TIMEOUT).await;
    let ready = readiness.is_ready();
    let was_degraded = probe.degraded.swap(!ready, Ordering::SeqCst);
    if !ready && !was_degraded {
        tracing::error!(
            failing = %failing(&readiness).join(","),
            "not ready: the store cannot take writes or audit events"
        );
    } else if ready && was_degraded {
        tracing::warn!("ready again: the store takes writes and audit events");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body(&readiness))).into_response()
}

fn failing(readiness: &Readiness) -> Vec<&'static str> {
    [
        ("database", &readiness.database),
        ("writes", &readiness.writes),
        ("audit", &readiness.audit),
    ]
    .into_iter()
    .filter(|(_, c)| !c.is_ok())
    .map(|(name, _)| name)
    .collect()
}

fn component(component: &Component) -> Value {
    match component {
        Component::Ok => json!({ "status": "ok" }),
        Component::Failing(reason) => json!({ "status": "failing", "reason": reason }),
    }
}

fn body(readiness: &Readiness) -> Value {
    json!({
        "status": if readiness.is_ready() { "ready" } else { "not_ready" },
        "components": {
            "database": component(&readiness.database),
            "writes": component(&readiness.writes),
            "audit": component(&readiness.audit),
        }
    })
}
