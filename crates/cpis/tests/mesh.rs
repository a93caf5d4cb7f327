//! MESH in the embedded service (issue 13): the operator's `cpis mesh link`
//! and `unlink` (beside a running `cpis serve`), the `--mesh-*` options, and
//! the poll loop and the dispatcher's MESH leg on the SQLite store with an
//! in-memory MESH. (The end-to-end run on mesh-sandbox comes with the MESH
//! client.)

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use common::*;
use cpis::delivery::{FileChannel, WakeDispatcher};
use cpis::mesh::run_poller;
use cpis_domain::ports::{AuthorityDirectory, MailboxMap, PlanStore};
use cpis_domain::{
    check, deliver_pending_with, AccessorKind, Authority, Clinician, JobRole, MailboxId,
    ManualClock, MeshFiles, NhsNumber, OdsCode, Rbac, VisibilityPolicy,
};
use cpis_mesh::exchange::ExchangeConfig;
use cpis_mesh::fake::FakeMesh;
use cpis_mesh::MeshAsnFiles;
use cpis_store_sqlite::SqliteStore;
use time::macros::datetime;
use tokio::sync::watch;

fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .args(args)
        .output()
        .expect("run cpis");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_operator_links_and_unlinks_mailboxes_while_the_service_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let server = Server::start(&data, logs.clone());
    let link = |council: &str, mailbox: &str| {
        run(&[
            "mesh",
            "link",
            "--data",
            d,
            "--council",
            council,
            "--mailbox",
            mailbox,
        ])
    };
    let (code, out, err) = link("E09000033", "X26ABC1");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "linked council E09000033 to MESH mailbox X26ABC1");
    let (code, out, _) = link("E09000033", "X26ABC1");
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "council E09000033 was linked to MESH mailbox X26ABC1 already"
        )
    );
    // One council per mailbox, whichever process asks.
    let (code, _, err) = link("E06000001", "X26ABC1");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("mailbox X26ABC1 is linked to council E09000033"),
        "{err}"
    );
    let (code, out, err) = link("E09000033", "X26ABC2");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("it was linked to X26ABC1, which is now free"),
        "{out}"
    );
    assert_eq!(link("E06000001", "X26ABC1").0, 0);
    let (code, out, _) = run(&["mesh", "unlink", "--data", d, "--council", "E09000033"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "unlinked council E09000033 from MESH mailbox X26ABC2")
    );
    let (code, out, _) = run(&["mesh", "unlink", "--data", d, "--council", "E09000033"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "council E09000033 had no MESH mailbox")
    );
    // A data directory without the service's database is refused, and not created.
    let elsewhere = dir.path().join("typo");
    let (code, _, err) = run(&[
        "mesh",
        "link",
        "--data",
        elsewhere.to_str().unwrap(),
        "--council",
        "E09000033",
        "--mailbox",
        "X26ABC9",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no cpis database"), "{err}");
    assert!(!elsewhere.exists());
    // Malformed ids are refused by the command line, naming the option.
    for (flag, bad) in [
        ("--mailbox", "x26abc1"),
        ("--mailbox", "X26-ABC1"),
        ("--council", "e09"),
    ] {
        let (council, mailbox) = if flag == "--council" {
            (bad, "X26ABC1")
        } else {
            ("E09000033", bad)
        };
        let (code, _, err) = link(council, mailbox);
        assert_eq!(code, 2, "{flag} {bad}: {err}");
        assert!(err.contains(flag), "{err}");
    }
    // The service ran throughout, on the same database.
    let (status, _) = server.request("GET", "/health/ready", "", None);
    assert_eq!(status, 200);
    server.stop();
    let store = SqliteStore::open(data.join("cpis.sqlite3")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let holder = rt
        .block_on(store.council_of(&MailboxId::parse("X26ABC1").unwrap()))
        .unwrap();
    assert_eq!(holder, Some(OdsCode::parse("E06000001").unwrap()));
    capture("mesh_link", &logs.lock().unwrap(), &data.join("outbox"));
}

#[test]
fn the_mesh_options_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let password = dir.path().join("password");
    let key = dir.path().join("key");
    std::fs::write(&password, "password\n").unwrap();
    std::fs::write(&key, "TestKey\n").unwrap();
    let (p, k) = (password.to_str().unwrap(), key.to_str().unwrap());
    let url = "http://127.0.0.1:9";
    // --mesh-url needs the mailbox and both secrets.
    let (code, _, err) = run(&["serve", "--data", d, "--mesh-url", url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--mesh-mailbox"), "{err}");
    let (code, _, err) = run(&[
        "serve",
        "--data",
        d,
        "--mesh-url",
        url,
        "--mesh-mailbox",
        "x26abc2",
        "--mesh-password-file",
        p,
        "--mesh-shared-key-file",
        k,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--mesh-mailbox"), "{err}");
    let (code, _, err) = run(&[
        "serve",
        "--data",
        d,
        "--mesh-url",
        url,
        "--mesh-mailbox",
        "X26ABC2",
        "--mesh-password-file",
        p,
        "--mesh-shared-key-file",
        k,
        "--mesh-poll-seconds",
        "1",
    ]);
    assert_eq!(code, 2, "{err}");
    // A missing secret file is named; its neighbour's content never shown.
    let missing = dir.path().join("nope");
    let (code, _, err) = run(&[
        "serve",
        "--data",
        d,
        "--mesh-url",
        url,
        "--mesh-mailbox",
        "X26ABC2",
        "--mesh-password-file",
        missing.to_str().unwrap(),
        "--mesh-shared-key-file",
        k,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(missing.to_str().unwrap()) && !err.contains("TestKey"),
        "{err}"
    );
    // A MESH that cannot be reached stops the service before it starts
    // (the handshake is made first), naming the mailbox, never a secret.
    let (code, _, err) = run(&[
        "serve",
        "--data",
        d,
        "--mesh-url",
        url,
        "--mesh-mailbox",
        "X26ABC2",
        "--mesh-password-file",
        p,
        "--mesh-shared-key-file",
        k,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("MESH handshake for mailbox X26ABC2"), "{err}");
    assert!(
        !err.contains("password\n") && !err.contains("TestKey"),
        "{err}"
    );
    assert!(!data.join("cpis.sqlite3").exists(), "nothing started");
}

/// The loop `cpis serve` runs, and its dispatcher's MESH leg, on SQLite:
/// a council's file over MESH becomes plans and an acknowledgement; a check
/// then reaches the council as an ASN file and as its duty team's SMS.
#[tokio::test]
async fn the_poll_loop_and_the_dispatchers_mesh_leg_run_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("cpis.sqlite3")).unwrap();
    let council = OdsCode::parse("E09000033").unwrap();
    cpis::mesh::link(&store, &council, &MailboxId::parse("X26ABC1").unwrap())
        .await
        .unwrap();
    store
        .put_authority(&Authority {
            ods_code: council.clone(),
            name: "Example Borough Council".to_owned(),
            office_hours_phone: "01632 960001".to_owned(),
            emergency_duty_phone: "01632 960002".to_owned(),
            notify_emails: vec![],
            notify_sms: vec!["+447700900123".to_owned()],
        })
        .await
        .unwrap();
    let mesh = FakeMesh::new();
    let cpis_mailbox = mesh.mailbox("X26ABC2");
    mesh.mailbox("X26ABC1");
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../hl7v3/tests/fixtures/upload-000457.xml"),
    )
    .unwrap();
    mesh.deliver("X26ABC1", "X26ABC2", "CPIS_LA_UPLOAD", file.as_bytes());
    let now = datetime!(2025-03-01 02:05:12 UTC);
    let clock: Arc<dyn cpis_domain::Clock> = Arc::new(ManualClock::new(now));
    // Shut down already: each loop runs once and returns.
    let (stop, stopped) = watch::channel(false);
    stop.send(true).unwrap();
    let config = ExchangeConfig {
        upload_workflow: "CPIS_LA_UPLOAD".to_owned(),
        ack_workflow: "CPIS_LA_UPLOAD_ACK".to_owned(),
        policy: VisibilityPolicy::default(),
    };
    run_poller(
        cpis_mailbox.clone(),
        store.clone(),
        config,
        clock.clone(),
        StdDuration::from_secs(300),
        stopped.clone(),
    )
    .await;
    assert_eq!(
        store.plan_keys_for_authority(&council).await.unwrap().len(),
        2
    );
    assert_eq!(mesh.sent_to("X26ABC1").len(), 1, "the acknowledgement");

    let clinician = Clinician {
        kind: AccessorKind::User,
        user_id: "999999999001".to_owned(),
        rbac: Rbac::B0107,
        organisation_ods: OdsCode::parse("RJ1").unwrap(),
        organisation_name: "St Example's Hospital".to_owned(),
        setting: "emergency-department".to_owned(),
        job_role: JobRole::parse("R0110", "Specialist Registrar"),
    };
    let wake = WakeDispatcher::default();
    check(
        &store,
        &wake,
        &clinician,
        &NhsNumber::parse("9990000018").unwrap(),
        true,
        now,
        &VisibilityPolicy::default(),
    )
    .await
    .unwrap();
    let outbox = dir.path().join("outbox");
    let channel = FileChannel::new(&outbox).unwrap();
    let files = MeshFiles {
        map: store.clone(),
        channel: MeshAsnFiles::new(cpis_mailbox, "CPIS_ASN"),
    };
    // What the embedded dispatcher's loop runs at each wake-up.
    let report = deliver_pending_with(
        &store,
        &channel,
        &files,
        now,
        50,
        "http://127.0.0.1/v1/notifications",
    )
    .await
    .unwrap();
    assert_eq!((report.delivered, report.files_sent), (1, 1));
    let sent = mesh.sent_to("X26ABC1");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].workflow_id, "CPIS_ASN");
    let sms = std::fs::read_to_string(outbox.join("messages.jsonl")).unwrap();
    assert_eq!(sms.lines().count(), 1);
    assert!(
        sms.contains(&sent[1].local_id),
        "the SMS names the same ASN"
    );
    cpis_hl7v3::xsd::assert_valid(
        "REPC_MT000004GB01",
        &[(
            "asn".to_owned(),
            String::from_utf8(sent[1].body.clone()).unwrap(),
        )],
    );
}
