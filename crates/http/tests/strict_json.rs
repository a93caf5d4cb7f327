//! Issue 18: every JSON body on every route goes through the one strict
//! reader: a member name given twice, at any depth, is refused with a
//! pointer to it (never its value, never a name that is not plain).

mod common;

use axum::http::Method;
use common::*;

/// Every route that takes a body, with a body repeating a member (top level
/// and nested), and the pointer the refusal must carry.
fn cases() -> Vec<(
    &'static str,
    &'static str,
    cpis_http::CallerClaims,
    String,
    &'static str,
)> {
    let clinician = clinician("u1", TRUST_X, "B0107");
    vec![
        (
            "POST",
            "/v1/checks",
            clinician.clone(),
            format!(r#"{{"nhs_number":"{CHILD_1}","nhs_number":"{CHILD_2}","unscheduled":true}}"#),
            "/nhs_number",
        ),
        (
            "POST",
            "/v1/checks",
            clinician.clone(),
            format!(r#"{{"nhs_number":"{CHILD_1}","unscheduled":true,"unscheduled":false}}"#),
            "/unscheduled",
        ),
        (
            "POST",
            "/v1/history",
            clinician,
            format!(r#"{{"nhs_number":"{CHILD_1}","nhs_number":"{CHILD_2}"}}"#),
            "/nhs_number",
        ),
        (
            "POST",
            "/v1/history",
            council(COUNCIL_A),
            format!(r#"{{"nhs_number":"{CHILD_1}","{CHILD_2}":1,"{CHILD_2}":2}}"#),
            "/_",
        ),
        (
            "PUT",
            "/v1/authority",
            council(COUNCIL_A),
            r#"{"name":"A","name":"B","office_hours_phone":"020 7946 0000","emergency_duty_phone":"020 7946 0999"}"#.into(),
            "/name",
        ),
        (
            "PUT",
            "/v1/authority",
            council(COUNCIL_A),
            r#"{"name":"A","office_hours_phone":"020 7946 0000","emergency_duty_phone":"020 7946 0999","notify_sms":[{"x":1,"x":2}]}"#.into(),
            "/notify_sms/0/x",
        ),
    ]
}

#[tokio::test]
async fn every_json_body_route_refuses_a_repeated_member_with_its_pointer() {
    let app = TestApp::new();
    for (method, path, claims, body, pointer) in cases() {
        let token = app.token(&claims);
        let reply = app
            .send(raw_request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                path,
                Some(&token),
                Some("application/json"),
                body.clone(),
            ))
            .await;
        reply.assert_problem(400, "REPEATED_MEMBER");
        assert_eq!(reply.json["pointer"], pointer, "{method} {path} {body}");
    }
    // Nothing was written by a refused directory entry.
    let reply = app
        .call(
            Method::GET,
            "/v1/authority",
            Some(&council(COUNCIL_A)),
            None,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 404, "{}", reply.text);
}

#[tokio::test]
async fn an_upload_repeating_a_batch_member_is_cpf01_and_changes_nothing() {
    let app = TestApp::new();
    app.upload(
        COUNCIL_A,
        1,
        serde_json::json!([
            plan(CHILD_1, "CPP", "2026-01-01"),
            plan(CHILD_2, "CPP", "2026-01-01")
        ]),
    )
    .await;
    let token = app.token(&council(COUNCIL_A));
    let body = format!(
        r#"{{"sequence":2,"mode":"delta","mode":"full","records":[{}]}}"#,
        plan(CHILD_1, "CPP", "2026-01-01")
    );
    let reply = app
        .send(raw_request(
            Method::POST,
            "/v1/uploads",
            Some(&token),
            Some("application/json"),
            body,
        ))
        .await;
    reply.assert_problem(400, "CPF01");
    assert_eq!(reply.json["pointer"], "/mode");
    assert_eq!(reply.json["file_outcome"], "CPF01");
    let plans = app
        .call(Method::GET, "/v1/plans", Some(&council(COUNCIL_A)), None)
        .await;
    assert_eq!(plans.json["plans"].as_array().map(Vec::len), Some(2));
}
