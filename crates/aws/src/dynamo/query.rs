//! Single-item reads and writes and the paged queries every port shares.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use cpis_domain::ports::StoreError;
use time::OffsetDateTime;

use super::item::{is_conditional_failure, nanos, s};
use super::{DynamoStore, Item};
use crate::errors::unavailable;

impl DynamoStore {
    /// Every item `query` matches, following DynamoDB's pages to the end.
    pub(super) async fn query_all(
        &self,
        query: QueryFluentBuilder,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable(what, &e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    pub(super) async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("a read", &e))?;
        Ok(out.item)
    }

    /// Sets `attribute` (nanoseconds) to `at` unless it holds a later time
    /// already: a late writer never moves it back.
    pub(super) async fn move_time_forward(
        &self,
        item_key: Item,
        attribute: &str,
        entity: &str,
        at: OffsetDateTime,
        what: &str,
    ) -> Result<(), StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .update_expression("SET #at = :at, entity = :entity")
            .condition_expression("attribute_not_exists(#at) OR #at < :at")
            .expression_attribute_names("#at", attribute)
            .expression_attribute_values(":at", nanos(at))
            .expression_attribute_values(":entity", s(entity))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(unavailable(what, &e)),
        }
    }

    /// Every item of one partition whose sort key begins with `prefix` (all
    /// of them for ""), in order.
    pub(super) async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
        forward: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(forward)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            // DynamoDB refuses an empty `begins_with`: "" means the whole partition.
            query = if prefix.is_empty() {
                query.key_condition_expression("pk = :pk")
            } else {
                query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix))
            };
            if let Some(limit) = limit {
                query = query.limit(i32::try_from(limit - items.len()).unwrap_or(i32::MAX));
            }
            let out = query.send().await.map_err(|e| unavailable("a query", &e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| items.len() >= l) {
                return Ok(items);
            }
        }
    }

    /// Up to `limit` items of one gsi1 partition after `after`, in key order.
    pub(super) async fn query_gsi1(
        &self,
        pk: String,
        after: Option<&str>,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        let condition = match (after, forward) {
            (None, _) => "gsi1pk = :pk",
            (Some(_), true) => "gsi1pk = :pk AND gsi1sk > :after",
            (Some(_), false) => "gsi1pk = :pk AND gsi1sk < :after",
        };
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(forward)
                .limit(i32::try_from(limit - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start);
            if let Some(after) = after {
                query = query.expression_attribute_values(":after", s(after));
            }
            let out = query
                .send()
                .await
                .map_err(|e| unavailable("an index query", &e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || items.len() >= limit {
                return Ok(items);
            }
        }
    }
}
