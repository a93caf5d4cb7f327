//! The web portal behind API Gateway: every `/portal` page from the shared
//! `cpis_http::portal` router, on routes outside the JWT authorizer (each
//! page admits callers by the portal's own session, made by an OpenID
//! Connect sign-in).

use axum::Router;
use cpis_http::portal::{PortalConfig, PortalStore};
use cpis_http::Queue;

pub fn app<S: PortalStore, Q: Queue>(
    state: cpis_http::AppState<S, Q>,
    config: PortalConfig,
) -> Router {
    cpis_lambda::gateway_app(cpis_http::portal::router(state, config))
}
