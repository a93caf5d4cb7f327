//! Request id, logging, authentication and the audit of every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cpis_domain::ports::AuditTrail;
use cpis_domain::{AuditAction, AuditEvent, AuditOutcome, NhsNumber, Principal};
use tracing::Instrument;

use crate::problem::Problem;
use crate::routes::{self, Dialect, RouteSpec};
use crate::AppState;

/// The request's trace id: from `x-request-id` or `x-amzn-trace-id` when it
/// is [`strict_request_id`], otherwise a new UUID. Returned as
/// `x-request-id`, written in every log line of the request and stored as
/// the audit event's `trace_id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const REQUEST_ID: &str = "x-request-id";
/// Longest client-chosen id kept.
const MAX_REQUEST_ID: usize = 64;
/// A kept id holds fewer ASCII digits than this in all.
const MAX_ID_DIGITS: usize = 9;

/// Whether a client's id may be kept: 1 to 64 of `A-Z a-z 0-9 - _ . :`,
/// with at most 9 digits in all. The id is echoed, logged and stored beside
/// the child's pseudonym, so it must be unable to carry an NHS number in
/// any grouping or separator (`999-000-0018` once went into the audit
/// trail): ten digits cannot fit, whatever separates them. Anything else is
/// replaced, never echoed (a client UUID too: it can hold ten digits).
pub fn strict_request_id(value: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        && value.bytes().filter(u8::is_ascii_digit).count() <= MAX_ID_DIGITS
}

fn incoming_id(request: &Request) -> Option<String> {
    [REQUEST_ID, "x-amzn-trace-id"].iter().find_map(|name| {
        let value = request.headers().get(*name)?.to_str().ok()?;
        strict_request_id(value).then(|| value.to_owned())
    })
}

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
    Some(if fhir {
        crate::fhir::outcome_response(&cpis_fhir::FhirError::TooLarge {
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
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Under `/FHIR/` errors are OperationOutcomes, for unknown paths and methods too.
fn is_fhir(uri: &Uri) -> bool {
    uri.path().starts_with("/FHIR/")
}

pub async fn not_found(uri: Uri) -> Response {
    if is_fhir(&uri) {
        return crate::fhir::outcome_response(&cpis_fhir::FhirError::UnknownEndpoint);
    }
    Problem::not_found("route").into_response()
}

pub async fn method_not_allowed(uri: Uri, matched: Option<MatchedPath>) -> Response {
    method_not_allowed_response(uri.path(), matched.as_ref().map(MatchedPath::as_str))
}

/// 405 in the path's dialect, with `Allow` listing the route table's
/// methods for the matched route when it is known.
fn method_not_allowed_response(path: &str, route: Option<&str>) -> Response {
    let mut response = if path.starts_with("/FHIR/") {
        crate::fhir::outcome_response(&cpis_fhir::FhirError::MethodNotAllowed)
    } else {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Method not allowed",
            "this route does not take that method",
        )
        .into_response()
    };
    let allowed: Vec<&str> = route
        .map(|route| {
            routes::ROUTES
                .iter()
                .filter(|r| r.path == route)
                .map(|r| r.method)
                .collect()
        })
        .unwrap_or_default();
    if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
        if !allowed.is_empty() {
            response.headers_mut().insert(header::ALLOW, allow);
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
            method_not_allowed_response(request.uri().path(), Some(&route))
        }
        _ => next.run(request).await,
    }
}

/// An error in the dialect of the route: problem+json or a FHIR OperationOutcome.
pub fn error_response(dialect: Dialect, problem: Problem, fhir: cpis_fhir::FhirError) -> Response {
    match dialect {
        Dialect::Json => problem.into_response(),
        Dialect::Fhir => crate::fhir::outcome_response(&fhir),
    }
}

/// Writes one audit event; a failure is logged, never shown to the caller.
pub async fn audit<S: AuditTrail>(
    store: &S,
    principal: Option<&Principal>,
    action: AuditAction,
    subject: Option<String>,
    outcome: AuditOutcome,
    at: time::OffsetDateTime,
    request_id: &str,
) {
    let event = AuditEvent::new(principal, action, subject, outcome, at, request_id);
    if let Err(error) = store.append(&event).await {
        tracing::error!(request_id, %error, action = ?action, "could not write the audit event");
    }
}

impl<S: AuditTrail, Q> AppState<S, Q> {
    /// Audits one request; `child` is pseudonymised.
    pub(crate) async fn audit(
        &self,
        principal: Option<&Principal>,
        action: AuditAction,
        child: Option<&NhsNumber>,
        outcome: AuditOutcome,
        request_id: &RequestId,
    ) {
        let subject = child.map(|n| self.pseudonymiser.pseudonym(n));
        audit(
            &self.store,
            principal,
            action,
            subject,
            outcome,
            self.clock.now(),
            &request_id.0,
        )
        .await;
    }
}

/// Builds the principal for routes that need one; refuses the rest with
/// 401 (no valid credential) or 403 (wrong role), audited, before any handler
/// or store read runs.
pub async fn authenticate<S, Q>(
    State(state): State<AppState<S, Q>>,
    request: Request,
    next: Next,
) -> Response
where
    S: AuditTrail + Clone + Send + Sync + 'static,
    Q: Clone + Send + Sync + 'static,
{
    let spec: Option<&RouteSpec> = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| routes::lookup(request.method().as_str(), m.as_str()));
    let Some(spec) = spec else {
        // Not in the table: never let it through (the gate in `finish`
        // answers these first; this is the second lock).
        return method_not_allowed_response(request.uri().path(), None);
    };
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
    parts.extensions.insert(request_id);
    next.run(Request::from_parts(parts, body)).await
}
