//! The functions' answer (`cpis_http::lambda::respond`) against
//! `lambda_http`'s own (`Adapter`, what `lambda_http::run` serialises): for
//! every API Gateway fixture, on two stores in the same state, both give the
//! same payload 2.0 response. `lambda_http` is the independent oracle of the
//! envelope's fields, header handling and body encoding.

use axum::Router;
use cpis_domain::ports::AuthorityDirectory;
use cpis_domain::{Authority, OdsCode};
use cpis_lambda::testing::{gateway_event, state_at, FIXTURE_TIME};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::Value;

/// Every route a function serves, on a store holding one council.
async fn router() -> Router {
    let store = MemoryStore::new();
    store
        .put_authority(&Authority {
            ods_code: OdsCode::parse("E09000033").expect("valid"),
            name: "Example Council".into(),
            office_hours_phone: "020 7946 0000".into(),
            emergency_duty_phone: "020 7946 0999".into(),
            notify_emails: vec!["duty@example.gov.uk".into()],
            notify_sms: vec![],
        })
        .await
        .expect("authority");
    let state = state_at(FIXTURE_TIME, store, RecordingQueue::default());
    cpis_lambda::gateway_app(
        Router::new()
            .merge(cpis_http::health_router())
            .merge(cpis_http::plan_upload_router(state.clone()))
            .merge(cpis_http::council_router(state.clone()))
            .merge(cpis_http::check_router(state.clone()))
            .merge(cpis_http::history_router(state)),
    )
}

/// The fixture with a fixed request id, so both answers carry the same one.
fn fixed_id(event_json: &str) -> String {
    let mut event: Value = serde_json::from_str(event_json).expect("fixture JSON");
    event["headers"]["x-request-id"] = "envelope-test-1".into();
    event.to_string()
}

async fn ours(event_json: &str) -> Value {
    let event = LambdaEvent::new(gateway_event(event_json), Context::default());
    let raw = cpis_http::lambda::respond(router().await, event)
        .await
        .expect("an answer");
    serde_json::from_str(raw.get()).expect("the answer is JSON")
}

async fn lambda_http(event_json: &str) -> Value {
    let event = LambdaEvent::new(gateway_event(event_json), Context::default());
    let response = Adapter::from(router().await)
        .oneshot(event)
        .await
        .unwrap_or_else(|e| match e {});
    serde_json::to_value(&response).expect("lambda_http's answer serialises")
}

/// A FHIR search Bundle's `id` is new on every answer: blanked in both.
fn without_bundle_id(mut envelope: Value) -> Value {
    let body = envelope["body"].as_str().unwrap_or_default();
    if let Ok(mut bundle) = serde_json::from_str::<Value>(body) {
        if bundle["resourceType"] == "Bundle" {
            bundle["id"] = "".into();
            envelope["body"] = bundle.to_string().into();
        }
    }
    envelope
}

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../../events/apigw/", $name)))),*]
    };
}

#[tokio::test]
async fn every_fixture_is_answered_as_lambda_http_answers_it() {
    let fixtures = fixtures![
        "ack-notification-council.json",
        "check-clinician-b0107.json",
        "check-clinician-b0170.json",
        "check-council-forbidden.json",
        "check-invalid-nhs-number.json",
        "check-system.json",
        "fhir-auditevent-clinician.json",
        "fhir-careteam-clinician.json",
        "fhir-flag-clinician.json",
        "fhir-metadata-clinician.json",
        "health.json",
        "history-clinician.json",
        "history-council.json",
        "list-notifications-council.json",
        "list-plans-council.json",
        "read-authority-council.json",
        "read-notification-council.json",
        "update-authority-council.json",
        "upload-clinician-forbidden.json",
        "upload-council.json",
    ];
    let mut statuses = std::collections::BTreeSet::new();
    for (name, fixture) in fixtures {
        let event = fixed_id(fixture);
        let ours = without_bundle_id(ours(&event).await);
        let theirs = without_bundle_id(lambda_http(&event).await);
        assert_eq!(ours, theirs, "{name}");
        statuses.insert(ours["statusCode"].as_u64().expect("a status"));
    }
    // The fixtures reach answers and refusals alike, so both kinds of body
    // (and the problem's content type) were compared.
    for status in [200, 400, 403, 404] {
        assert!(
            statuses.contains(&status),
            "no fixture answered {status}: {statuses:?}"
        );
    }
}
