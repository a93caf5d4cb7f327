//! `AuthorityDirectory`: a council's directory entry, with its SNS subscriptions kept in step.

use cpis_domain::ports::{AuthorityDirectory, StoreError};
use cpis_domain::{Authority, OdsCode};

use super::item::{authority_from_item, authority_item};
use super::keys::{council_pk, key};
use super::DynamoStore;
use crate::errors::unavailable;

impl AuthorityDirectory for DynamoStore {
    async fn authority(&self, ods_code: &OdsCode) -> Result<Option<Authority>, StoreError> {
        self.get(key(council_pk(ods_code), "DIRECTORY"))
            .await?
            .as_ref()
            .map(authority_from_item)
            .transpose()
    }

    /// One `BatchGetItem` (up to 100 councils a call).
    async fn authorities(&self, ods_codes: &[OdsCode]) -> Result<Vec<Authority>, StoreError> {
        let mut keys = Vec::with_capacity(ods_codes.len());
        for ods in ods_codes {
            let key = key(council_pk(ods), "DIRECTORY");
            // BatchGetItem refuses a key asked for twice.
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        self.get_all(keys)
            .await?
            .iter()
            .map(authority_from_item)
            .collect()
    }

    async fn put_authority(&self, authority: &Authority) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(authority_item(authority)))
            .send()
            .await
            .map_err(|e| unavailable("a directory write", &e))?;
        // After the entry is stored, so a failed sync is repaired by the
        // council's retry of the same (idempotent) PUT; racing updates are
        // reconciled with the stored entry (`directory_sync.rs`).
        if let Some(topics) = &self.topics {
            crate::directory_sync::sync_to_stored(self, topics, authority).await?;
        }
        Ok(())
    }
}
