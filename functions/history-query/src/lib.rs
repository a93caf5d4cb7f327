//! The history query behind API Gateway: `POST /v1/history` and the FHIR
//! AuditEvent search, from the shared `cpis-http` router.

use axum::Router;
use cpis_http::{HistoryStore, Queue};

pub fn app<S: HistoryStore, Q: Queue>(state: cpis_http::AppState<S, Q>) -> Router {
    cpis_lambda::gateway_app(cpis_http::history_router(state))
}
