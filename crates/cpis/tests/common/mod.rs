//! The real `cpis` binary for the integration tests: minting tokens, running
//! `cpis serve` on a free loopback port, plain HTTP/1.1 requests, and the
//! capture of everything the binary puts out for the privacy scan (suite 6).
//!
//! Capture: when `CPIS_PRIVACY_CAPTURE_DIR` is set, [`capture`] writes the
//! binary's log lines, every error response body and the local outbox there,
//! one file per test, and `tests/privacy_scan.py` scans them.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every error response body this test process received.
static ERROR_BODIES: Mutex<String> = Mutex::new(String::new());

/// Runs `cpis <args>` to completion and returns its stdout.
pub fn cpis(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .args(args)
        .output()
        .expect("run cpis");
    assert!(
        output.status.success(),
        "cpis {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A clinician's token (B0107, emergency department) for `ods`.
pub fn clinician_token(data: &str, ods: &str, org_name: &str, user: &str) -> String {
    cpis(&[
        "token",
        "--data",
        data,
        "--clinician",
        "--ods",
        ods,
        "--org-name",
        org_name,
        "--rbac",
        "B0107",
        "--setting",
        "emergency-department",
        "--user",
        user,
    ])
}

pub struct Server {
    child: Child,
    /// The threads copying stdout and stderr into the logs: joined by
    /// [`Server::stop`] and [`Server::reap`], so that every line the process
    /// wrote is in the logs when they return.
    readers: Vec<std::thread::JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl Server {
    /// `cpis serve --demo` on 127.0.0.1:0 with `data`; its stdout and stderr
    /// are appended to `logs`.
    pub fn start(data: &Path, logs: Arc<Mutex<String>>) -> Self {
        Self::launch(data, logs, None, &[])
    }

    /// As [`Server::start`], with the process's umask set first (`sh -c
    /// 'umask 022; exec cpis ...'`), when given.
    pub fn start_under_umask(data: &Path, logs: Arc<Mutex<String>>, umask: Option<&str>) -> Self {
        Self::launch(data, logs, umask.map(|u| format!("umask {u}")), &[])
    }

    /// [`Server::start`] with more `serve` flags, and optionally under a file
    /// descriptor limit (`ulimit -n`, through `sh`).
    pub fn start_with(
        data: &Path,
        logs: Arc<Mutex<String>>,
        descriptor_limit: Option<u32>,
        extra: &[&str],
    ) -> Self {
        Self::launch(
            data,
            logs,
            descriptor_limit.map(|l| format!("ulimit -n {l}")),
            extra,
        )
    }

    /// `cpis serve`, through `sh -c '<setup> && exec cpis ...'` when there is
    /// a shell setup step.
    fn launch(
        data: &Path,
        logs: Arc<Mutex<String>>,
        setup: Option<String>,
        extra: &[&str],
    ) -> Self {
        let binary = env!("CARGO_BIN_EXE_cpis");
        let mut command = match setup {
            Some(setup) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("{setup} && exec \"$0\" \"$@\""))
                    .arg(binary);
                sh
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["serve", "--demo", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cpis serve");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        let out = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("cpis listening") {
                    let parsed: Value = serde_json::from_str(&line).unwrap();
                    let _ = tx.send(
                        parsed["fields"]["addr"]
                            .as_str()
                            .unwrap()
                            .parse::<SocketAddr>()
                            .unwrap(),
                    );
                }
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            logs.lock().unwrap().push_str(&text);
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("cpis did not start listening");
        Self {
            child,
            addr,
            readers: vec![out, err],
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One request; `None` if the server did not answer (it died).
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let mut stream = TcpStream::connect(self.addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
        if status >= 400 {
            let mut errors = ERROR_BODIES.lock().unwrap();
            errors.push_str(body);
            errors.push('\n');
        }
        Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_request(method, path, token, body.as_ref())
            .unwrap_or_else(|| panic!("no answer to {method} {path}"))
    }

    /// Every item of a paginated council listing (`key` is the array's name).
    pub fn list_all(&self, path: &str, token: &str, key: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self.request(
                "GET",
                &format!("{path}?limit=500&cursor={cursor}"),
                token,
                None,
            );
            assert_eq!(status, 200, "{page}");
            items.extend(page[key].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return items,
            }
        }
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        self.join_readers();
        assert!(exit.success(), "cpis did not shut down cleanly: {exit:?}");
    }

    fn join_readers(&mut self) {
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
    }

    /// Waits for a process that was killed (or is about to be) to end.
    pub fn reap(mut self) {
        let _ = self.child.wait();
        self.join_readers();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test must not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes what this test's binary put out (its logs, the error bodies it
/// answered, its outbox) to `$CPIS_PRIVACY_CAPTURE_DIR/<test>-*`, if set.
pub fn capture(test: &str, logs: &str, outbox: &Path) {
    let Ok(dir) = std::env::var("CPIS_PRIVACY_CAPTURE_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{test}-logs.txt")), logs).unwrap();
    let errors = ERROR_BODIES.lock().unwrap().clone();
    std::fs::write(dir.join(format!("{test}-error-bodies.txt")), errors).unwrap();
    let messages = std::fs::read_to_string(outbox).unwrap_or_default();
    std::fs::write(dir.join(format!("{test}-outbox.jsonl")), messages).unwrap();
}
