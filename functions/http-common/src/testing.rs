//! API Gateway HTTP API (payload v2) event fixtures as requests, through the
//! same conversion `lambda_http::run` applies to a real invocation. Tests only:
//! these helpers panic on a malformed fixture.

use std::sync::Arc;

use axum::Router;
use cpis_domain::{ManualClock, Pseudonymiser, VisibilityPolicy};
use cpis_http::AppState;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use lambda_http::request::LambdaRequest;
use time::macros::datetime;
use time::OffsetDateTime;
use tower::ServiceExt;

/// The time the `events/apigw` fixtures were "sent" (their `timeEpoch`).
pub const FIXTURE_TIME: OffsetDateTime = datetime!(2025-03-01 10:00 UTC);

/// A function's state as `main` builds it, with the clock held at `now`.
pub fn state_at<S, Q>(now: OffsetDateTime, store: S, queue: Q) -> AppState<S, Q> {
    AppState {
        clock: Arc::new(ManualClock::new(now)),
        ..crate::gateway_state(VisibilityPolicy::default(), pseudonymiser(), store, queue)
    }
}

/// The request a Lambda invocation with this event would hand the router.
pub fn gateway_request(event_json: &str) -> lambda_http::Request {
    let event: LambdaRequest = serde_json::from_str(event_json)
        .unwrap_or_else(|e| panic!("not an API Gateway event: {e}"));
    assert!(
        matches!(event, LambdaRequest::ApiGatewayV2(_)),
        "the fixture must be an HTTP API payload v2 event"
    );
    lambda_http::Request::from(event)
}

/// The fixture with one authorizer claim replaced (for instance the council's
/// ODS code, so that tests sharing one moto server never share a topic).
pub fn with_claim(event_json: &str, claim: &str, value: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(event_json).unwrap_or_else(|e| panic!("fixture: {e}"));
    let claims = event
        .pointer_mut("/requestContext/authorizer/jwt/claims")
        .and_then(serde_json::Value::as_object_mut)
        .unwrap_or_else(|| panic!("the fixture has no authorizer claims"));
    claims.insert(claim.to_owned(), value.into());
    event.to_string()
}

/// The fixture with its body replaced.
pub fn with_body(event_json: &str, body: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(event_json).unwrap_or_else(|e| panic!("fixture: {e}"));
    event["body"] = body.into();
    event["isBase64Encoded"] = false.into();
    event.to_string()
}

/// The fixture with its raw path replaced (and the route key's path with it).
pub fn with_path(event_json: &str, path: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(event_json).unwrap_or_else(|e| panic!("fixture: {e}"));
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event.to_string()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
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

/// Runs one event through a function's router.
pub async fn invoke(router: &Router, event_json: &str) -> Answer {
    let response = router
        .clone()
        .oneshot(gateway_request(event_json))
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
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status.is_client_error() || status.is_server_error() {
        capture_error_body(&text);
    }
    Answer {
        status,
        headers,
        text,
    }
}

/// Every error body goes to the privacy scan (`tests/suites/90-privacy-scan.sh`)
/// when `tests/run.sh` collects them; one file per process.
fn capture_error_body(text: &str) {
    use std::io::Write;
    let Ok(dir) = std::env::var("CPIS_PRIVACY_CAPTURE_DIR") else {
        return;
    };
    let path = std::path::Path::new(&dir)
        .join(format!("functions-{}-error-bodies.txt", std::process::id()));
    std::fs::create_dir_all(&dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        })
        .and_then(|mut file| file.write_all(format!("{text}\n").as_bytes()))
        .unwrap_or_else(|e| panic!("writing to the privacy capture directory: {e}"));
}

/// A fixed pseudonymisation key for tests.
pub fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(&[7u8; 32]).unwrap_or_else(|_| panic!("a 32-byte key is strong enough"))
}
