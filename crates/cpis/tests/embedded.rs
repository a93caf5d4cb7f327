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
    // No sleep needed: the dispatcher sweeps the outbox once before it first
    // waits, and a graceful stop awaits it, so the restarted service's sweep
    // (where a duplicate would come from) is done when stop returns.
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

/// The personal data tests feed in on purpose (`tests/privacy_fixtures.json`,
/// shared with `tests/privacy_scan.py`).
fn privacy_fixtures() -> Vec<String> {
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/privacy_fixtures.json")).unwrap();
    ["names", "dates_of_birth"]
        .iter()
        .flat_map(|k| fixtures[k].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_name_and_date_of_birth_sent_by_mistake_never_come_back_out() {
    let fixtures = privacy_fixtures();
    let (name, surname, dob) = (&fixtures[0], &fixtures[1], &fixtures[2]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let council = cpis(&["token", "--data", data_arg, "--council", "E09000033"]);
    let doctor = clinician_token(data_arg, "RJ1", "St Example's Hospital", "dr-1");
    let logs = Arc::new(Mutex::new(String::new()));
    let server = Server::start(&data, logs.clone());

    // A council extract that carries a name and a date of birth: the record
    // is refused with UNEXPECTED_FIELD, and its valid neighbour loads.
    let upload = json!({"sequence": 1, "mode": "delta", "records": [
        {"nhs_number": CHILD, "plan_type": "CPP", "start_date": "2025-09-01",
         "given_name": name, "family_name": surname, "date_of_birth": dob},
        {"nhs_number": "9990000026", "plan_type": "LAC", "start_date": "2025-09-01"}
    ]});
    let (status, ack) = server.request("POST", "/v1/uploads", &council, Some(upload));
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["file_outcome"], "CPF03", "{ack}");
    assert_eq!(ack["records"][0]["detail"], "UNEXPECTED_FIELD", "{ack}");
    let mut answers = vec![ack.to_string()];

    // The same in a body that is not JSON, in a withdrawal, and in a check.
    let broken = format!(r#"{{"sequence":2,"mode":"delta","records":[{{"given_name":"{name}","#);
    let (status, problem) = server.request(
        "POST",
        "/v1/uploads",
        &council,
        Some(serde_json::Value::String(broken)),
    );
    assert_eq!(status, 400, "{problem}");
    answers.push(problem.to_string());
    let withdrawal = json!({"sequence": 2, "mode": "delta", "records": [], "withdrawals": [
        {"nhs_number": "9990000026", "plan_type": "LAC", "start_date": "2025-09-01", "date_of_birth": dob}
    ]});
    let (status, ack) = server.request("POST", "/v1/uploads", &council, Some(withdrawal));
    assert!(status == 200 || status == 400, "{status} {ack}");
    answers.push(ack.to_string());
    let (status, problem) = server.request(
        "POST",
        "/v1/checks",
        &doctor,
        Some(json!({"nhs_number": "9990000026", "unscheduled": true, "name": name, "date_of_birth": dob})),
    );
    assert_eq!(status, 400, "{problem}");
    answers.push(problem.to_string());
    server.stop();

    let logs = logs.lock().unwrap().clone();
    assert!(logs.contains("request"), "no logs captured");
    for text in answers.iter().chain([&logs]) {
        for value in &fixtures {
            assert!(
                !text.contains(value.as_str()),
                "personal data came back out: {text}"
            );
        }
        assert!(
            find_nhs_numbers(text).is_empty(),
            "an NHS number came back out"
        );
    }
    capture(
        "embedded-personal-data",
        &logs,
        &data.join("outbox/messages.jsonl"),
    );
}
