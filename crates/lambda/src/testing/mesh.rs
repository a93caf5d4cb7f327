//! MESH test support for the functions (mesh-poll, notification-dispatch):
//! NHS England's mesh-sandbox (started by `tests/run.sh` or
//! `tests/mesh_sandbox.sh start`, URL in `CPIS_MESH_SANDBOX_URL`), the CP-IS
//! mailbox's secret as an operator stores it, and a council's end of MESH
//! played by NHS England's own client (`tests/mesh_council.py`), an oracle
//! independent of `cpis_mesh::MeshClient`.
//!
//! Tests sharing the sandbox must not take each other's files: each uses
//! workflow ids of its own ([`unique_workflow`]), and the council's side
//! reads only its workflow's messages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The sandbox's CP-IS mailbox in these tests (cpis's own).
pub const CPIS_MAILBOX: &str = "X26ABC2";
/// A council's mailbox.
pub const COUNCIL_MAILBOX: &str = "X26ABC1";
/// Another council's mailbox.
pub const OTHER_MAILBOX: &str = "X26ABC3";
/// Every sandbox mailbox's password, and the sandbox's shared key.
pub const PASSWORD: &str = "password";
pub const SHARED_KEY: &str = "TestKey";

pub use cpis_mesh::testing::sandbox_url;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `prefix` and a suffix unique to this process and call: upper-case
/// letters, digits and `_`, as a workflow id or a name.
pub fn unique_workflow(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}_{}_{nanos:X}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The JSON an operator stores as the MESH secret (README, "MESH on AWS")
/// for a sandbox mailbox.
pub fn secret_json(mailbox: &str, password: &str) -> String {
    serde_json::json!({ "mailbox": mailbox, "password": password, "shared_key": SHARED_KEY })
        .to_string()
}

/// Stores `text` as a new secret (on moto, through `sdk`) and returns its ARN.
pub async fn put_secret(sdk: &aws_types::SdkConfig, text: &str) -> String {
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(unique_workflow("cpis-mesh-test"))
        .secret_string(text)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating the MESH secret on moto: {e:?}"))
        .arn()
        .unwrap_or_else(|| panic!("moto gave the secret no ARN"))
        .to_owned()
}

fn council_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mesh_council.py")
}

fn run_council(url: &str, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg(council_script())
        .args(args)
        .args(["--url", url])
        .output()
        .unwrap_or_else(|e| panic!("running tests/mesh_council.py: {e}"));
    assert!(
        output.status.success(),
        "tests/mesh_council.py {}: {}",
        args[0],
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A temporary directory of this process's own (removed by the caller).
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_workflow(&format!("cpis-mesh-{tag}")));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The council at `from` sends `body` to the CP-IS mailbox with `workflow`
/// (Mex-FileName `file_name`); returns MESH's message id.
pub fn council_send(url: &str, from: &str, workflow: &str, file_name: &str, body: &[u8]) -> String {
    let dir = scratch("send");
    let path = dir.join(file_name);
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let path_text = path.to_string_lossy().into_owned();
    let out = run_council(
        url,
        &[
            "send",
            "--mailbox",
            from,
            "--to",
            CPIS_MAILBOX,
            "--workflow",
            workflow,
            "--file",
            &path_text,
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    out.trim().to_owned()
}

/// One file the council received.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    /// Its `Mex-*` headers, lower case without the prefix's case: `mex-localid`,
    /// `mex-workflowid`, `mex-from`, `mex-filename`, …
    pub headers: serde_json::Value,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers[name].as_str().unwrap_or_default()
    }
}

/// Every message of `workflow` in `mailbox`'s inbox, downloaded and
/// acknowledged by the council's client, oldest first.
pub fn council_receive(url: &str, mailbox: &str, workflow: &str) -> Vec<Received> {
    let dir = scratch("receive");
    let dir_text = dir.to_string_lossy().into_owned();
    let out = run_council(
        url,
        &[
            "receive",
            "--mailbox",
            mailbox,
            "--workflow",
            workflow,
            "--out",
            &dir_text,
        ],
    );
    let received = out
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|path| {
            let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let headers = std::fs::read_to_string(format!("{path}.json"))
                .unwrap_or_else(|e| panic!("{path}.json: {e}"));
            Received {
                body,
                headers: serde_json::from_str(&headers).unwrap_or_else(|e| panic!("{e}")),
            }
        })
        .collect();
    // The files hold what an acknowledgement echoes (names, dates of birth):
    // they go with the directory.
    let _ = std::fs::remove_dir_all(&dir);
    received
}
