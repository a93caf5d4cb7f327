//! `AccessLog` (the 24-hour collapse in one write) and `CheckReceipts`.

use cpis_domain::ports::{AccessLog, AccessWrite, CheckReceipts, StoreError};
use cpis_domain::{AccessRecord, Accessor, Asn, NhsNumber, OdsCode};
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;

use crate::codec::{from_json, from_nanos, insert_asn, nanos, nanos_clamped, sql_limit, to_json};
use crate::{failed, SqliteStore};

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
        let fail_after_access_insert = std::sync::Arc::clone(&self.inner.fail_after_access_insert);
        self.run(move |conn| {
            // The writer's batch (`writer.rs`) already holds the write lock
            // (BEGIN IMMEDIATE), so no other writer can slip an access in
            // between check and insert; the savepoint makes this one atomic.
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
