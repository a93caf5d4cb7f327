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

use cpis_domain::ports::{
    AccessLog, AccessWrite, AsnOutbox, AuditReader, AuditTrail, AuthorityDirectory, CheckReceipts,
    DeliveryStart, NotificationInbox, Page, PlanStore, PurgeReport, Retention, StoreError,
    StoredPlan, UploadLedger, UploadReceipt,
};
use cpis_domain::sequencing::{HeadState, LedgerHead};
use cpis_domain::{
    AccessRecord, Accessor, Acknowledgement, Asn, AsnCutoffs, AuditEvent, Authority, NhsNumber,
    OdsCode, Plan, PlanKey, PlanType,
};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

mod writer;
use time::{Date, Duration, OffsetDateTime};
use writer::Job;

/// Numbered schema migrations. Migration `n` (1-based) moves the file from
/// `user_version = n - 1` to `n`; each runs in its own transaction with its
/// version bump. Append new migrations; never edit a released one.
const MIGRATIONS: &[&str] = &[
    // 1: every port.
    r#"
    CREATE TABLE plans (
        authority   TEXT NOT NULL,
        nhs_number  TEXT NOT NULL,
        plan_type   TEXT NOT NULL CHECK (plan_type IN ('CPP', 'LAC', 'UCPP')),
        start_date  TEXT NOT NULL,
        end_date    TEXT,
        delete_date TEXT,
        due_date    TEXT,
        local_id    TEXT,
        purge_from  TEXT,
        PRIMARY KEY (authority, nhs_number, plan_type, start_date)
    ) WITHOUT ROWID;
    -- plans_for_child and the purge's "does the child still have a plan".
    CREATE INDEX plans_by_child ON plans (nhs_number);
    CREATE INDEX plans_by_purge_day ON plans (purge_from) WHERE purge_from IS NOT NULL;

    CREATE TABLE upload_receipts (
        authority       TEXT NOT NULL,
        sequence        TEXT NOT NULL,
        digest          TEXT NOT NULL,
        acknowledgement TEXT NOT NULL,
        PRIMARY KEY (authority, sequence)
    ) WITHOUT ROWID;

    CREATE TABLE authorities (
        ods_code TEXT PRIMARY KEY NOT NULL,
        entry    TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE accesses (
        id          TEXT PRIMARY KEY NOT NULL,
        nhs_number  TEXT NOT NULL,
        accessed_at INTEGER NOT NULL,
        author_key  TEXT NOT NULL,
        accessor    TEXT NOT NULL
    );
    -- History (newest first) and the 24-hour collapse check.
    CREATE INDEX accesses_by_child ON accesses (nhs_number, accessed_at);
    CREATE INDEX accesses_by_author ON accesses (nhs_number, author_key, accessed_at);

    CREATE TABLE check_receipts (
        nhs_number   TEXT NOT NULL,
        organisation TEXT NOT NULL,
        checked_at   INTEGER NOT NULL,
        PRIMARY KEY (nhs_number, organisation)
    ) WITHOUT ROWID;

    -- No foreign key to accesses: an undelivered ASN outlives a purged history.
    CREATE TABLE asns (
        id              TEXT PRIMARY KEY NOT NULL,
        authority       TEXT NOT NULL,
        nhs_number      TEXT NOT NULL,
        access_id       TEXT NOT NULL,
        accessed_at     INTEGER NOT NULL,
        asn             TEXT NOT NULL,
        acknowledged_at INTEGER,
        claimed_until   INTEGER,
        lease_until     INTEGER,
        delivered_at    INTEGER
    );
    CREATE INDEX asns_inbox ON asns (authority, accessed_at, id);
    CREATE INDEX asns_by_child ON asns (nhs_number);
    CREATE INDEX asns_pending ON asns (accessed_at) WHERE delivered_at IS NULL;

    CREATE TABLE audit_events (
        seq   INTEGER PRIMARY KEY AUTOINCREMENT,
        id    TEXT NOT NULL UNIQUE,
        at    INTEGER NOT NULL,
        event TEXT NOT NULL
    );
    -- The audit trail is append-only, whatever connects to the file.
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    "#,
    // 2: each council's upload ledger head (linearizable uploads), seeded as
    // done at each council's highest receipt.
    r#"
    CREATE TABLE upload_ledger (
        authority   TEXT PRIMARY KEY NOT NULL,
        sequence    TEXT NOT NULL,
        digest      TEXT NOT NULL,
        lease_until INTEGER,
        version     INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO upload_ledger (authority, sequence, digest, lease_until, version)
    SELECT authority, MAX(sequence), '', NULL, 1 FROM upload_receipts GROUP BY authority;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Idle read connections kept for reuse; more are opened when all are busy.
const IDLE_READERS: usize = 8;

struct Inner {
    /// The writer thread's queue (`writer.rs`).
    writer: mpsc::Sender<Job>,
    /// The database file, for read connections; `None` in memory.
    readers: Option<Arc<Readers>>,
    /// Test-only fault: fail `record_access` after the access row is written
    /// and before its ASNs are, to prove the transaction leaves nothing behind.
    #[cfg(test)]
    fail_after_access_insert: Arc<std::sync::atomic::AtomicBool>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let conn =
                    Connection::open(&self.path).map_err(failed("opening a read connection"))?;
                conn.busy_timeout(StdDuration::from_secs(5))
                    .map_err(failed("setting the busy timeout"))?;
                // A reader that tried to write would be a bug; make it fail loudly.
                conn.pragma_update(None, "query_only", "ON")
                    .map_err(failed("making a read connection read-only"))?;
                Ok(conn)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
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
fn failed(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| match e.sqlite_error_code() {
        Some(code) => StoreError::Unavailable(format!("{context} failed ({code:?})")),
        None => StoreError::Unavailable(format!("{context} failed")),
    }
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up
    /// to date. Blocking: call it at start-up, not on a request path.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).map_err(failed("opening the database"))?;
        Self::prepare(conn, Some(path))
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
        migrate(&mut conn)?;
        let (writer, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("cpis-sqlite-writer".to_owned())
            .spawn(move || writer::run(conn, jobs))
            .map_err(|_| StoreError::Unavailable("starting the writer thread failed".to_owned()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
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

    /// Runs a read on a read connection, on the blocking pool.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(readers) = self.inner.readers.clone() else {
            return self.run(move |conn| work(conn)).await;
        };
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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(failed("reading the schema version"))?;
    let current = usize::try_from(current).map_err(|_| corrupt("a negative schema version"))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}; this build knows up to {}",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(failed("starting a migration"))?;
        tx.execute_batch(migration)
            .map_err(failed("applying a migration"))?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(failed("recording the schema version"))?;
        tx.commit().map_err(failed("committing a migration"))?;
    }
    Ok(())
}

// ------------------------------------------------------------ conversions

const DATE_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn date_text(date: Date) -> Result<String, StoreError> {
    date.format(DATE_FORMAT)
        .map_err(|_| StoreError::Unavailable("a date could not be written".to_owned()))
}

fn parse_date(text: &str) -> Result<Date, StoreError> {
    cpis_domain::upload::parse_iso_date(text).ok_or_else(|| corrupt("a stored date"))
}

fn opt_date(text: Option<String>) -> Result<Option<Date>, StoreError> {
    text.as_deref().map(parse_date).transpose()
}

fn nanos(at: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(at.unix_timestamp_nanos()).map_err(|_| {
        StoreError::Unavailable("a time outside the years 1677 to 2262 cannot be stored".to_owned())
    })
}

/// For query bounds only: a bound outside the storable range clamps.
fn nanos_clamped(at: OffsetDateTime) -> i64 {
    let n = at.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

fn from_nanos(n: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).map_err(|_| corrupt("a stored time"))
}

fn later(now: OffsetDateTime, by: Duration) -> Result<i64, StoreError> {
    now.checked_add(by)
        .ok_or_else(|| StoreError::Unavailable("a lease ends beyond the calendar".to_owned()))
        .and_then(nanos)
}

fn parse_nhs(text: &str) -> Result<NhsNumber, StoreError> {
    NhsNumber::parse(text).map_err(|_| corrupt("a stored NHS number"))
}

fn sequence_text(sequence: u64) -> String {
    format!("{sequence:020}")
}

fn parse_sequence(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| corrupt("a stored upload sequence"))
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn to_json<T: serde::Serialize>(value: &T, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|_| StoreError::Unavailable(format!("{what} could not be encoded")))
}

fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt(format!("{what} could not be read")))
}

const PLAN_COLUMNS: &str =
    "authority, nhs_number, plan_type, start_date, end_date, delete_date, due_date, local_id";

struct PlanRow {
    authority: String,
    nhs_number: String,
    plan_type: String,
    start_date: String,
    end_date: Option<String>,
    delete_date: Option<String>,
    due_date: Option<String>,
    local_id: Option<String>,
}

fn plan_row(row: &Row<'_>) -> rusqlite::Result<PlanRow> {
    Ok(PlanRow {
        authority: row.get(0)?,
        nhs_number: row.get(1)?,
        plan_type: row.get(2)?,
        start_date: row.get(3)?,
        end_date: row.get(4)?,
        delete_date: row.get(5)?,
        due_date: row.get(6)?,
        local_id: row.get(7)?,
    })
}

impl PlanRow {
    fn into_plan(self) -> Result<Plan, StoreError> {
        Ok(Plan {
            authority: OdsCode::parse(&self.authority).map_err(|_| corrupt("a stored ODS code"))?,
            nhs_number: parse_nhs(&self.nhs_number)?,
            plan_type: PlanType::parse(&self.plan_type)
                .ok_or_else(|| corrupt("a stored plan type"))?,
            start_date: parse_date(&self.start_date)?,
            end_date: opt_date(self.end_date)?,
            delete_date: opt_date(self.delete_date)?,
            due_date: opt_date(self.due_date)?,
            local_id: self.local_id,
        })
    }
}

fn collect_plans(rows: Vec<PlanRow>) -> Result<Vec<Plan>, StoreError> {
    rows.into_iter().map(PlanRow::into_plan).collect()
}

/// The listing cursor: the last plan's (NHS number, type, start) within the
/// council, the listing's sort key. Validated before use.
fn plan_cursor(plan: &Plan) -> Result<String, StoreError> {
    Ok(format!(
        "{}.{}.{}",
        plan.nhs_number.expose(),
        plan.plan_type.code(),
        date_text(plan.start_date)?
    ))
}

fn parse_plan_cursor(cursor: &str) -> Result<(String, String, String), StoreError> {
    let mut parts = cursor.split('.');
    let (Some(nhs), Some(plan_type), Some(start), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(StoreError::InvalidCursor);
    };
    let nhs = NhsNumber::parse(nhs).map_err(|_| StoreError::InvalidCursor)?;
    let plan_type = PlanType::parse(plan_type).ok_or(StoreError::InvalidCursor)?;
    let start = cpis_domain::upload::parse_iso_date(start).ok_or(StoreError::InvalidCursor)?;
    Ok((nhs.expose(), plan_type.code().to_owned(), date_text(start)?))
}

fn inbox_cursor(asn_nanos: i64, id: &str) -> String {
    format!("{asn_nanos}.{id}")
}

fn parse_inbox_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let (at, id) = cursor.split_once('.').ok_or(StoreError::InvalidCursor)?;
    let at: i64 = at.parse().map_err(|_| StoreError::InvalidCursor)?;
    if id.is_empty() {
        return Err(StoreError::InvalidCursor);
    }
    Ok((at, id.to_owned()))
}

/// An ASN as stored: the body, with the acknowledgement kept in its own column
/// so that acknowledging never rewrites the body.
fn asn_from(body: &str, acknowledged_at: Option<i64>) -> Result<Asn, StoreError> {
    let mut asn: Asn = from_json(body, "a stored ASN")?;
    asn.acknowledged_at = acknowledged_at.map(from_nanos).transpose()?;
    Ok(asn)
}

fn insert_asn(tx: &Connection, asn: &Asn) -> Result<(), StoreError> {
    let body = to_json(
        &Asn {
            acknowledged_at: None,
            ..asn.clone()
        },
        "an ASN",
    )?;
    tx.prepare_cached(
        "INSERT INTO asns (id, authority, nhs_number, access_id, accessed_at, asn, acknowledged_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            asn.id,
            asn.authority.as_str(),
            asn.nhs_number.expose(),
            asn.access_id,
            nanos_clamped(asn.accessed_at),
            body,
            asn.acknowledged_at.map(nanos_clamped),
        ])
    })
    .map_err(failed("writing an ASN"))?;
    Ok(())
}

// ------------------------------------------------------------------ ports

impl PlanStore for SqliteStore {
    async fn plans_for_child(&self, nhs_number: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        let nhs = nhs_number.expose();
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {PLAN_COLUMNS} FROM plans WHERE nhs_number = ?1
                     ORDER BY authority, plan_type, start_date"
                ))
                .and_then(|mut q| q.query_map([nhs], plan_row)?.collect::<Result<Vec<_>, _>>())
                .map_err(failed("reading a child's plans"))?;
            collect_plans(rows)
        })
        .await
    }

    async fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        let after = cursor.map(parse_plan_cursor).transpose()?;
        let authority = authority.as_str().to_owned();
        let fetch = sql_limit(limit.saturating_add(1));
        let rows = self
            .read(move |conn| {
                let rows = match after {
                    None => conn
                        .prepare_cached(&format!(
                            "SELECT {PLAN_COLUMNS} FROM plans WHERE authority = ?1
                             ORDER BY nhs_number, plan_type, start_date LIMIT ?2"
                        ))
                        .and_then(|mut q| {
                            q.query_map(params![authority, fetch], plan_row)?
                                .collect::<Result<Vec<_>, _>>()
                        }),
                    Some((nhs, plan_type, start)) => conn
                        .prepare_cached(&format!(
                            "SELECT {PLAN_COLUMNS} FROM plans WHERE authority = ?1
                               AND (nhs_number, plan_type, start_date) > (?2, ?3, ?4)
                             ORDER BY nhs_number, plan_type, start_date LIMIT ?5"
                        ))
                        .and_then(|mut q| {
                            q.query_map(params![authority, nhs, plan_type, start, fetch], plan_row)?
                                .collect::<Result<Vec<_>, _>>()
                        }),
                };
                rows.map_err(failed("listing a council's plans"))
            })
            .await?;
        let mut items = collect_plans(rows)?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(plan_cursor).transpose()?
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> Result<Vec<PlanKey>, StoreError> {
        let code = authority.as_str().to_owned();
        let owner = authority.clone();
        let rows: Vec<(String, String, String)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT nhs_number, plan_type, start_date FROM plans WHERE authority = ?1",
                )
                .and_then(|mut q| {
                    q.query_map([code], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(failed("listing a council's plan keys"))
            })
            .await?;
        rows.into_iter()
            .map(|(nhs, plan_type, start)| {
                Ok(PlanKey {
                    authority: owner.clone(),
                    nhs_number: parse_nhs(&nhs)?,
                    plan_type: PlanType::parse(&plan_type)
                        .ok_or_else(|| corrupt("a stored plan type"))?,
                    start_date: parse_date(&start)?,
                })
            })
            .collect()
    }

    async fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        // Keys of another council are ignored, as the port requires.
        let mut rows = Vec::with_capacity(upserts.len());
        for stored in upserts.iter().filter(|s| &s.plan.authority == authority) {
            let p = &stored.plan;
            rows.push((
                p.nhs_number.expose(),
                p.plan_type.code(),
                date_text(p.start_date)?,
                p.end_date.map(date_text).transpose()?,
                p.delete_date.map(date_text).transpose()?,
                p.due_date.map(date_text).transpose()?,
                p.local_id.clone(),
                stored.purge_from.map(date_text).transpose()?,
            ));
        }
        let mut doomed = Vec::with_capacity(withdrawals.len());
        for key in withdrawals.iter().filter(|k| &k.authority == authority) {
            doomed.push((
                key.nhs_number.expose(),
                key.plan_type.code(),
                date_text(key.start_date)?,
            ));
        }
        let authority = authority.as_str().to_owned();
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(failed("starting an upload"))?;
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO plans (authority, nhs_number, plan_type, start_date, end_date,
                                            delete_date, due_date, local_id, purge_from)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT (authority, nhs_number, plan_type, start_date) DO UPDATE SET
                            end_date = excluded.end_date, delete_date = excluded.delete_date,
                            due_date = excluded.due_date, local_id = excluded.local_id,
                            purge_from = excluded.purge_from",
                    )
                    .map_err(failed("storing plans"))?;
                for (nhs, plan_type, start, end, delete, due, local_id, purge) in &rows {
                    upsert
                        .execute(params![
                            authority, nhs, plan_type, start, end, delete, due, local_id, purge
                        ])
                        .map_err(failed("storing a plan"))?;
                }
            }
            let mut withdrawn = 0;
            {
                let mut delete = tx
                    .prepare_cached(
                        "DELETE FROM plans WHERE authority = ?1 AND nhs_number = ?2
                           AND plan_type = ?3 AND start_date = ?4",
                    )
                    .map_err(failed("withdrawing plans"))?;
                for (nhs, plan_type, start) in &doomed {
                    withdrawn += delete
                        .execute(params![authority, nhs, plan_type, start])
                        .map_err(failed("withdrawing a plan"))?;
                }
            }
            tx.commit().map_err(failed("committing an upload"))?;
            Ok(withdrawn)
        })
        .await
    }
}

fn receipt_from(
    sequence: String,
    digest: String,
    acknowledgement: String,
) -> Result<UploadReceipt, StoreError> {
    Ok(UploadReceipt {
        sequence: parse_sequence(&sequence)?,
        digest,
        acknowledgement: from_json::<Acknowledgement>(
            &acknowledgement,
            "a stored acknowledgement",
        )?,
    })
}

impl UploadLedger for SqliteStore {
    async fn receipt(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<Option<UploadReceipt>, StoreError> {
        let authority = authority.as_str().to_owned();
        let row: Option<(String, String, String)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT sequence, digest, acknowledgement FROM upload_receipts
                     WHERE authority = ?1 AND sequence = ?2",
                )
                .and_then(|mut q| {
                    q.query_row(params![authority, sequence_text(sequence)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(failed("reading an upload receipt"))
            })
            .await?;
        row.map(|(s, d, a)| receipt_from(s, d, a)).transpose()
    }

    async fn record_receipt(
        &self,
        authority: &OdsCode,
        receipt: &UploadReceipt,
    ) -> Result<UploadReceipt, StoreError> {
        let authority = authority.as_str().to_owned();
        let sequence = sequence_text(receipt.sequence);
        let digest = receipt.digest.clone();
        let acknowledgement = to_json(&receipt.acknowledgement, "an acknowledgement")?;
        let (s, d, a) = self
            .run(move |conn| {
                let tx = conn.savepoint().map_err(failed("starting a receipt"))?;
                // The first receipt for a sequence stays; a racing duplicate reads it back.
                tx.prepare_cached(
                    "INSERT INTO upload_receipts (authority, sequence, digest, acknowledgement)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut q| q.execute(params![authority, sequence, digest, acknowledgement]))
                .map_err(failed("writing an upload receipt"))?;
                let stored: (String, String, String) = tx
                    .prepare_cached(
                        "SELECT sequence, digest, acknowledgement FROM upload_receipts
                         WHERE authority = ?1 AND sequence = ?2",
                    )
                    .and_then(|mut q| {
                        q.query_row(params![authority, sequence], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                    })
                    .map_err(failed("reading an upload receipt back"))?;
                tx.commit().map_err(failed("committing a receipt"))?;
                Ok(stored)
            })
            .await?;
        receipt_from(s, d, a)
    }

    async fn ledger_head(&self, authority: &OdsCode) -> Result<Option<LedgerHead>, StoreError> {
        let authority = authority.as_str().to_owned();
        let row: Option<(String, String, Option<i64>, i64)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT sequence, digest, lease_until, version FROM upload_ledger
                     WHERE authority = ?1",
                )
                .and_then(|mut q| {
                    q.query_row([authority], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()
                })
                .map_err(failed("reading an upload ledger head"))
            })
            .await?;
        row.map(|(sequence, digest, lease_until, version)| {
            Ok(LedgerHead {
                sequence: parse_sequence(&sequence)?,
                digest,
                state: match lease_until {
                    None => HeadState::Done,
                    Some(nanos) => HeadState::Pending {
                        lease_until: from_nanos(nanos)?,
                    },
                },
                version: u64::try_from(version).map_err(|_| corrupt("a ledger version"))?,
            })
        })
        .transpose()
    }

    async fn swap_ledger_head(
        &self,
        authority: &OdsCode,
        expected: Option<&LedgerHead>,
        new: &LedgerHead,
    ) -> Result<bool, StoreError> {
        let authority = authority.as_str().to_owned();
        let expected = expected.map(|h| version_int(h.version)).transpose()?;
        let sequence = sequence_text(new.sequence);
        let digest = new.digest.clone();
        let lease_until = match new.state {
            HeadState::Done => None,
            HeadState::Pending { lease_until } => Some(nanos(lease_until)?),
        };
        let version = version_int(new.version)?;
        self.run(move |conn| {
            let changed = match expected {
                None => conn.prepare_cached(
                    "INSERT INTO upload_ledger (authority, sequence, digest, lease_until, version)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut q| q.execute(params![authority, sequence, digest, lease_until, version])),
                Some(expected) => conn.prepare_cached(
                    "UPDATE upload_ledger SET sequence = ?2, digest = ?3, lease_until = ?4, version = ?5
                     WHERE authority = ?1 AND version = ?6",
                )
                .and_then(|mut q| {
                    q.execute(params![authority, sequence, digest, lease_until, version, expected])
                }),
            }
            .map_err(failed("swapping an upload ledger head"))?;
            Ok(changed == 1)
        })
        .await
    }

    async fn retire_receipts_above(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<usize, StoreError> {
        let authority = authority.as_str().to_owned();
        let sequence = sequence_text(sequence);
        self.run(move |conn| {
            conn.prepare_cached(
                "DELETE FROM upload_receipts WHERE authority = ?1 AND sequence > ?2",
            )
            .and_then(|mut q| q.execute(params![authority, sequence]))
            .map_err(failed("retiring upload receipts"))
        })
        .await
    }
}

fn version_int(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| corrupt("a ledger version"))
}

impl AuthorityDirectory for SqliteStore {
    async fn authority(&self, ods_code: &OdsCode) -> Result<Option<Authority>, StoreError> {
        let code = ods_code.as_str().to_owned();
        let entry: Option<String> = self
            .read(move |conn| {
                conn.prepare_cached("SELECT entry FROM authorities WHERE ods_code = ?1")
                    .and_then(|mut q| q.query_row([code], |r| r.get(0)).optional())
                    .map_err(failed("reading a directory entry"))
            })
            .await?;
        entry
            .as_deref()
            .map(|e| from_json(e, "a stored directory entry"))
            .transpose()
    }

    async fn put_authority(&self, authority: &Authority) -> Result<(), StoreError> {
        let code = authority.ods_code.as_str().to_owned();
        let entry = to_json(authority, "a directory entry")?;
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO authorities (ods_code, entry) VALUES (?1, ?2)
                 ON CONFLICT (ods_code) DO UPDATE SET entry = excluded.entry",
            )
            .and_then(|mut q| q.execute(params![code, entry]))
            .map_err(failed("writing a directory entry"))?;
            Ok(())
        })
        .await
    }
}

impl AccessLog for SqliteStore {
    async fn record_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> Result<AccessWrite, StoreError> {
        let id = access.id.clone();
        let nhs = access.nhs_number.expose();
        let at = nanos(access.accessed_at)?;
        let author = access.accessor.author_key();
        let accessor = to_json(&access.accessor, "an accessor")?;
        let since = nanos_clamped(collapse_since);
        for asn in asns {
            nanos(asn.accessed_at)?;
        }
        let asns = asns.to_vec();
        #[cfg(test)]
        let fail_after_access_insert = Arc::clone(&self.inner.fail_after_access_insert);
        self.run(move |conn| {
            // IMMEDIATE takes the write lock before the collapse check, so no
            // other writer can slip an access in between check and insert.
            let tx = conn.savepoint().map_err(failed("starting an access"))?;
            let collapsed: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM accesses
                     WHERE nhs_number = ?1 AND author_key = ?2 AND accessed_at >= ?3)",
                )
                .and_then(|mut q| q.query_row(params![nhs, author, since], |r| r.get(0)))
                .map_err(failed("checking for a recent access"))?;
            if collapsed {
                return Ok(AccessWrite::Collapsed);
            }
            tx.prepare_cached(
                "INSERT INTO accesses (id, nhs_number, accessed_at, author_key, accessor)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut q| q.execute(params![id, nhs, at, author, accessor]))
            .map_err(failed("writing an access"))?;
            #[cfg(test)]
            if fail_after_access_insert.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable("injected fault".to_owned()));
            }
            for asn in &asns {
                insert_asn(&tx, asn)?;
            }
            tx.commit().map_err(failed("committing an access"))?;
            Ok(AccessWrite::Recorded)
        })
        .await
    }

    async fn recent_accesses(
        &self,
        nhs_number: &NhsNumber,
        limit: usize,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        let nhs = nhs_number.expose();
        let child = *nhs_number;
        let rows: Vec<(String, i64, String)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT id, accessed_at, accessor FROM accesses WHERE nhs_number = ?1
                     ORDER BY accessed_at DESC, id DESC LIMIT ?2",
                )
                .and_then(|mut q| {
                    q.query_map(params![nhs, sql_limit(limit)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(failed("reading a child's accesses"))
            })
            .await?;
        rows.into_iter()
            .map(|(id, at, accessor)| {
                Ok(AccessRecord {
                    id,
                    nhs_number: child,
                    accessed_at: from_nanos(at)?,
                    accessor: from_json::<Accessor>(&accessor, "a stored accessor")?,
                })
            })
            .collect()
    }
}

impl CheckReceipts for SqliteStore {
    async fn note_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let nhs = nhs_number.expose();
        let organisation = organisation.as_str().to_owned();
        let at = nanos(at)?;
        self.run(move |conn| {
            // The latest check wins, even if an older one arrives late.
            conn.prepare_cached(
                "INSERT INTO check_receipts (nhs_number, organisation, checked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (nhs_number, organisation)
                 DO UPDATE SET checked_at = MAX(checked_at, excluded.checked_at)",
            )
            .and_then(|mut q| q.execute(params![nhs, organisation, at]))
            .map_err(failed("noting a check"))?;
            Ok(())
        })
        .await
    }

    async fn last_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let nhs = nhs_number.expose();
        let organisation = organisation.as_str().to_owned();
        let at: Option<i64> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT checked_at FROM check_receipts WHERE nhs_number = ?1 AND organisation = ?2",
                )
                .and_then(|mut q| q.query_row(params![nhs, organisation], |r| r.get(0)).optional())
                .map_err(failed("reading a check"))
            })
            .await?;
        at.map(from_nanos).transpose()
    }
}

type AsnRow = (String, i64, String, Option<i64>);

/// Body, acknowledged, lease until, delivered.
type DeliveryRow = (String, Option<i64>, Option<i64>, Option<i64>);

fn asn_row(r: &Row<'_>) -> rusqlite::Result<AsnRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

impl NotificationInbox for SqliteStore {
    async fn notifications(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asn>, StoreError> {
        let after = cursor.map(parse_inbox_cursor).transpose()?;
        let authority = authority.as_str().to_owned();
        let fetch = sql_limit(limit.saturating_add(1));
        let mut rows: Vec<AsnRow> = self
            .read(move |conn| {
                let rows = match after {
                    None => conn
                        .prepare_cached(
                            "SELECT id, accessed_at, asn, acknowledged_at FROM asns
                             WHERE authority = ?1 ORDER BY accessed_at DESC, id DESC LIMIT ?2",
                        )
                        .and_then(|mut q| {
                            q.query_map(params![authority, fetch], asn_row)?
                                .collect::<Result<Vec<_>, _>>()
                        }),
                    Some((at, id)) => conn
                        .prepare_cached(
                            "SELECT id, accessed_at, asn, acknowledged_at FROM asns
                             WHERE authority = ?1 AND (accessed_at, id) < (?2, ?3)
                             ORDER BY accessed_at DESC, id DESC LIMIT ?4",
                        )
                        .and_then(|mut q| {
                            q.query_map(params![authority, at, id, fetch], asn_row)?
                                .collect::<Result<Vec<_>, _>>()
                        }),
                };
                rows.map_err(failed("listing notifications"))
            })
            .await?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(id, at, _, _)| inbox_cursor(*at, id))
        } else {
            None
        };
        // An unreadable row must not hide the council's other notifications:
        // it is logged at error level and left out (the cursor above comes
        // from the rows themselves, so paging still passes it).
        let items = rows
            .into_iter()
            .filter_map(|(id, _, body, acked)| match asn_from(&body, acked) {
                Ok(asn) => Some(asn),
                Err(error) => {
                    tracing::error!(asn_id = %id, %error, "a stored ASN cannot be read; it is left out of the inbox");
                    None
                }
            })
            .collect();
        Ok(Page { items, next_cursor })
    }

    async fn notification(&self, authority: &OdsCode, id: &str) -> Result<Option<Asn>, StoreError> {
        let authority = authority.as_str().to_owned();
        let id = id.to_owned();
        let row: Option<(String, Option<i64>)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT asn, acknowledged_at FROM asns WHERE id = ?1 AND authority = ?2",
                )
                .and_then(|mut q| {
                    q.query_row(params![id, authority], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(failed("reading a notification"))
            })
            .await?;
        row.map(|(body, acked)| asn_from(&body, acked)).transpose()
    }

    async fn acknowledge(
        &self,
        authority: &OdsCode,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<Option<Asn>, StoreError> {
        let authority = authority.as_str().to_owned();
        let id = id.to_owned();
        let at = nanos(at)?;
        let row: Option<(String, Option<i64>)> = self
            .run(move |conn| {
                let tx = conn
                    .savepoint()
                    .map_err(failed("starting an acknowledgement"))?;
                // The first acknowledgement is kept; the council scopes the update.
                tx.prepare_cached(
                    "UPDATE asns SET acknowledged_at = COALESCE(acknowledged_at, ?3)
                     WHERE id = ?1 AND authority = ?2",
                )
                .and_then(|mut q| q.execute(params![id, authority, at]))
                .map_err(failed("acknowledging a notification"))?;
                let row = tx
                    .prepare_cached(
                        "SELECT asn, acknowledged_at FROM asns WHERE id = ?1 AND authority = ?2",
                    )
                    .and_then(|mut q| {
                        q.query_row(params![id, authority], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(failed("reading a notification"))?;
                tx.commit()
                    .map_err(failed("committing an acknowledgement"))?;
                Ok(row)
            })
            .await?;
        row.map(|(body, acked)| asn_from(&body, acked)).transpose()
    }
}

impl AsnOutbox for SqliteStore {
    async fn claim_undelivered(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Asn>, StoreError> {
        let now_n = nanos_clamped(now);
        let until = later(now, lease)?;
        let rows: Vec<(String, String, Option<i64>)> = self
            .run(move |conn| {
                let tx = conn
                    .savepoint()
                    .map_err(failed("starting a claim"))?;
                let rows: Vec<(String, String, Option<i64>)> = tx
                    .prepare_cached(
                        "SELECT id, asn, acknowledged_at FROM asns
                         WHERE delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?1)
                         ORDER BY accessed_at, id LIMIT ?2",
                    )
                    .and_then(|mut q| {
                        q.query_map(params![now_n, sql_limit(limit)], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(failed("finding undelivered notifications"))?;
                {
                    let mut claim = tx
                        .prepare_cached("UPDATE asns SET claimed_until = ?2 WHERE id = ?1")
                        .map_err(failed("claiming notifications"))?;
                    for (id, _, _) in &rows {
                        claim
                            .execute(params![id, until])
                            .map_err(failed("claiming a notification"))?;
                    }
                }
                tx.commit().map_err(failed("committing a claim"))?;
                Ok(rows)
            })
            .await?;
        // A row this build cannot read (another version wrote it, or a hand
        // edit) is poison: failing the whole claim would hold up every ASN
        // claimed with it, sweep after sweep. It stays claimed, so it rotates
        // out of the sweep's window, and undelivered, so it is never purged.
        Ok(rows
            .iter()
            .filter_map(|(id, body, acked)| match asn_from(body, *acked) {
                Ok(asn) => Some(asn),
                Err(error) => {
                    tracing::error!(asn_id = %id, %error, "an outbox ASN cannot be read; it stays undelivered");
                    None
                }
            })
            .collect())
    }

    async fn begin_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<DeliveryStart, StoreError> {
        let id = id.to_owned();
        let now_n = nanos_clamped(now);
        let until = later(now, lease)?;
        enum Seen {
            Unknown,
            Delivered,
            Leased,
            Granted(String, Option<i64>),
        }
        let seen = self
            .run(move |conn| {
                let tx = conn
                    .savepoint()
                    .map_err(failed("starting a delivery"))?;
                let row: Option<DeliveryRow> = tx
                    .prepare_cached(
                        "SELECT asn, acknowledged_at, lease_until, delivered_at FROM asns WHERE id = ?1",
                    )
                    .and_then(|mut q| {
                        q.query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                            .optional()
                    })
                    .map_err(failed("reading a notification for delivery"))?;
                let seen = match row {
                    None => Seen::Unknown,
                    Some((_, _, _, Some(_))) => Seen::Delivered,
                    Some((_, _, Some(lease_until), None)) if lease_until > now_n => Seen::Leased,
                    Some((body, acked, _, None)) => {
                        tx.prepare_cached("UPDATE asns SET lease_until = ?2 WHERE id = ?1")
                            .and_then(|mut q| q.execute(params![id, until]))
                            .map_err(failed("taking a delivery lease"))?;
                        Seen::Granted(body, acked)
                    }
                };
                tx.commit().map_err(failed("committing a delivery lease"))?;
                Ok(seen)
            })
            .await?;
        Ok(match seen {
            Seen::Unknown => DeliveryStart::Unknown,
            Seen::Delivered => DeliveryStart::AlreadyDelivered,
            Seen::Leased => DeliveryStart::InProgress,
            Seen::Granted(body, acked) => DeliveryStart::Proceed(Box::new(asn_from(&body, acked)?)),
        })
    }

    async fn finish_delivery(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        let at = nanos(at)?;
        self.run(move |conn| {
            conn.prepare_cached(
                "UPDATE asns SET delivered_at = COALESCE(delivered_at, ?2) WHERE id = ?1",
            )
            .and_then(|mut q| q.execute(params![id, at]))
            .map_err(failed("recording a delivery"))?;
            Ok(())
        })
        .await
    }
}

impl Retention for SqliteStore {
    async fn purge(&self, today: Date) -> Result<PurgeReport, StoreError> {
        let cutoffs = AsnCutoffs::on(today);
        let acknowledged_before = nanos(cutoffs.acknowledged_before)?;
        let any_before = nanos(cutoffs.any_before)?;
        let today = date_text(today)?;
        self.run_solo(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed("starting the purge"))?;
            let plans = tx
                .execute(
                    "DELETE FROM plans WHERE purge_from IS NOT NULL AND purge_from <= ?1",
                    [&today],
                )
                .map_err(failed("purging plans"))?;
            // Then everything about children who have no plan left.
            let accesses = tx
                .execute(
                    "DELETE FROM accesses WHERE nhs_number NOT IN (SELECT nhs_number FROM plans)",
                    [],
                )
                .map_err(failed("purging accesses"))?;
            let receipts = tx
                .execute(
                    "DELETE FROM check_receipts WHERE nhs_number NOT IN (SELECT nhs_number FROM plans)",
                    [],
                )
                .map_err(failed("purging check receipts"))?;
            // Undelivered ASNs stay until delivered: a notification is never
            // lost. Delivered ones stay for their retention (AsnCutoffs).
            let notifications = tx
                .execute(
                    "DELETE FROM asns WHERE delivered_at IS NOT NULL
                       AND nhs_number NOT IN (SELECT nhs_number FROM plans)
                       AND (accessed_at < ?2
                            OR (acknowledged_at IS NOT NULL AND accessed_at < ?1))",
                    params![acknowledged_before, any_before],
                )
                .map_err(failed("purging notifications"))?;
            tx.commit().map_err(failed("committing the purge"))?;
            if plans + accesses + receipts + notifications > 0 {
                // The WAL still holds the deleted rows' old pages: copy the
                // zeroed pages into the database and empty the WAL file.
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .map_err(failed("checkpointing after the purge"))?;
            }
            Ok(PurgeReport {
                plans,
                accesses,
                notifications,
                receipts,
            })
        })
        .await
    }
}

impl AuditTrail for SqliteStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let id = event.id.clone();
        let at = nanos_clamped(event.at);
        let body = to_json(event, "an audit event")?;
        self.run(move |conn| {
            // A retried append of the same event is not a second event.
            conn.prepare_cached(
                "INSERT INTO audit_events (id, at, event) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut q| q.execute(params![id, at, body]))
            .map_err(failed("appending an audit event"))?;
            Ok(())
        })
        .await
    }
}

impl AuditReader for SqliteStore {
    /// The most recent `limit` events, oldest first (append order).
    async fn audit_events(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let bodies: Vec<String> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT event FROM (SELECT seq, event FROM audit_events ORDER BY seq DESC LIMIT ?1)
                     ORDER BY seq",
                )
                .and_then(|mut q| {
                    q.query_map([sql_limit(limit)], |r| r.get(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(failed("reading the audit trail"))
            })
            .await?;
        bodies
            .iter()
            .map(|b| from_json(b, "a stored audit event"))
            .collect()
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
