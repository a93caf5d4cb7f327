//! `Retention`: the purge.

use cpis_domain::dates::iso_date;
use cpis_domain::ports::{PurgeReport, Retention, StoreError};
use cpis_domain::AsnCutoffs;
use rusqlite::{params, TransactionBehavior};
use time::Date;

use crate::codec::nanos;
use crate::{failed, SqliteStore};

impl Retention for SqliteStore {
    async fn purge(&self, today: Date) -> Result<PurgeReport, StoreError> {
        let cutoffs = AsnCutoffs::on(today);
        let acknowledged_before = nanos(cutoffs.acknowledged_before)?;
        let any_before = nanos(cutoffs.any_before)?;
        let today = iso_date(today);
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
