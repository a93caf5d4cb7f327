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
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("reading the body: {e}"))
        .to_bytes();
    answer(status, headers, &bytes)
}

/// One API Gateway event through a router as a Lambda function runs it
/// ([`crate::lambda::respond`]), and its payload 2.0 answer read back:
/// the status, the headers (each `cookies` entry as a `set-cookie`) and the
/// body, decoded when it came as base64.
#[cfg(feature = "lambda")]
pub async fn invoke(router: &Router, event: lambda_http::request::LambdaRequest) -> Response {
    use base64::Engine as _;
    cpis_telemetry::capture::tracing();
    let event = lambda_http::LambdaEvent::new(event, lambda_http::Context::default());
    let raw = crate::lambda::respond(router.clone(), event)
        .await
        .unwrap_or_else(|e| panic!("the invocation failed: {e}"));
    let envelope: serde_json::Value =
        serde_json::from_str(raw.get()).unwrap_or_else(|e| panic!("the answer is not JSON: {e}"));
    let status = envelope["statusCode"]
        .as_u64()
        .and_then(|code| StatusCode::from_u16(u16::try_from(code).ok()?).ok())
        .unwrap_or_else(|| panic!("no status code: {envelope}"));
    let mut headers = HeaderMap::new();
    let named = envelope["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str(), value));
    let cookies = envelope["cookies"].as_array().into_iter().flatten();
    for (name, value) in named.chain(cookies.map(|cookie| ("set-cookie", cookie))) {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("header name {name}: {e}"));
        let value = value
            .as_str()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
            .unwrap_or_else(|| panic!("header {name}: {value}"));
        headers.append(name, value);
    }
    let body = envelope["body"].as_str().unwrap_or_default();
    let bytes = if envelope["isBase64Encoded"] == true {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_else(|e| panic!("the body is not base64: {e}"))
    } else {
        body.as_bytes().to_vec()
    };
    answer(status, headers, &bytes)
}

/// The answer read whole, its headers and any error body handed to the
/// privacy capture.
fn answer(status: StatusCode, headers: HeaderMap, bytes: &[u8]) -> Response {
    capture_headers(&headers);
    let text = String::from_utf8_lossy(bytes).into_owned();
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
