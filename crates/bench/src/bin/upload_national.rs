//! Benchmark 2 (national reload, issue 16): 250,000 plans from 150 councils,
//! one full snapshot each (1,667 records; the last council 1,617), through
//! `POST /v1/uploads` into one SQLite file, one council after another; or
//! (the baseline, the raw-insert floor) the same rows with raw rusqlite, one
//! transaction per council. Run each side under `/usr/bin/time -v` for its
//! peak RSS:
//!
//! ```sh
//! cargo build --release -p cpis-bench --bin upload-national
//! /usr/bin/time -v target/release/upload-national route [records] [councils]
//! /usr/bin/time -v target/release/upload-national raw [records] [councils]
//! ```
//!
//! Bodies are built one at a time, just before each request, so the peak is
//! the service's and not a pile of prepared requests.

use std::time::Instant;

use cpis_bench::upload::{
    batch, count_plans, raw_connection, raw_insert, raw_rows, Failure, RouteUploader,
};
use cpis_bench::{synthetic_nhs_numbers, RECORDS_PER_UPLOAD};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("upload-national: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let records: usize = match args.next() {
        Some(n) => n.parse().map_err(|_| "records must be a whole number")?,
        None => 250_000,
    };
    let councils: usize = match args.next() {
        Some(n) => n.parse().map_err(|_| "councils must be a whole number")?,
        None => 150,
    };
    let per_council = records.div_ceil(councils.max(1));
    if !matches!(mode.as_str(), "route" | "raw")
        || records == 0
        || councils == 0
        || per_council > RECORDS_PER_UPLOAD
    {
        return Err(format!(
            "usage: upload-national route|raw [records (default 250000)] [councils (default 150)], \
             at most {RECORDS_PER_UPLOAD} records per council"
        )
        .into());
    }
    let dir = tempfile::tempdir()?;
    let children: Vec<String> = synthetic_nhs_numbers(0).take(records).collect();
    // Only the requests (or the inserts) are timed, not building their input.
    let mut elapsed = 0f64;
    let mut slowest = 0f64;
    let stored = if mode == "route" {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let uploader = RouteUploader::open(dir.path())?;
        let mut loaded = 0;
        for (i, chunk) in children.chunks(per_council).enumerate() {
            let batch = batch(i, chunk);
            let one = Instant::now();
            loaded += runtime.block_on(uploader.upload(batch))?;
            let took = one.elapsed().as_secs_f64();
            elapsed += took;
            slowest = slowest.max(took);
        }
        drop(uploader);
        let conn = rusqlite::Connection::open(dir.path().join("cpis.sqlite3"))?;
        let stored = count_plans(&conn)?;
        if stored != loaded {
            return Err("the acknowledgements and the database disagree".into());
        }
        stored
    } else {
        let mut conn = raw_connection(&dir.path().join("raw.sqlite3"))?;
        for (i, chunk) in children.chunks(per_council).enumerate() {
            let rows = raw_rows(&batch(i, chunk))?;
            let one = Instant::now();
            raw_insert(&mut conn, &rows)?;
            let took = one.elapsed().as_secs_f64();
            elapsed += took;
            slowest = slowest.max(took);
        }
        count_plans(&conn)?
    };
    if stored != records as u64 {
        return Err(format!("stored {stored} plans, expected {records}").into());
    }
    let requests = records.div_ceil(per_council);
    println!(
        "{{\"mode\":\"{mode}\",\"records\":{records},\"councils\":{councils},\"requests\":{requests},\"elapsed_ms\":{:.1},\"mean_request_ms\":{:.1},\"slowest_request_ms\":{:.1},\"records_per_s\":{:.0}}}",
        elapsed * 1e3,
        elapsed * 1e3 / requests as f64,
        slowest * 1e3,
        records as f64 / elapsed
    );
    Ok(())
}
