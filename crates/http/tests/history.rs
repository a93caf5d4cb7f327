//! `POST /v1/history` through the whole router: who may read a child's access
//! history, and that everyone else gets exactly the answer for a child with
//! no history.

mod common;

use axum::http::{header, Method, StatusCode};
use common::*;
use cpis_domain::{AuditAction, AuditOutcome};
use serde_json::json;
use time::Duration;

/// Council A holds a plan for CHILD_1 (and CHILD_3, never checked); dr-1 at
/// trust X and dr-2 at trust Y, an hour later, check CHILD_1 (unscheduled).
async fn app_with_history() -> TestApp {
    let app = TestApp::new();
    app.upload(
        COUNCIL_A,
        1,
        json!([
            plan(CHILD_1, "CPP", "2025-06-01"),
            plan(CHILD_3, "LAC", "2025-06-01")
        ]),
    )
    .await;
    app.check(&clinician("dr-1", TRUST_X, "B0107"), CHILD_1, true)
        .await;
    app.clock.advance(Duration::hours(1));
    app.check(&clinician("dr-2", TRUST_Y, "B0107"), CHILD_1, true)
        .await;
    app
}

fn entry(ods: &str, at: &str) -> serde_json::Value {
    json!({
        "organisation_ods": ods,
        "organisation_name": format!("Trust {ods}"),
        "setting": "emergency-department",
        "accessed_at": at
    })
}

fn full_history() -> serde_json::Value {
    json!({ "access_history": [
        entry(TRUST_Y, "2026-03-02T11:00:00Z"),
        entry(TRUST_X, "2026-03-02T10:00:00Z"),
    ]})
}

/// Status, content type and body, and the headers other than the request id.
fn everything(reply: &Reply) -> (u16, String, String, Vec<(String, String)>) {
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != "x-request-id")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    headers.sort();
    (
        reply.status.as_u16(),
        reply.content_type().to_owned(),
        reply.text.clone(),
        headers,
    )
}

#[tokio::test]
async fn a_clinician_whose_organisation_checked_within_24_hours_reads_the_history() {
    let app = app_with_history().await;
    // Another user at trust X: the organisation checked, not the user.
    let colleague = clinician("nurse-5", TRUST_X, "B0170");
    let reply = app.history(&colleague, CHILD_1).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.content_type(), "application/json");
    assert_eq!(reply.json, full_history());
    // The window runs from trust X's check at 10:00: still open at 10:00 the next day ...
    app.clock.set(start() + Duration::hours(24));
    assert_eq!(app.history(&colleague, CHILD_1).await.json, full_history());
    // ... closed a second later, while trust Y (checked at 11:00) may still read.
    app.clock
        .set(start() + Duration::hours(24) + Duration::seconds(1));
    assert_eq!(
        app.history(&colleague, CHILD_1).await.json,
        json!({ "access_history": [] })
    );
    assert_eq!(
        app.history(&clinician("dr-9", TRUST_Y, "B0107"), CHILD_1)
            .await
            .json,
        full_history()
    );
}

#[tokio::test]
async fn a_silent_check_opens_the_history_to_its_organisation() {
    let app = app_with_history().await;
    let gp = clinician("gp-1", "A81001", "B0170");
    assert_eq!(
        app.history(&gp, CHILD_1).await.json,
        json!({ "access_history": [] })
    );
    let check = app.check(&gp, CHILD_1, false).await;
    // A silent read adds no entry ...
    assert_eq!(
        check.json["access_history"],
        full_history()["access_history"]
    );
    // ... but lets the organisation read the history.
    assert_eq!(app.history(&gp, CHILD_1).await.json, full_history());
}

#[tokio::test]
async fn a_council_holding_a_plan_reads_the_history() {
    let app = app_with_history().await;
    let reply = app.history(&council(COUNCIL_A), CHILD_1).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json, full_history());
    // A plan-holding council's child with no accesses is an empty history.
    assert_eq!(
        app.history(&council(COUNCIL_A), CHILD_3).await.json,
        json!({ "access_history": [] })
    );
    let audit = app.audit().await;
    let reads: Vec<_> = audit
        .iter()
        .filter(|e| e.action == AuditAction::ReadHistory)
        .collect();
    assert_eq!(reads.len(), 2);
    assert!(reads.iter().all(|e| e.outcome == AuditOutcome::Allowed));
    assert!(reads.iter().all(|e| e.subject.is_some()));
}

#[tokio::test]
async fn anyone_else_gets_exactly_the_answer_for_a_child_with_no_history() {
    let app = app_with_history().await;
    // The reference: a caller entitled to CHILD_3's history, which is empty.
    let reference = app.history(&council(COUNCIL_A), CHILD_3).await;
    assert_eq!(reference.json, json!({ "access_history": [] }));
    let reference = everything(&reference);

    let other_org = clinician("dr-3", "RGT", "B0107");
    let other_council = council(COUNCIL_B);
    let before = app.audit().await.len();
    let mut answers = vec![
        (
            "another organisation",
            app.history(&other_org, CHILD_1).await,
        ),
        (
            "another council",
            app.history(&other_council, CHILD_1).await,
        ),
        (
            "another organisation, unknown child",
            app.history(&other_org, CHILD_UNKNOWN).await,
        ),
        (
            "another council, unknown child",
            app.history(&other_council, CHILD_UNKNOWN).await,
        ),
    ];
    app.clock
        .set(start() + Duration::hours(25) + Duration::seconds(1));
    answers.push((
        "trust Y after 24 hours",
        app.history(&clinician("dr-2", TRUST_Y, "B0107"), CHILD_1)
            .await,
    ));
    answers.push((
        "trust X after 24 hours",
        app.history(&clinician("dr-1", TRUST_X, "B0107"), CHILD_1)
            .await,
    ));
    for (who, reply) in &answers {
        assert_eq!(everything(reply), reference, "{who}");
    }
    // The audit trail, unlike the caller, knows they were refused.
    let audit = app.audit().await;
    let refusals = &audit[before..];
    assert_eq!(refusals.len(), answers.len());
    assert!(refusals
        .iter()
        .all(|e| e.action == AuditAction::ReadHistory && e.outcome == AuditOutcome::Denied));
    // And the entitled still see everything.
    assert_eq!(
        app.history(&council(COUNCIL_A), CHILD_1).await.json,
        full_history()
    );
}

#[tokio::test]
async fn the_history_holds_the_25_most_recent_accesses_newest_first() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    for i in 0..27 {
        app.check(
            &clinician(&format!("dr-{i}"), TRUST_X, "B0107"),
            CHILD_1,
            true,
        )
        .await;
        app.clock.advance(Duration::minutes(1));
    }
    let reply = app.history(&council(COUNCIL_A), CHILD_1).await;
    let entries = reply.json["access_history"].as_array().unwrap();
    assert_eq!(entries.len(), 25);
    assert_eq!(entries[0]["accessed_at"], "2026-03-02T10:26:00Z");
    assert_eq!(entries[24]["accessed_at"], "2026-03-02T10:02:00Z");
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["accessed_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    // Only organisation, name, setting and time: never who or which council.
    for entry in entries {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "accessed_at",
                "organisation_name",
                "organisation_ods",
                "setting"
            ]
        );
    }
}

#[tokio::test]
async fn invalid_history_requests_are_problems_that_never_echo_input() {
    let app = app_with_history().await;
    let callers = [clinician("dr-1", TRUST_X, "B0107"), council(COUNCIL_A)];
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        (
            "wrong check digit",
            Some("application/json"),
            json!({ "nhs_number": "9990000010" }).to_string(),
            400,
            "INVALID_NHS_NUMBER",
        ),
        (
            "missing nhs_number",
            Some("application/json"),
            json!({}).to_string(),
            400,
            "INVALID_BODY",
        ),
        (
            "an extra field",
            Some("application/json"),
            json!({ "nhs_number": CHILD_1, "date_of_birth": "2019-01-01" }).to_string(),
            400,
            "INVALID_BODY",
        ),
        (
            "an extra field named by an NHS number",
            Some("application/json"),
            json!({ "nhs_number": CHILD_1, CHILD_2: "x" }).to_string(),
            400,
            "INVALID_BODY",
        ),
        (
            "NHS number as a JSON number",
            Some("application/json"),
            r#"{"nhs_number": 9990000018}"#.into(),
            400,
            "INVALID_BODY",
        ),
        (
            "an array",
            Some("application/json"),
            json!([CHILD_1]).to_string(),
            400,
            "INVALID_BODY",
        ),
        (
            "not JSON",
            Some("application/json"),
            format!("nhs_number={CHILD_1}"),
            400,
            "INVALID_JSON",
        ),
        (
            "no content type",
            None,
            json!({ "nhs_number": CHILD_1 }).to_string(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            format!("nhs_number={CHILD_1}"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "over 16 KiB",
            Some("application/json"),
            format!(
                r#"{{"nhs_number":"{CHILD_1}","pad":"{}"}}"#,
                "x".repeat(17 * 1024)
            ),
            413,
            "BODY_TOO_LARGE",
        ),
    ];
    for claims in &callers {
        let token = app.token(claims);
        for (name, content_type, body, status, code) in &cases {
            let reply = app
                .send(raw_request(
                    Method::POST,
                    "/v1/history",
                    Some(&token),
                    *content_type,
                    body.clone(),
                ))
                .await;
            reply.assert_problem(*status, code);
            for echoed in ["9990000010", CHILD_1, CHILD_2, "2019-01-01"] {
                assert!(!reply.text.contains(echoed), "{name}: {}", reply.text);
            }
        }
    }
    let audit = app.audit().await;
    let invalid = audit
        .iter()
        .filter(|e| e.action == AuditAction::ReadHistory)
        .filter(|e| e.outcome == AuditOutcome::Invalid && e.subject.is_none())
        .count();
    assert_eq!(invalid, callers.len() * cases.len());
}

#[tokio::test]
async fn the_history_needs_a_valid_token() {
    let app = app_with_history().await;
    let reply = app
        .call(
            Method::POST,
            "/v1/history",
            None,
            Some(json!({ "nhs_number": CHILD_1 })),
        )
        .await;
    reply.assert_problem(401, "UNAUTHENTICATED");
    assert_eq!(
        reply.headers.get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer"
    );
    assert!(!reply.text.contains("organisation"));
}

#[tokio::test]
async fn a_council_that_withdrew_its_plan_no_longer_reads_the_history() {
    let app = app_with_history().await;
    let reply = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&council(COUNCIL_A)),
            Some(json!({ "sequence": 2, "mode": "delta", "withdrawals": [
                { "nhs_number": CHILD_1, "plan_type": "CPP", "start_date": "2025-06-01" }
            ]})),
        )
        .await;
    assert_eq!(reply.json["withdrawn"], 1, "{}", reply.text);
    let after = app.history(&council(COUNCIL_A), CHILD_1).await;
    let unknown = app.history(&council(COUNCIL_A), CHILD_UNKNOWN).await;
    assert_eq!(everything(&after), everything(&unknown));
}
