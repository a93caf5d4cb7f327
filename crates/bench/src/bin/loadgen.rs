//! `cpis-loadgen`: benchmark 3's load generator for a `cpis serve` on this
//! machine (loopback only). `crates/bench/load.sh` drives it end to end:
//!
//! - `setup`: the council's directory entry and its flagged children;
//! - `run`: one bounded run (health or the service mix, fixed rate or
//!   saturation), one JSON report on stdout;
//! - `verify`: every ASN in the council's inbox was delivered to the local
//!   outbox, and there are as many as the runs' flagged checks.
//!
//! Tokens are read from files (one per line) made with `cpis token`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use cpis_bench::loadgen::{self, Cast, Mix, Pace, Plan, Population};
use cpis_bench::upload::Failure;
use cpis_bench::{synthetic_nhs_numbers, upload_bodies};
use http::{Method, StatusCode};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "cpis-loadgen",
    about = "Loopback load generator for cpis serve"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the council with notification channels and upload its flagged children.
    Setup {
        #[command(flatten)]
        target: Target,
        /// File holding the council's token.
        #[arg(long)]
        council_token: PathBuf,
    },
    /// One bounded run; prints a JSON report.
    Run(RunArgs),
    /// Waits until every ASN in the inbox is in the outbox; checks the count.
    Verify {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        council_token: PathBuf,
        /// `<data>/outbox/messages.jsonl`.
        #[arg(long)]
        outbox: PathBuf,
        /// ASNs the runs wrote (the sum of their `flagged_ok`).
        #[arg(long)]
        expected: u64,
        /// Seconds to wait for the dispatcher.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[derive(Args)]
struct Target {
    /// The server, as a loopback IP:port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Flagged children (the first N synthetic numbers).
    #[arg(long, default_value_t = 20_000)]
    flagged: usize,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// `health` or `service`.
    #[arg(long)]
    mix: String,
    /// Requests per second; omit for saturation.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Stop after this many requests...
    #[arg(long, default_value_t = 100_000)]
    max_requests: u64,
    /// ...or this many seconds, whichever comes first.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// File of clinician tokens, one per line (service mix).
    #[arg(long)]
    clinician_tokens: Option<PathBuf>,
    /// Flagged checks sent by earlier runs at this server.
    #[arg(long, default_value_t = 0)]
    flagged_before: u64,
}

/// Unflagged children checked in the service mix.
const UNFLAGGED: usize = 100_000;
/// Hard ceilings, whatever the arguments say.
const MAX_REQUESTS: u64 = 1_000_000;
const MAX_SECONDS: u64 = 300;

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cpis-loadgen: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Cli::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cpis-loadgen: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn read_tokens(path: &PathBuf) -> Result<Vec<String>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        return Err(format!("{} holds no token", path.display()).into());
    }
    Ok(tokens)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Setup {
            target,
            council_token,
        } => setup(&target, &read_tokens(&council_token)?[0]).await,
        Command::Run(args) => {
            let addr = loadgen::loopback_only(&args.target.addr)?;
            let mix = match args.mix.as_str() {
                "health" => Mix::Health,
                "service" => Mix::Service,
                _ => return Err("--mix is health or service".into()),
            };
            let clinician_tokens = match (&args.clinician_tokens, mix) {
                (Some(path), _) => read_tokens(path)?,
                (None, Mix::Health) => Vec::new(),
                (None, Mix::Service) => return Err("--clinician-tokens is required".into()),
            };
            if args.connections == 0 || args.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
                return Err("--connections and --rate must be positive".into());
            }
            let plan = Plan {
                addr,
                mix,
                pace: args.rate.map_or(Pace::Saturate, Pace::Fixed),
                connections: args.connections,
                max_requests: args.max_requests.min(MAX_REQUESTS),
                max_duration: Duration::from_secs(args.seconds.min(MAX_SECONDS)),
            };
            let population = Population {
                flagged: args.target.flagged,
                unflagged: UNFLAGGED,
                clinicians: clinician_tokens.len().max(1),
                flagged_before: args.flagged_before,
            };
            let cast = Cast {
                clinician_tokens,
                flagged: synthetic_nhs_numbers(0).take(args.target.flagged).collect(),
                unflagged: synthetic_nhs_numbers(args.target.flagged)
                    .take(UNFLAGGED)
                    .collect(),
            };
            let report = loadgen::run(plan, population, Arc::new(cast)).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Verify {
            target,
            council_token,
            outbox,
            expected,
            timeout,
        } => {
            verify(
                &target,
                &read_tokens(&council_token)?[0],
                &outbox,
                expected,
                timeout,
            )
            .await
        }
    }
}

async fn setup(target: &Target, token: &str) -> Result<(), Failure> {
    let addr = loadgen::loopback_only(&target.addr)?;
    let entry = serde_json::json!({
        "name": "Load Test Borough Council",
        "office_hours_phone": "020 7946 0000",
        "emergency_duty_phone": "020 7946 0999",
        "notify_emails": ["duty@example.gov.uk"],
        "notify_sms": ["+447700900123"]
    });
    let (status, _) = loadgen::call(
        addr,
        Method::PUT,
        "/v1/authority",
        token,
        Some(entry.to_string().into_bytes()),
    )
    .await?;
    if status != StatusCode::OK {
        return Err(format!("PUT /v1/authority answered {status}").into());
    }
    let children: Vec<String> = synthetic_nhs_numbers(0).take(target.flagged).collect();
    for body in upload_bodies(&children) {
        let (status, answer) =
            loadgen::call(addr, Method::POST, "/v1/uploads", token, Some(body)).await?;
        let ack: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if status != StatusCode::OK || ack["rejected"] != 0 {
            return Err(format!("upload answered {status}").into());
        }
    }
    eprintln!("setup: {} flagged children uploaded", target.flagged);
    Ok(())
}

/// Every ASN id in the council's inbox.
async fn inbox(addr: std::net::SocketAddr, token: &str) -> Result<Vec<String>, Failure> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/notifications?limit=500&cursor={c}"),
            None => "/v1/notifications?limit=500".to_owned(),
        };
        let (status, body) = loadgen::call(addr, Method::GET, &path, token, None).await?;
        if status != StatusCode::OK {
            return Err(format!("the inbox answered {status}").into());
        }
        let page: Value = serde_json::from_slice(&body)?;
        for asn in page["notifications"].as_array().ok_or("no notifications")? {
            ids.push(asn["id"].as_str().ok_or("an ASN without an id")?.to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(ids),
        }
    }
}

/// The ASN references in the local outbox (one line per email or SMS).
fn delivered(outbox: &PathBuf) -> Result<HashSet<String>, Failure> {
    let text = match std::fs::read_to_string(outbox) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read the outbox: {}", e.kind()).into()),
    };
    // A line being written as we read may be cut short: skip it.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["reference"].as_str().map(str::to_owned))
        .collect())
}

async fn verify(
    target: &Target,
    token: &str,
    outbox: &PathBuf,
    expected: u64,
    timeout: u64,
) -> Result<(), Failure> {
    let addr = loadgen::loopback_only(&target.addr)?;
    let ids = inbox(addr, token).await?;
    let distinct: HashSet<&String> = ids.iter().collect();
    let started = Instant::now();
    let missing = loop {
        let sent = delivered(outbox)?;
        let missing = distinct.iter().filter(|id| !sent.contains(**id)).count();
        if missing == 0 || started.elapsed() > Duration::from_secs(timeout) {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "{{\"asns_in_inbox\":{},\"expected\":{expected},\"delivered\":{},\"missing\":{missing},\"waited_s\":{:.1}}}",
        distinct.len(),
        distinct.len() - missing,
        started.elapsed().as_secs_f64()
    );
    if distinct.len() as u64 != expected || missing != 0 || distinct.len() != ids.len() {
        return Err("not every ASN was written once and delivered".into());
    }
    Ok(())
}
