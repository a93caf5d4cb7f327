//! Benchmark 2's two sides: council uploads through the real route into the
//! embedded SQLite store, and the floor: the same rows inserted with raw
//! rusqlite in one transaction, same schema and durability settings.

use std::path::Path;

use axum::body::Body;
use cpis_domain::ports::QueueError;
use cpis_http::{AppState, Authenticator, LocalKeys};
use cpis_store_sqlite::SqliteStore;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::{council_code, record, upload_body, RECORDS_PER_UPLOAD};

/// What a failed run says; never holds an NHS number.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// One council's batch: its ODS code and the request body.
pub struct Batch {
    pub council: String,
    pub body: Vec<u8>,
}

/// Batch `index` of a national reload: council `index`, records for
/// `children`, sequence 1 (each council's first upload).
pub fn batch(index: usize, children: &[String]) -> Batch {
    let records: Vec<Value> = children
        .iter()
        .enumerate()
        .map(|(i, nhs)| record(nhs, index * RECORDS_PER_UPLOAD + i))
        .collect();
    Batch {
        council: council_code(index),
        body: upload_body(1, &records),
    }
}

/// The embedded service's router over a SQLite file, and a way to mint each
/// council's token, as `cpis serve` and `cpis token` do.
pub struct RouteUploader {
    router: axum::Router,
    keys: LocalKeys,
    pub store: SqliteStore,
}

impl RouteUploader {
    /// Opens (creating) the database `<dir>/cpis.sqlite3`, with keys held in memory.
    pub fn open(dir: &Path) -> Result<Self, Failure> {
        let store = SqliteStore::open(dir.join("cpis.sqlite3"))?;
        let keys = LocalKeys::ephemeral()?;
        let mut state = crate::gateway_state(store.clone(), NoDispatch);
        state.auth = Authenticator::Local(keys.verifier());
        let state: AppState<SqliteStore, NoDispatch> = state;
        Ok(Self {
            router: cpis_http::service_router(state),
            keys,
            store,
        })
    }

    /// `POST /v1/uploads` with the council's token; the acknowledgement's
    /// `loaded` count, or an error if the route refused anything.
    pub async fn upload(&self, batch: Batch) -> Result<u64, Failure> {
        let claims = cpis_http::CallerClaims {
            job_role: None,
            job_role_name: None,
            sub: format!("council-{}", batch.council),
            role: "council".into(),
            ods_code: batch.council,
            rbac: None,
            org_name: None,
            setting: None,
        };
        // The token is checked against the wall clock.
        let token = self.keys.mint(
            &claims,
            time::OffsetDateTime::now_utc(),
            time::Duration::hours(1),
        )?;
        let request = Request::post("/v1/uploads")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(batch.body))?;
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            return Err(format!("upload answered {status}").into());
        }
        let ack: Value = serde_json::from_slice(&bytes)?;
        if ack["rejected"] != 0 {
            return Err("the upload rejected records".into());
        }
        ack["loaded"]
            .as_u64()
            .ok_or_else(|| "no loaded count in the acknowledgement".into())
    }
}

/// The embedded service wakes its dispatcher here; uploads never do.
#[derive(Debug, Clone, Copy)]
pub struct NoDispatch;

impl cpis_domain::ports::AsnQueue for NoDispatch {
    async fn enqueue(&self, _ids: &[String]) -> Result<(), QueueError> {
        Ok(())
    }
}

/// One plan row as the store writes it for these records (no end, delete or
/// due date, so no purge day either).
pub struct RawRow {
    pub authority: String,
    pub nhs_number: String,
    pub plan_type: String,
    pub start_date: String,
    pub local_id: String,
}

/// The rows a batch body holds, read back out of it.
pub fn raw_rows(batch: &Batch) -> Result<Vec<RawRow>, Failure> {
    let body: Value = serde_json::from_slice(&batch.body)?;
    let records = body["records"].as_array().ok_or("no records")?;
    records
        .iter()
        .map(|r| {
            let text = |name: &str| {
                r[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Failure::from(format!("a record without {name}")))
            };
            Ok(RawRow {
                authority: batch.council.clone(),
                nhs_number: text("nhs_number")?,
                plan_type: text("plan_type")?,
                start_date: text("start_date")?,
                local_id: text("local_id")?,
            })
        })
        .collect()
}

/// A database file with cpis's schema and pragmas (WAL, `synchronous=FULL`),
/// opened with plain rusqlite for the baseline.
pub fn raw_connection(path: &Path) -> Result<rusqlite::Connection, Failure> {
    // The store's own migrations create the schema, so both sides write
    // into identical tables and indexes.
    drop(SqliteStore::open(path)?);
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// The baseline: every row in one transaction with one prepared statement.
pub fn raw_insert(conn: &mut rusqlite::Connection, rows: &[RawRow]) -> Result<(), Failure> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO plans (authority, nhs_number, plan_type, start_date, local_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for row in rows {
            insert.execute(rusqlite::params![
                row.authority,
                row.nhs_number,
                row.plan_type,
                row.start_date,
                row.local_id
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// How many plans the database holds.
pub fn count_plans(conn: &rusqlite::Connection) -> Result<u64, Failure> {
    Ok(conn.query_row("SELECT COUNT(*) FROM plans", [], |row| row.get(0))?)
}
