//! The history-query function fed the `events/apigw` fixtures, after the
//! council's upload (plan-upload) and a clinician's check (attendance-check)
//! on the same store: first in memory, then on DynamoDB in moto.

use cpis_aws::moto;
use cpis_lambda::testing::{invoke, state_at, with_body, with_claim, FIXTURE_TIME};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use http::StatusCode;
use serde_json::{json, Value};

const UPLOAD: &str = include_str!("../../../events/apigw/upload-council.json");
const CHECK: &str = include_str!("../../../events/apigw/check-clinician-b0107.json");
const HISTORY_CLINICIAN: &str = include_str!("../../../events/apigw/history-clinician.json");
const HISTORY_COUNCIL: &str = include_str!("../../../events/apigw/history-council.json");
const AUDIT_EVENTS: &str = include_str!("../../../events/apigw/fhir-auditevent-clinician.json");
const UNKNOWN_CHILD: &str = r#"{"nhs_number":"9990000042"}"#;

/// The store after the upload and one unscheduled check; the history function on it.
async fn history_after_a_check<S>(store: S) -> axum::Router
where
    S: cpis_http::CouncilStore + cpis_http::CheckStore + cpis_http::HistoryStore,
{
    let queue = RecordingQueue::default();
    let upload = plan_upload::app(state_at(FIXTURE_TIME, store.clone(), queue.clone()));
    let ack = invoke(&upload, UPLOAD).await;
    assert_eq!(ack.status, StatusCode::OK, "{}", ack.text);
    let check = attendance_check::app(state_at(FIXTURE_TIME, store.clone(), queue));
    let checked = invoke(&check, CHECK).await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.text);
    history_query::app(state_at(FIXTURE_TIME, store, RecordingQueue::default()))
}

async fn history(app: &axum::Router, event: &str) -> Value {
    let answer = invoke(app, event).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json()
}

async fn the_rules_hold(app: &axum::Router) {
    let entry = json!([{
        "organisation_ods": "RJ1",
        "organisation_name": "St Example's Hospital",
        "setting": "emergency-department",
        "accessed_at": "2025-03-01T10:00:00Z",
    }]);
    let nothing = history(app, &with_body(HISTORY_CLINICIAN, UNKNOWN_CHILD)).await;
    assert_eq!(nothing, json!({"access_history": []}));

    // The organisation that checked the child, and the council holding the plan.
    let seen = history(app, HISTORY_CLINICIAN).await;
    assert_eq!(seen["access_history"], entry);
    assert_eq!(history(app, HISTORY_COUNCIL).await, seen);

    // Another organisation, and another council: the answer for a child
    // with no history.
    let other_org = with_claim(HISTORY_CLINICIAN, "ods_code", "RX1");
    assert_eq!(history(app, &other_org).await, nothing);
    let other_council = with_claim(HISTORY_COUNCIL, "ods_code", "E06000001");
    assert_eq!(history(app, &other_council).await, nothing);

    // FHIR: the same entry as an AuditEvent.
    let bundle = invoke(app, AUDIT_EVENTS).await;
    assert_eq!(bundle.status, StatusCode::OK, "{}", bundle.text);
    assert!(bundle.content_type().starts_with("application/fhir+json"));
    let bundle = bundle.json();
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["entry"].as_array().map(Vec::len), Some(1));
    assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "AuditEvent");
    let elsewhere = invoke(app, &with_claim(AUDIT_EVENTS, "ods_code", "RX1")).await;
    assert_eq!(elsewhere.json()["entry"].as_array().map_or(0, Vec::len), 0);
}

#[tokio::test]
async fn in_memory_only_the_checking_organisation_and_the_council_see_the_history() {
    let app = history_after_a_check(MemoryStore::new()).await;
    the_rules_hold(&app).await;
}

#[tokio::test]
async fn on_moto_only_the_checking_organisation_and_the_council_see_the_history() {
    let app = history_after_a_check(moto::fresh_store().await).await;
    the_rules_hold(&app).await;
}

#[tokio::test]
async fn the_check_route_is_not_served_here() {
    let app = history_query::app(state_at(
        FIXTURE_TIME,
        MemoryStore::new(),
        RecordingQueue::default(),
    ));
    let answer = invoke(&app, CHECK).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
}
