//! Issue 18: the ten placeholder NHS numbers (all digits the same) pass
//! Modulus 11 but are not children: refused wherever a number is parsed
//! (a check, the history query, an upload record, a FHIR search).

mod common;

use axum::http::Method;
use common::*;
use cpis_domain::ports::PlanStore;
use serde_json::json;

/// The two (ten zeros, ten ones), built here so that the repository
/// holds no NHS-number-shaped value outside the synthetic 999 range, and the
/// one placeholder inside it, spaced as the NHS writes numbers.
fn placeholders() -> [String; 3] {
    ["0".repeat(10), "1".repeat(10), "999 999 9999".to_owned()]
}

#[tokio::test]
async fn placeholder_numbers_are_refused_by_checks_and_history() {
    let app = TestApp::new();
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    for placeholder in &placeholders() {
        app.check(&doctor, placeholder, true)
            .await
            .assert_problem(400, "INVALID_NHS_NUMBER");
        app.history(&council(COUNCIL_A), placeholder)
            .await
            .assert_problem(400, "INVALID_NHS_NUMBER");
    }
    assert!(app.queue.sent().is_empty());
}

#[tokio::test]
async fn an_upload_record_with_a_placeholder_number_fails_and_is_not_stored() {
    let app = TestApp::new();
    let records: Vec<_> = placeholders()
        .iter()
        .map(|p| plan(p, "CPP", "2026-01-01"))
        .chain([plan(CHILD_1, "CPP", "2026-01-01")])
        .collect();
    let reply = app.upload(COUNCIL_A, 1, json!(records)).await;
    assert_eq!(reply.json["loaded"], 1, "{}", reply.text);
    for index in 0..placeholders().len() {
        let outcome = &reply.json["records"][index];
        assert_eq!(outcome["outcome"], "CPR07");
        assert_eq!(outcome["detail"], "INVALID_NHS_NUMBER");
        assert_eq!(outcome["location"], format!("/records/{index}/nhs_number"));
    }
    let plans = app
        .call(Method::GET, "/v1/plans", Some(&council(COUNCIL_A)), None)
        .await;
    assert_eq!(plans.json["plans"].as_array().map(Vec::len), Some(1));
    let child = cpis_domain::NhsNumber::parse("9990000018").unwrap();
    assert_eq!(app.store.plans_for_child(&child).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_fhir_search_on_a_placeholder_number_is_invalid_search_data() {
    let app = TestApp::new();
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    for route in ["CareTeam", "Flag", "AuditEvent"] {
        let query = patient_query(NHS_SYSTEM, &"0".repeat(10));
        let reply = app
            .fhir(
                &format!("/FHIR/R4/{route}{query}"),
                Some(&doctor),
                Some("true"),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{}", reply.text);
        assert_eq!(reply.json["resourceType"], "OperationOutcome");
        assert_eq!(reply.json["issue"][0]["code"], "invalid");
    }
    assert!(app.queue.sent().is_empty());
}
