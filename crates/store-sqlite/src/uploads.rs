//! `UploadLedger`: receipts and the ledger head.

use cpis_domain::ports::{StoreError, UploadHistory, UploadLedger, UploadReceipt};
use cpis_domain::sequencing::{HeadState, LedgerHead};
use cpis_domain::{Acknowledgement, OdsCode};
use rusqlite::{params, OptionalExtension};

use crate::codec::{
    from_json, from_nanos, nanos, parse_sequence, sequence_text, sql_limit, to_json,
};
use crate::{corrupt, failed, SqliteStore};

/// A receipt row: sequence, digest, acknowledgement, received at.
type ReceiptRow = (String, String, String, Option<i64>);

const RECEIPT_COLUMNS: &str = "sequence, digest, acknowledgement, received_at";

fn receipt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReceiptRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn receipt_from(
    (sequence, digest, acknowledgement, received_at): ReceiptRow,
) -> Result<UploadReceipt, StoreError> {
    Ok(UploadReceipt {
        sequence: parse_sequence(&sequence)?,
        digest,
        acknowledgement: from_json::<Acknowledgement>(
            &acknowledgement,
            "a stored acknowledgement",
        )?,
        received_at: received_at.map(from_nanos).transpose()?,
    })
}

impl UploadHistory for SqliteStore {
    async fn recent_receipts(
        &self,
        authority: &OdsCode,
        limit: usize,
    ) -> Result<Vec<UploadReceipt>, StoreError> {
        let authority = authority.as_str().to_owned();
        let rows: Vec<ReceiptRow> = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {RECEIPT_COLUMNS} FROM upload_receipts
                     WHERE authority = ?1 ORDER BY sequence DESC LIMIT ?2"
                ))
                .and_then(|mut q| {
                    q.query_map(params![authority, sql_limit(limit)], receipt_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(failed("reading a council's upload receipts"))
            })
            .await?;
        rows.into_iter().map(receipt_from).collect()
    }
}

impl UploadLedger for SqliteStore {
    async fn receipt(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<Option<UploadReceipt>, StoreError> {
        let authority = authority.as_str().to_owned();
        let row: Option<ReceiptRow> = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {RECEIPT_COLUMNS} FROM upload_receipts
                     WHERE authority = ?1 AND sequence = ?2"
                ))
                .and_then(|mut q| {
                    q.query_row(params![authority, sequence_text(sequence)], receipt_row)
                        .optional()
                })
                .map_err(failed("reading an upload receipt"))
            })
            .await?;
        row.map(receipt_from).transpose()
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
        let received_at = receipt.received_at.map(nanos).transpose()?;
        let stored = self
            .run(move |conn| {
                let tx = conn.savepoint().map_err(failed("starting a receipt"))?;
                // The first receipt for a sequence stays; a racing duplicate reads it back.
                tx.prepare_cached(
                    "INSERT INTO upload_receipts (authority, sequence, digest, acknowledgement, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut q| {
                    q.execute(params![authority, sequence, digest, acknowledgement, received_at])
                })
                .map_err(failed("writing an upload receipt"))?;
                let stored: ReceiptRow = tx
                    .prepare_cached(&format!(
                        "SELECT {RECEIPT_COLUMNS} FROM upload_receipts
                         WHERE authority = ?1 AND sequence = ?2"
                    ))
                    .and_then(|mut q| q.query_row(params![authority, sequence], receipt_row))
                    .map_err(failed("reading an upload receipt back"))?;
                tx.commit().map_err(failed("committing a receipt"))?;
                Ok(stored)
            })
            .await?;
        receipt_from(stored)
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
