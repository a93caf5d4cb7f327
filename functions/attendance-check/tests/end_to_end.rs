//! End to end on moto, each step through the function that does it in
//! production: the council's directory entry and upload through plan-upload
//! (API Gateway v2 events), the check through attendance-check, the ASN onto
//! the real SQS queue, the dispatcher fed those SQS messages as the Lambda
//! service would, and a probe queue subscribed to the council's SNS topic
//! standing in for the duty team's phone.

use aws_lambda_events::sqs::SqsEvent;
use cpis_aws::{moto, DynamoStore, SnsChannel, SqsQueue, TopicSync};
use cpis_lambda::testing::{invoke, state_at, with_claim, FIXTURE_TIME};
use http::StatusCode;

const UPLOAD: &str = include_str!("../../../events/apigw/upload-council.json");
const UPDATE_AUTHORITY: &str = include_str!("../../../events/apigw/update-authority-council.json");
const CHECK: &str = include_str!("../../../events/apigw/check-clinician-b0107.json");
const CHECK_SILENT: &str = include_str!("../../../events/apigw/check-clinician-b0170.json");
const VIEW_URL: &str = "https://council.cpis.example/notifications";

#[tokio::test]
async fn an_unscheduled_check_reaches_the_duty_team_once_without_an_nhs_number() {
    let sdk = moto::sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let store: DynamoStore = moto::fresh_store().await;
    let (queue_url, _) = moto::create_queue(&sqs, &moto::unique("asn")).await;
    let ods = moto::unique_ods();
    let as_council = |event: &str| with_claim(event, "ods_code", ods.as_str());

    // plan-upload: the directory entry (creates the council's topic and
    // subscriptions) and the plans.
    let plan_upload = plan_upload::app(state_at(
        FIXTURE_TIME,
        store
            .clone()
            .with_topic_sync(TopicSync::new(sns.clone(), None, None)),
        cpis_lambda::NoQueue,
    ));
    let put = invoke(&plan_upload, &as_council(UPDATE_AUTHORITY)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let topic_arn = format!("{}{ods}", moto::topic_arn_prefix());
    let probe = moto::probe_queue(&sns, &sqs, &topic_arn).await;
    let ack = invoke(&plan_upload, &as_council(UPLOAD)).await;
    assert_eq!(ack.json()["file_outcome"], "CPF02", "{}", ack.text);

    // attendance-check: a silent read queues nothing; the unscheduled check
    // queues one ASN for the one council, and a repeat within 24 h none.
    let check = attendance_check::app(state_at(
        FIXTURE_TIME,
        store.clone(),
        SqsQueue::new(sqs.clone(), queue_url.clone()),
    ));
    let silent = invoke(&check, CHECK_SILENT).await;
    assert_eq!(silent.status, StatusCode::OK, "{}", silent.text);
    let answer = invoke(&check, CHECK).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.json()["plans"][0]["authority"]["ods_code"],
        ods.as_str()
    );
    invoke(&check, CHECK).await;
    let messages = moto::drain(&sqs, &queue_url).await;
    assert_eq!(messages.len(), 1, "one ASN message on the queue");
    for m in &messages {
        let body = m.body().unwrap_or_default();
        assert!(
            cpis_domain::find_nhs_numbers(body).is_empty(),
            "the queue carries ids only"
        );
    }

    // notification-dispatch, fed the real messages; then the same batch again
    // (SQS delivers at least once).
    let channel = SnsChannel::new(sns.clone(), moto::topic_arn_prefix());
    let event: SqsEvent = serde_json::from_value(moto::lambda_sqs_event(&messages)).unwrap();
    for _ in 0..2 {
        let response =
            notification_dispatch::handle_batch(&store, &channel, VIEW_URL, &event, FIXTURE_TIME)
                .await;
        assert!(response.batch_item_failures.is_empty());
    }

    // The duty team's topic carried exactly one notice, with nothing identifying.
    let delivered = moto::drain(&sqs, &probe).await;
    assert_eq!(delivered.len(), 1, "exactly one notice per ASN");
    let text = delivered[0].body().unwrap_or_default();
    assert!(cpis_domain::find_nhs_numbers(text).is_empty(), "{text}");
    for private in ["CASE-42", "St Example", "RJ1", "CPP", "dr-0001"] {
        assert!(!text.contains(private), "{private} left AWS in a notice");
    }
    assert!(text.contains(VIEW_URL));
}
