//! API Gateway (HTTP API, payload v2) support for the Lambda functions: the
//! JWT authorizer has verified the token; its claims become [`GatewayClaims`]
//! and go through the same claims-to-principal mapping as local tokens.

use axum::extract::Request;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

use crate::auth::{CallerClaims, GatewayClaims};

/// The claims the authorizer verified, if the request carries a complete set.
pub fn gateway_claims(request: &Request) -> Option<CallerClaims> {
    let RequestContext::ApiGatewayV2(context) = request.request_context_ref()? else {
        return None;
    };
    let claims = &context.authorizer.as_ref()?.jwt.as_ref()?.claims;
    let get = |name: &str| claims.get(name).cloned();
    Some(CallerClaims {
        sub: get("sub")?,
        role: get("role")?,
        ods_code: get("ods_code")?,
        rbac: get("rbac"),
        org_name: get("org_name"),
        setting: get("setting"),
        job_role: get("job_role"),
        job_role_name: get("job_role_name"),
    })
}

/// Middleware for Lambda routers: moves the authorizer's claims into the
/// request extensions, where [`crate::Authenticator::Gateway`] reads them.
pub async fn attach_gateway_claims(
    mut request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(claims) = gateway_claims(&request) {
        request.extensions_mut().insert(GatewayClaims(claims));
    }
    next.run(request).await
}

/// A capability router made ready for `lambda_http::run`: the same 404/405
/// problems, request id and request log as the local server, with the
/// authorizer's claims attached before authentication runs. Build the
/// router's state with [`crate::Authenticator::Gateway`].
///
/// ```ignore
/// let app = cpis_http::lambda::gateway_app(cpis_http::check_router(state));
/// lambda_http::run(app).await
/// ```
pub fn gateway_app(router: axum::Router) -> axum::Router {
    crate::finish(router).layer(axum::middleware::from_fn(attach_gateway_claims))
}
