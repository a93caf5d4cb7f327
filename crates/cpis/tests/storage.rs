//! The data directory against a hostile local user and a storage fault
//! (issue 17, findings 4 and 5), on the real `cpis serve` binary:
//! - a fresh data directory made under umask 022 has no file or directory
//!   that another user can read, and a loosened one is tightened at start
//!   with a warning;
//! - deleting the database while the service runs gives 503 on the next
//!   write and "not ready" at once, `/health` stays live, and a restart
//!   refuses to start rather than serve an empty database.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Synthetic (999 range).
const CHILD: &str = "9990000018";

fn upload(sequence: u64) -> serde_json::Value {
    json!({"sequence": sequence, "mode": "delta", "records": [
        {"nhs_number": CHILD, "plan_type": "CPP", "start_date": "2025-09-01", "local_id": "CASE-42"}
    ]})
}

#[cfg(unix)]
fn walk(dir: &Path, found: &mut Vec<(PathBuf, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        found.push((path.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            walk(&path, found);
        }
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn a_fresh_data_directory_under_umask_022_is_closed_to_other_users() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = Arc::new(Mutex::new(String::new()));
    let server = Server::start_under_umask(&data, logs.clone(), Some("022"));
    let data_arg = data.to_str().unwrap();
    let council = cpis(&["token", "--data", data_arg, "--council", "E09000033"]);
    let doctor = clinician_token(data_arg, "RJ1", "St Example's Hospital", "dr-1");
    let (status, ack) = server.request("POST", "/v1/uploads", &council, Some(upload(1)));
    assert_eq!(status, 200, "{ack}");
    let (status, check) = server.request(
        "POST",
        "/v1/checks",
        &doctor,
        Some(json!({"nhs_number": CHILD, "unscheduled": true})),
    );
    assert_eq!(status, 200, "{check}");
    // The dispatcher writes the duty team's messages to the local outbox.
    let outbox = data.join("outbox/messages.jsonl");
    wait_for("the outbox file", Duration::from_secs(30), || {
        outbox.exists()
    });

    let mut found = Vec::new();
    found.push((data.clone(), mode(&data)));
    walk(&data, &mut found);
    // Every file the service keeps is there, so the check below covers them.
    for expected in [
        "cpis.sqlite3",
        "cpis.sqlite3-wal",
        "cpis.sqlite3-shm",
        "cpis.sqlite3.created",
        "keys/signing-key.pem",
        "keys/pseudonym.key",
        "outbox/messages.jsonl",
    ] {
        assert!(
            found.iter().any(|(path, _)| *path == data.join(expected)),
            "{expected} missing from {found:?}"
        );
    }
    for (path, mode) in &found {
        assert_eq!(
            mode & 0o077,
            0,
            "{} is {mode:o}: open to other users",
            path.display()
        );
    }
    // Created private, not tightened afterwards.
    assert!(
        !logs.lock().unwrap().contains("now owner-only"),
        "{}",
        logs.lock().unwrap()
    );
    server.stop();

    // A directory someone loosened is tightened at the next start, with a warning.
    use std::os::unix::fs::PermissionsExt;
    let loosen = |path: &Path, m| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap()
    };
    loosen(&data, 0o755);
    loosen(&data.join("cpis.sqlite3"), 0o644);
    loosen(&data.join("outbox/messages.jsonl"), 0o644);
    let logs = Arc::new(Mutex::new(String::new()));
    let server = Server::start_under_umask(&data, logs.clone(), Some("022"));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("cpis.sqlite3")), 0o600);
    assert_eq!(mode(&data.join("outbox/messages.jsonl")), 0o600);
    let warnings = logs
        .lock()
        .unwrap()
        .lines()
        .filter(|line| line.contains("\"WARN\"") && line.contains("now owner-only"))
        .count();
    assert_eq!(warnings, 3, "{}", logs.lock().unwrap());
    // Serving (so its SIGTERM handler is in place) before it is stopped.
    let (status, _) = server.request("GET", "/health/ready", "", None);
    assert_eq!(status, 200);
    server.stop();
    capture("storage-permissions", &logs.lock().unwrap(), &outbox);
}

#[test]
fn a_deleted_database_gives_503_and_not_ready_at_once_and_is_never_recreated_empty() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let council = cpis(&["token", "--data", data_arg, "--council", "E09000033"]);
    let logs = Arc::new(Mutex::new(String::new()));
    let server = Server::start(&data, logs.clone());

    let (status, ready) = server.request("GET", "/health/ready", "", None);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    let (status, ack) = server.request("POST", "/v1/uploads", &council, Some(upload(1)));
    assert_eq!(status, 200, "{ack}");

    std::fs::remove_file(data.join("cpis.sqlite3")).unwrap();

    // The very next write fails, as a problem that says it is safe to retry.
    let (status, problem) = server.request("POST", "/v1/uploads", &council, Some(upload(2)));
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(problem["status"], 503);
    // Reads too: an open connection would go on reading the deleted file.
    let (status, _) = server.request("GET", "/v1/plans", &council, None);
    assert_eq!(status, 503);
    let (status, ready) = server.request("GET", "/health/ready", "", None);
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(
        ready["components"]["database"]["status"], "failing",
        "{ready}"
    );
    assert!(
        !ready.to_string().contains(data_arg),
        "readiness names no path: {ready}"
    );
    // Liveness is another question: the process answers.
    let (status, _) = server.request("GET", "/health", "", None);
    assert_eq!(status, 200);
    assert!(
        !data.join("cpis.sqlite3").exists(),
        "no empty file was made"
    );
    {
        let logs = logs.lock().unwrap();
        assert!(
            logs.lines().any(|line| line.contains("\"ERROR\"")
                && line.contains("deleted or replaced while the service runs")),
            "{logs}"
        );
    }
    server.stop();

    // A restart refuses to start, naming the file, and creates nothing.
    let mut restart = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data", data_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = restart.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = restart.kill();
            panic!("cpis started on a data directory whose database is gone");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut restart.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("cpis.sqlite3 is missing"), "{stderr}");
    assert!(stderr.contains("restore"), "{stderr}");
    assert!(!data.join("cpis.sqlite3").exists());
    let mut all = logs.lock().unwrap().clone();
    all.push_str(&stderr);
    capture(
        "storage-deleted-database",
        &all,
        &data.join("outbox/messages.jsonl"),
    );
}
