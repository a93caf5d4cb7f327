//! What the service put out during a test run, handed to the privacy scan
//! (`tests/suites/90-privacy-scan.sh`) when `CPIS_PRIVACY_CAPTURE_DIR` is set
//! (`tests/run.sh` sets it): error bodies, and every tracing event of the
//! test process (our crates at DEBUG, libraries at INFO, as the functions
//! log them). Files are `in-process-<pid>-<kind>.txt`, named so the scan can
//! tell logs from error bodies. Tests only: these helpers panic on I/O errors.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use tracing_subscriber::EnvFilter;

/// The workspace's crates, whose DEBUG output the capture keeps. Targets
/// match by prefix, so `cpis` covers every `cpis_*` crate too.
const OUR_CRATES: &[&str] = &[
    "cpis",
    "http_common",
    "plan_upload",
    "attendance_check",
    "history_query",
    "notification_dispatch",
    "outbox_relay",
];

/// Sends this process's tracing events to the capture directory, once. Does
/// nothing without a capture directory, or when the test installed a
/// subscriber of its own first.
pub fn tracing() {
    static START: Once = Once::new();
    START.call_once(|| {
        let Some(path) = path_for("logs") else {
            return;
        };
        let file = open_for_append(&path);
        let filter = OUR_CRATES
            .iter()
            .fold(EnvFilter::new("info"), |filter, krate| {
                match format!("{krate}=debug").parse() {
                    Ok(directive) => filter.add_directive(directive),
                    Err(_) => filter,
                }
            });
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(Mutex::new(file))
            .try_init();
    });
}

/// Appends one error body the service answered.
pub fn error_body(text: &str) {
    if let Some(path) = path_for("error-bodies") {
        open_for_append(&path)
            .write_all(format!("{text}\n").as_bytes())
            .unwrap_or_else(|e| panic!("writing to the privacy capture directory: {e}"));
    }
}

fn path_for(kind: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CPIS_PRIVACY_CAPTURE_DIR")?;
    Some(PathBuf::from(dir).join(format!("in-process-{}-{kind}.txt", std::process::id())))
}

fn open_for_append(path: &Path) -> File {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("creating the privacy capture directory: {e}"));
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}
