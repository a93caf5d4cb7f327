//! Benchmark 5's memory side (issue 13): the peak RSS of reading one LA
//! Upload file of `records` records into the domain's batch and loading it
//! into a fresh SQLite file, or (the baseline) of loading the same records
//! as the JSON batch. The input is written by a separate run (`gen`), so
//! the measured process holds only what loading needs; it prints its RSS
//! once the input is read, and its peak:
//!
//! ```sh
//! cargo build --release -p cpis-bench --bin upload-hl7v3
//! for n in 1000 5000 10000; do for kind in json file; do
//!   target/release/upload-hl7v3 gen $kind $n /tmp/in.$kind.$n
//!   target/release/upload-hl7v3 load $kind /tmp/in.$kind.$n
//! done; done
//! ```
//!
//! `parse` instead of `load` reads the file into the batch and stops (for
//! callgrind).

use cpis_bench::hl7v3::la_upload_file;
use cpis_bench::upload::{batch, Failure};
use cpis_bench::{bench_now, council_code, synthetic_nhs_numbers};
use cpis_domain::{process_upload, OdsCode, UploadMode, VisibilityPolicy};
use cpis_store_sqlite::SqliteStore;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("upload-hl7v3: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A field of `/proc/self/status` in KiB (`VmHWM`: peak, `VmRSS`: now).
fn status_kib(field: &str) -> Result<u64, Failure> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}

const USAGE: &str =
    "usage: upload-hl7v3 gen json|file RECORDS PATH | load json|file PATH | parse file PATH";

fn run() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["gen", kind @ ("json" | "file"), records, path] => {
            let records: usize = records.parse().map_err(|_| USAGE)?;
            let children: Vec<String> = synthetic_nhs_numbers(0).take(records).collect();
            let input = match *kind {
                "json" => batch(0, &children).body,
                _ => la_upload_file(0, &children),
            };
            std::fs::write(path, input)?;
            Ok(())
        }
        [mode @ ("load" | "parse"), kind @ ("json" | "file"), path] => {
            load(mode == &"load", kind == &"file", path)
        }
        _ => Err(USAGE.into()),
    }
}

fn load(store: bool, file: bool, path: &str) -> Result<(), Failure> {
    let input = std::fs::read(path)?;
    let rss_with_input = status_kib("VmRSS")?;
    let body = match file {
        false => input.clone(),
        true => cpis_hl7v3::parse_upload(&input)
            .map_err(|e| e.to_string())?
            .batch_json(UploadMode::Delta),
    };
    let mut loaded = 0;
    if store {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(dir.path().join("cpis.sqlite3"))?;
        let council = OdsCode::parse(&council_code(0)).map_err(|_| "ODS code")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let result = runtime.block_on(process_upload(
            &store,
            &council,
            &body,
            bench_now(),
            &VisibilityPolicy::default(),
        ))?;
        loaded = result.acknowledgement.loaded;
    }
    println!(
        "{{\"input\":\"{}\",\"loaded\":{loaded},\"input_bytes\":{},\"batch_bytes\":{},\"rss_kib_with_input\":{rss_with_input},\"peak_rss_kib\":{}}}",
        if file { "file" } else { "json" },
        input.len(),
        body.len(),
        status_kib("VmHWM")?
    );
    Ok(())
}
