//! The two upload races of issue 17, 200 times each, against the real
//! `cpis serve` (two threads, two connections, sent at the same moment):
//! - sequence n = {P, Q}; then n+2 = {P} and n+1 = {Q} at once: whenever n+2
//!   was acknowledged the council holds {P}; an older snapshot never wins;
//! - one sequence with two bodies at once: one 200, one 409, one body stored.
//!
//! `functions/plan-upload/tests/races.rs` sends the same races to the Lambda
//! function on DynamoDB.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::*;
use serde_json::{json, Value};

const TRIALS: u64 = 200;
const P: &str = "9990000018";
const Q: &str = "9990000026";

fn snapshot(sequence: u64, children: &[&str]) -> Value {
    let records: Vec<_> = children
        .iter()
        .map(|c| json!({"nhs_number": c, "plan_type": "CPP", "start_date": "2025-09-01"}))
        .collect();
    json!({"sequence": sequence, "mode": "full", "records": records})
}

/// Both bodies posted at once; the answers in the same order.
fn post_both(server: &Arc<Server>, token: &str, bodies: [Value; 2]) -> Vec<(u16, Value)> {
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (server, token, start) = (server.clone(), token.to_owned(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                server.request("POST", "/v1/uploads", &token, Some(body))
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn children(server: &Server, token: &str) -> Vec<String> {
    let mut found: Vec<String> = server
        .list_all("/v1/plans", token, "plans")
        .iter()
        .map(|p| p["nhs_number"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    found
}

#[test]
fn on_cpis_serve_no_upload_race_lets_an_older_snapshot_or_a_second_body_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let server = Arc::new(Server::start(&data, logs.clone()));
    let council = cpis(&["token", "--data", data_arg, "--council", "E09000033"]);

    let mut sequence = 0;
    let mut newer_acknowledged = 0;
    for trial in 0..TRIALS {
        let (status, ack) = server.request(
            "POST",
            "/v1/uploads",
            &council,
            Some(snapshot(sequence + 1, &[P, Q])),
        );
        assert_eq!(status, 200, "{ack}");
        let answers = post_both(
            &server,
            &council,
            [snapshot(sequence + 3, &[P]), snapshot(sequence + 2, &[Q])],
        );
        for (status, body) in &answers {
            assert!(
                *status == 200 || *status == 409,
                "trial {trial}: {status} {body}"
            );
        }
        let newer_won = answers[0].0 == 200;
        let expected = if newer_won { vec![P] } else { vec![Q] };
        assert_eq!(children(&server, &council), expected, "trial {trial}");
        newer_acknowledged += u64::from(newer_won);
        sequence += 3;
    }
    assert!(newer_acknowledged > 0);

    for trial in 0..TRIALS {
        sequence += 1;
        let answers = post_both(
            &server,
            &council,
            [snapshot(sequence, &[P]), snapshot(sequence, &[Q])],
        );
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 409], "trial {trial}: {answers:?}");
        let winner = if answers[0].0 == 200 { P } else { Q };
        assert_eq!(children(&server, &council), vec![winner], "trial {trial}");
    }
    eprintln!("{TRIALS} snapshot races: the newer acknowledged {newer_acknowledged} times");
    let server = Arc::into_inner(server).expect("threads joined");
    server.stop();
    capture("races", &logs.lock().unwrap(), &data.join("outbox"));
}
