//! [`MeshClient`] against NHS England's real MESH sandbox (`mesh-sandbox`,
//! started by `tests/mesh_sandbox.sh`, URL in `CPIS_MESH_SANDBOX_URL`), with
//! full `NHSMESH` checking and shared key `TestKey`. Without the variable the
//! tests say SKIPPED and pass, unless `CI=true` or
//! `CPIS_REQUIRE_MESH_SANDBOX=1` (tests/run.sh sets it): then they fail.
//!
//! Each test works only with what it sent itself (message ids from `send`,
//! local ids made unique per run) and acknowledges it at the end, so the
//! tests run concurrently and repeatedly against one sandbox that other
//! tests share. Mailboxes: X26ABC1 sends; X26ABC2 receives the plain round
//! trip (as the exchange's CP-IS mailbox does), X26ABC3 receives the rest.

use std::io::Write;
use std::time::Duration;

use cpis_mesh::{
    nhsmesh_authorization, Mailbox, MeshClient, MeshConfig, MeshError, MessageType, Outgoing,
};

const PASSWORD: &str = "password";
const SHARED_KEY: &str = "TestKey";
const WORKFLOW: &str = "CPIS_MESH_CLIENT_TEST";

/// One test at a time against the sandbox: mesh-sandbox 1.0.137 holds its
/// messages in a `WeakValueDictionary`, and a chunked message sent while
/// another test's send was under way was lost between its first and second
/// chunk (404 on chunk 2, seen once in CI). Real MESH has no such store;
/// what these tests check is the client, not concurrent sends.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sandbox() -> Option<String> {
    cpis_mesh::testing::sandbox_url()
}

fn config(url: &str, mailbox: &str) -> MeshConfig {
    let mut config = MeshConfig::new(url, mailbox, PASSWORD, SHARED_KEY);
    config.connect_timeout = Duration::from_secs(10);
    config.read_timeout = Duration::from_secs(60);
    config.request_timeout = Duration::from_secs(120);
    config
}

fn client(url: &str, mailbox: &str) -> MeshClient {
    MeshClient::new(config(url, mailbox)).unwrap()
}

/// A local id no other run or test uses.
fn unique(tag: &str) -> String {
    format!("cpis-test-{tag}-{}", uuid::Uuid::new_v4())
}

fn xml(tag: &str, len: usize) -> Vec<u8> {
    let mut body = format!("<File id=\"{tag}\">").into_bytes();
    let mut i = 0u32;
    while body.len() + 7 < len {
        body.extend_from_slice(format!("<r{}/>", i % 10).as_bytes());
        i += 1;
    }
    body.resize(len - 7, b' ');
    body.extend_from_slice(b"</File>");
    body
}

fn outgoing<'a>(to: &'a str, local_id: &'a str, body: &'a [u8]) -> Outgoing<'a> {
    Outgoing {
        to,
        workflow_id: WORKFLOW,
        file_name: "test.xml",
        local_id,
        subject: None,
        body,
    }
}

/// Every id in the inbox, page after page.
async fn all_ids(mailbox: &MeshClient) -> Vec<String> {
    let mut ids = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..1000 {
        let page = mailbox.inbox(from.as_deref()).await.unwrap();
        ids.extend(page.ids);
        match page.continue_from {
            Some(next) => from = Some(next),
            None => return ids,
        }
    }
    panic!("the inbox never ended");
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn acknowledge_all(mailbox: &MeshClient, ids: &[String]) {
    for id in ids {
        mailbox.acknowledge(id).await.unwrap();
    }
}

#[tokio::test]
async fn handshake_with_the_right_credentials() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    for mailbox in ["X26ABC1", "x26abc2", "X26ABC3"] {
        client(&url, mailbox).handshake().await.unwrap();
    }
}

#[tokio::test]
async fn round_trip_send_list_download_acknowledge() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let council = client(&url, "X26ABC1");
    let cpis = client(&url, "X26ABC2");
    assert_eq!(cpis.mailbox_id(), "X26ABC2");
    let local_id = unique("round-trip");
    let body = xml("round-trip", 2_000);
    let sent = Outgoing {
        to: "X26ABC2",
        workflow_id: WORKFLOW,
        file_name: "LA_UPLOAD_X26_1.xml",
        local_id: &local_id,
        subject: Some("cpis client test"),
        body: &body,
    };
    let id = council.send(&sent).await.unwrap();

    assert!(
        all_ids(&cpis).await.contains(&id),
        "sent message not listed"
    );
    let message = cpis.download(&id).await.unwrap().expect("the message");
    assert_eq!(message.body, body);
    let meta = message.meta;
    assert_eq!(meta.id, id);
    assert_eq!(meta.message_type, MessageType::Data);
    assert_eq!(meta.from, "X26ABC1");
    assert_eq!(meta.workflow_id.as_deref(), Some(WORKFLOW));
    assert_eq!(meta.file_name.as_deref(), Some("LA_UPLOAD_X26_1.xml"));
    assert_eq!(meta.local_id.as_deref(), Some(local_id.as_str()));
    assert_eq!(meta.linked_message_id, None);

    // Downloading again (before the acknowledgement) gives the same file.
    assert_eq!(cpis.download(&id).await.unwrap().unwrap().body, body);

    cpis.acknowledge(&id).await.unwrap();
    assert!(
        !all_ids(&cpis).await.contains(&id),
        "acknowledged message still listed"
    );
    // Twice is fine.
    cpis.acknowledge(&id).await.unwrap();
}

#[tokio::test]
async fn inbox_pages_follow_continue_from() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let council = client(&url, "X26ABC1");
    let mut recipient_config = config(&url, "X26ABC3");
    recipient_config.page_size = Some(10); // the sandbox's (and MESH's) smallest
    let recipient = MeshClient::new(recipient_config).unwrap();

    let local_id = unique("paging");
    let mut mine = Vec::new();
    for i in 0..13 {
        let body = xml(&format!("page-{i}"), 200);
        let local = format!("{local_id}-{i}");
        mine.push(
            council
                .send(&outgoing("X26ABC3", &local, &body))
                .await
                .unwrap(),
        );
    }

    let first = recipient.inbox(None).await.unwrap();
    assert_eq!(first.ids.len(), 10, "a page holds max_results ids");
    assert!(
        first.continue_from.is_some(),
        "13+ messages need a second page"
    );
    let listed = all_ids(&recipient).await;
    for id in &mine {
        assert!(listed.contains(id), "{id} not on any page");
    }

    acknowledge_all(&recipient, &mine).await;
    let listed = all_ids(&recipient).await;
    assert!(mine.iter().all(|id| !listed.contains(id)));
}

#[tokio::test]
async fn chunked_send_and_chunked_download() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let recipient = client(&url, "X26ABC3");
    for compress in [true, false] {
        let mut sender_config = config(&url, "X26ABC1");
        sender_config.chunk_bytes = 1_000;
        sender_config.compress = compress;
        let sender = MeshClient::new(sender_config).unwrap();
        let local_id = unique("chunked");
        let body = xml("chunked", 5_500); // 6 chunks: 5 of 1,000 and 500
        let id = sender
            .send(&outgoing("X26ABC3", &local_id, &body))
            .await
            .unwrap();

        // Independent of the client: the sandbox holds it as 6 chunks.
        let details = json(
            reqwest::get(format!("{url}/messageexchange/admin/message/{id}"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(details["chunk_count"], 6, "{details}");

        let message = recipient.download(&id).await.unwrap().unwrap();
        assert_eq!(message.body, body, "compress={compress}");
        assert_eq!(message.meta.local_id.as_deref(), Some(local_id.as_str()));
        recipient.acknowledge(&id).await.unwrap();
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A POST to X26ABC1's outbox made by hand (not by MeshClient): what another
/// MESH client might send.
async fn raw_send(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> String {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/messageexchange/X26ABC1/outbox"))
        .header(
            "authorization",
            nhsmesh_authorization("X26ABC1", PASSWORD.as_bytes(), SHARED_KEY.as_bytes()),
        )
        .header("accept", "application/vnd.mesh.v2+json")
        .header("mex-to", "X26ABC3")
        .header("mex-workflowid", WORKFLOW)
        .header("content-type", "application/octet-stream");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body).send().await.unwrap();
    assert_eq!(response.status(), 202);
    json(response).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn gzip_compressed_messages() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let recipient = client(&url, "X26ABC3");
    let body = xml("gzip", 3_000);

    // The transfer gzipped (Content-Encoding), as NHS England's mesh-client
    // sends with compression on.
    let local_a = unique("gzip-transfer");
    let a = raw_send(
        &url,
        &[("content-encoding", "gzip"), ("mex-localid", &local_a)],
        gzip(&body),
    )
    .await;
    // The file itself gzipped by its sender (Mex-Content-Compressed: Y).
    let local_b = unique("gzip-file");
    let b = raw_send(
        &url,
        &[("mex-content-compressed", "Y"), ("mex-localid", &local_b)],
        gzip(&body),
    )
    .await;

    // The sandbox really answers a v2 download in gzip (so every download
    // in these tests inflated something).
    let raw = reqwest::Client::new()
        .get(format!("{url}/messageexchange/X26ABC3/inbox/{a}"))
        .header(
            "authorization",
            nhsmesh_authorization("X26ABC3", PASSWORD.as_bytes(), SHARED_KEY.as_bytes()),
        )
        .header("accept", "application/vnd.mesh.v2+json")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-encoding"], "gzip");

    for (id, local) in [(&a, &local_a), (&b, &local_b)] {
        let message = recipient.download(id).await.unwrap().unwrap();
        assert_eq!(message.body, body, "{local}");
        recipient.acknowledge(id).await.unwrap();
    }
}

#[tokio::test]
async fn downloads_larger_than_the_maximum_are_refused() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let council = client(&url, "X26ABC1");
    let local_id = unique("too-big");
    let body = xml("too-big", 5_000);
    let id = council
        .send(&outgoing("X26ABC3", &local_id, &body))
        .await
        .unwrap();

    let mut small = config(&url, "X26ABC3");
    small.max_message_bytes = 4_999;
    let small = MeshClient::new(small).unwrap();
    match small.download(&id).await {
        Err(MeshError::Refused(why)) => assert!(why.contains("larger"), "{why}"),
        other => panic!("{other:?}"),
    }
    let mut exact = config(&url, "X26ABC3");
    exact.max_message_bytes = 5_000;
    let exact = MeshClient::new(exact).unwrap();
    assert_eq!(exact.download(&id).await.unwrap().unwrap().body, body);
    exact.acknowledge(&id).await.unwrap();
}

#[tokio::test]
async fn tracking_by_local_id() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let council = client(&url, "X26ABC1");
    let recipient = client(&url, "X26ABC3");
    let local_id = unique("track");
    let body = xml("track", 300);
    let id = council
        .send(&outgoing("X26ABC3", &local_id, &body))
        .await
        .unwrap();

    let tracked = council.track(&local_id).await.unwrap().expect("tracked");
    assert_eq!(tracked.message_id, id);
    assert!(
        tracked.status.eq_ignore_ascii_case("accepted"),
        "{}",
        tracked.status
    );

    recipient.acknowledge(&id).await.unwrap();
    let tracked = council.track(&local_id).await.unwrap().expect("tracked");
    assert_eq!(tracked.message_id, id);
    assert!(
        tracked.status.eq_ignore_ascii_case("acknowledged"),
        "{}",
        tracked.status
    );

    // Nothing for a local id never sent, nor for one another mailbox sent.
    assert_eq!(council.track(&unique("never-sent")).await.unwrap(), None);
    assert_eq!(recipient.track(&local_id).await.unwrap(), None);
    // A local id that is not one path segment stays one.
    assert_eq!(council.track("a/../../inbox").await.unwrap(), None);
}

#[tokio::test]
async fn a_report_is_recognised() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let council = client(&url, "X26ABC1");
    let local_id = unique("report");
    let body = xml("report", 300);
    let sent = council
        .send(&outgoing("X26ABC3", &local_id, &body))
        .await
        .unwrap();

    // MESH's non-delivery report, injected as live MESH would after 5 days.
    let injected = serde_json::json!({
            "mailbox_id": "X26ABC1",
            "code": "14",
            "description": "Message not collected by recipient after 5 days",
            "workflow_id": WORKFLOW,
            "local_id": local_id,
            "linked_message_id": sent,
            "status": "undeliverable",
    });
    let injected = reqwest::Client::new()
        .post(format!("{url}/messageexchange/admin/report"))
        .header("content-type", "application/json")
        .body(injected.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(injected.status(), 200);
    let report_id = json(injected).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();

    assert!(all_ids(&council).await.contains(&report_id));
    let report = council.download(&report_id).await.unwrap().unwrap();
    assert_eq!(report.meta.message_type, MessageType::Report);
    assert_eq!(
        report.meta.linked_message_id.as_deref(),
        Some(sent.as_str())
    );
    assert_eq!(report.meta.local_id.as_deref(), Some(local_id.as_str()));
    assert_eq!(report.meta.workflow_id.as_deref(), Some(WORKFLOW));
    assert!(
        report
            .meta
            .status_code
            .as_deref()
            .is_some_and(|c| c != "00"),
        "{:?}",
        report.meta
    );
    assert!(report.meta.status_description.is_some());
    assert!(report.body.is_empty());

    council.acknowledge(&report_id).await.unwrap();
    client(&url, "X26ABC3").acknowledge(&sent).await.unwrap();
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_not_echoed() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let wrong_password = MeshConfig::new(&url, "X26ABC1", "not-the-password-s3cr3t", SHARED_KEY);
    let wrong_key = MeshConfig::new(&url, "X26ABC1", PASSWORD, "not-the-key-s3cr3t");
    let no_such_mailbox = MeshConfig::new(&url, "X26NOPE9", PASSWORD, SHARED_KEY);
    for config in [wrong_password, wrong_key, no_such_mailbox] {
        let mailbox = MeshClient::new(config).unwrap();
        assert!(!format!("{mailbox:?}").contains("s3cr3t"));
        for result in [
            mailbox.handshake().await.map(|_| ()),
            mailbox.inbox(None).await.map(|_| ()),
            mailbox
                .download("FEDCBA98ABCDEF01FEDCBA98ABCDEF01")
                .await
                .map(|_| ()),
            mailbox.track("anything").await.map(|_| ()),
        ] {
            match result {
                Err(MeshError::Refused(why)) => assert!(!why.contains("s3cr3t"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn unknown_message_ids() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mailbox = client(&url, "X26ABC3");
    let unknown = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    assert!(mailbox.download(&unknown).await.unwrap().is_none());
    mailbox.acknowledge(&unknown).await.unwrap();
    // Not a MESH id at all: refused before any request.
    assert!(matches!(
        mailbox.download("../X26ABC1/inbox").await,
        Err(MeshError::Refused(_))
    ));
    // Sending to a mailbox MESH does not know: 417, refused.
    let local = unique("nobody");
    match client(&url, "X26ABC1")
        .send(&outgoing("X26NOPE9", &local, b"<File/>"))
        .await
    {
        Err(MeshError::Refused(why)) => assert!(why.contains("417"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// tests/mesh_council.py: NHS England's own Python client (mesh-client).
fn council_script(url: &str, args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/mesh_council.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .args(["--url", url])
        .output()
        .expect("python3 runs tests/mesh_council.py");
    assert!(
        output.status.success(),
        "mesh_council.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn interoperates_with_nhs_englands_mesh_client() {
    let Some(url) = sandbox() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Unique per run: `receive --workflow` then takes only this test's file.
    let workflow = format!("CPIS_INTEROP_{}", uuid::Uuid::new_v4().simple());

    // Theirs to ours: gzip transfer, as their client compresses.
    let file = dir.path().join("LA_UPLOAD_X26_7.xml");
    let body = xml("theirs", 4_000);
    std::fs::write(&file, &body).unwrap();
    let local_theirs = unique("theirs");
    let id = council_script(
        &url,
        &[
            "send",
            "--mailbox",
            "X26ABC1",
            "--to",
            "X26ABC3",
            "--workflow",
            &workflow,
            "--file",
            file.to_str().unwrap(),
            "--local-id",
            &local_theirs,
            "--compress",
        ],
    );
    let id = id.trim();
    let ours = client(&url, "X26ABC3");
    let message = ours.download(id).await.unwrap().unwrap();
    assert_eq!(message.body, body);
    assert_eq!(
        message.meta.file_name.as_deref(),
        Some("LA_UPLOAD_X26_7.xml")
    );
    assert_eq!(
        message.meta.local_id.as_deref(),
        Some(local_theirs.as_str())
    );
    assert_eq!(message.meta.workflow_id.as_deref(), Some(workflow.as_str()));
    ours.acknowledge(id).await.unwrap();

    // Ours to theirs, chunked and gzipped.
    let mut sender = config(&url, "X26ABC1");
    sender.chunk_bytes = 1_500;
    let sender = MeshClient::new(sender).unwrap();
    let local_ours = unique("ours");
    let body = xml("ours", 3_500);
    let sent = sender
        .send(&Outgoing {
            to: "X26ABC3",
            workflow_id: &workflow,
            file_name: "ACK_X26_7.xml",
            local_id: &local_ours,
            subject: Some("acknowledgement"),
            body: &body,
        })
        .await
        .unwrap();
    let out = dir.path().join("in");
    let written = council_script(
        &url,
        &[
            "receive",
            "--mailbox",
            "X26ABC3",
            "--out",
            out.to_str().unwrap(),
            "--workflow",
            &workflow,
            "--wait",
            "30",
        ],
    );
    let paths: Vec<&str> = written.lines().collect();
    assert_eq!(paths.len(), 1, "{written}");
    assert!(
        paths[0].ends_with(&format!("{sent}_ACK_X26_7.xml")),
        "{written}"
    );
    assert_eq!(std::fs::read(paths[0]).unwrap(), body);
    let headers: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", paths[0])).unwrap()).unwrap();
    assert_eq!(headers["mex-localid"], local_ours.as_str());
    assert_eq!(headers["mex-from"], "X26ABC1");
    // Their client acknowledged it: gone from ours.
    assert!(!all_ids(&ours).await.contains(&sent));
}

/// A mesh-sandbox on https that demands a client certificate, as live MESH
/// does (`tests/mesh_sandbox.sh start-tls`); stopped when dropped.
struct TlsSandbox {
    dir: tempfile::TempDir,
    url: String,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/mesh_sandbox.sh");

impl TlsSandbox {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("bash")
            .args([SCRIPT, "start-tls"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "start-tls: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        Self { dir, url }
    }

    fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }

    fn config(&self, mailbox: &str, identity: bool, ca: Option<&str>) -> MeshConfig {
        let mut config = config(&self.url, mailbox);
        if identity {
            config.client_identity = Some(cpis_mesh::ClientIdentity {
                certificate_pem: self.pem("client.pem"),
                private_key_pem: cpis_mesh::Secret::new(self.pem("client.key")),
            });
        }
        config.ca_bundle_pem = ca.map(|name| self.pem(name));
        config
    }
}

impl Drop for TlsSandbox {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .args([SCRIPT, "stop-tls"])
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    if sandbox().is_none() {
        return;
    }
    let tls = TlsSandbox::start();

    // Certificate and CA: the whole exchange works.
    let council = MeshClient::new(tls.config("X26ABC1", true, Some("ca.pem"))).unwrap();
    let recipient = MeshClient::new(tls.config("X26ABC3", true, Some("ca.pem"))).unwrap();
    council.handshake().await.unwrap();
    let local_id = unique("tls");
    let body = xml("tls", 1_000);
    let id = council
        .send(&outgoing("X26ABC3", &local_id, &body))
        .await
        .unwrap();
    assert_eq!(recipient.download(&id).await.unwrap().unwrap().body, body);
    recipient.acknowledge(&id).await.unwrap();

    // No client certificate, a server CA we do not trust, or none at all:
    // nothing gets through (TLS failures look like network faults to the
    // client, so they are transient: the daily handshake shows them).
    for (identity, ca) in [
        (false, Some("ca.pem")),
        (true, Some("other-ca.pem")),
        (true, None),
    ] {
        let mailbox = MeshClient::new(tls.config("X26ABC1", identity, ca)).unwrap();
        match mailbox.handshake().await {
            Err(MeshError::Transient(_)) => {}
            other => panic!("identity={identity} ca={ca:?}: {other:?}"),
        }
    }
}
