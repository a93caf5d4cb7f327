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
use std::sync::{mpsc, Arc};

use cpis_domain::ports::StoreError;
use rusqlite::Connection;

use crate::describe;
use crate::health::{FileIdentity, Outcomes};

/// Most writes committed together. Bounds how long the first write of a
/// batch can wait behind the others (each is an indexed write of a few rows).
const MAX_BATCH: usize = 256;

/// What a finished write does once its batch's commit is known: answers its caller.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A run write: its completion, and why it failed if SQLite refused it
/// (reported as the last write's outcome even when its batch commits).
type Ran = (Completion, Option<String>);

/// One write waiting for the writer: run it, or refuse it unrun.
pub(crate) trait Task: Send {
    /// Runs the write; its answer waits for the batch's commit.
    fn run(self: Box<Self>, conn: &mut Connection) -> Ran;
    /// Answers the caller with `Unavailable(reason)` without running anything.
    fn refuse(self: Box<Self>, reason: String);
}

type Work = Box<dyn Task>;

struct Pending<T, F> {
    work: F,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Task for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut Connection) -> Ran {
        let Pending { work, reply } = *self;
        let result = work(conn);
        let failure = match &result {
            Err(StoreError::Unavailable(reason)) => Some(reason.clone()),
            _ => None,
        };
        let completion: Completion = Box::new(move |committed: Result<(), String>| {
            let answer = match committed {
                Ok(()) => result,
                Err(reason) => Err(StoreError::Unavailable(reason)),
            };
            // The caller may have stopped waiting (a cancelled request).
            let _ = reply.send(answer);
        });
        (completion, failure)
    }

    fn refuse(self: Box<Self>, reason: String) {
        let _ = self.reply.send(Err(StoreError::Unavailable(reason)));
    }
}

pub(crate) enum Job {
    /// Runs inside the current batch's transaction.
    Batched(Work),
    /// Runs alone, outside any transaction, after the batch before it committed.
    Solo(Work),
    /// A readiness probe: runs alone, and its outcome is not recorded as a
    /// write's (it writes nothing, so it must not clear a write failure).
    Probe(Work),
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
        let work: Work = Box::new(Pending { work, reply });
        if solo {
            Self::Solo(work)
        } else {
            Self::Batched(work)
        }
    }

    /// A [`Job::Probe`].
    pub(crate) fn probe<F>(
        work: F,
        reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
    ) -> Self
    where
        F: FnOnce(&mut Connection) -> Result<(), StoreError> + Send + 'static,
    {
        Self::Probe(Box::new(Pending { work, reply }))
    }
}

/// What the writer checks and reports (`health.rs`); `None` in memory.
pub(crate) struct Watch {
    pub(crate) file: Option<Arc<FileIdentity>>,
    pub(crate) outcomes: Arc<Outcomes>,
}

impl Watch {
    /// Before any write: the file must still be the one opened, or the
    /// write would go to a file nobody will open again.
    fn verify(&self) -> Result<(), String> {
        match &self.file {
            Some(file) => file.verify().map_err(|e| match e {
                StoreError::Unavailable(reason) => reason,
                other => other.to_string(),
            }),
            None => Ok(()),
        }
    }
}

/// Runs one job's work. A panic answers nobody (the caller's reply channel
/// closes, which it reports as a failure) and leaves the connection usable:
/// the job's savepoint was rolled back as it unwound.
fn run_guarded(work: Work, conn: &mut Connection) -> Option<Ran> {
    catch_unwind(AssertUnwindSafe(|| work.run(conn))).ok()
}

/// The writer thread's loop; returns when every sender is gone and the
/// queue is empty, so pending writes finish before the connection closes.
pub(crate) fn run(mut conn: Connection, jobs: mpsc::Receiver<Job>, watch: Watch) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(mpsc::RecvError) => return,
            },
        };
        if let Err(reason) = watch.verify() {
            // Refused unrun, and so is everything already waiting: each
            // caller hears why at once rather than after its own check.
            watch.outcomes.write(Err(&reason));
            refuse(job, &reason);
            while let Ok(waiting) = jobs.try_recv() {
                refuse(waiting, &reason);
            }
            continue;
        }
        let first = match job {
            Job::Probe(work) => {
                if let Some((done, _)) = run_guarded(work, &mut conn) {
                    done(Ok(()));
                }
                continue;
            }
            Job::Solo(work) => {
                if let Some((done, failure)) = run_guarded(work, &mut conn) {
                    watch.outcomes.write(failure.as_deref().map_or(Ok(()), Err));
                    done(Ok(()));
                }
                continue;
            }
            Job::Batched(work) => work,
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let reason = describe("starting a write batch", &e);
            tracing::error!(%reason, "a write was refused");
            watch.outcomes.write(Err(&reason));
            first.refuse(reason);
            continue;
        }
        let mut done: Vec<Completion> = Vec::new();
        let mut failure: Option<String> = None;
        let mut ran = |work: Work, conn: &mut Connection, done: &mut Vec<Completion>| {
            if let Some((completion, failed)) = run_guarded(work, conn) {
                done.push(completion);
                failure = failed.or(failure.take());
            }
        };
        ran(first, &mut conn, &mut done);
        while done.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(Job::Batched(work)) => ran(work, &mut conn, &mut done),
                Ok(solo @ (Job::Solo(_) | Job::Probe(_))) => {
                    next = Some(solo);
                    break;
                }
                Err(_) => break,
            }
        }
        let committed = conn
            .execute_batch("COMMIT")
            .map_err(|e| describe("committing a write batch", &e));
        if let Err(reason) = &committed {
            // Nothing of the batch is kept; every write in it is told so.
            tracing::error!(%reason, writes = done.len(), "a write batch was not committed");
            let _ = conn.execute_batch("ROLLBACK");
        }
        let outcome = match (&committed, &failure) {
            (Err(reason), _) | (Ok(()), Some(reason)) => Err(reason.as_str()),
            (Ok(()), None) => Ok(()),
        };
        watch.outcomes.write(outcome);
        // How much each fsync carries: the group commit's one figure
        // (BENCHMARKS.md, 3; `load.sh` turns this target on). A count only.
        tracing::debug!(writes = done.len(), "write batch committed");
        for finish in done {
            finish(committed.clone());
        }
    }
}

fn refuse(job: Job, reason: &str) {
    match job {
        Job::Batched(work) | Job::Solo(work) | Job::Probe(work) => work.refuse(reason.to_owned()),
    }
}
