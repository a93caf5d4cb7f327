//! The privacy capture (feature `capture`, tests only): what the service put
//! out during a test run, handed to the privacy scan
//! (`tests/suites/90-privacy-scan.sh`) when `CPIS_PRIVACY_CAPTURE_DIR` is set
//! (`tests/run.sh` sets it). The log lines come from the same subscriber the
//! functions run ([`crate::subscriber`], Lambda style, the library caps),
//! with this directory as its sink and our crates at DEBUG; beside them,
//! every error body and response header the tests received. Files are
//! `in-process-<pid>-<kind>.txt`, named so the scan can tell logs from error
//! bodies. These helpers panic on I/O errors.
//!
//! And [`this_thread`], the lines one test's thread logged, for tests that
//! read what the service wrote; [`Lines`], an in-memory sink.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::Style;

/// The workspace's crates, whose DEBUG output the capture keeps (libraries
/// stay at INFO, as the functions log them). Targets match by prefix, so
/// `cpis` covers every `cpis_*` crate too.
const OUR_CRATES: &[&str] = &[
    "cpis",
    "plan_upload",
    "attendance_check",
    "history_query",
    "notification_dispatch",
    "outbox_relay",
    "mesh_poll",
];

/// The capture's level: INFO, and DEBUG for our crates.
fn requested() -> String {
    OUR_CRATES.iter().fold("info".to_owned(), |levels, krate| {
        format!("{levels},{krate}=debug")
    })
}

/// Sends this process's tracing events to the capture directory (when
/// there is one) and to the calling thread's [`this_thread`] sink (when it
/// has one), through one process-wide subscriber installed once. Does
/// nothing when the test installed a global subscriber of its own first.
pub fn tracing() {
    static START: Once = Once::new();
    START.call_once(|| {
        let file = path_for("logs").map(|path| Mutex::new(open_for_append(&path)));
        let filter = crate::capped(Some(&requested()), "info");
        // `try_init`: the `log` crate's records are captured too.
        let _ = crate::subscriber(Style::Lambda, filter, Sink { file }).try_init();
    });
}

thread_local! {
    static THIS_THREAD: RefCell<Option<Lines>> = const { RefCell::new(None) };
}

/// The lines the process-wide subscriber ([`tracing`]) writes on this
/// thread while the guard lives: for a test that reads what the service
/// logged (a `#[tokio::test]` runs its future on its own thread).
///
/// Why not a thread-local `set_default` subscriber: tracing caches each
/// callsite's interest for the whole process, and a callsite first reached
/// by a concurrent test on a thread with no subscriber could keep "never"
/// after this thread installed its own (seen: a span missing from 8 runs in
/// 8). One global subscriber leaves nothing to race.
pub fn this_thread() -> ThisThread {
    tracing();
    let lines = Lines::default();
    THIS_THREAD.with(|sink| *sink.borrow_mut() = Some(lines.clone()));
    ThisThread(lines)
}

/// This thread's captured lines; [`ThisThread::text`] reads them, and the
/// capture stops when it drops.
#[derive(Debug)]
pub struct ThisThread(Lines);

impl ThisThread {
    /// Everything written on this thread so far, one JSON line per event.
    pub fn text(&self) -> String {
        self.0.text()
    }
}

impl Drop for ThisThread {
    fn drop(&mut self) {
        THIS_THREAD.with(|sink| *sink.borrow_mut() = None);
    }
}

/// The process-wide writer: the capture file and this thread's sink.
struct Sink {
    file: Option<Mutex<File>>,
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter(self.file.as_ref())
    }
}

struct SinkWriter<'a>(Option<&'a Mutex<File>>);

impl Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = self.0 {
            file.lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(buf)?;
        }
        THIS_THREAD.with(|sink| {
            if let Some(lines) = sink.borrow_mut().as_mut() {
                lines.write_all(buf)
            } else {
                Ok(())
            }
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An in-memory sink: hand a clone to [`crate::subscriber`], read [`Lines::text`].
#[derive(Debug, Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Appends one error body the service answered.
pub fn error_body(text: &str) {
    append("error-bodies", &format!("{text}\n"));
}

/// Appends the response headers of one answer, one `name: value` a line: a
/// header the service echoes (the request id) must never carry an NHS number
/// either.
pub fn response_headers(text: &str) {
    append("response-headers", text);
}

fn append(kind: &str, text: &str) {
    if let Some(path) = path_for(kind) {
        open_for_append(&path)
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
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

#[cfg(test)]
mod tests {
    #[test]
    fn our_crates_at_debug_and_the_libraries_capped() {
        let filter = crate::capped(Some(&super::requested()), "info").to_string();
        for part in [
            "cpis=debug",
            "notification_dispatch=debug",
            "hyper=info",
            "lambda_runtime=info",
        ] {
            assert!(filter.contains(part), "{filter}");
        }
    }
}
