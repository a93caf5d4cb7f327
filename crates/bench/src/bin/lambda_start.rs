//! Benchmark 5 (start-up): process start to first handled invocation of a
//! Lambda function binary, against a local mock of the Lambda runtime API.
//!
//! ```sh
//! target/release/lambda-start --runs 20 --event events/sqs/normal-batch.json \
//!     target/release/notification-dispatch
//! ```
//!
//! The mock listens on a loopback port given to the function as
//! `AWS_LAMBDA_RUNTIME_API`, hands out one event on
//! `/2018-06-01/runtime/invocation/next` and takes its answer on
//! `/invocation/{id}/response` (or `/error`). Every other request is an AWS
//! API call (the function's `AWS_ENDPOINT_URL` points here too): it is
//! answered `200 {}`, an empty DynamoDB JSON answer, so that a first
//! invocation's store reads find nothing and its writes succeed without a
//! network. The function's settings are every variable a function kind
//! requires (`crates/lambda/src/settings.rs`), with an inline
//! pseudonymisation key and static dummy credentials.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
/// A run that has not answered by then has failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum Seen {
    /// The function asked for its first event: init is done.
    FirstNext(Instant),
    /// The function answered the invocation (`ok` false: it reported an error).
    Answered { at: Instant, ok: bool, body: String },
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, body })
}

/// One write per answer, on a no-delay socket: a head and a body in two
/// writes would meet the client's delayed ACK and add 40 ms to each call.
fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut answer = head.into_bytes();
    answer.extend_from_slice(body);
    let _ = stream.write_all(&answer);
}

/// Serves one connection (the runtime client and the SDK keep theirs alive).
fn serve(
    stream: TcpStream,
    event: Arc<Vec<u8>>,
    served: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seen: mpsc::Sender<Seen>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let path = request.path.as_str();
        if request.method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            if served.swap(true, Ordering::SeqCst) {
                // One invocation per run: hold the second poll until the end.
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return;
            }
            let _ = seen.send(Seen::FirstNext(Instant::now()));
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 30_000)
                .unwrap_or_default();
            respond(
                &mut writer,
                "200 OK",
                &[
                    ("content-type", "application/json".into()),
                    ("lambda-runtime-aws-request-id", REQUEST_ID.into()),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:eu-west-2:123456789012:function:bench".into(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
                            .into(),
                    ),
                ],
                &event,
            );
        } else if path.starts_with("/2018-06-01/runtime/invocation/") {
            let at = Instant::now();
            respond(&mut writer, "202 Accepted", &[], b"{}");
            let _ = seen.send(Seen::Answered {
                at,
                ok: path.ends_with("/response"),
                body: String::from_utf8_lossy(&request.body).into_owned(),
            });
        } else if path.starts_with("/2018-06-01/runtime/init/error") {
            respond(&mut writer, "202 Accepted", &[], b"{}");
            let _ = seen.send(Seen::Answered {
                at: Instant::now(),
                ok: false,
                body: String::from_utf8_lossy(&request.body).into_owned(),
            });
        } else {
            // An AWS API call: an empty JSON answer.
            respond(
                &mut writer,
                "200 OK",
                &[("content-type", "application/x-amz-json-1.0".into())],
                b"{}",
            );
        }
    }
}

struct Run {
    init: Duration,
    total: Duration,
    answer: String,
}

fn run_once(binary: &str, event: Arc<Vec<u8>>) -> Result<Run, Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let served = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (served, stop) = (served.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (event, served, stop, tx) =
                    (event.clone(), served.clone(), stop.clone(), tx.clone());
                std::thread::spawn(move || serve(stream, event, served, stop, tx));
            }
        });
    }
    let endpoint = format!("http://{addr}");
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "eu-west-2")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CPIS_TABLE_NAME", "cpis")
        .env("CPIS_AUDIT_TABLE_NAME", "cpis-audit")
        .env(
            "CPIS_ASN_QUEUE_URL",
            format!("{endpoint}/123456789012/asns"),
        )
        .env(
            "CPIS_SNS_TOPIC_ARN_PREFIX",
            "arn:aws:sns:eu-west-2:123456789012:cpis-duty-",
        )
        .env("CPIS_VIEW_URL", "https://cpis.example/v1/notifications")
        .env("CPIS_PSEUDONYM_KEY", "07".repeat(32))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut init = None;
    let outcome = loop {
        let left = RUN_TIMEOUT.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(Seen::FirstNext(at)) => init = Some(at - started),
            Ok(Seen::Answered { at, ok, body }) => break Ok((at - started, ok, body)),
            Err(_) => break Err(Failure::from("the function did not answer in 30 s")),
        }
    };
    stop.store(true, Ordering::SeqCst);
    let _ = child.kill();
    let _ = child.wait();
    let (total, ok, answer) = outcome?;
    if !ok {
        return Err(format!("the function reported an error: {answer}").into());
    }
    Ok(Run {
        init: init.ok_or("answered before asking for an event")?,
        total,
        answer,
    })
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lambda-start: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut event_path, mut binary) = (10usize, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).ok_or("--runs N")?,
            "--event" => event_path = Some(args.next().ok_or("--event FILE")?),
            _ => binary = Some(arg),
        }
    }
    let usage = "usage: lambda-start [--runs N] --event EVENT.json FUNCTION_BINARY";
    let (binary, event_path) = (binary.ok_or(usage)?, event_path.ok_or(usage)?);
    let event = Arc::new(std::fs::read(&event_path)?);
    let mut inits = Vec::new();
    let mut totals = Vec::new();
    let mut last_answer = String::new();
    for _ in 0..runs.max(1) {
        let run = run_once(&binary, event.clone())?;
        inits.push(run.init);
        totals.push(run.total);
        last_answer = run.answer;
    }
    inits.sort();
    totals.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = |v: &[Duration]| v[v.len() / 2];
    let size = std::fs::metadata(&binary)?.len();
    println!(
        "{{\"binary\":\"{binary}\",\"bytes\":{size},\"runs\":{},\"init_p50_ms\":{:.2},\"first_invocation_min_ms\":{:.2},\"first_invocation_p50_ms\":{:.2},\"first_invocation_max_ms\":{:.2}}}",
        totals.len(),
        ms(median(&inits)),
        ms(totals[0]),
        ms(median(&totals)),
        ms(totals[totals.len() - 1]),
    );
    // The answer shows what was handled (a status code, batch failures);
    // the events are fixtures with synthetic NHS numbers only.
    eprintln!(
        "last answer: {}",
        last_answer.chars().take(300).collect::<String>()
    );
    Ok(())
}
