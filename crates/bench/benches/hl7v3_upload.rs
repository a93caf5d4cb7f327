//! Benchmark 5 (issue 13): the largest council's upload as the LA Upload
//! file that arrives over MESH, read by `cpis-hl7v3` and loaded by the
//! domain's upload into a fresh SQLite file, against its baseline in the
//! same run: the same records as the JSON batch through the same domain
//! upload. Both store the same rows (checked before anything is timed).
//! Goal: the file path within 1.5x of the JSON path. Peak RSS against file
//! size is `src/bin/upload_hl7v3.rs`.
//!
//! `cargo bench -p cpis-bench --bench hl7v3_upload`. Under `cargo test` it
//! runs once on 200 records.

use std::time::Duration;

use cpis_bench::hl7v3::la_upload_file;
use cpis_bench::upload::batch;
use cpis_bench::{bench_now, council_code, full_size, synthetic_nhs_numbers};
use cpis_domain::ports::PlanStore;
use cpis_domain::{process_upload, OdsCode, Plan, UploadMode, VisibilityPolicy};
use cpis_store_sqlite::SqliteStore;
use criterion::{BatchSize, Criterion};

/// What a path loads: the JSON body, or the file read into that body first.
#[derive(Clone, Copy)]
enum Path {
    Json,
    File,
}

async fn load(store: &SqliteStore, council: &OdsCode, path: Path, input: &[u8]) -> usize {
    let body = match path {
        Path::Json => input.to_vec(),
        Path::File => cpis_hl7v3::parse_upload(input)
            .expect("the file reads")
            .batch_json(UploadMode::Delta),
    };
    let result = process_upload(
        store,
        council,
        &body,
        bench_now(),
        &VisibilityPolicy::default(),
    )
    .await
    .expect("the upload is taken");
    assert_eq!(result.acknowledgement.rejected, 0, "no record is rejected");
    result.acknowledgement.loaded
}

async fn stored(store: &SqliteStore, council: &OdsCode) -> Vec<Plan> {
    let mut plans = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .plans_for_authority(council, cursor.as_deref(), 1_000)
            .await
            .expect("plans");
        plans.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return plans,
        }
    }
}

/// Reads every event of the document with the reader `cpis-hl7v3` uses;
/// returns how many there were.
fn tokenize(file: &[u8]) -> usize {
    let text = std::str::from_utf8(file).expect("UTF-8");
    let mut reader = quick_xml::NsReader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut events = 0;
    loop {
        match reader.read_resolved_event() {
            Ok((_, quick_xml::events::Event::Eof)) => return events,
            Ok(_) => events += 1,
            Err(error) => panic!("the benchmark file is well-formed: {error}"),
        }
    }
}

fn main() {
    let records = if full_size() { 10_000 } else { 200 };
    let children: Vec<String> = synthetic_nhs_numbers(0).take(records).collect();
    let json = batch(0, &children).body;
    let file = la_upload_file(0, &children);
    let council = OdsCode::parse(&council_code(0)).expect("ODS code");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // The oracle: both paths store exactly the same plans.
    runtime.block_on(async {
        let mut seen = Vec::new();
        for (path, input) in [(Path::Json, &json), (Path::File, &file)] {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteStore::open(dir.path().join("cpis.sqlite3")).expect("open");
            assert_eq!(load(&store, &council, path, input).await, records);
            seen.push(stored(&store, &council).await);
        }
        assert_eq!(seen[0].len(), records);
        assert_eq!(
            seen[0], seen[1],
            "the file and the JSON store the same plans"
        );
    });

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if full_size() { 15 } else { 1 }))
        .configure_from_args();
    let mut group = criterion.benchmark_group(format!("hl7v3_upload_{records}"));
    // What bounds the reader: quick-xml's namespace-resolving tokenizer
    // alone over the same file, every event read and dropped.
    group.bench_function("floor_quick_xml_events_only", |b| {
        b.iter(|| tokenize(&file))
    });
    group.bench_function("parse_only_file_to_batch", |b| {
        b.iter(|| {
            cpis_hl7v3::parse_upload(&file)
                .expect("the file reads")
                .batch_json(UploadMode::Delta)
        })
    });
    for (name, path, input) in [
        ("baseline_json_batch_domain_sqlite", Path::Json, &json),
        ("la_upload_file_domain_sqlite", Path::File, &file),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = SqliteStore::open(dir.path().join("cpis.sqlite3")).expect("open");
                    (dir, store)
                },
                |(dir, store)| {
                    runtime.block_on(load(&store, &council, path, input));
                    (dir, store)
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
    criterion.final_summary();
}
