//! `PlanStore`: a child's plans (its partition) and a council's listing (sharded gsi1).

use std::collections::{BTreeMap, HashSet};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use cpis_domain::ports::{Page, PlanStore, StoreError, StoredPlan};
use cpis_domain::{NhsNumber, OdsCode, Plan, PlanKey};

use super::item::{
    build_err, get_s, listing_sk_from_cursor, plan_from_item, plan_item, plan_key_from_item, s,
};
use super::keys::{child_pk, key, plan_listing_pk, plan_sk};
use super::{DynamoStore, Item, PLAN_SHARDS};

impl PlanStore for DynamoStore {
    async fn plans_for_child(&self, nhs_number: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        self.query_prefix(child_pk(nhs_number), "PLAN#", true, None)
            .await?
            .iter()
            .map(plan_from_item)
            .collect()
    }

    async fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        let after = cursor.map(listing_sk_from_cursor).transpose()?;
        // Each shard is read in order up to one more than a page; the merge
        // of the shards' heads is the page.
        let mut merged: BTreeMap<String, Item> = BTreeMap::new();
        for shard in 0..PLAN_SHARDS {
            let items = self
                .query_gsi1(
                    plan_listing_pk(authority, shard),
                    after.as_deref(),
                    true,
                    limit + 1,
                )
                .await?;
            for item in items {
                merged.insert(get_s(&item, "gsi1sk")?.to_owned(), item);
            }
        }
        let items = merged
            .values()
            .take(limit + 1)
            .map(plan_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::of_plans(items, limit))
    }

    async fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> Result<Vec<PlanKey>, StoreError> {
        let mut keys = Vec::new();
        for shard in 0..PLAN_SHARDS {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(plan_listing_pk(authority, shard)))
                .projection_expression("authority, nhs_number, plan_type, start_date");
            for item in self.query_all(query, "an index query").await? {
                keys.push(plan_key_from_item(&item)?);
            }
        }
        Ok(keys)
    }

    async fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        // One write per identity (a batch may not name a key twice); the last
        // upsert of an identity wins, as it would applied in order.
        let mut puts: BTreeMap<PlanKey, &StoredPlan> = BTreeMap::new();
        for stored in upserts.iter().filter(|s| &s.plan.authority == authority) {
            puts.insert(stored.plan.key(), stored);
        }
        let requests = puts
            .values()
            .map(|stored| {
                PutRequest::builder()
                    .set_item(Some(plan_item(stored)))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await?;

        let withdraw: HashSet<&PlanKey> = withdrawals
            .iter()
            .filter(|k| &k.authority == authority)
            .collect();
        let keys: Vec<Item> = withdraw
            .iter()
            .map(|k| key(child_pk(&k.nhs_number), plan_sk(k)))
            .collect();
        let existed = self.existing_keys(keys.clone()).await?;
        self.delete_all(keys).await?;
        Ok(existed)
    }
}
