//! Issue 18: the command line never panics, bounds its numbers, and says
//! which address or file a start-up error is about; `--demo` seeds only
//! missing directory entries.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .args(args)
        .output()
        .expect("run cpis");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn token_lifetimes_out_of_bounds_are_refused_with_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for ttl in ["99999999999", "0", "-5", "10081", "abc"] {
        let (code, stderr) = run(&[
            "token",
            "--data",
            data,
            "--council",
            "E09000033",
            "--ttl-minutes",
            ttl,
        ]);
        assert_eq!(code, 2, "--ttl-minutes {ttl}: {stderr}");
        assert!(stderr.contains("--ttl-minutes"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (code, stderr) = run(&[
        "token",
        "--data",
        data,
        "--council",
        "E09000033",
        "--ttl-minutes",
        "10080",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn serve_numbers_out_of_bounds_are_refused() {
    for (flag, value) in [
        ("--tail-days", "-1"),
        ("--tail-days", "99999999999999"),
        ("--header-read-timeout", "0"),
        ("--idle-timeout", "86400"),
        ("--max-connections", "0"),
    ] {
        let (code, stderr) = run(&["serve", flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{stderr}");
    }
}

#[test]
fn a_taken_port_is_reported_with_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(&[
        "serve",
        "--addr",
        &addr,
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn an_unusable_database_is_reported_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be.
    let database = dir.path().join("cpis.sqlite3");
    std::fs::create_dir_all(&database).unwrap();
    let (code, stderr) = run(&["demo", "--data", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot open the database") && stderr.contains(database.to_str().unwrap()),
        "{stderr}"
    );
}

#[test]
fn demo_seeds_only_missing_directory_entries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let council = cpis(&[
        "token",
        "--data",
        data.to_str().unwrap(),
        "--council",
        "E09000033",
    ]);
    let logs = Arc::new(Mutex::new(String::new()));
    let server = Server::start(&data, logs.clone());
    let (status, body) = server.request(
        "PUT",
        "/v1/authority",
        &council,
        Some(json!({
            "name": "Edited Borough Council",
            "office_hours_phone": "020 7946 0555",
            "emergency_duty_phone": "020 7946 0556",
        })),
    );
    assert_eq!(status, 200, "{body}");
    server.stop();
    // --demo again (serve and the demo command): the edit stays.
    let server = Server::start(&data, logs.clone());
    let (_, entry) = server.request("GET", "/v1/authority", &council, None);
    assert_eq!(entry["name"], "Edited Borough Council");
    server.stop();
    let seeded = cpis(&["demo", "--data", data.to_str().unwrap()]);
    assert!(seeded.starts_with("seeded 0 of 2"), "{seeded}");
    capture("cli_demo", &logs.lock().unwrap(), &data.join("outbox"));
}

/// `cpis login-link` (issue 14): the link names the service's address and
/// keeps a portal `next`; it takes the caller options of `cpis token` and
/// refuses a lifetime past 10 minutes, a `next` off the portal and an
/// `--issued-at` in the future, each with a clear error, never a panic.
#[test]
fn login_links_name_the_service_and_refuse_what_the_portal_would() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let link = |extra: &[&str]| {
        let mut args = vec!["login-link", "--data", data];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_cpis"))
            .args(&args)
            .output()
            .expect("run cpis")
    };
    let ok = link(&[
        "--council",
        "E09000033",
        "--addr",
        "0.0.0.0:9090",
        "--next",
        "/portal/uploads",
    ]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.starts_with("http://127.0.0.1:9090/portal/sign-in?ticket="),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("&next=%2Fportal%2Fuploads"),
        "{stdout}"
    );
    let clinician = link(&[
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
    assert!(clinician.status.success());
    assert!(String::from_utf8_lossy(&clinician.stdout)
        .starts_with("http://127.0.0.1:8080/portal/sign-in?ticket="));
    for (args, says) in [
        (
            &["--council", "E09000033", "--ttl-seconds", "601"][..],
            "--ttl-seconds",
        ),
        (
            &["--council", "E09000033", "--ttl-seconds", "0"][..],
            "--ttl-seconds",
        ),
        (
            &["--council", "E09000033", "--next", "https://evil.example/"][..],
            "--next",
        ),
        (
            &["--council", "E09000033", "--next", "/v1/plans"][..],
            "--next",
        ),
        (
            &[
                "--council",
                "E09000033",
                "--issued-at",
                "2999-01-01T00:00:00Z",
            ][..],
            "--issued-at",
        ),
        (
            &["--council", "E09000033", "--issued-at", "yesterday"][..],
            "--issued-at",
        ),
        (&["--clinician", "--ods", "RJ1"][..], "is required"),
        (&["--council", "e09"][..], "ODS code"),
    ] {
        let out = link(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.stdout.is_empty(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
