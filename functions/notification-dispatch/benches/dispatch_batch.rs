//! Benchmark 4: the dispatcher's CPU per ASN in an SQS batch of 10, with
//! DynamoDB and SNS on moto (another process, so its work is not counted).
//! What is timed is this process's CPU time (every thread's, from
//! `/proc/self/task/*/schedstat`), not wall time: the waiting on moto is the
//! I/O the goal excludes. Baseline in the same run: the same handler over
//! the in-memory store and a channel that only records, the domain's share
//! with no SDK at all (timed by the wall clock: it never waits).
//!
//! `cargo bench -p notification-dispatch --bench dispatch_batch` (moto server
//! as for the tests: `CPIS_MOTO_ENDPOINT`, or it is started). Under
//! `cargo test` it runs one batch of each and checks what was delivered.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use cpis_aws::moto;
use cpis_domain::ports::NotificationChannel;
use cpis_domain::ports::{AccessLog, AsnOutbox, AuditTrail, AuthorityDirectory, DeliveryError};
use cpis_domain::{
    AccessRecord, Accessor, AccessorKind, Asn, Authority, NhsNumber, NoticeText, OdsCode, PlanType,
    Rbac,
};
use cpis_store_memory::MemoryStore;
use criterion::Criterion;
use time::OffsetDateTime;

const BATCH: usize = 10;
const VIEW_URL: &str = "https://council.cpis.example/notifications";

/// CPU time of every live thread of this process.
fn cpu_time() -> Duration {
    let mut nanos = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            nanos += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(nanos)
}

#[derive(Clone, Default)]
struct Recording(Arc<Mutex<usize>>);

impl NotificationChannel for Recording {
    async fn deliver(&self, _: &Authority, notice: &NoticeText) -> Result<(), DeliveryError> {
        black_box(notice);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(())
    }
}

fn authority(ods: &OdsCode) -> Authority {
    Authority {
        ods_code: ods.clone(),
        name: "Example Council".into(),
        office_hours_phone: "020 7946 0000".into(),
        emergency_duty_phone: "020 7946 0999".into(),
        notify_emails: vec!["duty@example.gov.uk".into()],
        notify_sms: vec!["+447700900123".into()],
    }
}

/// Writes 10 undelivered ASNs (10 accesses by different users) and returns
/// the SQS event that would carry their ids.
async fn seed_batch<S: AccessLog>(store: &S, ods: &OdsCode, serial: &mut u64) -> SqsEvent {
    let now = OffsetDateTime::now_utc();
    let child = NhsNumber::parse("9990000018").expect("synthetic");
    let mut event = SqsEvent::default();
    for _ in 0..BATCH {
        *serial += 1;
        let accessor = Accessor {
            kind: AccessorKind::User,
            user_id: format!("bench-{serial}"),
            rbac: Rbac::B0107,
            organisation_ods: OdsCode::parse("RJ1").expect("valid"),
            organisation_name: "St Example's Hospital".into(),
            setting: "Emergency department".into(),
            job_role: None,
        };
        let access = AccessRecord {
            id: format!("access-{}", moto::unique("a")),
            nhs_number: child,
            accessed_at: now,
            accessor: accessor.clone(),
        };
        let asn = Asn {
            id: moto::unique("asn"),
            authority: ods.clone(),
            nhs_number: child,
            plans: vec![cpis_domain::AsnPlan {
                plan_type: PlanType::ChildProtection,
                local_id: None,
                upload_sequence: None,
            }],
            accessed_at: now,
            accessor,
            access_id: access.id.clone(),
            acknowledged_at: None,
            acknowledgement_note: None,
        };
        store
            .record_access(
                &access,
                std::slice::from_ref(&asn),
                now - time::Duration::hours(24),
            )
            .await
            .expect("seeding an ASN");
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("m-{serial}"));
        message.body = Some(format!(r#"{{"asn_id":"{}"}}"#, asn.id));
        event.records.push(message);
    }
    event
}

/// The AWS calls made since the last time asked, by operation, from the
/// counting proxy (`benches/count_calls.py`) at `CPIS_COUNT_CALLS`, if set.
/// Not timed: asked before and after the timed part.
fn calls_since_last() -> Option<BTreeMap<String, u64>> {
    let url = std::env::var("CPIS_COUNT_CALLS").ok()?;
    let rest = url.trim_start_matches("http://");
    let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = TcpStream::connect(address).expect("the counting proxy");
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("asking the counting proxy");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the proxy's answer");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("{}");
    Some(serde_json::from_str(body).expect("counts as JSON"))
}

/// Calls per operation during the timed batches, summed.
static CALLS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
/// ASNs dispatched while calls were counted.
static COUNTED_ASNS: Mutex<u64> = Mutex::new(0);
/// The moto variant's wall and CPU time, and its ASNs: the waiting is the
/// difference.
static MOTO_TIMES: Mutex<(Duration, Duration, u64)> =
    Mutex::new((Duration::ZERO, Duration::ZERO, 0));

/// How a batch is timed.
#[derive(Clone, Copy)]
enum Clock {
    /// This process's CPU time: for the path that waits on moto.
    Cpu,
    /// Wall time: for the in-memory path, which never waits, so its wall time
    /// is its CPU time. (schedstat only advances when a thread is switched
    /// out or at a tick, so it cannot time a path that never blocks.)
    Wall,
}

/// Time of `iters` batches of 10 through `handle_batch`; seeding is not counted.
async fn measure<S, C>(
    store: &S,
    channel: &C,
    ods: &OdsCode,
    serial: &mut u64,
    iters: u64,
    clock: Clock,
) -> Duration
where
    S: AccessLog + AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
{
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        let event = seed_batch(store, ods, serial).await;
        let counting = matches!(clock, Clock::Cpu) && calls_since_last().is_some();
        let (cpu_before, wall_before) = (cpu_time(), std::time::Instant::now());
        let response = notification_dispatch::handle_batch(
            store,
            channel,
            VIEW_URL,
            &event,
            OffsetDateTime::now_utc(),
        )
        .await;
        spent += match clock {
            Clock::Cpu => {
                let (cpu, wall) = (cpu_time().saturating_sub(cpu_before), wall_before.elapsed());
                let mut times = MOTO_TIMES.lock().unwrap_or_else(|e| e.into_inner());
                times.0 += wall;
                times.1 += cpu;
                times.2 += event.records.len() as u64;
                cpu
            }
            Clock::Wall => wall_before.elapsed(),
        };
        if counting {
            let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
            for (operation, n) in calls_since_last().unwrap_or_default() {
                *calls.entry(operation).or_default() += n;
            }
            *COUNTED_ASNS.lock().unwrap_or_else(|e| e.into_inner()) += event.records.len() as u64;
        }
        assert!(
            response.batch_item_failures.is_empty(),
            "every ASN of the batch is delivered"
        );
    }
    spent
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (dynamo, sns_channel, ods) = runtime.block_on(async {
        let topics = moto::TopicWorld::new().await;
        let ods = moto::unique_ods();
        topics.list(&authority(&ods)).await;
        let channel = topics.channel();
        (topics.store, channel, ods)
    });
    let memory = MemoryStore::new();
    let recording = Recording::default();
    runtime
        .block_on(memory.put_authority(&authority(&ods)))
        .expect("authority");

    // One batch of each before timing: every ASN is delivered once.
    let mut serial = 0;
    runtime.block_on(measure(
        &memory,
        &recording,
        &ods,
        &mut serial,
        1,
        Clock::Wall,
    ));
    assert_eq!(*recording.0.lock().expect("count"), BATCH);
    runtime.block_on(measure(
        &dynamo,
        &sns_channel,
        &ods,
        &mut serial,
        1,
        Clock::Cpu,
    ));

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let mut group = criterion.benchmark_group("dispatch_batch_of_10_cpu");
    group.bench_function("baseline_memory_store_recording_channel", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(measure(
                &memory,
                &recording,
                &ods,
                &mut serial,
                iters,
                Clock::Wall,
            ))
        })
    });
    group.bench_function("dynamodb_and_sns_on_moto", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(measure(
                &dynamo,
                &sns_channel,
                &ods,
                &mut serial,
                iters,
                Clock::Cpu,
            ))
        })
    });
    group.finish();
    criterion.final_summary();
    report_calls();
}

/// The AWS calls per ASN during the timed batches (with `CPIS_COUNT_CALLS`),
/// and the moto variant's wall time beside its CPU time.
fn report_calls() {
    let (wall, cpu, dispatched) = *MOTO_TIMES.lock().unwrap_or_else(|e| e.into_inner());
    if dispatched > 0 {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / dispatched as f64;
        println!(
            "DynamoDB + SNS on moto, {dispatched} ASNs: wall {:.0} µs per ASN, this process's CPU {:.0} µs per ASN, waiting {:.0} µs per ASN",
            per(wall),
            per(cpu),
            per(wall.saturating_sub(cpu))
        );
    }
    let asns = *COUNTED_ASNS.lock().unwrap_or_else(|e| e.into_inner());
    if asns == 0 {
        return;
    }
    let calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
    let total: u64 = calls.values().sum();
    println!("AWS calls during {asns} dispatched ASNs (batches of {BATCH}):");
    for (operation, n) in calls.iter() {
        println!(
            "  {operation:<20} {n:>6}  {:.2} per ASN",
            *n as f64 / asns as f64
        );
    }
    println!(
        "  {:<20} {total:>6}  {:.2} per ASN",
        "all",
        total as f64 / asns as f64
    );
}
