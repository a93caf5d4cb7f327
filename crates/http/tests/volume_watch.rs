//! The enumeration watch (hazard H6) through the whole router: an unusual
//! number of checks by one caller is logged once and never refused.
//!
//! A test binary of its own: it reads log lines through a thread-local
//! subscriber, and tracing caches each call site's interest process-wide, so
//! tests running beside it on other threads (with no subscriber) could make
//! its call sites look disabled and lose its events.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::Value;
use time::Duration;

/// Log lines written on this thread while `f` runs, as JSON values.
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_unusual_number_of_checks_by_one_caller_is_logged_once_and_never_refused() {
    use cpis_domain::{VolumePolicy, VolumeWatch};
    use std::sync::{Arc, Mutex};

    let mut app = TestApp::new();
    app.router = cpis_http::service_router(TestState {
        volume: Arc::new(VolumeWatch::new(VolumePolicy {
            threshold: 3,
            window: Duration::minutes(10),
        })),
        ..app.state()
    });
    two_councils(&app, CHILD_1).await;

    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || Captured(writer.clone()))
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let children = [CHILD_1, CHILD_2, CHILD_3, CHILD_4, CHILD_UNKNOWN];
    for nhs in children {
        let reply = app
            .check(&clinician("dr-busy", TRUST_X, "B0107"), nhs, true)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "a check is never refused for volume"
        );
    }
    for nhs in &children[..3] {
        app.check(&clinician("dr-calm", TRUST_X, "B0107"), nhs, true)
            .await;
    }
    drop(guard);

    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    assert_no_nhs_number(&text);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let with_message = |m: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(m))
            })
            .collect()
    };
    let checks = with_message("care-setting check");
    assert_eq!(checks.len(), 8, "one line per check");
    assert!(checks
        .iter()
        .all(|l| l["fields"]["organisation"] == TRUST_X));
    let unusual = with_message("unusual check volume");
    assert_eq!(unusual.len(), 1, "{unusual:?}");
    assert_eq!(unusual[0]["level"], "WARN");
    assert_eq!(unusual[0]["fields"]["caller"], "dr-busy");
    assert_eq!(unusual[0]["fields"]["checks"], 4);
}
