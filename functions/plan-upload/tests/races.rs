//! The two upload races of issue 17, 200 times each, against the plan-upload
//! function on DynamoDB in moto (each invocation on a task of its own, as two
//! Lambda instances would run them):
//! - sequence 1 = {P, Q}; then 3 = {P} and 2 = {Q} at once: the council must
//!   end with {P} whenever 3 was acknowledged (an older snapshot never wins);
//! - one sequence with two bodies at once: one 200, one 409, one body stored.
//!
//! `crates/cpis/tests/races.rs` sends the same races to `cpis serve`.

use cpis_aws::moto;
use cpis_lambda::testing::{invoke, state_at, with_body, with_claim, Answer, FIXTURE_TIME};
use cpis_store_memory::RecordingQueue;
use http::StatusCode;
use serde_json::json;

const UPLOAD: &str = include_str!("../../../events/apigw/upload-council.json");
const LIST_PLANS: &str = include_str!("../../../events/apigw/list-plans-council.json");
const TRIALS: usize = 200;
const P: &str = "9990000018";
const Q: &str = "9990000026";

fn snapshot(sequence: u64, children: &[&str]) -> String {
    let records: Vec<_> = children
        .iter()
        .map(|c| json!({"nhs_number": c, "plan_type": "CPP", "start_date": "2025-01-06"}))
        .collect();
    json!({"sequence": sequence, "mode": "full", "records": records}).to_string()
}

async fn send_both(app: &axum::Router, first: String, second: String) -> (Answer, Answer) {
    let (a, b) = (app.clone(), app.clone());
    let left = tokio::spawn(async move { invoke(&a, &first).await });
    let right = tokio::spawn(async move { invoke(&b, &second).await });
    (left.await.expect("task"), right.await.expect("task"))
}

async fn children(app: &axum::Router, ods: &str) -> Vec<String> {
    let plans = invoke(app, &with_claim(LIST_PLANS, "ods_code", ods)).await;
    assert_eq!(plans.status, StatusCode::OK, "{}", plans.text);
    let mut found: Vec<String> = plans.json()["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| p["nhs_number"].as_str().expect("nhs").to_owned())
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_moto_an_older_snapshot_never_wins_a_race_with_a_newer_one() {
    let app = plan_upload::app(state_at(
        FIXTURE_TIME,
        moto::fresh_store().await,
        RecordingQueue::default(),
    ));
    let (mut newer_acknowledged, mut older_acknowledged) = (0, 0);
    for trial in 0..TRIALS {
        let ods = moto::unique_ods();
        let event = |body: String| with_body(&with_claim(UPLOAD, "ods_code", ods.as_str()), &body);
        let seed = invoke(&app, &event(snapshot(1, &[P, Q]))).await;
        assert_eq!(seed.status, StatusCode::OK, "{}", seed.text);
        let (newer, older) =
            send_both(&app, event(snapshot(3, &[P])), event(snapshot(2, &[Q]))).await;
        for answer in [&newer, &older] {
            assert!(
                answer.status == StatusCode::OK || answer.status == StatusCode::CONFLICT,
                "trial {trial}: {} {}",
                answer.status,
                answer.text
            );
        }
        // The model: the highest acknowledged sequence's snapshot stands.
        let expected = if newer.status == StatusCode::OK {
            vec![P.to_owned()]
        } else {
            vec![Q.to_owned()]
        };
        assert_eq!(
            children(&app, ods.as_str()).await,
            expected,
            "trial {trial}"
        );
        newer_acknowledged += usize::from(newer.status == StatusCode::OK);
        older_acknowledged += usize::from(older.status == StatusCode::OK);
    }
    eprintln!(
        "{TRIALS} trials: sequence 3 acknowledged {newer_acknowledged} times, 2 {older_acknowledged} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_moto_one_sequence_with_two_bodies_stores_one_body() {
    let app = plan_upload::app(state_at(
        FIXTURE_TIME,
        moto::fresh_store().await,
        RecordingQueue::default(),
    ));
    for trial in 0..TRIALS {
        let ods = moto::unique_ods();
        let event = |body: String| with_body(&with_claim(UPLOAD, "ods_code", ods.as_str()), &body);
        let (left, right) =
            send_both(&app, event(snapshot(5, &[P])), event(snapshot(5, &[Q]))).await;
        let mut statuses = [left.status, right.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "trial {trial}: {} / {}",
            left.text,
            right.text
        );
        let loser = if left.status == StatusCode::CONFLICT {
            &left
        } else {
            &right
        };
        assert_eq!(loser.json()["code"], "SEQUENCE_CONFLICT", "trial {trial}");
        let winner = if left.status == StatusCode::OK { P } else { Q };
        assert_eq!(
            children(&app, ods.as_str()).await,
            vec![winner.to_owned()],
            "trial {trial}"
        );
    }
}
