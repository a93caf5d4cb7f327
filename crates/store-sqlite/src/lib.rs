//! The embedded store: every port on one SQLite file.
//!
//! Durability settings (set at open):
//! - WAL journal, so readers never block the writer and a crash mid-write
//!   leaves the last committed state.
//! - `synchronous=FULL`: every commit is fsynced before it returns. With WAL,
//!   NORMAL would risk losing the last few acknowledged commits on power loss
//!   (without corruption); a lost commit here is a lost ASN or a council's
//!   acknowledged upload, and our write rate (a few per second at most) makes
//!   the extra fsync cheap.
//! - foreign keys on, and a busy timeout in case another process (an operator's
//!   `sqlite3` shell, a backup) holds the lock for a moment.
//!
//! Connections: one writer and a pool of readers. The writer is a thread of
//! its own that commits every write waiting at that moment in one
//! transaction (group commit, `writer.rs`): under load, concurrent requests
//! share one fsync instead of queueing for one each, and nobody is answered
//! before the commit returned. Readers (WAL lets them run beside the writer)
//! each take a connection from a small pool on tokio's blocking pool, so a
//! read never waits behind an fsync. An in-memory database (tests) cannot be
//! shared between connections, so its reads go through the writer too.
//!
//! Storage forms: dates as `YYYY-MM-DD` text and instants as UTC nanoseconds
//! since the epoch (integers), both of which sort correctly; NHS numbers as
//! their ten canonical digits; upload sequences as 20-digit zero-padded text,
//! so the whole `u64` range sorts and round-trips.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration as StdDuration;

use cpis_domain::ports::StoreError;
use rusqlite::{Connection, OpenFlags};

mod accesses;
mod audit;
mod codec;
mod directory;
mod feeds;
mod health;
mod inbox;
mod mailboxes;
mod outbox;
mod plans;
mod portal;
mod readers;
mod retention;
mod schema;
mod uploads;
mod writer;

pub use health::{Component, Readiness};
pub use schema::SCHEMA_VERSION;

use health::{FileIdentity, Outcomes};
use readers::Readers;
use schema::{migrate, quick_check};
use writer::Job;

// What the unit tests (`tests.rs`, `use super::*`) take from here.
#[cfg(test)]
use cpis_domain::ports::{AsnOutbox, AuditReader, PlanStore, StoredPlan};
#[cfg(test)]
use cpis_domain::{OdsCode, Plan};

struct Inner {
    /// The writer thread's queue (`writer.rs`).
    writer: mpsc::Sender<Job>,
    /// The database file, for read connections; `None` in memory.
    readers: Option<Arc<Readers>>,
    /// The file opened at start (`health.rs`); `None` in memory.
    file: Option<Arc<FileIdentity>>,
    /// The last outcome of writes and of audit appends, for readiness.
    outcomes: Arc<Outcomes>,
    /// Test-only fault: fail `record_access` after the access row is written
    /// and before its ASNs are, to prove the transaction leaves nothing behind.
    #[cfg(test)]
    fail_after_access_insert: Arc<std::sync::atomic::AtomicBool>,
}

/// Every port on one SQLite file. Clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore(..)")
    }
}

/// Describes a SQLite failure by its error code only: SQLite's messages can
/// quote values, and values here are personal data.
fn describe(context: &str, e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(code) => format!("{context} failed ({code:?})"),
        None => format!("{context} failed"),
    }
}

/// [`describe`]d, as the store's unavailability.
fn failed(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Unavailable(describe(context, &e))
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// Read-write, never create.
fn existing_file() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Puts the file's path in front of an open failure, so that the operator
/// knows which file to look at.
fn naming(path: &Path) -> impl Fn(StoreError) -> StoreError + '_ {
    move |error| match error {
        StoreError::Unavailable(why) => {
            StoreError::Unavailable(format!("the database {}: {why}", path.display()))
        }
        StoreError::Corrupt(why) => {
            StoreError::Corrupt(format!("the database {}: {why}", path.display()))
        }
        other => other,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up
    /// to date. Blocking: call it at start-up, not on a request path.
    ///
    /// The file is created owner-only (0600), and an existing one (with its
    /// WAL and shared-memory files) loses any group or world permission,
    /// with a warning. `PRAGMA quick_check` runs before anything else: a
    /// damaged file is refused (`StoreError::Corrupt`, naming the file).
    /// Every error names the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        health::make_private(path, true).map_err(naming(path))?;
        let conn = Connection::open(path)
            .map_err(failed("opening the database"))
            .map_err(naming(path))?;
        Self::prepare(conn, Some(path.to_path_buf())).map_err(naming(path))
    }

    /// As [`SqliteStore::open`], but the file must already hold a cpis
    /// database: a service that has created its database once must never
    /// start on an empty one because the file went missing or was emptied.
    /// Errors, naming the file: `Unavailable` when it does not exist,
    /// `Corrupt` when it holds no cpis schema (an empty file, or another
    /// program's database).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(naming(path)(StoreError::Unavailable(
                "the file does not exist".to_owned(),
            )));
        }
        health::make_private(path, false).map_err(naming(path))?;
        let conn = Connection::open_with_flags(path, existing_file())
            .map_err(failed("opening the database"))
            .map_err(naming(path))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(failed("reading the schema version"))
            .map_err(naming(path))?;
        if version == 0 {
            return Err(naming(path)(corrupt(
                "it holds no cpis database (schema version 0): restore it from a backup",
            )));
        }
        Self::prepare(conn, Some(path.to_path_buf())).map_err(naming(path))
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(failed("opening the database"))?;
        Self::prepare(conn, None)
    }

    fn prepare(mut conn: Connection, path: Option<PathBuf>) -> Result<Self, StoreError> {
        conn.busy_timeout(StdDuration::from_secs(5))
            .map_err(failed("setting the busy timeout"))?;
        // In-memory databases answer "memory" here; that is fine.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(failed("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(failed("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(failed("enabling foreign keys"))?;
        // Deleted rows are overwritten with zeros, so a purged child's NHS
        // number does not linger in free pages (the purge also truncates the WAL).
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(failed("enabling secure delete"))?;
        quick_check(&conn)?;
        migrate(&mut conn)?;
        let file = path
            .as_deref()
            .map(FileIdentity::record)
            .transpose()?
            .map(Arc::new);
        let outcomes = Arc::new(Outcomes::default());
        let watch = writer::Watch {
            file: file.clone(),
            outcomes: outcomes.clone(),
        };
        let (writer, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("cpis-sqlite-writer".to_owned())
            .spawn(move || writer::run(conn, jobs, watch))
            .map_err(|_| StoreError::Unavailable("starting the writer thread failed".to_owned()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                file,
                outcomes,
                readers: path.map(|path| {
                    Arc::new(Readers {
                        path,
                        idle: Mutex::new(Vec::new()),
                    })
                }),
                #[cfg(test)]
                fail_after_access_insert: Arc::default(),
            }),
        })
    }

    /// Runs a write in the next group commit; answers once it is on disk.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work, false).await
    }

    /// Runs a write alone, outside any transaction (it manages its own).
    async fn run_solo<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work, true).await
    }

    async fn submit<T, F>(&self, work: F, solo: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Unavailable("the store's writer stopped".to_owned());
        self.inner
            .writer
            .send(Job::new(work, solo, reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// `Ok` while the file opened at start is still the one at its path.
    fn verify_file(&self) -> Result<(), StoreError> {
        self.inner
            .file
            .as_ref()
            .map_or(Ok(()), |file| file.verify())
    }

    /// Whether writes and audit events work now, for a readiness route:
    /// the file opened at start is still at its path; a write transaction
    /// can be taken within `timeout` (`BEGIN IMMEDIATE`, then rolled back:
    /// it writes nothing); and neither the last write nor the last audit
    /// append failed (a failure stays reported until a later one of the same
    /// kind succeeds). Reasons are our words and SQLite error codes only.
    pub async fn readiness(&self, timeout: StdDuration) -> Readiness {
        let database = match self.verify_file() {
            Ok(()) => Component::Ok,
            Err(_) => Component::Failing(health::FILE_LOST.to_owned()),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let probe = Job::probe(
            |conn: &mut Connection| {
                conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK")
                    .map_err(failed("taking the write lock"))
            },
            reply,
        );
        let taken = match self.inner.writer.send(probe) {
            Err(_) => Err("the store's writer stopped".to_owned()),
            Ok(()) => match tokio::time::timeout(timeout, answer).await {
                Err(_) => Err("the store's writer did not answer in time".to_owned()),
                Ok(Err(_)) => Err("the store's writer stopped".to_owned()),
                Ok(Ok(Err(StoreError::Unavailable(why)))) => Err(why),
                Ok(Ok(Err(other))) => Err(other.to_string()),
                Ok(Ok(Ok(()))) => Ok(()),
            },
        };
        let writes = match (taken, self.inner.outcomes.last_write_failure()) {
            (Err(why), _) => Component::Failing(why),
            (Ok(()), Some(why)) => Component::Failing(format!("the last write failed: {why}")),
            (Ok(()), None) => Component::Ok,
        };
        let audit = match self.inner.outcomes.last_audit_failure() {
            Some(why) => Component::Failing(format!("the last audit event was not written: {why}")),
            None => Component::Ok,
        };
        Readiness {
            database,
            writes,
            audit,
        }
    }

    /// A lookup by key through an index, bounded by it or by a `LIMIT` (a
    /// child's plans, a directory entry, a child's latest accesses, a check
    /// receipt): run on the calling task's own thread. Handed to the blocking
    /// pool, as [`Self::read`] does, it cost two thread wake-ups, more CPU
    /// than the query itself (BENCHMARKS.md, 3). A WAL reader never waits for
    /// the writer, so this does not hold the runtime behind a write.
    async fn read_point<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(readers) = self.inner.readers.as_deref() else {
            return self.run(move |conn| work(conn)).await;
        };
        self.verify_file()?;
        let conn = readers.take()?;
        let result = work(&conn);
        readers.give_back(conn);
        result
    }

    /// Runs a read on a read connection, on the blocking pool.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(readers) = self.inner.readers.clone() else {
            return self.run(move |conn| work(conn)).await;
        };
        // An open read connection would go on reading the deleted file.
        self.verify_file()?;
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = work(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|_| StoreError::Unavailable("a store task stopped".to_owned()))?
    }
}

#[cfg(test)]
impl SqliteStore {
    /// Runs `f` on the writer connection, outside any batch, and waits for it.
    fn with_writer<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> T + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let (reply, _) = tokio::sync::oneshot::channel();
        let job = Job::new(
            move |conn| {
                let _ = tx.send(f(conn));
                Ok(())
            },
            true,
            reply,
        );
        self.inner.writer.send(job).expect("the writer is running");
        rx.recv().expect("the writer ran the job")
    }
}

#[cfg(test)]
mod tests;
