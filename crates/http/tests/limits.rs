//! Issue 18: `Cache-Control: no-store` on every answer, and 413/414/431 in
//! each route's dialect with advice that fits the route.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request};
use common::*;
use serde_json::json;

fn assert_no_store(reply: &Reply, what: &str) {
    assert_eq!(
        reply
            .headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "{what}"
    );
}

#[tokio::test]
async fn every_answer_says_no_store() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    let replies = [
        ("check 200", app.check(&doctor, CHILD_1, true).await),
        (
            "check 401",
            app.call(Method::POST, "/v1/checks", None, Some(json!({})))
                .await,
        ),
        (
            "plans 200",
            app.call(Method::GET, "/v1/plans", Some(&council(COUNCIL_A)), None)
                .await,
        ),
        (
            "history 200",
            app.history(&council(COUNCIL_A), CHILD_1).await,
        ),
        ("health", app.call(Method::GET, "/health", None, None).await),
        (
            "404",
            app.call(Method::GET, "/v1/nowhere", None, None).await,
        ),
        (
            "405",
            app.call(Method::DELETE, "/v1/plans", None, None).await,
        ),
        (
            "FHIR 200",
            app.fhir(
                &format!("/FHIR/R4/CareTeam{}", patient_query(NHS_SYSTEM, CHILD_1)),
                Some(&doctor),
                Some("false"),
            )
            .await,
        ),
        ("metadata", app.fhir("/FHIR/R4/metadata", None, None).await),
    ];
    for (what, reply) in &replies {
        assert_no_store(reply, what);
    }
}

#[tokio::test]
async fn a_body_too_large_gets_advice_for_its_route() {
    let app = TestApp::new();
    let big = format!(
        r#"{{"nhs_number":"{CHILD_1}","unscheduled":true,"x":"{}"}}"#,
        "a".repeat(20_000)
    );
    for (method, path, claims) in [
        (
            Method::POST,
            "/v1/checks",
            clinician("dr-1", TRUST_X, "B0107"),
        ),
        (Method::POST, "/v1/history", council(COUNCIL_A)),
        (Method::PUT, "/v1/authority", council(COUNCIL_A)),
    ] {
        let token = app.token(&claims);
        let reply = app
            .send(raw_request(
                method.clone(),
                path,
                Some(&token),
                Some("application/json"),
                big.clone(),
            ))
            .await;
        reply.assert_problem(413, "BODY_TOO_LARGE");
        let detail = reply.json["detail"].as_str().unwrap();
        assert!(
            detail.contains("16 KB") && !detail.contains("upload"),
            "{path}: {detail}"
        );
        assert_no_store(&reply, path);
    }
    let token = app.token(&council(COUNCIL_A));
    let huge = "a".repeat(cpis_http::MAX_UPLOAD_BYTES + 1);
    let reply = app
        .send(raw_request(
            Method::POST,
            "/v1/uploads",
            Some(&token),
            Some("application/json"),
            huge,
        ))
        .await;
    reply.assert_problem(413, "BODY_TOO_LARGE");
    assert!(reply.json["detail"]
        .as_str()
        .unwrap()
        .contains("delta uploads"));
}

#[tokio::test]
async fn a_very_long_url_is_414_and_large_headers_431_in_the_route_dialect() {
    let app = TestApp::new();
    let doctor = app.token(&clinician("dr-1", TRUST_X, "B0107"));
    let long = "a".repeat(9 * 1024);
    let fhir_path = format!(
        "/FHIR/R4/CareTeam{}&x={long}",
        patient_query(NHS_SYSTEM, CHILD_1)
    );
    let json_path = format!("/v1/plans?cursor={long}");
    for (path, fhir) in [(fhir_path.as_str(), true), (json_path.as_str(), false)] {
        let request = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {doctor}"))
            .body(Body::empty())
            .unwrap();
        let reply = app.send(request).await;
        assert_eq!(reply.status.as_u16(), 414, "{}", reply.text);
        if fhir {
            assert_eq!(reply.json["resourceType"], "OperationOutcome");
            assert_eq!(reply.json["issue"][0]["code"], "too-long");
        } else {
            reply.assert_problem(414, "URI_TOO_LONG");
        }
        assert_no_store(&reply, "414");
        assert_no_nhs_number(&reply.text);

        let short = path
            .split('&')
            .next()
            .unwrap()
            .split("?cursor")
            .next()
            .unwrap();
        let request = Request::builder()
            .uri(short)
            .header(header::AUTHORIZATION, format!("Bearer {doctor}"))
            .header("x-padding", "b".repeat(65 * 1024))
            .body(Body::empty())
            .unwrap();
        let reply = app.send(request).await;
        assert_eq!(reply.status.as_u16(), 431, "{}", reply.text);
        if fhir {
            assert_eq!(reply.json["resourceType"], "OperationOutcome");
        } else {
            reply.assert_problem(431, "HEADERS_TOO_LARGE");
        }
    }
    // Nothing reached a handler: no audit event.
    assert!(app.audit().await.is_empty());
}
