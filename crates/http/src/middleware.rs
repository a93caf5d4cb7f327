//! The layers every request passes: the request id and log line, the URL
//! and header limits, the route-table gate, and authentication with the
//! audit of every refusal.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cpis_domain::ports::AuditTrail;
use cpis_domain::AuditOutcome;
use tracing::Instrument;

use crate::dialect::{error_response, is_fhir, method_not_allowed_response, outcome_response};
use crate::portal::assets;
use crate::problem::Problem;
use crate::request_id::{incoming_id, RequestId, REQUEST_ID};
use crate::routes::{self, RouteSpec};
use crate::state::AppState;

/// Longest request target (path and query) read: 8 KB, the size RFC 9110
/// §4.1 recommends every server support at least. Longer: 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes (names and values, `Authorization` aside) read. More: 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// 414 or 431 in the dialect of the path, before any routing or handler.
fn oversized_head(request: &Request) -> Option<Response> {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    let headers: usize = request
        .headers()
        .iter()
        // A credential is bounded by authentication (8 KB, then 401).
        .filter(|(name, _)| *name != header::AUTHORIZATION)
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let fhir = is_fhir(request.uri());
    let portal = crate::portal::is_portal(request.uri().path());
    let (status, code, title, why) = if uri > MAX_URI_BYTES {
        (
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            "URI too long",
            if fhir {
                "the URL is longer than 8 KB; a search takes only patient:identifier"
            } else {
                "the URL is longer than 8 KB; this API takes its data in the body"
            },
        )
    } else if headers > MAX_HEADER_BYTES {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            "Request headers too large",
            "the request headers are larger than 64 KB in all; send only the headers the API documents",
        )
    } else {
        return None;
    };
    Some(if portal {
        crate::portal::page::error_page(status)
    } else if fhir {
        outcome_response(&cpis_fhir::FhirError::TooLarge {
            status: status.as_u16(),
            why,
        })
    } else {
        Problem::new(status, code, title, why).into_response()
    })
}

/// Outermost layer: request id, a span, one log line per request, the URL
/// and header size limits, and `Cache-Control: no-store` on every answer
/// (most carry personal data, and none is worth a shared cache's copy).
pub async fn observe(mut request: Request, next: Next) -> Response {
    let id = incoming_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    // The route template, never the concrete path or the query string.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    // Everything logged while the request runs (store errors, the dispatcher
    // hand-off) carries the request id and route through this span.
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let portal = crate::portal::is_portal(request.uri().path());
    let started = Instant::now();
    let mut response = match oversized_head(&request) {
        Some(refused) => refused,
        None => next.run(request).instrument(span.clone()).await,
    };
    let status = response.status().as_u16();
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, latency_us, "request failed");
        } else {
            tracing::info!(status, latency_us, "request");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    // Only the portal's content-addressed assets are worth keeping.
    let cache = if response.extensions().get::<assets::Immutable>().is_some() {
        "public, max-age=31536000, immutable"
    } else {
        "no-store"
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if portal {
        for (name, value) in crate::portal::SECURITY_HEADERS {
            headers.insert(*name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Fail closed: a request whose method and matched route are not in
/// [`routes::ROUTES`] never reaches a handler or the authentication layer
/// (axum would otherwise answer `HEAD` with the `GET` handler, unauthenticated
/// and unaudited). 405 in the route's dialect, for every caller. Applied to
/// every served router by [`crate::finish`].
pub async fn route_table_gate(request: Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    match matched {
        Some(route) if routes::lookup(request.method().as_str(), &route).is_none() => {
            method_not_allowed_response(request.uri(), Some(&route))
        }
        _ => next.run(request).await,
    }
}

/// Authentication for one route, its spec bound when the router is built
/// ([`crate::endpoint`]): refuses a method the spec does not name (axum
/// would answer `HEAD` with the `GET` handler) with 405, a missing or
/// invalid credential with 401 and a caller the spec does not admit with
/// 403, each in the route's dialect and audited, before any handler or
/// store read runs. Leaves the spec and the [`cpis_domain::Principal`] in
/// the request for the typed caller extractors ([`crate::caller`]).
pub async fn authenticate<S, Q>(
    State((state, spec)): State<(AppState<S, Q>, &'static RouteSpec)>,
    mut request: Request,
    next: Next,
) -> Response
where
    S: AuditTrail + Clone + Send + Sync + 'static,
    Q: Clone + Send + Sync + 'static,
{
    if request.method().as_str() != spec.method {
        return method_not_allowed_response(request.uri(), Some(spec.path));
    }
    request.extensions_mut().insert(spec);
    if spec.caller == routes::Caller::Anyone {
        return next.run(request).await;
    }
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().to_string()));
    let (mut parts, body) = request.into_parts();
    let principal = state.auth.claims(&parts).map(|claims| claims.principal());
    let principal = match principal {
        Some(Ok(principal)) => principal,
        Some(Err(_)) | None => {
            if let Some(action) = spec.action {
                state
                    .audit(None, action, None, AuditOutcome::Denied, &request_id)
                    .await;
            }
            let problem = Problem::unauthenticated("a valid bearer token is required");
            return error_response(spec.dialect, problem, cpis_fhir::FhirError::Unauthorised);
        }
    };
    if !spec.caller.admits(&principal) {
        if let Some(action) = spec.action {
            state
                .audit(
                    Some(&principal),
                    action,
                    None,
                    AuditOutcome::Denied,
                    &request_id,
                )
                .await;
        }
        return error_response(
            spec.dialect,
            Problem::forbidden(),
            cpis_fhir::FhirError::AccessDenied,
        );
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}
