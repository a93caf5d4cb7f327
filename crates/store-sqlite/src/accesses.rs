//! `AccessLog` (the 24-hour collapse in one write), `CheckReceipts`, and
//! `CheckLedger` (all of a check's writes in one).

use cpis_domain::ports::{
    AccessLog, AccessWrite, CheckLedger, CheckReceipts, CheckWrite, StoreError,
};
use cpis_domain::{AccessRecord, Accessor, Asn, NhsNumber, OdsCode};
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

use crate::audit::AuditRow;
use crate::codec::{from_json, from_nanos, insert_asn, nanos, nanos_clamped, sql_limit, to_json};
use crate::{failed, SqliteStore};

impl AccessLog for SqliteStore {
    async fn record_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> Result<AccessWrite, StoreError> {
        let access = AccessRow::new(access, asns, collapse_since)?;
        #[cfg(test)]
        let fault = std::sync::Arc::clone(&self.inner.fail_after_access_insert);
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(failed("starting an access"))?;
            let written = access.write(
                &tx,
                #[cfg(test)]
                &fault,
            )?;
            tx.commit().map_err(failed("committing an access"))?;
            Ok(written)
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
            .read_point(move |conn| {
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
        let receipt = ReceiptRow::new(nhs_number, organisation, at)?;
        self.run(move |conn| receipt.write(conn)).await
    }

    async fn last_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let nhs = nhs_number.expose();
        let organisation = organisation.as_str().to_owned();
        let at: Option<i64> = self
            .read_point(move |conn| {
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

impl CheckLedger for SqliteStore {
    /// One job in the writer's group commit: the receipt, the access with its
    /// ASNs and the audit event under one savepoint, so the check waits for
    /// one commit.
    async fn record_check(
        &self,
        write: &CheckWrite<'_>,
    ) -> Result<Option<AccessWrite>, StoreError> {
        let (nhs_number, organisation, at) = write.receipt;
        let receipt = ReceiptRow::new(nhs_number, organisation, at)?;
        let access = write
            .access
            .map(|new| AccessRow::new(new.record, new.asns, new.collapse_since))
            .transpose()?;
        let audit = write.audit.map(AuditRow::new).transpose()?;
        let audited = audit.is_some();
        #[cfg(test)]
        let fault = std::sync::Arc::clone(&self.inner.fail_after_access_insert);
        let written = self
            .run(move |conn| {
                let tx = conn
                    .savepoint()
                    .map_err(failed("starting a check's writes"))?;
                receipt.write(&tx)?;
                let written = access
                    .map(|access| {
                        access.write(
                            &tx,
                            #[cfg(test)]
                            &fault,
                        )
                    })
                    .transpose()?;
                if let Some(audit) = audit {
                    audit.write(&tx)?;
                }
                tx.commit().map_err(failed("committing a check's writes"))?;
                Ok(written)
            })
            .await;
        if audited {
            self.note_audit_outcome(&written);
        }
        written
    }
}

/// An access and its ASNs, encoded for the writer thread.
struct AccessRow {
    id: String,
    nhs: String,
    at: i64,
    author: String,
    accessor: String,
    since: i64,
    asns: Vec<Asn>,
}

impl AccessRow {
    fn new(
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> Result<Self, StoreError> {
        for asn in asns {
            nanos(asn.accessed_at)?;
        }
        Ok(Self {
            id: access.id.clone(),
            nhs: access.nhs_number.expose().to_owned(),
            at: nanos(access.accessed_at)?,
            author: access.accessor.author_key(),
            accessor: to_json(&access.accessor, "an accessor")?,
            since: nanos_clamped(collapse_since),
            asns: asns.to_vec(),
        })
    }

    /// The 24-hour collapse and the insert, inside the caller's savepoint:
    /// the writer's batch (`writer.rs`) already holds the write lock (BEGIN
    /// IMMEDIATE), so no other writer can slip an access in between.
    fn write(
        &self,
        tx: &Connection,
        #[cfg(test)] fault: &std::sync::atomic::AtomicBool,
    ) -> Result<AccessWrite, StoreError> {
        let collapsed: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM accesses
                 WHERE nhs_number = ?1 AND author_key = ?2 AND accessed_at >= ?3)",
            )
            .and_then(|mut q| q.query_row(params![self.nhs, self.author, self.since], |r| r.get(0)))
            .map_err(failed("checking for a recent access"))?;
        if collapsed {
            return Ok(AccessWrite::Collapsed);
        }
        tx.prepare_cached(
            "INSERT INTO accesses (id, nhs_number, accessed_at, author_key, accessor)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut q| {
            q.execute(params![
                self.id,
                self.nhs,
                self.at,
                self.author,
                self.accessor
            ])
        })
        .map_err(failed("writing an access"))?;
        #[cfg(test)]
        if fault.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected fault".to_owned()));
        }
        for asn in &self.asns {
            insert_asn(tx, asn)?;
        }
        Ok(AccessWrite::Recorded)
    }
}

/// A check receipt, encoded for the writer thread.
struct ReceiptRow {
    nhs: String,
    organisation: String,
    at: i64,
}

impl ReceiptRow {
    fn new(
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            nhs: nhs_number.expose().to_owned(),
            organisation: organisation.as_str().to_owned(),
            at: nanos(at)?,
        })
    }

    fn write(&self, conn: &Connection) -> Result<(), StoreError> {
        // The latest check wins, even if an older one arrives late.
        conn.prepare_cached(
            "INSERT INTO check_receipts (nhs_number, organisation, checked_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (nhs_number, organisation)
             DO UPDATE SET checked_at = MAX(checked_at, excluded.checked_at)",
        )
        .and_then(|mut q| q.execute(params![self.nhs, self.organisation, self.at]))
        .map_err(failed("noting a check"))?;
        Ok(())
    }
}
