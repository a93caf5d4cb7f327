//! The plan-upload function fed the `events/apigw` fixtures exactly as
//! `lambda_http::run` would hand them over: first on the in-memory store,
//! then on DynamoDB and SNS in moto (the directory entry drives the council's
//! subscriptions).

use cpis_aws::{moto, topic_name, TopicSync};
use cpis_domain::OdsCode;
use cpis_lambda::testing::{invoke, state_at, with_body, with_claim, Answer, FIXTURE_TIME};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use http::StatusCode;
use serde_json::json;

const UPLOAD: &str = include_str!("../../../events/apigw/upload-council.json");
const UPLOAD_BY_CLINICIAN: &str =
    include_str!("../../../events/apigw/upload-clinician-forbidden.json");
const LIST_PLANS: &str = include_str!("../../../events/apigw/list-plans-council.json");
const READ_AUTHORITY: &str = include_str!("../../../events/apigw/read-authority-council.json");
const UPDATE_AUTHORITY: &str = include_str!("../../../events/apigw/update-authority-council.json");
const LIST_NOTIFICATIONS: &str =
    include_str!("../../../events/apigw/list-notifications-council.json");
const READ_NOTIFICATION: &str =
    include_str!("../../../events/apigw/read-notification-council.json");
const ACK_NOTIFICATION: &str = include_str!("../../../events/apigw/ack-notification-council.json");
const HEALTH: &str = include_str!("../../../events/apigw/health.json");
const CHECK: &str = include_str!("../../../events/apigw/check-clinician-b0107.json");

fn memory_app() -> axum::Router {
    plan_upload::app(state_at(
        FIXTURE_TIME,
        MemoryStore::new(),
        RecordingQueue::default(),
    ))
}

fn assert_problem(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.content_type(), "application/problem+json");
    assert_eq!(answer.json()["code"], code, "{}", answer.text);
    assert!(
        cpis_domain::find_nhs_numbers(&answer.text).is_empty(),
        "an NHS number in a problem body"
    );
}

/// The fixture without the authorizer's claims (a route left open by mistake).
fn without_claims(event: &str) -> String {
    let mut event: serde_json::Value = serde_json::from_str(event).unwrap();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    event.to_string()
}

#[tokio::test]
async fn the_council_fixtures_load_plans_and_keep_the_directory_entry() {
    let app = memory_app();

    let ack = invoke(&app, UPLOAD).await;
    assert_eq!(ack.status, StatusCode::OK, "{}", ack.text);
    let ack = ack.json();
    assert_eq!(ack["file_outcome"], "CPF02");
    assert_eq!(ack["loaded"], 3);

    let plans = invoke(&app, LIST_PLANS).await;
    assert_eq!(plans.status, StatusCode::OK, "{}", plans.text);
    assert_eq!(plans.json()["plans"].as_array().unwrap().len(), 3);

    let put = invoke(&app, UPDATE_AUTHORITY).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let read = invoke(&app, READ_AUTHORITY).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.json()["ods_code"], "E09000033");
    assert_eq!(read.json()["name"], "Example Borough Council");

    let inbox = invoke(&app, LIST_NOTIFICATIONS).await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text);
    assert_eq!(inbox.json()["notifications"], json!([]));

    let health = invoke(&app, HEALTH).await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_notification_is_a_404_problem_for_reading_and_acknowledging() {
    let app = memory_app();
    assert_problem(
        &invoke(&app, READ_NOTIFICATION).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    );
    assert_problem(
        &invoke(&app, ACK_NOTIFICATION).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn a_clinician_cannot_upload_and_a_request_without_claims_is_refused() {
    let app = memory_app();
    assert_problem(
        &invoke(&app, UPLOAD_BY_CLINICIAN).await,
        StatusCode::FORBIDDEN,
        "ACCESS_DENIED",
    );
    assert_problem(
        &invoke(&app, &without_claims(UPLOAD)).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    );
    // Nothing was loaded by either.
    let plans = invoke(&app, LIST_PLANS).await;
    assert_eq!(plans.json()["plans"], json!([]));
}

#[tokio::test]
async fn the_council_comes_from_the_claims_never_the_body() {
    let app = memory_app();
    invoke(&app, UPLOAD).await;
    // Another council's token lists nothing of the first council's.
    let other = invoke(&app, &with_claim(LIST_PLANS, "ods_code", "E06000001")).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.json()["plans"], json!([]));
    // A directory body naming another council is refused, and writes nothing.
    let body = json!({
        "ods_code": "E06000001",
        "name": "Someone Else",
        "office_hours_phone": "020 7946 0000",
        "emergency_duty_phone": "020 7946 0999",
        "notify_emails": [],
        "notify_sms": []
    });
    let put = invoke(&app, &with_body(UPDATE_AUTHORITY, &body.to_string())).await;
    assert_problem(&put, StatusCode::BAD_REQUEST, "INVALID_DIRECTORY_ENTRY");
    assert_eq!(put.json()["errors"][0]["pointer"], "/ods_code");
    let theirs = invoke(&app, &with_claim(READ_AUTHORITY, "ods_code", "E06000001")).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.text);
}

#[tokio::test]
async fn the_check_route_is_not_served_here() {
    let app = memory_app();
    assert_problem(
        &invoke(&app, CHECK).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn on_moto_a_directory_update_keeps_the_councils_subscriptions_in_step() {
    let sdk = moto::sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let store = moto::fresh_store()
        .await
        .with_topic_sync(TopicSync::new(sns.clone(), None, None));
    let app = plan_upload::app(state_at(FIXTURE_TIME, store, RecordingQueue::default()));
    let ods = moto::unique_ods();
    let put = with_claim(UPDATE_AUTHORITY, "ods_code", ods.as_str());

    let answer = invoke(&app, &put).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        subscriptions(&sns, &ods).await,
        [
            ("email".to_owned(), "duty.team@example.gov.uk".to_owned()),
            ("sms".to_owned(), "+447700900123".to_owned()),
        ]
    );

    // The council replaces its SMS number and drops its email address.
    let mut entry: serde_json::Value =
        serde_json::from_str(&gateway_body(UPDATE_AUTHORITY)).unwrap();
    entry["notify_emails"] = json!([]);
    entry["notify_sms"] = json!(["+447700900456"]);
    let answer = invoke(&app, &with_body(&put, &entry.to_string())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        subscriptions(&sns, &ods).await,
        [("sms".to_owned(), "+447700900456".to_owned())]
    );

    // The same PUT again changes nothing (a retry is safe).
    invoke(&app, &with_body(&put, &entry.to_string())).await;
    assert_eq!(subscriptions(&sns, &ods).await.len(), 1);

    // And the entry reads back through the function.
    let read = invoke(&app, &with_claim(READ_AUTHORITY, "ods_code", ods.as_str())).await;
    assert_eq!(read.json()["notify_sms"], json!(["+447700900456"]));
}

#[tokio::test]
async fn on_moto_an_upload_is_idempotent_by_sequence() {
    let store = moto::fresh_store().await;
    let app = plan_upload::app(state_at(FIXTURE_TIME, store, RecordingQueue::default()));
    let ods = moto::unique_ods();
    let upload = with_claim(UPLOAD, "ods_code", ods.as_str());
    let first = invoke(&app, &upload).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = invoke(&app, &upload).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json(), first.json());
    let plans = invoke(&app, &with_claim(LIST_PLANS, "ods_code", ods.as_str())).await;
    assert_eq!(plans.json()["plans"].as_array().unwrap().len(), 3);
}

fn gateway_body(event: &str) -> String {
    let event: serde_json::Value = serde_json::from_str(event).unwrap();
    event["body"].as_str().unwrap().to_owned()
}

/// The (protocol, endpoint) pairs on the council's topic, sorted.
async fn subscriptions(sns: &aws_sdk_sns::Client, ods: &OdsCode) -> Vec<(String, String)> {
    let topic_arn = format!("{}{}", moto::topic_arn_prefix(), ods);
    assert!(topic_arn.ends_with(&topic_name(ods)));
    let out = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .unwrap();
    let mut pairs: Vec<(String, String)> = out
        .subscriptions()
        .iter()
        .map(|s| {
            (
                s.protocol().unwrap_or_default().to_owned(),
                s.endpoint().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}
