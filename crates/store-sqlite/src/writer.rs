//! Group commit: one writer thread owns the write connection and commits
//! every write waiting at that moment in one transaction, so that concurrent
//! requests share one fsync instead of queueing for one each.
//!
//! Each write runs in its own savepoint inside the batch (the store's write
//! methods open one where they write more than one statement), so a write
//! that fails rolls back alone and the others still commit. Nobody is answered
//! before the batch's commit has returned: an answer still means "on disk".
//! A write that needs to run outside any transaction (the purge's WAL
//! checkpoint) is a solo job: the batch before it commits first.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use cpis_domain::ports::StoreError;
use rusqlite::Connection;

/// Most writes committed together. Bounds how long the first write of a
/// batch can wait behind the others (each is an indexed write of a few rows).
const MAX_BATCH: usize = 256;

/// What a finished write does once its batch's commit is known: answers its caller.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Work = Box<dyn FnOnce(&mut Connection) -> Completion + Send>;

pub(crate) enum Job {
    /// Runs inside the current batch's transaction.
    Batched(Work),
    /// Runs alone, outside any transaction, after the batch before it committed.
    Solo(Work),
}

impl Job {
    /// Wraps `work` so that its result reaches `reply` only after the commit;
    /// if the commit fails, the caller gets that failure instead.
    pub(crate) fn new<T, F>(
        work: F,
        solo: bool,
        reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
    ) -> Self
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let work: Work = Box::new(move |conn| {
            let result = work(conn);
            Box::new(move |committed: Result<(), String>| {
                let answer = match committed {
                    Ok(()) => result,
                    Err(reason) => Err(StoreError::Unavailable(reason)),
                };
                // The caller may have stopped waiting (a cancelled request).
                let _ = reply.send(answer);
            })
        });
        if solo {
            Self::Solo(work)
        } else {
            Self::Batched(work)
        }
    }
}

/// Runs one job's work. A panic answers nobody (the caller's reply channel
/// closes, which it reports as a failure) and leaves the connection usable:
/// the job's savepoint was rolled back as it unwound.
fn run_guarded(work: Work, conn: &mut Connection) -> Option<Completion> {
    catch_unwind(AssertUnwindSafe(|| work(conn))).ok()
}

/// The writer thread's loop; returns when every sender is gone and the
/// queue is empty, so pending writes finish before the connection closes.
pub(crate) fn run(mut conn: Connection, jobs: mpsc::Receiver<Job>) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(mpsc::RecvError) => return,
            },
        };
        let first = match job {
            Job::Solo(work) => {
                if let Some(done) = run_guarded(work, &mut conn) {
                    done(Ok(()));
                }
                continue;
            }
            Job::Batched(work) => work,
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Not run: dropping it closes its caller's reply channel, which
            // the caller reports as the store being unavailable.
            drop(first);
            tracing::error!(reason = %describe("starting a write batch", &e), "a write was refused");
            continue;
        }
        let mut done: Vec<Completion> = Vec::new();
        done.extend(run_guarded(first, &mut conn));
        while done.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(Job::Batched(work)) => done.extend(run_guarded(work, &mut conn)),
                Ok(solo @ Job::Solo(_)) => {
                    next = Some(solo);
                    break;
                }
                Err(_) => break,
            }
        }
        let committed = conn
            .execute_batch("COMMIT")
            .map_err(|e| describe("committing a write batch", &e));
        if committed.is_err() {
            // Nothing of the batch is kept; every write in it is told so.
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in done {
            finish(committed.clone());
        }
    }
}

/// A failure by its SQLite code only: messages can quote values.
fn describe(context: &str, e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(code) => format!("{context} failed ({code:?})"),
        None => format!("{context} failed"),
    }
}
