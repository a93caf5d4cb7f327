//! Test support (feature `test-support`): runs one request through a router
//! in process and reads the whole answer, and hands what the service put out
//! to the privacy scan (`tests/suites/90-privacy-scan.sh`) when
//! `CPIS_PRIVACY_CAPTURE_DIR` is set (`tests/run.sh` sets it): every error
//! body, and every tracing event the process emits (our crates at DEBUG,
//! libraries at INFO, as the functions log them).
//! Tests only: these helpers panic on what a test should never meet.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, Once};

use axum::body::{Bytes, HttpBody};
use axum::{BoxError, Router};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;

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
    capture_tracing();
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
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status.is_client_error() || status.is_server_error() {
        append_capture("error-bodies", &text);
    }
    Response {
        status,
        headers,
        text,
    }
}

/// The workspace's crates, whose DEBUG output the capture keeps.
const OUR_CRATES: &[&str] = &[
    "cpis",
    "cpis_http",
    "cpis_domain",
    "cpis_fhir",
    "cpis_aws",
    "cpis_store_memory",
    "cpis_store_sqlite",
    "http_common",
    "plan_upload",
    "attendance_check",
    "history_query",
    "notification_dispatch",
    "outbox_relay",
];

/// Sends this process's tracing events (JSON lines, filtered as above) to the
/// capture directory, once. Does nothing without a capture directory, or when
/// the test installed a subscriber of its own first.
pub fn capture_tracing() {
    static START: Once = Once::new();
    START.call_once(|| {
        let Some(path) = capture_path("logs") else {
            return;
        };
        let file = open_for_append(&path);
        // Our code at DEBUG; libraries at INFO, as the functions run them
        // (`cpis_aws::telemetry` caps them there whatever the level asked).
        let filter = OUR_CRATES
            .iter()
            .fold(EnvFilter::new("info"), |filter, krate| {
                match format!("{krate}=debug").parse() {
                    Ok(directive) => filter.add_directive(directive),
                    Err(_) => filter,
                }
            });
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(Mutex::new(file))
            .try_init();
    });
}

/// `$CPIS_PRIVACY_CAPTURE_DIR/in-process-<pid>-<kind>.txt`: one file per
/// test process and kind, named so the scan can tell logs from error bodies.
fn capture_path(kind: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CPIS_PRIVACY_CAPTURE_DIR")?;
    Some(PathBuf::from(dir).join(format!("in-process-{}-{kind}.txt", std::process::id())))
}

fn append_capture(kind: &str, text: &str) {
    if let Some(path) = capture_path(kind) {
        open_for_append(&path)
            .write_all(format!("{text}\n").as_bytes())
            .unwrap_or_else(|e| panic!("writing to the privacy capture directory: {e}"));
    }
}

fn open_for_append(path: &std::path::Path) -> File {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("creating the privacy capture directory: {e}"));
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}
