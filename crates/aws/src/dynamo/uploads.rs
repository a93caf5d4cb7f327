//! `UploadLedger`: receipts (split in parts when large) and the ledger head.

use cpis_domain::ports::{StoreError, UploadLedger, UploadReceipt};
use cpis_domain::sequencing::{HeadState, LedgerHead};
use cpis_domain::{Acknowledgement, OdsCode};

use super::item::{get_n, get_s, is_conditional_failure, n, nanos, opt_time, s};
use super::keys::{council_pk, key, receipt_part_sk, receipt_sk};
use super::{DynamoStore, Item};
use crate::errors::{corrupt, unavailable};

/// An item holds at most 400 KB; a large acknowledgement is split in parts below that.
const RECEIPT_PART_BYTES: usize = 300_000;

/// The sort key of a council's upload ledger head (partition `council_pk`).
const LEDGER_SK: &str = "LEDGER";

impl DynamoStore {
    pub(super) async fn receipt_parts(
        &self,
        authority: &OdsCode,
        sequence: u64,
        head: &Item,
    ) -> Result<UploadReceipt, StoreError> {
        let digest = get_s(head, "digest")?.to_owned();
        let parts = usize::try_from(get_n(head, "parts")?)
            .map_err(|_| corrupt("a receipt's part count is not valid"))?;
        let mut json = get_s(head, "acknowledgement")?.to_owned();
        for part in 1..parts {
            let item = self
                .get(key(
                    council_pk(authority),
                    receipt_part_sk(sequence, &digest, part),
                ))
                .await?
                .ok_or_else(|| corrupt("a part of a stored receipt is missing"))?;
            json.push_str(get_s(&item, "acknowledgement")?);
        }
        let acknowledgement: Acknowledgement = serde_json::from_str(&json)
            .map_err(|_| corrupt("a stored acknowledgement could not be read"))?;
        Ok(UploadReceipt {
            sequence,
            digest,
            acknowledgement,
            received_at: opt_time(head, "received_at")?,
        })
    }
}

/// Splits at character boundaries into pieces of at most `max` bytes.
pub(super) fn split_utf8(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

impl UploadLedger for DynamoStore {
    async fn receipt(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<Option<UploadReceipt>, StoreError> {
        match self
            .get(key(council_pk(authority), receipt_sk(sequence)))
            .await?
        {
            Some(head) => Ok(Some(self.receipt_parts(authority, sequence, &head).await?)),
            None => Ok(None),
        }
    }

    async fn record_receipt(
        &self,
        authority: &OdsCode,
        receipt: &UploadReceipt,
    ) -> Result<UploadReceipt, StoreError> {
        let json = serde_json::to_string(&receipt.acknowledgement)
            .map_err(|_| corrupt("an acknowledgement could not be encoded"))?;
        let parts = split_utf8(&json, RECEIPT_PART_BYTES);
        // Later parts first, keyed by digest, so a head that wins the race
        // below always finds its own parts.
        for (index, part) in parts.iter().enumerate().skip(1) {
            let mut item = key(
                council_pk(authority),
                receipt_part_sk(receipt.sequence, &receipt.digest, index),
            );
            item.insert("acknowledgement".into(), s(*part));
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| unavailable("a receipt write", &e))?;
        }
        let mut head = key(council_pk(authority), receipt_sk(receipt.sequence));
        head.insert("entity".into(), s("RECEIPT"));
        head.insert("sequence".into(), n(receipt.sequence));
        head.insert("digest".into(), s(receipt.digest.as_str()));
        head.insert("parts".into(), n(parts.len()));
        if let Some(at) = receipt.received_at {
            head.insert("received_at".into(), nanos(at));
        }
        head.insert(
            "acknowledgement".into(),
            s(parts.first().copied().unwrap_or_default()),
        );
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(head))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match written {
            Ok(_) => Ok(receipt.clone()),
            Err(e) if is_conditional_failure(&e) => self
                .receipt(authority, receipt.sequence)
                .await?
                .ok_or_else(|| corrupt("a receipt vanished while it was being read")),
            Err(e) => Err(unavailable("a receipt write", &e)),
        }
    }

    async fn ledger_head(&self, authority: &OdsCode) -> Result<Option<LedgerHead>, StoreError> {
        if let Some(item) = self.get(key(council_pk(authority), LEDGER_SK)).await? {
            let sequence = u64::try_from(get_n(&item, "sequence")?)
                .map_err(|_| corrupt("a ledger sequence is out of range"))?;
            let version = u64::try_from(get_n(&item, "version")?)
                .map_err(|_| corrupt("a ledger version is out of range"))?;
            let state = match opt_time(&item, "lease_until")? {
                None => HeadState::Done,
                Some(lease_until) => HeadState::Pending { lease_until },
            };
            return Ok(Some(LedgerHead {
                sequence,
                digest: get_s(&item, "digest")?.to_owned(),
                state,
                version,
            }));
        }
        // A council whose receipts predate the ledger: its highest receipt,
        // done, at version 0 (which swaps only while no head item exists).
        let newest = self
            .query_prefix(council_pk(authority), "RECEIPT#", false, Some(1))
            .await?;
        newest
            .first()
            .map(|item| {
                let sequence = get_s(item, "sk")?
                    .get(8..28)
                    .and_then(|digits| digits.parse::<u64>().ok())
                    .ok_or_else(|| corrupt("a receipt key is not valid"))?;
                Ok(LedgerHead {
                    sequence,
                    digest: String::new(),
                    state: HeadState::Done,
                    version: 0,
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
        let mut item = key(council_pk(authority), LEDGER_SK);
        item.insert("entity".into(), s("LEDGER"));
        item.insert("sequence".into(), n(new.sequence));
        item.insert("digest".into(), s(new.digest.as_str()));
        item.insert("version".into(), n(new.version));
        if let HeadState::Pending { lease_until } = new.state {
            item.insert("lease_until".into(), nanos(lease_until));
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        // One conditional write: atomic across every Lambda instance.
        let put = match expected.map(|h| h.version).filter(|v| *v > 0) {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(version) => put
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(version)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("a ledger head write", &e)),
        }
    }

    async fn retire_receipts_above(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<usize, StoreError> {
        // Heads and parts of every sequence above: "RECEIPT#" then 20 digits
        // sorts numerically, and '~' sorts after every digit.
        let Some(from) = sequence.checked_add(1) else {
            return Ok(0);
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(council_pk(authority)))
            .expression_attribute_values(":from", s(receipt_sk(from)))
            .expression_attribute_values(":to", s("RECEIPT#~"))
            .projection_expression("pk, sk")
            .consistent_read(true);
        let keys = self.query_all(query, "a receipt query").await?;
        let mut heads = 0;
        for item in &keys {
            if !get_s(item, "sk")?.contains("#PART#") {
                heads += 1;
            }
        }
        self.delete_all(keys).await?;
        Ok(heads)
    }
}
