//! `POST /v1/checks` through the whole router: what a clinician sees, what is
//! recorded and who is notified, and every way a request can be refused.

mod common;

use axum::http::{header, Method, StatusCode};
use common::*;
use cpis_domain::{AuditAction, AuditOutcome};
use serde_json::{json, Value};
use time::Duration;

fn contact(ods: &str) -> Value {
    json!({
        "ods_code": ods,
        "name": format!("Council {ods}"),
        "office_hours_phone": "020 7946 0000",
        "emergency_duty_phone": "020 7946 0999"
    })
}

#[tokio::test]
async fn no_plan_is_200_with_empty_lists_and_stores_nothing() {
    let app = TestApp::new();
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    let reply = app.check(&doctor, CHILD_UNKNOWN, true).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.content_type(), "application/json");
    assert_eq!(reply.json, json!({ "plans": [], "access_history": [] }));
    assert!(app.queue.sent().is_empty());
    // The query is audited, with the child pseudonymised.
    let audit = app.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, AuditAction::Check);
    assert_eq!(audit[0].outcome, AuditOutcome::Allowed);
    let subject = audit[0].subject.clone().expect("a pseudonymised subject");
    assert_no_nhs_number(&subject);
    assert!(!subject.contains(CHILD_UNKNOWN));
    assert_eq!(audit[0].trace_id, reply.request_id());
}

#[tokio::test]
async fn a_check_shows_every_visible_plan_from_two_councils_with_their_contacts() {
    let app = TestApp::new();
    two_councils(&app, CHILD_1).await;
    let reply = app
        .check(&clinician("dr-1", TRUST_X, "B0170"), CHILD_1, false)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Ordered by council, then type, then start; never the councils' case references.
    assert_eq!(
        reply.json["plans"],
        json!([
            { "plan_type": "LAC", "start_date": "2025-09-01", "end_date": "2026-01-31",
              "authority": contact(COUNCIL_B) },
            { "plan_type": "CPP", "start_date": "2025-06-01", "end_date": null,
              "authority": contact(COUNCIL_A) },
            { "plan_type": "LAC", "start_date": "2024-01-15", "end_date": null,
              "authority": contact(COUNCIL_A) },
        ])
    );
    assert!(!reply.text.contains("case-17") && !reply.text.contains("B-99"));
    assert!(
        !reply.text.contains("notify"),
        "channels are the council's own"
    );
    // The input format with spaces is the same child.
    let spaced = app
        .check(&clinician("dr-1", TRUST_X, "B0170"), "999 000 0018", false)
        .await;
    assert_eq!(spaced.json, reply.json);
}

#[tokio::test]
async fn a_council_without_a_directory_entry_is_named_with_empty_phones() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "UCPP", "2026-01-05")]))
        .await;
    let reply = app
        .check(&clinician("dr-1", TRUST_X, "B0170"), CHILD_1, false)
        .await;
    let authority = &reply.json["plans"][0]["authority"];
    assert_eq!(authority["ods_code"], COUNCIL_A);
    assert_eq!(authority["office_hours_phone"], "");
    assert_eq!(authority["emergency_duty_phone"], "");
    assert!(authority["name"].as_str().unwrap().contains(COUNCIL_A));
}

#[tokio::test]
async fn an_unscheduled_b0107_check_records_one_entry_and_one_asn_per_council() {
    let app = TestApp::new();
    two_councils(&app, CHILD_1).await;
    let reply = app
        .check(&clinician("dr-1", TRUST_X, "B0107"), CHILD_1, true)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["plans"].as_array().unwrap().len(), 3);
    // The check's answer already holds its own access.
    assert_eq!(
        reply.json["access_history"],
        json!([{
            "organisation_ods": TRUST_X,
            "organisation_name": "Trust RJ1",
            "setting": "emergency-department",
            "accessed_at": "2026-03-02T10:00:00Z"
        }])
    );

    let a = app.notifications(COUNCIL_A).await;
    let b = app.notifications(COUNCIL_B).await;
    assert_eq!((a.len(), b.len()), (1, 1));
    // A's one ASN carries both of A's plans; B's carries only B's.
    let a_plans: Vec<&str> = a[0]["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plan_type"].as_str().unwrap())
        .collect();
    assert_eq!(a_plans, ["CPP", "LAC"]);
    assert_eq!(
        b[0]["plans"],
        json!([{ "plan_type": "LAC", "local_id": "B-99" }])
    );
    assert_eq!(b[0]["local_id"], "B-99");
    for asn in [&a[0], &b[0]] {
        assert_eq!(asn["nhs_number"], CHILD_1);
        assert_eq!(asn["accessor"]["user_id"], "dr-1");
        assert_eq!(asn["accessor"]["organisation_ods"], TRUST_X);
        assert_eq!(asn["accessed_at"], "2026-03-02T10:00:00Z");
    }
    // Both were handed to the dispatcher, once each.
    let mut sent = app.queue.sent();
    sent.sort();
    let mut ids = vec![
        a[0]["id"].as_str().unwrap().to_owned(),
        b[0]["id"].as_str().unwrap().to_owned(),
    ];
    ids.sort();
    assert_eq!(sent, ids);
    // And both councils see the one entry.
    for ods in [COUNCIL_A, COUNCIL_B] {
        let history = app.history(&council(ods), CHILD_1).await;
        assert_eq!(history.json["access_history"], reply.json["access_history"]);
    }
}

#[tokio::test]
async fn a_care_setting_system_is_recorded_as_a_system() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    app.check(&system("pas-7", TRUST_Y, "B0107"), CHILD_1, true)
        .await;
    let inbox = app.notifications(COUNCIL_A).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["accessor"]["kind"], "system");
    assert_eq!(inbox[0]["accessor"]["user_id"], "pas-7");
}

#[tokio::test]
async fn b0170_and_scheduled_checks_are_silent_reads() {
    let app = TestApp::new();
    two_councils(&app, CHILD_1).await;
    for (claims, unscheduled) in [
        (clinician("gp-1", TRUST_X, "B0170"), true),
        (clinician("gp-1", TRUST_X, "B0170"), false),
        (system("pas-1", TRUST_X, "B0170"), true),
        (clinician("dr-1", TRUST_Y, "B0107"), false),
    ] {
        let reply = app.check(&claims, CHILD_1, unscheduled).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        // The flag is shown ...
        assert_eq!(reply.json["plans"].as_array().unwrap().len(), 3);
        // ... and nothing is recorded or sent.
        assert_eq!(reply.json["access_history"], json!([]));
    }
    assert!(app.queue.sent().is_empty());
    assert!(app.notifications(COUNCIL_A).await.is_empty());
    assert!(app.notifications(COUNCIL_B).await.is_empty());
    let history = app.history(&council(COUNCIL_A), CHILD_1).await;
    assert_eq!(history.json, json!({ "access_history": [] }));
}

#[tokio::test]
async fn the_same_author_within_24_hours_is_collapsed() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let dr1_x = clinician("dr-1", TRUST_X, "B0107");
    let entries = |reply: &Reply| reply.json["access_history"].as_array().unwrap().len();

    assert_eq!(entries(&app.check(&dr1_x, CHILD_1, true).await), 1);
    app.clock.advance(Duration::hours(23));
    assert_eq!(entries(&app.check(&dr1_x, CHILD_1, true).await), 1);
    // 24 hours to the second is still "within 24 hours".
    app.clock.set(start() + Duration::hours(24));
    assert_eq!(entries(&app.check(&dr1_x, CHILD_1, true).await), 1);
    assert_eq!(app.notifications(COUNCIL_A).await.len(), 1);
    assert_eq!(app.queue.sent().len(), 1);

    // The same user id at another organisation, and another user at the same
    // organisation, are other authors.
    assert_eq!(
        entries(
            &app.check(&clinician("dr-1", TRUST_Y, "B0107"), CHILD_1, true)
                .await
        ),
        2
    );
    assert_eq!(
        entries(
            &app.check(&clinician("dr-2", TRUST_X, "B0107"), CHILD_1, true)
                .await
        ),
        3
    );

    // A second past the window, the first author counts again.
    app.clock
        .set(start() + Duration::hours(24) + Duration::seconds(1));
    let reply = app.check(&dr1_x, CHILD_1, true).await;
    assert_eq!(entries(&reply), 4);
    assert_eq!(
        reply.json["access_history"][0]["accessed_at"],
        "2026-03-03T10:00:01Z"
    );
    assert_eq!(app.notifications(COUNCIL_A).await.len(), 4);
    assert_eq!(app.queue.sent().len(), 4);
}

#[tokio::test]
async fn invalid_check_bodies_are_400_problems_that_never_echo_input() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let token = app.token(&clinician("dr-1", TRUST_X, "B0107"));
    let before = app.audit().await.len();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong check digit",
            json!({ "nhs_number": "9990000010", "unscheduled": true }).to_string(),
            "INVALID_NHS_NUMBER",
        ),
        (
            "too short",
            json!({ "nhs_number": "999000001", "unscheduled": true }).to_string(),
            "INVALID_NHS_NUMBER",
        ),
        (
            "letters",
            json!({ "nhs_number": "99900000I8", "unscheduled": true }).to_string(),
            "INVALID_NHS_NUMBER",
        ),
        (
            "missing unscheduled",
            json!({ "nhs_number": CHILD_1 }).to_string(),
            "INVALID_BODY",
        ),
        (
            "missing nhs_number",
            json!({ "unscheduled": true }).to_string(),
            "INVALID_BODY",
        ),
        (
            "an extra field",
            json!({ "nhs_number": CHILD_1, "unscheduled": true, "name": "Jane Doe" }).to_string(),
            "INVALID_BODY",
        ),
        (
            "a field named by an NHS number",
            json!({ "nhs_number": CHILD_1, "unscheduled": true, CHILD_2: 1 }).to_string(),
            "INVALID_BODY",
        ),
        (
            "NHS number as a JSON number",
            r#"{"nhs_number": 9990000018, "unscheduled": true}"#.into(),
            "INVALID_BODY",
        ),
        (
            "unscheduled as a string",
            json!({ "nhs_number": CHILD_1, "unscheduled": "true" }).to_string(),
            "INVALID_BODY",
        ),
        // Serde would take the fields by position: the contract is an object.
        (
            "an array",
            json!([CHILD_1, true]).to_string(),
            "INVALID_BODY",
        ),
        ("a string", json!(CHILD_1).to_string(), "INVALID_BODY"),
        (
            "nhs_number twice",
            format!(r#"{{"nhs_number":"{CHILD_1}","nhs_number":"{CHILD_2}","unscheduled":true}}"#),
            "REPEATED_MEMBER",
        ),
        (
            "not JSON",
            format!("nhs_number={CHILD_1}&unscheduled=true"),
            "INVALID_JSON",
        ),
        (
            "truncated JSON",
            format!("{{\"nhs_number\": \"{CHILD_1}\""),
            "INVALID_JSON",
        ),
        ("empty", String::new(), "INVALID_JSON"),
    ];
    for (name, body, code) in &cases {
        let reply = app
            .send(raw_request(
                Method::POST,
                "/v1/checks",
                Some(&token),
                Some("application/json"),
                body.clone(),
            ))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            reply.text
        );
        reply.assert_problem(400, code);
        for echoed in [
            "9990000010",
            "999000001",
            "99900000I8",
            CHILD_1,
            CHILD_2,
            "Jane",
        ] {
            assert!(
                !reply.text.contains(echoed),
                "{name} echoed: {}",
                reply.text
            );
        }
        if *code == "INVALID_NHS_NUMBER" {
            assert_eq!(reply.json["pointer"], "/nhs_number", "{name}");
        }
    }
    // Nothing was checked: no access, no ASN; each attempt audited as invalid.
    assert!(app.queue.sent().is_empty());
    let audit = app.audit().await;
    let attempts = &audit[before..];
    assert_eq!(attempts.len(), cases.len());
    for event in attempts {
        assert_eq!(event.action, AuditAction::Check);
        assert_eq!(event.outcome, AuditOutcome::Invalid);
        assert_eq!(event.subject, None);
    }
}

#[tokio::test]
async fn a_check_must_be_json_and_small() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let token = app.token(&clinician("dr-1", TRUST_X, "B0107"));
    let body = json!({ "nhs_number": CHILD_1, "unscheduled": true }).to_string();
    for content_type in [None, Some("text/plain"), Some("application/xml")] {
        app.send(raw_request(
            Method::POST,
            "/v1/checks",
            Some(&token),
            content_type,
            body.clone(),
        ))
        .await
        .assert_problem(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    // Over 16 KiB is refused before it is parsed.
    let big = format!(
        r#"{{"nhs_number":"{CHILD_1}","unscheduled":true,"pad":"{}"}}"#,
        "x".repeat(17 * 1024)
    );
    let reply = app
        .send(raw_request(
            Method::POST,
            "/v1/checks",
            Some(&token),
            Some("application/json"),
            big,
        ))
        .await;
    reply.assert_problem(413, "BODY_TOO_LARGE");
    assert!(!reply.text.contains(CHILD_1));
    assert!(app.queue.sent().is_empty());
    // A charset parameter is fine.
    let ok = app
        .send(raw_request(
            Method::POST,
            "/v1/checks",
            Some(&token),
            Some("application/json; charset=utf-8"),
            body,
        ))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(app.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_council_gets_403_and_no_token_gets_401() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let before = app.audit().await.len();

    let denied = app.check(&council(COUNCIL_A), CHILD_1, true).await;
    denied.assert_problem(403, "ACCESS_DENIED");
    assert!(!denied.text.contains(CHILD_1));

    let anonymous = app
        .call(
            Method::POST,
            "/v1/checks",
            None,
            Some(json!({ "nhs_number": CHILD_1, "unscheduled": true })),
        )
        .await;
    anonymous.assert_problem(401, "UNAUTHENTICATED");
    assert_eq!(
        anonymous.headers.get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer"
    );

    // Neither ran a check.
    assert!(app.queue.sent().is_empty());
    assert!(app.notifications(COUNCIL_A).await.is_empty());
    let audit = app.audit().await;
    let outcomes: Vec<_> = audit[before..before + 2]
        .iter()
        .map(|e| (e.action, e.outcome, e.actor_id.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (AuditAction::Check, AuditOutcome::Denied, "client-E09000033"),
            (AuditAction::Check, AuditOutcome::Denied, "anonymous"),
        ]
    );
}

#[tokio::test]
async fn checks_take_only_post() {
    let app = TestApp::new();
    app.call(
        Method::GET,
        "/v1/checks",
        Some(&clinician("dr-1", TRUST_X, "B0107")),
        None,
    )
    .await
    .assert_problem(405, "METHOD_NOT_ALLOWED");
}
