//! Benchmark 1: the check path in process. An API Gateway v2 event for
//! `POST /v1/checks` goes through what the attendance-check function runs
//! per invocation (`cpis_http::lambda::respond`: `lambda_http`'s request
//! conversion, the router with the authorizer's claims, the domain check
//! against the in-memory store holding 250,000 plans, the payload 2.0
//! answer) and is written out as the runtime writes it. Baseline, in the
//! same run: `serde_json` parsing the same event alone.
//!
//! `cargo bench -p cpis-bench --bench check_path`. Under `cargo test` it
//! runs once on 2,000 plans (the assertions still hold).

use std::hint::black_box;
use std::time::{Duration, Instant};

use cpis_bench::{
    bench_now, clinician, clinician_claims, full_size, gateway_event, gateway_state, seed_plans,
    synthetic_nhs_numbers,
};
use cpis_domain::{AccessEffect, NhsNumber, VisibilityPolicy};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use cpis_store_sqlite::SqliteStore;
use criterion::Criterion;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use serde_json::{json, Value};

// The Lambda functions' allocator (their main.rs), so the check path is timed
// as they run it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HISTORY_ENTRIES: usize = 25;
/// The clinician whose repeated check the benchmark times: the author of the
/// newest of the 25 entries, so every timed check is a collapsed repeat and
/// the history stays at exactly 25.
const BENCH_USER: usize = HISTORY_ENTRIES - 1;

fn org(i: usize) -> String {
    format!("R{i:02}X")
}

/// One Lambda invocation, in process: event JSON in, response JSON out.
struct Invoker {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

impl Invoker {
    fn invoke(&self, event: &str) -> Vec<u8> {
        // What lambda_runtime does with the event and the handler's answer.
        let payload: LambdaRequest = serde_json::from_str(event).expect("a valid event");
        let event = LambdaEvent::new(payload, Context::default());
        let response = self
            .runtime
            .block_on(cpis_http::lambda::respond(self.app.clone(), event))
            .expect("an answer");
        serde_json::to_vec(&response).expect("a response serialises")
    }
}

/// Seeds `plans` plans and the flagged child's 25 history entries, and
/// builds the attendance-check function's router over `store`.
fn prepare<S>(store: S, children: &[String], flagged: &str) -> Invoker
where
    S: cpis_http::CheckStore + cpis_domain::ports::UploadLedger + Send + Sync,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let queue = RecordingQueue::default();
    runtime.block_on(async {
        seed_plans(&store, children).await.expect("seeding");
        let child = NhsNumber::parse(flagged).expect("synthetic");
        let minutes = i64::try_from(HISTORY_ENTRIES).expect("small");
        for (i, ago) in (1..=minutes).rev().enumerate() {
            let at = bench_now() - time::Duration::minutes(ago);
            let who = clinician(&format!("dr-{i}"), &org(i));
            let event = cpis_domain::AuditEvent::check_allowed(&who, None, at, "seed");
            let result = cpis_domain::check(
                &store,
                &queue,
                &who,
                &child,
                true,
                at,
                &VisibilityPolicy::default(),
                &event,
            )
            .await
            .expect("history entry");
            assert!(matches!(result.effect, AccessEffect::Recorded { .. }));
        }
    });
    let state = gateway_state(store, queue);
    let app = cpis_http::lambda::gateway_app(cpis_http::check_router(state));
    Invoker { runtime, app }
}

fn check_event(nhs_number: &str) -> String {
    gateway_event(
        "/v1/checks",
        &json!({ "nhs_number": nhs_number, "unscheduled": true }),
        &clinician_claims(&format!("dr-{BENCH_USER}"), &org(BENCH_USER)),
    )
}

/// The Lambda response's status and body, checked before anything is timed.
fn assert_answer(response: &[u8], plans: usize, history: usize) {
    let envelope: Value = serde_json::from_slice(response).expect("response JSON");
    assert_eq!(envelope["statusCode"], 200, "{envelope}");
    let body: Value =
        serde_json::from_str(envelope["body"].as_str().expect("a text body")).expect("body JSON");
    assert_eq!(
        body["plans"].as_array().map(Vec::len),
        Some(plans),
        "{body}"
    );
    assert_eq!(
        body["access_history"].as_array().map(Vec::len),
        Some(history),
        "{body}"
    );
}

/// Per-call latencies (not criterion's per-sample means): p50, p99, max.
fn percentiles(label: &str, calls: usize, mut call: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..calls)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "per-call {label:<40} n={calls} p50={:>10.2?} p99={:>10.2?} max={:>10.2?}",
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
    at(0.5)
}

fn main() {
    let full = full_size();
    let plans = if full { 250_000 } else { 2_000 };
    let children: Vec<String> = synthetic_nhs_numbers(0).take(plans).collect();
    let flagged = children[plans / 2].clone();
    let unflagged = synthetic_nhs_numbers(plans).next().expect("enough numbers");
    let flagged_event = check_event(&flagged);
    let unflagged_event = check_event(&unflagged);

    let memory = prepare(MemoryStore::new(), &children, &flagged);
    assert_answer(&memory.invoke(&flagged_event), 1, HISTORY_ENTRIES);
    assert_answer(&memory.invoke(&unflagged_event), 0, 0);
    // The same router over SQLite (in memory: no fsync): every store call
    // goes through tokio's blocking pool.
    let sqlite = prepare(
        SqliteStore::open_in_memory().expect("sqlite"),
        &children,
        &flagged,
    );
    assert_answer(&sqlite.invoke(&flagged_event), 1, HISTORY_ENTRIES);

    // `CPIS_BENCH_PROFILE=memory:N` (or `sqlite:N`, or `parse:N` for the
    // baseline): N flagged checks on that store (or N parses of the event)
    // and nothing else, for
    // `valgrind --tool=callgrind --toggle-collect='*profile_checks*'`.
    if let Ok(spec) = std::env::var("CPIS_BENCH_PROFILE") {
        let (what, n) = spec
            .split_once(':')
            .expect("CPIS_BENCH_PROFILE=memory:N|sqlite:N|parse:N");
        let n = n.parse().expect("a count");
        match what {
            "memory" => profile_checks(&memory, &flagged_event, n),
            "sqlite" => profile_checks(&sqlite, &flagged_event, n),
            "parse" => profile_checks_parse(&flagged_event, n),
            _ => panic!("CPIS_BENCH_PROFILE names memory, sqlite or parse"),
        }
        return;
    }

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(if full { 8 } else { 1 }))
        .configure_from_args();
    let mut group = criterion.benchmark_group("check_path");
    group.bench_function("baseline_parse_event", |b| {
        b.iter(|| serde_json::from_str::<LambdaRequest>(black_box(&flagged_event)).map(drop))
    });
    group.bench_function("flagged_child_memory_store", |b| {
        b.iter(|| memory.invoke(black_box(&flagged_event)))
    });
    group.bench_function("unflagged_child_memory_store", |b| {
        b.iter(|| memory.invoke(black_box(&unflagged_event)))
    });
    group.bench_function("flagged_child_sqlite_in_memory", |b| {
        b.iter(|| sqlite.invoke(black_box(&flagged_event)))
    });
    group.finish();
    criterion.final_summary();

    if full {
        // Interleaved with nothing else, one after another, same process.
        let calls = 10_000;
        let base = percentiles("baseline_parse_event", calls * 5, || {
            black_box(serde_json::from_str::<LambdaRequest>(&flagged_event).map(drop)).ok();
        });
        let flagged_p50 = percentiles("flagged_child_memory_store", calls, || {
            black_box(memory.invoke(&flagged_event));
        });
        let unflagged_p50 = percentiles("unflagged_child_memory_store", calls, || {
            black_box(memory.invoke(&unflagged_event));
        });
        let sqlite_p50 = percentiles("flagged_child_sqlite_in_memory", calls, || {
            black_box(sqlite.invoke(&flagged_event));
        });
        for (label, p50) in [
            ("flagged_child_memory_store", flagged_p50),
            ("unflagged_child_memory_store", unflagged_p50),
            ("flagged_child_sqlite_in_memory", sqlite_p50),
        ] {
            println!(
                "ratio {label:<40} p50 / baseline p50 = {:.1}x",
                p50.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
}

// Its own function, so callgrind can collect only the checks.
#[inline(never)]
fn profile_checks(invoker: &Invoker, event: &str, n: usize) {
    for _ in 0..n {
        black_box(invoker.invoke(event));
    }
}

// The baseline's work alone, under the same collection pattern.
#[inline(never)]
fn profile_checks_parse(event: &str, n: usize) {
    for _ in 0..n {
        black_box(serde_json::from_str::<LambdaRequest>(black_box(event)).map(drop)).ok();
    }
}
