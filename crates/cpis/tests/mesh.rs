//! MESH in the embedded service (issue 13): the operator's `cpis mesh link`
//! and `unlink` (beside a running `cpis serve`), the `--mesh-*` options, and
//! the poll loop and the dispatcher's MESH leg on the SQLite store with an
//! in-memory MESH. (The end-to-end run on mesh-sandbox comes with the MESH
//! client.)

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use common::*;
use cpis::delivery::{FileChannel, WakeDispatcher};
use cpis::mesh::{run_poller, DailyHandshake, Handshake};
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

/// A handshake that counts how often it was made.
#[derive(Clone, Default)]
struct Counted(Arc<AtomicUsize>);

impl Handshake for Counted {
    async fn handshake(&self) -> Result<(), cpis_mesh::MeshError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

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
        "0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--mesh-poll-seconds"), "{err}");
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

#[test]
fn the_client_certificate_options_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let password = file("password", "password\n");
    let key = file("key", "TestKey\n");
    // PEM blocks whose content is not a certificate or a key; the key's
    // text must never be shown.
    let bad_cert = file(
        "bad-cert.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    );
    let bad_key = file(
        "bad-key.pem",
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n",
    );
    let no_pem = file("no-pem.pem", "s3cr3t-not-pem\n");
    let missing = dir.path().join("missing.pem").to_str().unwrap().to_owned();
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--mesh-url",
            "https://127.0.0.1:9",
            "--mesh-mailbox",
            "X26ABC2",
            "--mesh-password-file",
            &password,
            "--mesh-shared-key-file",
            &key,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    // The certificate and its key go together.
    let (code, _, err) = serve(&["--mesh-client-cert-file", &bad_cert]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--mesh-client-key-file"), "{err}");
    let (code, _, err) = serve(&["--mesh-client-key-file", &bad_key]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--mesh-client-cert-file"), "{err}");
    // Unreadable files, and files without PEM, are named.
    for (flags, named) in [
        (
            [
                "--mesh-client-cert-file",
                &missing,
                "--mesh-client-key-file",
                &bad_key,
            ],
            &missing,
        ),
        (
            [
                "--mesh-client-cert-file",
                &bad_cert,
                "--mesh-client-key-file",
                &no_pem,
            ],
            &no_pem,
        ),
    ] {
        let (code, _, err) = serve(&flags);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(named.as_str()), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    let (code, _, err) = serve(&["--mesh-ca-file", &missing]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("MESH CA") && err.contains(&missing), "{err}");
    // PEM that does not parse stops the start, naming the files given.
    let (code, _, err) = serve(&[
        "--mesh-client-cert-file",
        &bad_cert,
        "--mesh-client-key-file",
        &bad_key,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("MESH configuration") && err.contains(&bad_cert) && err.contains(&bad_key),
        "{err}"
    );
    assert!(
        !err.contains("c2VjcmV0") && !err.contains("TestKey"),
        "{err}"
    );
    let (code, _, err) = serve(&["--mesh-ca-file", &bad_cert]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("MESH configuration") && err.contains(&bad_cert),
        "{err}"
    );
    // The same from the environment.
    let output = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .args(["serve", "--data", data.to_str().unwrap()])
        .env("CPIS_MESH_URL", "https://127.0.0.1:9")
        .env("CPIS_MESH_MAILBOX", "X26ABC2")
        .env("CPIS_MESH_PASSWORD_FILE", &password)
        .env("CPIS_MESH_SHARED_KEY_FILE", &key)
        .env("CPIS_MESH_CLIENT_CERT_FILE", &bad_cert)
        .env("CPIS_MESH_CLIENT_KEY_FILE", &missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(&missing), "{err}");
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
    // The last handshake was a day and a minute ago: this poll makes one.
    let handshakes = Counted::default();
    run_poller(
        cpis_mailbox.clone(),
        DailyHandshake {
            handshake: handshakes.clone(),
            last: now - time::Duration::minutes(24 * 60 + 1),
        },
        store.clone(),
        config,
        clock.clone(),
        StdDuration::from_secs(300),
        stopped.clone(),
    )
    .await;
    assert_eq!(handshakes.0.load(Ordering::SeqCst), 1);
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
        &cpis_domain::AuditEvent::check_allowed(&clinician, None, now, "mesh"),
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
