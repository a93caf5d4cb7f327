//! Test support (feature `test-support`): runs one request through a router
//! in process and reads the whole answer, and hands what the service put out
//! (every error body, every response header, and the process's tracing
//! output) to the privacy scan, through `cpis_telemetry::capture`.
//! Tests only: these helpers panic on what a test should never meet.

use axum::body::{Bytes, HttpBody};
use axum::{BoxError, Router};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.text))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// Runs one request through `router`. The first call in a process also
/// starts capturing its tracing output.
pub async fn respond<B>(router: &Router, request: Request<B>) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    cpis_telemetry::capture::tracing();
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let headers = response.headers().clone();
    capture_headers(&headers);
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("reading the body: {e}"))
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status.is_client_error() || status.is_server_error() {
        cpis_telemetry::capture::error_body(&text);
    }
    Response {
        status,
        headers,
        text,
    }
}

/// Hands every response header to the privacy capture: a header the
/// service echoes (the request id) must never carry an NHS number either.
fn capture_headers(headers: &HeaderMap) {
    let text: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    cpis_telemetry::capture::response_headers(&text);
}
