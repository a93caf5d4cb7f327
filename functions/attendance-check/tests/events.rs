//! The attendance-check function fed the `events/apigw` fixtures as
//! `lambda_http::run` hands them over, on the in-memory store: the JSON check
//! for each kind of caller, the FHIR interactions, and the refusals.

use cpis_lambda::testing::{invoke, state_at, with_claim, Answer, FIXTURE_TIME};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use http::StatusCode;
use serde_json::json;

const UPLOAD: &str = include_str!("../../../events/apigw/upload-council.json");
const UPDATE_AUTHORITY: &str = include_str!("../../../events/apigw/update-authority-council.json");
const CHECK_B0107: &str = include_str!("../../../events/apigw/check-clinician-b0107.json");
const CHECK_B0170: &str = include_str!("../../../events/apigw/check-clinician-b0170.json");
const CHECK_SYSTEM: &str = include_str!("../../../events/apigw/check-system.json");
const CHECK_BY_COUNCIL: &str = include_str!("../../../events/apigw/check-council-forbidden.json");
const CHECK_INVALID: &str = include_str!("../../../events/apigw/check-invalid-nhs-number.json");
const CARE_TEAM: &str = include_str!("../../../events/apigw/fhir-careteam-clinician.json");
const FLAG: &str = include_str!("../../../events/apigw/fhir-flag-clinician.json");
const METADATA: &str = include_str!("../../../events/apigw/fhir-metadata-clinician.json");
const HISTORY: &str = include_str!("../../../events/apigw/history-clinician.json");

struct Functions {
    store: MemoryStore,
    queue: RecordingQueue,
    check: axum::Router,
}

/// The council's fixtures loaded through plan-upload, then the check function
/// on the same store.
async fn functions() -> Functions {
    let store = MemoryStore::new();
    let queue = RecordingQueue::default();
    let upload = plan_upload::app(state_at(FIXTURE_TIME, store.clone(), queue.clone()));
    assert_eq!(invoke(&upload, UPLOAD).await.status, StatusCode::OK);
    assert_eq!(
        invoke(&upload, UPDATE_AUTHORITY).await.status,
        StatusCode::OK
    );
    let check = attendance_check::app(state_at(FIXTURE_TIME, store.clone(), queue.clone()));
    Functions {
        store,
        queue,
        check,
    }
}

fn assert_no_nhs_number(answer: &Answer) {
    assert!(
        cpis_domain::find_nhs_numbers(&answer.text).is_empty(),
        "an NHS number in the answer to a refused or invalid request"
    );
}

#[tokio::test]
async fn a_b0107_clinician_sees_the_plan_and_contacts_and_the_council_is_notified_once() {
    let f = functions().await;
    let answer = invoke(&f.check, CHECK_B0107).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let body = answer.json();
    let plans = body["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0]["plan_type"], "CPP");
    assert_eq!(plans[0]["authority"]["ods_code"], "E09000033");
    assert_eq!(
        plans[0]["authority"]["emergency_duty_phone"],
        "020 7946 0999"
    );
    assert!(
        !answer.text.contains("CASE-42"),
        "the council's case reference is never shown to health"
    );
    assert_eq!(body["access_history"].as_array().unwrap().len(), 1);
    assert_eq!(f.queue.sent().len(), 1, "one ASN for the one council");

    // The same author again within 24 hours is collapsed: no new ASN.
    invoke(&f.check, CHECK_B0107).await;
    assert_eq!(f.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_b0170_check_is_a_silent_read() {
    let f = functions().await;
    let answer = invoke(&f.check, CHECK_B0170).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["plans"].as_array().unwrap().len(), 1);
    assert_eq!(answer.json()["access_history"], json!([]));
    assert!(f.queue.sent().is_empty(), "a silent read notifies nobody");
}

#[tokio::test]
async fn a_care_setting_system_is_an_author_like_a_user() {
    let f = functions().await;
    let answer = invoke(&f.check, CHECK_SYSTEM).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(f.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_council_may_not_check_and_an_invalid_number_is_not_echoed() {
    let f = functions().await;
    let denied = invoke(&f.check, CHECK_BY_COUNCIL).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);
    assert_eq!(denied.content_type(), "application/problem+json");
    assert_no_nhs_number(&denied);

    let invalid = invoke(&f.check, CHECK_INVALID).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{}", invalid.text);
    assert_eq!(invalid.content_type(), "application/problem+json");
    assert!(!invalid.text.contains("9990000010"));
    assert!(f.queue.sent().is_empty());
}

#[tokio::test]
async fn a_child_with_no_plan_is_a_normal_empty_answer_and_nothing_is_stored() {
    let f = functions().await;
    let unknown = cpis_lambda::testing::with_body(
        CHECK_B0107,
        &json!({"nhs_number": "9990000042", "unscheduled": true}).to_string(),
    );
    let answer = invoke(&f.check, &unknown).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json(), json!({"plans": [], "access_history": []}));
    assert!(f.queue.sent().is_empty());
    let child = cpis_domain::NhsNumber::parse("9990000042").unwrap();
    use cpis_domain::ports::AccessLog;
    assert!(f
        .store
        .recent_accesses(&child, 25)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_fhir_interactions_answer_fhir_json() {
    let f = functions().await;
    let care_team = invoke(&f.check, CARE_TEAM).await;
    assert_eq!(care_team.status, StatusCode::OK, "{}", care_team.text);
    assert!(care_team
        .content_type()
        .starts_with("application/fhir+json"));
    let bundle = care_team.json();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "CareTeam");
    assert_eq!(
        f.queue.sent().len(),
        1,
        "IsUnscheduledAccessEvent: true notifies"
    );

    let flag = invoke(&f.check, FLAG).await;
    assert_eq!(flag.status, StatusCode::OK, "{}", flag.text);
    assert_eq!(flag.json()["entry"][0]["resource"]["resourceType"], "Flag");
    assert_eq!(f.queue.sent().len(), 1, "the Flag read is silent");

    let metadata = invoke(&f.check, METADATA).await;
    assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.text);
    assert_eq!(metadata.json()["resourceType"], "CapabilityStatement");
}

#[tokio::test]
async fn a_fhir_search_by_a_council_is_an_operation_outcome() {
    let f = functions().await;
    let council = with_claim(
        &with_claim(CARE_TEAM, "role", "council"),
        "ods_code",
        "E09000033",
    );
    let denied = invoke(&f.check, &council).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);
    assert_eq!(denied.json()["resourceType"], "OperationOutcome");
    assert_no_nhs_number(&denied);
}

#[tokio::test]
async fn the_history_route_is_not_served_here() {
    let f = functions().await;
    let answer = invoke(&f.check, HISTORY).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
}
