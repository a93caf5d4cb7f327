//! One test's world (`Rig`): the sandbox, the council's MESH client, the
//! service, and the XML of what the council receives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpis_domain::find_nhs_numbers;
use cpis_mesh::{Mailbox, MeshClient, MeshConfig};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::Value;

use crate::common::{capture, cpis, wait_for, Server};

pub const COUNCIL: &str = "E09000033";
pub const COUNCIL_MAILBOX: &str = "X26ABC1";
pub const CPIS_MAILBOX: &str = "X26ABC2";
pub const UNLINKED_MAILBOX: &str = "X26ABC3";
/// The child of the upload file's first record (an open CPP).
pub const CHILD: &str = "9990000018";
/// The §7.1-style upload file: three records (CPP, LAC, UCP), the UCP's end
/// date before its start date. The tests send it with the first child's
/// name and date of birth replaced by the privacy scan's fixtures
/// (`tests/privacy_fixtures.json`), so that the scan would find them if the
/// service put them out anywhere but the council's acknowledgement.
pub const UPLOAD_FILE: &str = include_str!("../../../hl7v3/tests/fixtures/upload-000457.xml");
pub const PRIVACY_FIXTURES: &str = include_str!("../../../../tests/privacy_fixtures.json");
pub const COUNCIL_SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/mesh_council.py");
pub const SANDBOX_SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/mesh_sandbox.sh");
/// The CPR07 of the UCP record: its end date.
pub const UCP_END_DATE: &str = "/File/record[3]/CP-ISRecord/pertinentInformation[1]/COCT_TP146102GB01.UCPInformation/component1/uCPEndDate/value/@value";
/// Upper bound on any wait (never reached when things work; polls are 1 s).
pub const PATIENCE: Duration = Duration::from_secs(90);

pub use cpis_mesh::testing::sandbox_url as sandbox;

/// A file the council received: its body and its `mex-*` headers.
pub struct Received {
    pub body: String,
    pub headers: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers[name].as_str().unwrap_or("")
    }
}

/// One test's world: the sandbox, workflow ids of its own, a data
/// directory, the MESH secrets, and where the council keeps what it gets.
pub struct Rig {
    pub sandbox: String,
    pub dir: tempfile::TempDir,
    pub upload: String,
    pub ack: String,
    pub asn: String,
    /// The service's output (every run of it), for the privacy scan.
    pub logs: Arc<Mutex<String>>,
    /// What the council's MESH client printed.
    pub council_log: Mutex<String>,
    pub runtime: tokio::runtime::Runtime,
    /// The CP-IS mailbox as the test sees it (listing only).
    pub cpis: MeshClient,
}

impl Rig {
    pub fn new(sandbox: String) -> Self {
        let run: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(10)
            .map(|c| char::from(c).to_ascii_uppercase())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mesh-password"), "password\n").unwrap();
        std::fs::write(dir.path().join("mesh-shared-key"), "TestKey\n").unwrap();
        let fixtures: Value = serde_json::from_str(PRIVACY_FIXTURES).unwrap();
        let (name, dob) = (
            fixtures["names"][1].as_str().unwrap(),
            fixtures["dates_of_birth"][2].as_str().unwrap(),
        );
        assert!(UPLOAD_FILE.contains("Childone") && UPLOAD_FILE.contains("20180704"));
        let file = UPLOAD_FILE
            .replace("Childone", name)
            .replace("20180704", dob);
        std::fs::write(dir.path().join("upload-000457.xml"), file).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cpis = MeshClient::new(MeshConfig::new(
            sandbox.as_str(),
            CPIS_MAILBOX,
            "password",
            "TestKey",
        ))
        .unwrap();
        Self {
            upload: format!("CPIS_LA_UPLOAD_T{run}"),
            ack: format!("CPIS_LA_UPLOAD_ACK_T{run}"),
            asn: format!("CPIS_ASN_T{run}"),
            sandbox,
            dir,
            logs: Arc::default(),
            council_log: Mutex::default(),
            runtime,
            cpis,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn d(&self) -> String {
        self.data().to_str().unwrap().to_owned()
    }

    /// `cpis serve --demo --mesh-…` with this rig's workflows, polling every
    /// second, talking to MESH at `mesh_url` (the sandbox, or a proxy).
    pub fn serve(&self, mesh_url: &str) -> Server {
        let secret = |name: &str| self.dir.path().join(name).to_str().unwrap().to_owned();
        let (password, key) = (secret("mesh-password"), secret("mesh-shared-key"));
        Server::start_with(
            &self.data(),
            self.logs.clone(),
            None,
            &[
                "--mesh-url",
                mesh_url,
                "--mesh-mailbox",
                CPIS_MAILBOX,
                "--mesh-password-file",
                &password,
                "--mesh-shared-key-file",
                &key,
                "--mesh-poll-seconds",
                "1",
                "--mesh-workflow-upload",
                &self.upload,
                "--mesh-workflow-ack",
                &self.ack,
                "--mesh-workflow-asn",
                &self.asn,
            ],
        )
    }

    /// The operator links the council to its mailbox.
    pub fn link(&self) {
        let out = cpis(&[
            "mesh",
            "link",
            "--data",
            &self.d(),
            "--council",
            COUNCIL,
            "--mailbox",
            COUNCIL_MAILBOX,
        ]);
        assert_eq!(
            out,
            format!("linked council {COUNCIL} to MESH mailbox {COUNCIL_MAILBOX}")
        );
    }

    pub fn council_token(&self) -> String {
        cpis(&["token", "--data", &self.d(), "--council", COUNCIL])
    }

    /// `tests/mesh_council.py <args>`; its output is kept for the scan.
    pub fn council(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new("python3")
            .arg(COUNCIL_SCRIPT)
            .args(args)
            .args(["--url", &self.sandbox])
            .output()
            .expect("run tests/mesh_council.py");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut log = self.council_log.lock().unwrap();
        log.push_str(&format!(
            "$ mesh_council.py {}\n{stdout}{stderr}",
            args.join(" ")
        ));
        (output.status.success(), stdout)
    }

    /// `mailbox` sends the upload file to the CP-IS mailbox with this rig's
    /// upload workflow; MESH's message id.
    pub fn send_upload(&self, mailbox: &str) -> String {
        let file = self.dir.path().join("upload-000457.xml");
        let (ok, out) = self.council(&[
            "send",
            "--mailbox",
            mailbox,
            "--to",
            CPIS_MAILBOX,
            "--workflow",
            &self.upload,
            "--file",
            file.to_str().unwrap(),
        ]);
        assert!(ok, "the council could not send: {out}");
        out.trim().to_owned()
    }

    /// Everything of `workflow` waiting in `mailbox`, downloaded and
    /// acknowledged by the council's client; with `wait`, until at least one
    /// came.
    pub fn receive(&self, mailbox: &str, workflow: &str, wait: bool) -> Vec<Received> {
        let out_dir = self.dir.path().join("council").join(mailbox);
        let out = out_dir.to_str().unwrap();
        let patience = PATIENCE.as_secs().to_string();
        let mut args = vec![
            "receive",
            "--mailbox",
            mailbox,
            "--out",
            out,
            "--workflow",
            workflow,
        ];
        if wait {
            args.extend(["--wait", &patience]);
        }
        let (ok, paths) = self.council(&args);
        assert!(ok, "nothing of {workflow} arrived in {mailbox}");
        paths
            .lines()
            .map(|path| Received {
                body: std::fs::read_to_string(path).unwrap(),
                headers: serde_json::from_str(
                    &std::fs::read_to_string(format!("{path}.json")).unwrap(),
                )
                .unwrap(),
            })
            .collect()
    }

    /// The ids MESH lists in the CP-IS mailbox's inbox (every page).
    pub fn cpis_inbox(&self) -> BTreeSet<String> {
        self.runtime.block_on(async {
            let mut ids = BTreeSet::new();
            let mut from: Option<String> = None;
            loop {
                let page = self.cpis.inbox(from.as_deref()).await.unwrap();
                ids.extend(page.ids);
                match page.continue_from {
                    Some(next) => from = Some(next),
                    None => return ids,
                }
            }
        })
    }

    /// Until the service has acknowledged `message_id` (MESH no longer lists
    /// it): after that, nothing more is done with it.
    pub fn wait_acknowledged(&self, message_id: &str) {
        wait_for(
            &format!("the CP-IS mailbox to acknowledge {message_id}"),
            PATIENCE,
            || !self.cpis_inbox().contains(message_id),
        );
    }

    /// The service's log lines (JSON) whose message contains `text`.
    pub fn log_lines(&self, text: &str) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| {
                line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(text))
            })
            .collect()
    }

    /// What the test's service and the council's client put out, for the
    /// privacy scan; and the scan's own rule checked here too.
    pub fn capture(&self, test: &str) {
        let logs = self.logs.lock().unwrap().clone();
        let council_log = self.council_log.lock().unwrap().clone();
        capture(test, &logs, &self.data().join("outbox/messages.jsonl"));
        if let Ok(dir) = std::env::var("CPIS_PRIVACY_CAPTURE_DIR") {
            let dir = std::fs::canonicalize(dir).unwrap();
            std::fs::write(dir.join(format!("{test}-council-mesh.txt")), &council_log).unwrap();
            // The files meant for the council (they name children, as the
            // XSDs make them) are kept out of what the scan reads: the
            // council's copies, and the sandbox's store.
            let store = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(
                    || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
                    PathBuf::from,
                )
                .join("mesh-sandbox");
            for kept in [self.dir.path().to_path_buf(), store] {
                if let Ok(kept) = std::fs::canonicalize(kept) {
                    assert!(
                        !kept.starts_with(&dir) && !dir.starts_with(&kept),
                        "{kept:?}"
                    );
                }
            }
            for entry in std::fs::read_dir(&dir).unwrap() {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
                assert!(
                    !text.contains("<FileResponse")
                        && !text.contains("<CP-ISAccessToServiceNotification")
                );
            }
        }
        for (what, text) in [
            ("the service's logs", &logs),
            ("the council's client", &council_log),
        ] {
            assert!(find_nhs_numbers(text).is_empty(), "an NHS number in {what}");
            let fixtures: Value = serde_json::from_str(PRIVACY_FIXTURES).unwrap();
            let personal = ["names", "dates_of_birth"]
                .iter()
                .flat_map(|k| fixtures[k].as_array().unwrap().iter())
                .map(|v| v.as_str().unwrap())
                .chain(["Childtwo", "Motherone", "20111120", "19990312"]);
            for value in personal {
                assert!(!text.contains(value), "{value} in {what}");
            }
        }
    }
}

/// Every `(element path, attribute, value)` of an XML document, and every
/// `(element path, "#text", text)`: the acknowledgement and the ASN read
/// by an XML parser, not by their layout.
pub fn flatten(xml: &str) -> Vec<(String, String, String)> {
    use quick_xml::events::{BytesStart, Event};
    fn open(
        element: &BytesStart<'_>,
        path: &mut Vec<String>,
        out: &mut Vec<(String, String, String)>,
    ) {
        path.push(element.local_name().as_ref().to_owned());
        let at = path.join("/");
        for attribute in element.attributes() {
            let attribute = attribute.expect("a well-formed attribute");
            out.push((
                at.clone(),
                attribute.key.local_name().as_ref().to_owned(),
                attribute.value.into_owned(),
            ));
        }
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(element) => open(&element, &mut path, &mut out),
            Event::Empty(element) => {
                open(&element, &mut path, &mut out);
                path.pop();
            }
            Event::Text(text) => {
                let text = text.trim().to_owned();
                if !text.is_empty() {
                    out.push((path.join("/"), "#text".to_owned(), text));
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => return out,
            _ => {}
        }
    }
}

/// The values at `path` (ending) and `attribute`.
pub fn values<'a>(
    flat: &'a [(String, String, String)],
    path: &str,
    attribute: &str,
) -> Vec<&'a str> {
    flat.iter()
        .filter(|(p, a, _)| p.ends_with(path) && a == attribute)
        .map(|(_, _, v)| v.as_str())
        .collect()
}
