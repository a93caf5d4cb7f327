//! The real `cpis` binary on a free loopback port with a temporary data
//! directory: the README walkthrough, a restart, and a scan of every log line
//! and outbox message for NHS numbers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpis_domain::find_nhs_numbers;
use serde_json::{json, Value};

const CHILD: &str = "9990000018";

fn cpis(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .args(args)
        .output()
        .expect("run cpis");
    assert!(
        output.status.success(),
        "cpis {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

struct Server {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl Server {
    fn start(data: &Path, logs: Arc<Mutex<String>>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cpis"))
            .args(["serve", "--demo", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cpis serve");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("cpis listening") {
                    let parsed: Value = serde_json::from_str(&line).unwrap();
                    let _ = tx.send(
                        parsed["fields"]["addr"]
                            .as_str()
                            .unwrap()
                            .parse::<SocketAddr>()
                            .unwrap(),
                    );
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("cpis did not start listening");
        Self { child, addr, logs }
    }

    fn request(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "cpis did not shut down cleanly: {exit:?}");
        let _ = &self.logs;
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_walkthrough_works_survives_a_restart_and_leaks_no_nhs_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let council = cpis(&["token", "--data", data_arg, "--council", "E09000033"]);
    let other_council = cpis(&["token", "--data", data_arg, "--council", "E06000001"]);
    let doctor = cpis(&[
        "token",
        "--data",
        data_arg,
        "--clinician",
        "--ods",
        "RJ1",
        "--org-name",
        "St Example's Hospital",
        "--rbac",
        "B0107",
        "--setting",
        "emergency-department",
        "--user",
        "dr-1",
    ]);
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
    wait_for("the SMS and email in the local outbox", || {
        std::fs::read_to_string(&outbox)
            .map(|t| t.lines().count() == 2)
            .unwrap_or(false)
    });

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
    assert!(logs.contains("request"), "no logs captured");
    assert!(
        find_nhs_numbers(&logs).is_empty(),
        "an NHS number reached the logs"
    );
}
