//! Issue 18: slow clients cannot take `cpis serve` down. With the file
//! descriptor limit lowered to 64 and 150 connections that send half a
//! request head and stop, and the server told to wait an hour for a request
//! head, `/health` and checks are still answered while every slow client is
//! still held: the answer cannot have waited for any of them to time out
//! (the client gives up after 30 seconds). No timing is asserted: that is
//! for the benchmarks. The server says (counts only) that its limit tripped.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn half_open_connections_do_not_stop_checks_being_answered() {
    flood_then_check(
        "slow_clients_limit",
        &["--max-connections", "32"],
        "connection limit reached",
    );
}

/// The same with the default connection limit (512), far above the
/// descriptor limit: running out of descriptors makes room the same way.
#[test]
fn running_out_of_descriptors_does_not_stop_checks_being_answered() {
    flood_then_check("slow_clients_descriptors", &[], "out of file descriptors");
}

fn flood_then_check(name: &str, flags: &[&str], warning_text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    // An hour: far past the client's 30-second read timeout, so a check is
    // answered only if the server never waits on the slow clients.
    let mut args = vec!["--header-read-timeout", "3600"];
    args.extend_from_slice(flags);
    let server = Server::start_with(&data, logs.clone(), Some(64), &args);
    let doctor = clinician_token(data_arg, "RJ1", "St Example's", "dr-1");

    // Half a request head each, then silence (the slowloris).
    let mut held = Vec::new();
    for _ in 0..150 {
        let Ok(mut stream) = TcpStream::connect(server.addr) else {
            break;
        };
        let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: cpis\r\n");
        held.push(stream);
    }
    assert!(held.len() >= 100, "only {} connections opened", held.len());
    // The checks below must meet a server whose limit has already tripped.
    wait_for("the limit's warning", Duration::from_secs(30), || {
        logs.lock().unwrap().contains(warning_text)
    });

    for round in 0..5 {
        let (status, body) = server.request(
            "POST",
            "/v1/checks",
            &doctor,
            Some(json!({ "nhs_number": "9990000018", "unscheduled": false })),
        );
        assert_eq!(status, 200, "round {round}: {body}");
        let (status, _) = server.request("GET", "/health", "", None);
        assert_eq!(status, 200, "round {round}");
    }
    // Every slow client was still held (and never timed out) throughout.
    drop(held);
    server.stop();

    let logs = logs.lock().unwrap().clone();
    let warning = logs
        .lines()
        .find(|l| l.contains(warning_text))
        .unwrap_or_else(|| panic!("no warning logged: {logs}"));
    let line: serde_json::Value = serde_json::from_str(warning).unwrap();
    assert_eq!(line["level"], "WARN");
    // Counts only: no address, nothing a client sent.
    assert!(!warning.contains("127.0.0.1"), "{warning}");
    capture(name, &logs, &data.join("outbox"));
}
