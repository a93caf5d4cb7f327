//! The real `cpis` binary on a free loopback port with a temporary data
//! directory: the README walkthrough, a restart, and a scan of every log line
//! and outbox message for NHS numbers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{capture, clinician_token, cpis, wait_for, Server};
use cpis_domain::find_nhs_numbers;
use serde_json::json;

const CHILD: &str = "9990000018";

#[test]
fn the_walkthrough_works_survives_a_restart_and_leaks_no_nhs_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let council = cpis(&["token", "--data", data_arg, "--council", "E09000033"]);
    let other_council = cpis(&["token", "--data", data_arg, "--council", "E06000001"]);
    let doctor = clinician_token(data_arg, "RJ1", "St Example's Hospital", "dr-1");
    let logs = Arc::new(Mutex::new(String::new()));

    let server = Server::start(&data, logs.clone());
    let (status, health) = server.request("GET", "/health", "", None);
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let upload = json!({"sequence": 1, "mode": "delta", "records": [
        {"nhs_number": CHILD, "plan_type": "CPP", "start_date": "2025-09-01", "local_id": "CASE-42"}
    ]});
    let (status, ack) = server.request("POST", "/v1/uploads", &council, Some(upload));
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["file_outcome"], "CPF02");

    let (status, check) = server.request(
        "POST",
        "/v1/checks",
        &doctor,
        Some(json!({"nhs_number": CHILD, "unscheduled": true})),
    );
    assert_eq!(status, 200, "{check}");
    assert_eq!(
        check["plans"][0]["authority"]["name"],
        "Example Borough Council"
    );
    assert_eq!(check["access_history"].as_array().unwrap().len(), 1);

    let (status, inbox) = server.request("GET", "/v1/notifications", &council, None);
    assert_eq!(status, 200);
    let asn = &inbox["notifications"][0];
    assert_eq!(asn["nhs_number"], CHILD);
    assert_eq!(asn["local_id"], "CASE-42");
    let asn_id = asn["id"].as_str().unwrap().to_owned();

    let (status, foreign) = server.request(
        "GET",
        &format!("/v1/notifications/{asn_id}"),
        &other_council,
        None,
    );
    assert_eq!((status, foreign["code"].as_str()), (404, Some("NOT_FOUND")));

    let outbox = data.join("outbox/messages.jsonl");
    wait_for(
        "the SMS and email in the local outbox",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&outbox)
                .map(|t| t.lines().count() == 2)
                .unwrap_or(false)
        },
    );

    let (status, history) = server.request(
        "POST",
        "/v1/history",
        &council,
        Some(json!({"nhs_number": CHILD})),
    );
    assert_eq!(status, 200);
    assert_eq!(history["access_history"][0]["organisation_ods"], "RJ1");
    server.stop();

    // Everything is still there after a restart, and nothing is sent twice.
    let server = Server::start(&data, logs.clone());
    let (_, plans) = server.request("GET", "/v1/plans", &council, None);
    assert_eq!(plans["plans"].as_array().unwrap().len(), 1);
    let (_, inbox) = server.request("GET", "/v1/notifications", &council, None);
    assert_eq!(inbox["notifications"][0]["id"], asn_id.as_str());
    let (_, history) = server.request(
        "POST",
        "/v1/history",
        &council,
        Some(json!({"nhs_number": CHILD})),
    );
    assert_eq!(history["access_history"].as_array().unwrap().len(), 1);
    let (status, _) = server.request(
        "POST",
        &format!("/v1/notifications/{asn_id}/ack"),
        &council,
        None,
    );
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(500));
    server.stop();

    let messages = std::fs::read_to_string(&outbox).unwrap();
    assert_eq!(
        messages.lines().count(),
        2,
        "a notification was delivered twice"
    );
    assert!(
        find_nhs_numbers(&messages).is_empty(),
        "an NHS number reached the outbox"
    );
    assert!(
        !messages.contains("CASE-42") && !messages.contains("St Example"),
        "identifying text reached the outbox"
    );
    let logs = logs.lock().unwrap().clone();
    capture("embedded", &logs, &outbox);
    assert!(logs.contains("request"), "no logs captured");
    assert!(
        find_nhs_numbers(&logs).is_empty(),
        "an NHS number reached the logs"
    );
}
