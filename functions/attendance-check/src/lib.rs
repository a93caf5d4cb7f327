//! The attendance check behind API Gateway: `POST /v1/checks` and the FHIR
//! CareTeam, Flag and metadata interactions, from the shared `cpis-http` router.

use axum::Router;
use cpis_http::{CheckStore, Queue};

pub fn app<S: CheckStore, Q: Queue>(state: cpis_http::AppState<S, Q>) -> Router {
    cpis_lambda::gateway_app(cpis_http::check_router(state))
}
