//! Issue 18: a client-chosen request id is echoed, logged and stored as the
//! audit event's trace id only when its format cannot carry an NHS number in
//! any grouping; otherwise a fresh id is used, and the client's never appears.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request};
use common::*;

async fn list_plans_with(app: &TestApp, name: &str, value: &str) -> Reply {
    let token = app.token(&council(COUNCIL_A));
    let request = Request::builder()
        .method(Method::GET)
        .uri("/v1/plans")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(name, value)
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

#[tokio::test]
async fn a_request_id_that_could_carry_an_nhs_number_is_replaced_everywhere() {
    let app = TestApp::new();
    let hostile = [
        "9990000018",
        "999 000 0018",
        "999-000-0018",
        "999.000.0018",
        "999_000_0018",
        "999:000:0018",
        "nhs-999-000-0018",
        "a9b9c9d0e0f0g0h0i1j8",
        "99900-00018",
        // Ten digits that are no valid number are refused too: the format,
        // not the detector, decides.
        "trace-1234567890",
        // A client UUID can hold ten digits.
        "0f6d1c2e-9990-4000-8000-000000000018",
        "Root=1-5759e988-bd862e3fe1be46a994272793",
        "trace id with spaces",
        "trace\u{e9}",
        &"a".repeat(65),
    ];
    for (index, value) in hostile.iter().enumerate() {
        for name in ["x-request-id", "x-amzn-trace-id"] {
            let Ok(header_value) = axum::http::HeaderValue::from_str(value) else {
                continue; // not sendable as a header at all
            };
            let reply = list_plans_with(&app, name, header_value.to_str().unwrap_or(value)).await;
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
            let id = reply.request_id();
            assert_ne!(id, *value, "{name}: {value:?} was echoed");
            assert!(
                uuid::Uuid::parse_str(&id).is_ok(),
                "{name}: {value:?} gave {id:?}"
            );
            let audit = app.audit().await;
            let event = audit.last().unwrap();
            assert_eq!(event.trace_id, id, "{index}");
            assert!(audit.iter().all(|e| e.trace_id != *value));
        }
    }
}

#[tokio::test]
async fn a_strict_request_id_is_kept_echoed_and_audited() {
    let app = TestApp::new();
    for value in ["trace-abc-123", "req_42.a:b", "123456789-abc", "A"] {
        let reply = list_plans_with(&app, "x-request-id", value).await;
        assert_eq!(reply.request_id(), value);
        assert_eq!(app.audit().await.last().unwrap().trace_id, value);
    }
}

#[test]
fn the_strict_format_admits_nine_digits_at_most() {
    use cpis_http::strict_request_id;
    assert!(strict_request_id("a1b2c3d4e5f6g7h8i9"));
    assert!(!strict_request_id("a1b2c3d4e5f6g7h8i9j0"));
    assert!(!strict_request_id(""));
    assert!(strict_request_id(&"a".repeat(64)));
    assert!(!strict_request_id(&"a".repeat(65)));
    for separator in [" ", "/", "+", "=", ";", ",", "~"] {
        assert!(
            !strict_request_id(&format!("a{separator}b")),
            "{separator:?}"
        );
    }
}
