//! Where an error is shaped: RFC 9457 problem+json on the JSON API, FHIR
//! `OperationOutcome` under `/FHIR/`. Every answer that is not a handler's
//! own is rendered here, in the dialect of the route.

use axum::extract::MatchedPath;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cpis_domain::ports::StoreError;
use cpis_fhir::{FhirError, FHIR_JSON};
use serde_json::Value;

use crate::problem::Problem;
use crate::routes::{self, Dialect};

/// A FHIR JSON body with its status.
pub(crate) fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// A FHIR error as an `OperationOutcome` response.
pub(crate) fn outcome_response(error: &FhirError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = fhir_json(status, &error.operation_outcome());
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// A JSON API answer: the body, or the problem.
pub(crate) fn json_answer<T: serde::Serialize>(result: Result<T, Problem>) -> Response {
    match result {
        Ok(body) => json_ok(&body),
        Err(problem) => problem.into_response(),
    }
}

/// `200 application/json` with `body`, serialised once into one buffer
/// (`axum::Json` writes through `BytesMut`'s `io::Write`, about 3× the
/// instructions per token). A body that cannot be serialised (none of the
/// API's types) is the service's fault: 503, like a store that cannot answer.
pub(crate) fn json_ok<T: serde::Serialize>(body: &T) -> Response {
    // Most answers fit; a larger one grows the buffer once or twice.
    let mut bytes = Vec::with_capacity(4096);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "an answer could not be serialised");
            Problem::unavailable().into_response()
        }
    }
}

/// A use-case error in the FHIR dialect (the JSON dialect's mappings are
/// `From` impls in [`crate::problem`]).
pub(crate) trait IntoFhir {
    fn into_fhir(self) -> FhirError;
}

/// A store that could not answer: logged, and `Unavailable` (503).
impl IntoFhir for StoreError {
    fn into_fhir(self) -> FhirError {
        tracing::error!(error = %self, "store error");
        FhirError::Unavailable
    }
}

/// An error in the dialect of the route: problem+json or a FHIR OperationOutcome.
pub(crate) fn error_response(dialect: Dialect, problem: Problem, fhir: FhirError) -> Response {
    match dialect {
        Dialect::Json => problem.into_response(),
        Dialect::Fhir => outcome_response(&fhir),
        Dialect::Html => crate::portal::page::error_page(problem.status),
    }
}

/// Under `/FHIR/` errors are OperationOutcomes, for unknown paths and methods too.
pub(crate) fn is_fhir(uri: &Uri) -> bool {
    uri.path().starts_with("/FHIR/")
}

/// The fallback for unknown paths: 404 in the path's dialect.
pub async fn not_found(uri: Uri) -> Response {
    if crate::portal::is_portal(uri.path()) {
        return crate::portal::page::not_found();
    }
    if is_fhir(&uri) {
        return outcome_response(&FhirError::UnknownEndpoint);
    }
    Problem::not_found("route").into_response()
}

/// The fallback for a known path with a method it does not take.
pub async fn method_not_allowed(uri: Uri, matched: Option<MatchedPath>) -> Response {
    method_not_allowed_response(&uri, matched.as_ref().map(MatchedPath::as_str))
}

/// 405 in the path's dialect, with `Allow` listing the route table's
/// methods for the matched route when it is known.
pub(crate) fn method_not_allowed_response(uri: &Uri, route: Option<&str>) -> Response {
    let mut response = if crate::portal::is_portal(uri.path()) {
        crate::portal::page::error_page(StatusCode::METHOD_NOT_ALLOWED)
    } else if is_fhir(uri) {
        outcome_response(&FhirError::MethodNotAllowed)
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
            routes::all_routes()
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
