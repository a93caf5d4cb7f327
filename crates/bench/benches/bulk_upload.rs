//! Benchmark 2 (10,000 records): the largest council's upload through
//! `POST /v1/uploads` into a fresh SQLite file (WAL, `synchronous=FULL`),
//! against the floor: the same rows inserted with raw rusqlite in one
//! transaction into a fresh file with the same schema. The national reload
//! (250,000 in 25 requests) and its peak RSS are `src/bin/upload_national.rs`.
//!
//! `cargo bench -p cpis-bench --bench bulk_upload`. Under `cargo test` it
//! runs once on 200 records.

use std::time::Duration;

use cpis_bench::upload::{batch, count_plans, raw_connection, raw_insert, raw_rows, RouteUploader};
use cpis_bench::{full_size, synthetic_nhs_numbers};
use criterion::{BatchSize, Criterion};

fn main() {
    let records = if full_size() { 10_000 } else { 200 };
    let children: Vec<String> = synthetic_nhs_numbers(0).take(records).collect();
    let body = batch(0, &children).body;
    let rows = raw_rows(&batch(0, &children)).expect("rows");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // Both sides store every row before anything is timed.
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let uploader = RouteUploader::open(dir.path()).expect("open");
        let loaded = runtime
            .block_on(uploader.upload(cpis_bench::upload::Batch {
                council: cpis_bench::council_code(0),
                body: body.clone(),
            }))
            .expect("upload");
        assert_eq!(loaded, records as u64);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = raw_connection(&dir.path().join("raw.sqlite3")).expect("raw");
        raw_insert(&mut conn, &rows).expect("insert");
        assert_eq!(count_plans(&conn).expect("count"), records as u64);
    }

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if full_size() { 15 } else { 1 }))
        .configure_from_args();
    let mut group = criterion.benchmark_group(format!("bulk_upload_{records}"));
    group.bench_function("baseline_raw_rusqlite_one_transaction", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let conn = raw_connection(&dir.path().join("raw.sqlite3")).expect("raw");
                (dir, conn)
            },
            |(dir, mut conn)| {
                raw_insert(&mut conn, &rows).expect("insert");
                (dir, conn)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("upload_route_sqlite", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let uploader = RouteUploader::open(dir.path()).expect("open");
                let batch = cpis_bench::upload::Batch {
                    council: cpis_bench::council_code(0),
                    body: body.clone(),
                };
                (dir, uploader, batch)
            },
            |(dir, uploader, batch)| {
                runtime.block_on(uploader.upload(batch)).expect("upload");
                (dir, uploader)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    criterion.final_summary();
}
