//! Councils' HL7 v3 files over MESH, end to end (issue 13): the real `cpis
//! serve` binary polling NHS England's real mesh-sandbox
//! (`tests/mesh_sandbox.sh`, URL in `CPIS_MESH_SANDBOX_URL`), and a council
//! played by NHS England's own MESH client (`tests/mesh_council.py`).
//! X26ABC1 is the council (E09000033, linked by the operator with `cpis mesh
//! link`), X26ABC2 the CP-IS mailbox, X26ABC3 a mailbox no council is linked
//! to; password `password`, shared key `TestKey`.
//!
//! The journeys: an upload file with one invalid record is acknowledged
//! (CPF03, the CPR07 locating the fault); the same file sent again gets the
//! same acknowledgement and changes nothing; a clinician's check makes an
//! ASN file (and the duty team's SMS and email) reach the council; a file
//! from an unlinked mailbox changes nothing and is logged by mailbox id
//! only; a crash between the download and MESH's acknowledge, at both of
//! the exchange's steps (before and after the acknowledgement is sent),
//! loses nothing and applies nothing twice; the client certificate options
//! carry a mutual-TLS handshake. Every acknowledgement and ASN file the
//! council receives is validated against the official XSDs.
//!
//! **Sharing the sandbox.** Each test's service uses workflow ids of its own
//! (a random suffix), so no other test (here, crates/mesh, the AWS poller's)
//! takes its files, and it takes none of theirs: a service leaves files of
//! other workflows in the inbox. MESH `REPORT`s carry no workflow id: any
//! poller of X26ABC2 acknowledges any report there. These tests make none.
//!
//! **Crashes** are placed without any hook in the service: it talks to
//! MESH through a forwarding proxy in this test that holds one request (the
//! acknowledgement's send, or the inbound message's acknowledge) forever
//! and says so; the test then kills the service with SIGKILL and restarts
//! it on the same data directory, straight to the sandbox.
//!
//! Without `CPIS_MESH_SANDBOX_URL` the tests say SKIPPED and pass, unless
//! `CI=true` or `CPIS_REQUIRE_MESH_SANDBOX=1` (tests/run.sh): then they
//! fail. What the service logs, and what the council's client printed, go
//! to `$CPIS_PRIVACY_CAPTURE_DIR`; the files the council receives (which
//! name children, as the XSDs make them) go to a temporary directory only.

#[path = "../common/mod.rs"]
mod common;
mod proxy;
mod rig;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use axum::http::Method;
use common::{cpis, wait_for, Server};
use cpis_mesh::Mailbox;
use serde_json::{json, Value};

use proxy::Proxy;
use rig::*;

/// Checks one acknowledgement of the upload file sent as `message_id`:
/// MESH's headers, the CPF03 with two records loaded and one rejected
/// (CPR07 at the UCP's end date), and the official XSD.
fn assert_acknowledgement(rig: &Rig, ack: &Received, message_id: &str) {
    assert_eq!(ack.header("mex-from"), CPIS_MAILBOX);
    assert_eq!(ack.header("mex-to"), COUNCIL_MAILBOX);
    assert_eq!(ack.header("mex-workflowid"), rig.ack);
    assert_eq!(ack.header("mex-messagetype"), "DATA");
    assert_eq!(ack.header("mex-localid"), format!("ACK_{message_id}"));
    assert_eq!(
        ack.header("mex-filename"),
        format!("CPIS_ACK_{COUNCIL}_000457.xml")
    );
    let flat = flatten(&ack.body);
    assert_eq!(flat[0].0, "FileResponse");
    assert_eq!(values(&flat, "FileResponse/id", "extension"), ["000457"]);
    assert_eq!(
        values(&flat, "acknowledgementFileDetail/code", "code"),
        ["CPF03"]
    );
    assert_eq!(
        values(&flat, "acknowledgementRecordDetail/code", "code"),
        ["CPR07"]
    );
    assert_eq!(
        values(&flat, "acknowledgementRecordDetail/location", "#text"),
        [UCP_END_DATE]
    );
    assert!(values(
        &flat,
        "acknowledgementRecordDetail/code/originalText",
        "#text"
    )[0]
    .starts_with("END_BEFORE_START"));
    assert_eq!(
        values(&flat, "successfulReturnedCP-ISRecords/value", "value"),
        ["2"]
    );
    assert_eq!(
        values(&flat, "failedReturnedCP-ISRecords/value", "value"),
        ["1"]
    );
    assert_eq!(
        values(
            &flat,
            "communicationFunctionRcv/organisation/id",
            "extension"
        ),
        [COUNCIL]
    );
    // The XSD makes it echo the records, names included: meant for the
    // council alone.
    assert!(values(&flat, "childPerson/name/family", "#text").contains(&"Fixturington"));
}

/// The council's plans as the API lists them.
fn plans(server: &Server, token: &str) -> Vec<Value> {
    server.list_all("/v1/plans", token, "plans")
}

fn xsd(message_type: &str, files: &[&Received]) {
    let documents: Vec<(String, String)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("{message_type}-{i}"), f.body.clone()))
        .collect();
    cpis_hl7v3::xsd::assert_valid(message_type, &documents);
}

/// (a) the upload file, acknowledged; (c) the same file again, the same
/// acknowledgement, nothing changed; (b) a clinician's check, an ASN file
/// and the duty team's SMS and email; nothing sent twice.
#[test]
fn a_councils_file_is_acknowledged_a_replay_changes_nothing_and_a_check_sends_an_asn_file() {
    let Some(url) = sandbox() else { return };
    let rig = Rig::new(url);
    let server = rig.serve(&rig.sandbox);
    rig.link();
    let council = rig.council_token();
    assert!(plans(&server, &council).is_empty());

    // (a) The council sends its file; the acknowledgement comes back.
    let first = rig.send_upload(COUNCIL_MAILBOX);
    rig.wait_acknowledged(&first);
    let acks = rig.receive(COUNCIL_MAILBOX, &rig.ack, true);
    assert_eq!(acks.len(), 1, "one acknowledgement");
    assert_acknowledgement(&rig, &acks[0], &first);
    let stored = plans(&server, &council);
    let children: BTreeSet<&str> = stored
        .iter()
        .map(|p| p["nhs_number"].as_str().unwrap())
        .collect();
    assert!(children.contains(CHILD), "{stored:?}");
    assert!(
        !children.contains("9990000034"),
        "the rejected UCP: {stored:?}"
    );

    // (c) The same file again, as a new MESH message.
    let again = rig.send_upload(COUNCIL_MAILBOX);
    assert_ne!(again, first);
    rig.wait_acknowledged(&again);
    let replayed = rig.receive(COUNCIL_MAILBOX, &rig.ack, true);
    assert_eq!(replayed.len(), 1);
    assert_acknowledgement(&rig, &replayed[0], &again);
    let without_time = |ack: &Received| {
        flatten(&ack.body)
            .into_iter()
            .filter(|(path, _, _)| path != "FileResponse/creationTime")
            .collect::<Vec<_>>()
    };
    assert_eq!(without_time(&replayed[0]), without_time(&acks[0]));
    assert_eq!(plans(&server, &council), stored, "a replay changes nothing");
    // (b) A clinician's check: the council gets the ASN as a file, and its
    // duty team an SMS and an email.
    let doctor = cpis(&[
        "token",
        "--data",
        &rig.d(),
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
        "--job-role",
        "R0110",
        "--job-role-name",
        "Specialist Registrar",
    ]);
    let (status, check) = server.request(
        "POST",
        "/v1/checks",
        &doctor,
        Some(json!({"nhs_number": CHILD, "unscheduled": true})),
    );
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["plans"][0]["plan_type"], "CPP");
    let inbox = server.list_all("/v1/notifications", &council, "notifications");
    assert_eq!(inbox.len(), 1);
    let asn_id = inbox[0]["id"].as_str().unwrap().to_owned();
    let files = rig.receive(COUNCIL_MAILBOX, &rig.asn, true);
    assert_eq!(files.len(), 1);
    let asn = &files[0];
    assert_eq!(asn.header("mex-from"), CPIS_MAILBOX);
    assert_eq!(asn.header("mex-workflowid"), rig.asn);
    assert_eq!(asn.header("mex-localid"), asn_id);
    assert_eq!(
        asn.header("mex-filename"),
        format!("CPIS_ASN_{COUNCIL}_{asn_id}.xml")
    );
    let flat = flatten(&asn.body);
    assert!(
        flat.iter().any(|(_, a, v)| a == "extension" && v == CHILD),
        "the ASN file names the child"
    );
    let outbox = rig.data().join("outbox/messages.jsonl");
    wait_for("the SMS and the email", PATIENCE, || {
        std::fs::read_to_string(&outbox).is_ok_and(|t| t.lines().count() == 2)
    });
    let messages: Vec<Value> = std::fs::read_to_string(&outbox)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let channels: BTreeSet<&str> = messages
        .iter()
        .map(|m| m["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, BTreeSet::from(["email", "sms"]));
    assert!(messages.iter().all(|m| m["reference"] == asn_id.as_str()));

    // A graceful stop finishes the poll and the dispatcher's sweep: after
    // it, nothing more can be sent. Nothing more was.
    server.stop();
    // Applied once, then answered from the ledger (the logs are whole once
    // the service has stopped).
    let processed = rig.log_lines("upload file processed");
    let replay_flags: Vec<(&str, bool)> = processed
        .iter()
        .map(|l| {
            (
                l["fields"]["message_id"].as_str().unwrap(),
                l["fields"]["replayed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        replay_flags,
        [(first.as_str(), false), (again.as_str(), true)]
    );
    assert!(rig.receive(COUNCIL_MAILBOX, &rig.ack, false).is_empty());
    assert!(rig.receive(COUNCIL_MAILBOX, &rig.asn, false).is_empty());
    xsd("REPC_MT000003GB01", &[&acks[0], &replayed[0]]);
    xsd("REPC_MT000004GB01", &[asn]);
    rig.capture("mesh_sandbox_journeys");
}

/// (d) A file from a mailbox no council is linked to changes nothing, is
/// logged with the mailbox id only, and stays in the inbox.
#[test]
fn a_file_from_an_unlinked_mailbox_changes_nothing_and_is_logged_by_mailbox_only() {
    let Some(url) = sandbox() else { return };
    let rig = Rig::new(url);
    let server = rig.serve(&rig.sandbox);
    rig.link();
    let stranger = rig.send_upload(UNLINKED_MAILBOX);
    // Seen at two polls at least: left each time.
    wait_for("two polls to leave the file", PATIENCE, || {
        rig.log_lines("no council is linked to")
            .iter()
            .filter(|l| l["fields"]["message_id"] == stranger.as_str())
            .count()
            >= 2
    });
    for line in rig
        .log_lines("no council is linked to")
        .iter()
        .filter(|l| l["fields"]["message_id"] == stranger.as_str())
    {
        assert_eq!(line["level"], "ERROR");
        let fields: BTreeSet<&str> = line["fields"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, BTreeSet::from(["from", "message", "message_id"]));
        assert_eq!(line["fields"]["from"], UNLINKED_MAILBOX);
    }
    for council in [COUNCIL, "E06000001"] {
        let token = cpis(&["token", "--data", &rig.d(), "--council", council]);
        assert!(plans(&server, &token).is_empty(), "{council} has plans");
    }
    assert!(rig.cpis_inbox().contains(&stranger), "left in the inbox");
    server.stop();
    assert!(
        rig.log_lines("upload file processed").is_empty(),
        "nothing was processed"
    );
    for mailbox in [UNLINKED_MAILBOX, COUNCIL_MAILBOX] {
        assert!(
            rig.receive(mailbox, &rig.ack, false).is_empty(),
            "no acknowledgement to {mailbox}"
        );
    }
    // Taken out of the shared inbox, so no later poller meets it.
    rig.runtime
        .block_on(rig.cpis.acknowledge(&stranger))
        .unwrap();
    rig.capture("mesh_sandbox_unlinked");
}

/// Where the first run of the service is killed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CrashPoint {
    /// The upload is stored; its acknowledgement is about to be sent.
    BeforeTheAcknowledgementIsSent,
    /// The acknowledgement is sent; the inbound message is about to be
    /// acknowledged.
    BeforeTheMessageIsAcknowledged,
}

/// (e) SIGKILL between the download and MESH's acknowledge; a restart
/// finishes the message: one acknowledgement, one set of plans, the upload
/// applied once.
fn crash_between_download_and_acknowledge(point: CrashPoint, test: &str) {
    let Some(url) = sandbox() else { return };
    let rig = Rig::new(url);
    let ack_workflow = rig.ack.clone();
    let proxy = Proxy::start(
        &rig.runtime,
        &rig.sandbox,
        move |method, path, headers| match point {
            CrashPoint::BeforeTheAcknowledgementIsSent => {
                method == Method::POST
                    && path == format!("/messageexchange/{CPIS_MAILBOX}/outbox")
                    && headers
                        .get("mex-workflowid")
                        .is_some_and(|w| w.as_bytes() == ack_workflow.as_bytes())
            }
            // The only message this service acknowledges is its upload
            // file: other tests' files (other workflows) are left alone.
            CrashPoint::BeforeTheMessageIsAcknowledged => {
                method == Method::PUT
                    && path.starts_with(&format!("/messageexchange/{CPIS_MAILBOX}/inbox/"))
                    && path.ends_with("/status/acknowledged")
            }
        },
    );
    let server = rig.serve(&format!("http://{}", proxy.addr));
    rig.link();
    let council = rig.council_token();
    let id = rig.send_upload(COUNCIL_MAILBOX);
    let held = proxy
        .held
        .recv_timeout(PATIENCE)
        .expect("the service reached the crash point");
    match point {
        CrashPoint::BeforeTheAcknowledgementIsSent => assert!(held.starts_with("POST "), "{held}"),
        CrashPoint::BeforeTheMessageIsAcknowledged => assert_eq!(
            held,
            format!("PUT /messageexchange/{CPIS_MAILBOX}/inbox/{id}/status/acknowledged")
        ),
    }
    // The upload was applied (logged before MESH was called again).
    wait_for("the first run's upload", PATIENCE, || {
        rig.log_lines("upload file processed").len() == 1
    });
    // The upload is stored, and MESH still holds the message.
    let stored = plans(&server, &council);
    assert!(
        stored.iter().any(|p| p["nhs_number"] == CHILD),
        "{stored:?}"
    );
    assert!(rig.cpis_inbox().contains(&id));
    let status = Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.reap();

    // Restarted on the same data directory, straight to MESH.
    let server = rig.serve(&rig.sandbox);
    rig.wait_acknowledged(&id);
    assert_eq!(plans(&server, &council), stored, "one set of plans");
    server.stop();
    let acks = rig.receive(COUNCIL_MAILBOX, &rig.ack, false);
    assert_eq!(acks.len(), 1, "exactly one acknowledgement");
    assert_acknowledgement(&rig, &acks[0], &id);
    xsd("REPC_MT000003GB01", &[&acks[0]]);
    // Applied by the first run; the second answered from the ledger.
    let replays: Vec<bool> = rig
        .log_lines("upload file processed")
        .iter()
        .map(|l| l["fields"]["replayed"].as_bool().unwrap())
        .collect();
    assert_eq!(replays, [false, true]);
    let found_sent = rig.log_lines("the acknowledgement was sent before").len();
    let sent = rig.log_lines("acknowledgement sent").len();
    match point {
        CrashPoint::BeforeTheAcknowledgementIsSent => assert_eq!((sent, found_sent), (1, 0)),
        // The first run's send went through; the second found it by its
        // local id and did not send it again.
        CrashPoint::BeforeTheMessageIsAcknowledged => assert_eq!((sent, found_sent), (1, 1)),
    }
    rig.capture(test);
}

#[test]
fn a_crash_after_the_upload_is_stored_and_before_its_acknowledgement_is_sent_loses_nothing() {
    crash_between_download_and_acknowledge(
        CrashPoint::BeforeTheAcknowledgementIsSent,
        "mesh_sandbox_crash_before_send",
    );
}

#[test]
fn a_crash_after_the_acknowledgement_is_sent_and_before_the_message_is_acknowledged_sends_nothing_twice(
) {
    crash_between_download_and_acknowledge(
        CrashPoint::BeforeTheMessageIsAcknowledged,
        "mesh_sandbox_crash_before_acknowledge",
    );
}

/// The client certificate options reach MESH: against a sandbox that
/// demands a client certificate (`tests/mesh_sandbox.sh start-tls`), the
/// service makes its handshake and starts with them, and stops before it
/// starts without the certificate.
#[test]
fn the_client_certificate_options_carry_a_mutual_tls_handshake() {
    let Some(_) = sandbox() else { return };
    let certs = tempfile::tempdir().unwrap();
    let output = Command::new("bash")
        .arg(SANDBOX_SCRIPT)
        .arg("start-tls")
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "start-tls: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    struct StopTls<'a>(&'a Path);
    impl Drop for StopTls<'_> {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(SANDBOX_SCRIPT)
                .arg("stop-tls")
                .arg(self.0)
                .status();
        }
    }
    let _stop = StopTls(certs.path());
    let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let rig = Rig::new(url.clone());
    let pem = |name: &str| certs.path().join(name).to_str().unwrap().to_owned();
    let secret = |name: &str| rig.dir.path().join(name).to_str().unwrap().to_owned();
    let mesh = [
        "--mesh-url".to_owned(),
        url.clone(),
        "--mesh-mailbox".to_owned(),
        CPIS_MAILBOX.to_owned(),
        "--mesh-password-file".to_owned(),
        secret("mesh-password"),
        "--mesh-shared-key-file".to_owned(),
        secret("mesh-shared-key"),
        "--mesh-ca-file".to_owned(),
        pem("ca.pem"),
    ];
    // Without the client certificate the handshake fails: nothing starts.
    let output = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .args(["serve", "--data", &rig.d()])
        .args(&mesh)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("MESH handshake for mailbox X26ABC2"), "{err}");
    rig.logs.lock().unwrap().push_str(&err);
    // With it, the service starts.
    let (cert, key) = (pem("client.pem"), pem("client.key"));
    let mut flags: Vec<&str> = mesh.iter().map(String::as_str).collect();
    flags.extend([
        "--mesh-client-cert-file",
        &cert,
        "--mesh-client-key-file",
        &key,
    ]);
    let server = Server::start_with(&rig.data(), rig.logs.clone(), None, &flags);
    let (status, _) = server.request("GET", "/health/ready", "", None);
    assert_eq!(status, 200);
    server.stop();
    rig.capture("mesh_sandbox_mutual_tls");
}
