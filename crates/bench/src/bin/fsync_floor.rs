//! The fsync floor of benchmark 3: how many durable SQLite commits per
//! second this disk takes, one tiny write per commit, with the store's own
//! settings (WAL, `synchronous=FULL`). One writer commits one row at a time
//! for `--seconds`, in a fresh database in `--dir` (put it on the disk the
//! service's data directory is on). Nothing else is measured: the ceiling a
//! store that committed every write on its own could not pass.
//!
//!   fsync-floor --dir /tmp --seconds 3

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Directory for the scratch database (removed afterwards).
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let scratch = tempfile::tempdir_in(&args.dir)?;
    let conn = rusqlite::Connection::open(scratch.path().join("floor.sqlite3"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")?;
    let mut insert = conn.prepare("INSERT INTO t (v) VALUES (?1)")?;
    let mut latencies = Vec::new();
    let started = Instant::now();
    let budget = Duration::from_secs(args.seconds.clamp(1, 60));
    while started.elapsed() < budget {
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        insert.execute([[0u8; 16].as_slice()])?;
        conn.execute_batch("COMMIT")?;
        latencies.push(t.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_micros();
    println!(
        "{{\"fsync_floor\":{{\"synchronous\":\"FULL\",\"commits\":{},\"commits_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{}}}}}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        at(0.50),
        at(0.99)
    );
    Ok(())
}
