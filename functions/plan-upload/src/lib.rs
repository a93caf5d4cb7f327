//! Plan upload behind API Gateway: the council's uploads and plans, its
//! directory entry and ASN inbox, and `GET /health`. The routes are the
//! shared ones from `cpis-http`; this crate only says which it serves.

use axum::Router;
use cpis_http::{CouncilStore, Queue};

pub fn app<S: CouncilStore, Q: Queue>(state: cpis_http::AppState<S, Q>) -> Router {
    cpis_lambda::gateway_app(
        Router::new()
            .merge(cpis_http::health_router())
            .merge(cpis_http::plan_upload_router(state.clone()))
            .merge(cpis_http::council_router(state)),
    )
}
