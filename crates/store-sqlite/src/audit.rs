//! `AuditTrail` and `AuditReader`.

use cpis_domain::ports::{AuditReader, AuditTrail, StoreError};
use cpis_domain::AuditEvent;
use rusqlite::{params, Connection};

use crate::codec::{from_json, nanos_clamped, sql_limit, to_json};
use crate::{failed, SqliteStore};

impl AuditTrail for SqliteStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let row = AuditRow::new(event)?;
        let written = self.run(move |conn| row.write(conn)).await;
        self.note_audit_outcome(&written);
        written
    }
}

impl SqliteStore {
    /// Readiness reports an audit trail that has stopped taking events; the
    /// caller logs the lost event at error level.
    pub(crate) fn note_audit_outcome<T>(&self, written: &Result<T, StoreError>) {
        let why = written.as_ref().err().map(ToString::to_string);
        self.inner
            .outcomes
            .audit(why.as_deref().map_or(Ok(()), Err));
    }
}

/// An audit event, encoded for the writer thread.
pub(crate) struct AuditRow {
    id: String,
    at: i64,
    body: String,
}

impl AuditRow {
    pub(crate) fn new(event: &AuditEvent) -> Result<Self, StoreError> {
        Ok(Self {
            id: event.id.clone(),
            at: nanos_clamped(event.at),
            body: to_json(event, "an audit event")?,
        })
    }

    pub(crate) fn write(&self, conn: &Connection) -> Result<(), StoreError> {
        // A retried append of the same event is not a second event.
        conn.prepare_cached(
            "INSERT INTO audit_events (id, at, event) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO NOTHING",
        )
        .and_then(|mut q| q.execute(params![self.id, self.at, self.body]))
        .map_err(failed("appending an audit event"))?;
        Ok(())
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
