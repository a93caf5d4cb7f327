//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs
//! inside the commit that crosses its threshold, on the writer thread: that
//! commit, and every write queued behind it, waited while up to 1,000 pages
//! were copied into the database file and that file was fsynced (a sixth of
//! the writer's CPU under the service mix, BENCHMARKS.md, 3). Here a thread
//! of its own, on a connection of its own, runs a PASSIVE checkpoint (it
//! never waits for the writer or for readers) at most every
//! [`CHECKPOINT_INTERVAL`] while commits arrive.
//!
//! Durability is unchanged: every commit is on disk in the WAL
//! (`synchronous=FULL`) before its answer, as before; a checkpoint only
//! moves committed pages into the database file and fsyncs it. The writer
//! keeps an automatic checkpoint at [`FALLBACK_PAGES`], so the WAL stays
//! bounded even if this thread falls behind or stops.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cpis_domain::ports::StoreError;
use rusqlite::Connection;

use crate::{existing_file, failed};

/// Least time between two checkpoints while commits arrive.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The writer's own automatic checkpoint, kept as a bound (SQLite's default
/// is 1,000 pages): about 40 MB of WAL with 4 KiB pages.
pub(crate) const FALLBACK_PAGES: i64 = 10_000;

/// The writer's side: tells the checkpointer that a commit happened. Never
/// blocks: a nudge already waiting stands for this one too.
pub(crate) struct Nudge(mpsc::SyncSender<()>);

impl Nudge {
    pub(crate) fn committed(&self) {
        let _ = self.0.try_send(());
    }
}

/// Starts the checkpointer on its own connection to `path`. It stops when
/// the writer (the [`Nudge`]'s holder) has stopped.
pub(crate) fn start(path: &Path) -> Result<Nudge, StoreError> {
    let conn = Connection::open_with_flags(path, existing_file())
        .map_err(failed("opening the checkpoint connection"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(failed("setting the busy timeout"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(failed("setting synchronous"))?;
    // This connection never writes a row, so it never checkpoints on its own.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(failed("setting the checkpoint threshold"))?;
    let (nudge, nudged) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("cpis-sqlite-ckpt".to_owned())
        .spawn(move || run(&conn, &nudged))
        .map_err(|_| StoreError::Unavailable("starting the checkpoint thread failed".to_owned()))?;
    Ok(Nudge(nudge))
}

fn run(conn: &Connection, nudged: &mpsc::Receiver<()>) {
    let mut pending = false;
    loop {
        if !pending && nudged.recv().is_err() {
            return;
        }
        // PASSIVE: copies what no reader still needs, waits for nobody. A
        // failure is left to the next round and to the writer's fallback.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            let reason = crate::describe("a WAL checkpoint", &e);
            tracing::warn!(%reason, "a WAL checkpoint failed; the next one retries");
        }
        // At most one checkpoint per interval; commits meanwhile are
        // remembered. Leaves at once when the writer stops.
        pending = false;
        let until = Instant::now() + CHECKPOINT_INTERVAL;
        loop {
            match nudged.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(()) => pending = true,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}
