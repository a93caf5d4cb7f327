//! The FHIR R4 routes through the whole router: CareTeam (with the
//! `IsUnscheduledAccessEvent` header), Flag, AuditEvent and metadata, and
//! their `OperationOutcome` errors.

mod common;

use axum::http::{header, StatusCode};
use common::*;
use cpis_domain::{AuditAction, AuditOutcome};
use serde_json::{json, Value};
use time::Duration;

const FHIR_JSON: &str = "application/fhir+json";

fn care_team(nhs: &str) -> String {
    format!("/FHIR/R4/CareTeam{}", patient_query(NHS_SYSTEM, nhs))
}

fn flag(nhs: &str) -> String {
    format!("/FHIR/R4/Flag{}", patient_query(NHS_SYSTEM, nhs))
}

fn audit_event(nhs: &str) -> String {
    format!("/FHIR/R4/AuditEvent{}", patient_query(NHS_SYSTEM, nhs))
}

/// Council A (with its directory entry) holds an open CPP for CHILD_1, and
/// council B (with its own) a LAC that ended on 2026-01-31.
async fn two_councils(app: &TestApp) {
    app.put_authority(COUNCIL_A).await;
    let mut b = authority_body(COUNCIL_B);
    b["office_hours_phone"] = json!("01642 000 111");
    b["emergency_duty_phone"] = json!("01642 000 999");
    let reply = app
        .call(
            axum::http::Method::PUT,
            "/v1/authority",
            Some(&council(COUNCIL_B)),
            Some(b),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    app.upload(
        COUNCIL_B,
        1,
        json!([{ "nhs_number": CHILD_1, "plan_type": "LAC", "start_date": "2025-09-01",
                 "end_date": "2026-01-31" }]),
    )
    .await;
}

fn resources(reply: &Reply) -> Vec<Value> {
    reply.json["entry"]
        .as_array()
        .map(|entries| entries.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

/// A 200 searchset Bundle in FHIR JSON, whose total matches its entries.
fn assert_searchset(reply: &Reply, resource_type: &str) -> Vec<Value> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.content_type(), FHIR_JSON);
    assert_eq!(reply.json["resourceType"], "Bundle");
    assert_eq!(reply.json["type"], "searchset");
    let found = resources(reply);
    assert_eq!(reply.json["total"], found.len());
    for (entry, resource) in reply.json["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(&found)
    {
        assert_eq!(resource["resourceType"], resource_type);
        assert_eq!(entry["search"]["mode"], "match");
        assert_eq!(
            entry["fullUrl"],
            format!("urn:uuid:{}", resource["id"].as_str().unwrap())
        );
        assert_eq!(
            resource["subject"]
                .get("identifier")
                .or_else(|| resource["entity"][0]["what"].get("identifier")),
            Some(&json!({ "system": NHS_SYSTEM, "value": CHILD_1 }))
        );
    }
    found
}

/// An `OperationOutcome` with this status and Spine code, holding no NHS number.
fn assert_outcome(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.content_type(), FHIR_JSON);
    assert_eq!(reply.json["resourceType"], "OperationOutcome");
    let issue = &reply.json["issue"][0];
    assert_eq!(issue["severity"], "error");
    assert_eq!(
        issue["details"]["coding"][0]["code"], code,
        "{}",
        reply.text
    );
    assert_eq!(
        issue["details"]["coding"][0]["system"],
        "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode"
    );
    assert!(issue["diagnostics"].is_string());
    assert_no_nhs_number(&reply.text);
}

#[tokio::test]
async fn care_teams_carry_plan_type_period_council_and_phones() {
    let app = TestApp::new();
    two_councils(&app).await;
    let reply = app
        .fhir(
            &care_team(CHILD_1),
            Some(&clinician("dr-1", TRUST_X, "B0107")),
            Some("false"),
        )
        .await;
    let teams = assert_searchset(&reply, "CareTeam");
    assert_eq!(teams.len(), 2);
    // Ordered by council: B (E06000001) first.
    let (b, a) = (&teams[0], &teams[1]);
    assert_eq!(
        b["category"][0]["coding"][0],
        json!({ "system": "https://fhir.nhs.uk/CodeSystem/cpis-plan-type",
                "code": "LAC", "display": "Looked After Child" })
    );
    assert_eq!(
        b["period"],
        json!({ "start": "2025-09-01", "end": "2026-01-31" })
    );
    // Ended on 31 January, still shown on 2 March (the 12-month tail), no longer active.
    assert_eq!(b["status"], "inactive");
    assert_eq!(
        b["managingOrganization"][0],
        json!({ "identifier": { "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                "value": COUNCIL_B },
                "display": "Council E06000001" })
    );
    let phones: Vec<(&str, &str)> = b["telecom"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["extension"][0]["valueString"].as_str().unwrap(),
                t["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        phones,
        [
            ("office-hours", "01642 000 111"),
            ("emergency-duty-team", "01642 000 999")
        ]
    );
    assert_eq!(a["category"][0]["coding"][0]["code"], "CPP");
    assert_eq!(a["status"], "active");
    assert_eq!(a["period"], json!({ "start": "2025-06-01" }));
    assert_eq!(
        a["managingOrganization"][0]["identifier"]["value"],
        COUNCIL_A
    );
    assert_eq!(a["telecom"][0]["value"], "020 7946 0000");
    assert_eq!(a["telecom"][1]["value"], "020 7946 0999");
    assert!(
        !reply.text.contains("case-17"),
        "local ids stay with the council"
    );
}

#[tokio::test]
async fn is_unscheduled_access_event_true_notifies_exactly_as_a_json_check() {
    let app = TestApp::new();
    two_councils(&app).await;
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    let reply = app
        .fhir(&care_team(CHILD_1), Some(&doctor), Some("true"))
        .await;
    assert_eq!(assert_searchset(&reply, "CareTeam").len(), 2);
    // One access entry and one ASN per council.
    assert_eq!(app.queue.sent().len(), 2);
    assert_eq!(app.notifications(COUNCIL_A).await.len(), 1);
    assert_eq!(app.notifications(COUNCIL_B).await.len(), 1);
    let history = app.history(&council(COUNCIL_A), CHILD_1).await;
    assert_eq!(
        history.json["access_history"],
        json!([{ "organisation_ods": TRUST_X, "organisation_name": "Trust RJ1",
                 "setting": "emergency-department", "accessed_at": "2026-03-02T10:00:00Z" }])
    );
    // The same author again within 24 hours, by FHIR or JSON, is collapsed.
    app.clock.advance(Duration::hours(2));
    app.fhir(&care_team(CHILD_1), Some(&doctor), Some("TRUE"))
        .await;
    app.check(&doctor, CHILD_1, true).await;
    assert_eq!(app.queue.sent().len(), 2);
    // B0170 with the header true is a silent read, as on the JSON API.
    app.fhir(
        &care_team(CHILD_1),
        Some(&clinician("gp-1", TRUST_Y, "B0170")),
        Some("true"),
    )
    .await;
    assert_eq!(app.queue.sent().len(), 2);
    let audit = app.audit().await;
    let checks = audit
        .iter()
        .filter(|e| e.action == AuditAction::Check && e.outcome == AuditOutcome::Allowed)
        .count();
    assert_eq!(checks, 4);
}

#[tokio::test]
async fn is_unscheduled_access_event_false_is_silent() {
    let app = TestApp::new();
    two_councils(&app).await;
    let reply = app
        .fhir(
            &care_team(CHILD_1),
            Some(&clinician("dr-1", TRUST_X, "B0107")),
            Some("false"),
        )
        .await;
    assert_eq!(assert_searchset(&reply, "CareTeam").len(), 2);
    assert!(app.queue.sent().is_empty());
    assert!(app.notifications(COUNCIL_A).await.is_empty());
    assert_eq!(
        app.history(&council(COUNCIL_A), CHILD_1).await.json,
        json!({ "access_history": [] })
    );
}

#[tokio::test]
async fn a_missing_or_invalid_header_is_precondition_failed_and_nothing_happens() {
    let app = TestApp::new();
    two_councils(&app).await;
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    let before = app.audit().await.len();
    let headers = [None, Some(""), Some("yes"), Some("1"), Some("true,false")];
    for value in headers {
        let reply = app.fhir(&care_team(CHILD_1), Some(&doctor), value).await;
        assert_outcome(&reply, 400, "PRECONDITION_FAILED");
        assert_eq!(reply.json["issue"][0]["code"], "required");
    }
    assert!(app.queue.sent().is_empty());
    let audit = app.audit().await;
    let attempts = &audit[before..];
    assert_eq!(attempts.len(), headers.len());
    assert!(attempts
        .iter()
        .all(|e| e.outcome == AuditOutcome::Invalid && e.subject.is_none()));
}

#[tokio::test]
async fn a_bad_nhs_number_or_identifier_system_is_invalid_search_data() {
    let app = TestApp::new();
    two_councils(&app).await;
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    let queries = [
        patient_query(NHS_SYSTEM, "9990000010"),
        patient_query(NHS_SYSTEM, "999000001"),
        patient_query("https://example.org/Id/nhs-number", CHILD_1),
        patient_query("https://fhir.nhs.uk/Id/ods-organization-code", CHILD_1),
        format!("?patient:identifier={CHILD_1}"),
        String::new(),
        "?patient=9990000018".to_owned(),
        format!(
            "{}&patient:identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C{CHILD_2}",
            patient_query(NHS_SYSTEM, CHILD_1)
        ),
        "?patient:identifier=%ZZ".to_owned(),
    ];
    for route in ["CareTeam", "Flag", "AuditEvent"] {
        for query in &queries {
            let reply = app
                .fhir(
                    &format!("/FHIR/R4/{route}{query}"),
                    Some(&doctor),
                    Some("true"),
                )
                .await;
            assert_outcome(&reply, 400, "INVALID_SEARCH_DATA");
            assert_eq!(reply.json["issue"][0]["code"], "invalid");
            assert!(!reply.text.contains("9990000010") && !reply.text.contains("999000001"));
        }
    }
    assert!(app.queue.sent().is_empty());
}

#[tokio::test]
async fn fhir_routes_need_a_token_and_refuse_councils() {
    let app = TestApp::new();
    two_councils(&app).await;
    let paths = [care_team(CHILD_1), flag(CHILD_1), audit_event(CHILD_1)];
    for path in &paths {
        let anonymous = app.fhir(path, None, Some("true")).await;
        assert_outcome(&anonymous, 401, "ACCESS_DENIED");
        assert_eq!(anonymous.json["issue"][0]["code"], "login");
        assert_eq!(
            anonymous.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
        let denied = app
            .fhir(path, Some(&council(COUNCIL_A)), Some("true"))
            .await;
        assert_outcome(&denied, 403, "ACCESS_DENIED");
        assert_eq!(denied.json["issue"][0]["code"], "forbidden");
    }
    assert!(app.queue.sent().is_empty());
    assert!(app.notifications(COUNCIL_A).await.is_empty());
}

#[tokio::test]
async fn no_match_is_an_empty_searchset_bundle() {
    let app = TestApp::new();
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    for path in [
        care_team(CHILD_UNKNOWN),
        flag(CHILD_UNKNOWN),
        audit_event(CHILD_UNKNOWN),
    ] {
        let reply = app.fhir(&path, Some(&doctor), Some("true")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.content_type(), FHIR_JSON);
        assert_eq!(reply.json["resourceType"], "Bundle");
        assert_eq!(reply.json["type"], "searchset");
        assert_eq!(reply.json["total"], 0);
        // FHIR JSON has no empty arrays.
        assert!(reply.json.get("entry").is_none(), "{}", reply.text);
    }
    assert!(app.queue.sent().is_empty());
}

#[tokio::test]
async fn the_flag_is_a_silent_read_whatever_the_role() {
    let app = TestApp::new();
    two_councils(&app).await;
    let reply = app
        .fhir(
            &flag(CHILD_1),
            Some(&clinician("dr-1", TRUST_X, "B0107")),
            Some("true"),
        )
        .await;
    let flags = assert_searchset(&reply, "Flag");
    assert_eq!(flags.len(), 2);
    assert!(flags.iter().all(|f| f["status"] == "active"));
    assert_eq!(flags[0]["code"]["coding"][0]["code"], "LAC");
    assert_eq!(flags[1]["code"]["coding"][0]["code"], "CPP");
    assert_eq!(flags[1]["author"]["identifier"]["value"], COUNCIL_A);
    assert_eq!(flags[1]["period"], json!({ "start": "2025-06-01" }));
    assert!(app.queue.sent().is_empty());
    assert_eq!(
        app.history(&council(COUNCIL_A), CHILD_1).await.json,
        json!({ "access_history": [] })
    );
}

#[tokio::test]
async fn audit_events_follow_the_history_visibility_rules() {
    let app = TestApp::new();
    two_councils(&app).await;
    app.check(&clinician("dr-1", TRUST_X, "B0107"), CHILD_1, true)
        .await;
    app.clock.advance(Duration::hours(1));
    app.check(&clinician("dr-2", TRUST_Y, "B0107"), CHILD_1, true)
        .await;

    let reply = app
        .fhir(
            &audit_event(CHILD_1),
            Some(&clinician("nurse-1", TRUST_X, "B0170")),
            None,
        )
        .await;
    let events = assert_searchset(&reply, "AuditEvent");
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["agent"][0]["who"]["identifier"]["value"]
                    .as_str()
                    .unwrap(),
                e["recorded"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (TRUST_Y, "2026-03-02T11:00:00Z"),
            (TRUST_X, "2026-03-02T10:00:00Z")
        ]
    );
    assert_eq!(events[0]["agent"][0]["who"]["display"], "Trust RRV");
    assert_eq!(
        events[0]["agent"][0]["type"]["text"],
        "emergency-department"
    );

    // Another organisation, or trust X after its 24 hours, gets the answer
    // for a child with no history.
    let empty = |reply: &Reply| {
        let mut json = reply.json.clone();
        json.as_object_mut().unwrap().remove("id");
        // The self link names the number the caller searched for.
        json.as_object_mut().unwrap().remove("link");
        (reply.status, reply.content_type().to_owned(), json)
    };
    let other = clinician("dr-3", "RGT", "B0107");
    let unknown = app
        .fhir(&audit_event(CHILD_UNKNOWN), Some(&other), None)
        .await;
    let refused = app.fhir(&audit_event(CHILD_1), Some(&other), None).await;
    assert_eq!(empty(&refused), empty(&unknown));
    assert_eq!(refused.json["total"], 0);
    app.clock
        .set(start() + Duration::hours(24) + Duration::seconds(1));
    let late = app
        .fhir(
            &audit_event(CHILD_1),
            Some(&clinician("nurse-1", TRUST_X, "B0170")),
            None,
        )
        .await;
    assert_eq!(empty(&late), empty(&unknown));
    let audit = app.audit().await;
    let denied = audit
        .iter()
        .filter(|e| e.action == AuditAction::ReadHistory && e.outcome == AuditOutcome::Denied)
        .count();
    assert_eq!(denied, 3);
}

#[tokio::test]
async fn metadata_is_a_capability_statement_for_exactly_the_served_searches() {
    let app = TestApp::new();
    let reply = app
        .fhir(
            "/FHIR/R4/metadata",
            Some(&clinician("dr-1", TRUST_X, "B0170")),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.content_type(), FHIR_JSON);
    assert_eq!(reply.json["resourceType"], "CapabilityStatement");
    assert_eq!(reply.json["fhirVersion"], "4.0.1");
    assert_eq!(reply.json["format"], json!([FHIR_JSON]));
    let rest = &reply.json["rest"][0];
    assert_eq!(rest["mode"], "server");
    let mut types: Vec<&str> = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["interaction"], json!([{ "code": "search-type" }]));
            r["type"].as_str().unwrap()
        })
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["AuditEvent", "CareTeam", "Flag"]);
    // Each served search type is a route, and the other way round.
    let mut routes: Vec<&str> = cpis_http::routes::ROUTES
        .iter()
        .filter_map(|r| r.path.strip_prefix("/FHIR/R4/"))
        .filter(|p| *p != "metadata")
        .collect();
    routes.sort_unstable();
    assert_eq!(types, routes);
}

#[tokio::test]
async fn unknown_fhir_endpoints_and_methods_are_operation_outcomes() {
    let app = TestApp::new();
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    let token = app.token(&doctor);
    let unknown = app
        .fhir(
            &format!("/FHIR/R4/Patient{}", patient_query(NHS_SYSTEM, CHILD_1)),
            Some(&doctor),
            Some("true"),
        )
        .await;
    assert_outcome(&unknown, 404, "UNSUPPORTED_SERVICE");
    assert_eq!(unknown.json["issue"][0]["code"], "not-found");
    for path in [care_team(CHILD_1), "/FHIR/R4/metadata".to_owned()] {
        let reply = app
            .send(raw_request(
                axum::http::Method::POST,
                &path,
                Some(&token),
                Some(FHIR_JSON),
                "{}",
            ))
            .await;
        assert_outcome(&reply, 405, "UNSUPPORTED_SERVICE");
        assert_eq!(reply.json["issue"][0]["code"], "not-supported");
    }
    // Outside /FHIR/ the JSON API's problems are unchanged.
    app.call(axum::http::Method::GET, "/v1/children", Some(&doctor), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    app.call(axum::http::Method::GET, "/v1/checks", Some(&doctor), None)
        .await
        .assert_problem(405, "METHOD_NOT_ALLOWED");
    assert!(app.queue.sent().is_empty());
}

#[tokio::test]
async fn the_search_parameter_may_arrive_percent_encoded() {
    let app = TestApp::new();
    two_councils(&app).await;
    let doctor = clinician("dr-1", TRUST_X, "B0170");
    // As HTTP clients encode it: the colon in the name, and `+` for the spaces of 3-3-4.
    let encoded = "/FHIR/R4/Flag?patient%3Aidentifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C999+000+0018";
    let reply = app.fhir(encoded, Some(&doctor), None).await;
    assert_eq!(assert_searchset(&reply, "Flag").len(), 2);
}
