//! Batched writes and reads, with DynamoDB's unprocessed items retried.

use std::future::Future;
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, WriteRequest};
use cpis_domain::ports::StoreError;
use time::OffsetDateTime;

use super::item::build_err;
use super::{DynamoStore, Item};
use crate::errors::unavailable;

/// BatchWriteItem takes at most 25 requests, BatchGetItem at most 100 keys.
const BATCH_WRITE_MAX: usize = 25;
const BATCH_GET_MAX: usize = 100;
/// Attempts at a batch's unprocessed items before the store reports itself unavailable.
const BATCH_ATTEMPTS: u32 = 8;

impl DynamoStore {
    /// Writes every request, retrying what DynamoDB left unprocessed with
    /// exponential backoff; fails only if some are still unprocessed at the end.
    pub(super) async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        retrying(
            requests,
            BATCH_WRITE_MAX,
            "a batch write",
            |pending| async move {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.table.clone(), pending)
                    .send()
                    .await
                    .map_err(|e| unavailable("a batch write", &e))?;
                let left = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
                Ok((0, left))
            },
        )
        .await
        .map(|_| ())
    }

    /// How many of the keys exist (consistent reads of the key alone,
    /// unprocessed keys retried).
    pub(super) async fn existing_keys(&self, keys: Vec<Item>) -> Result<usize, StoreError> {
        Ok(self.batch_get(keys, Some("pk")).await?.len())
    }

    /// The items at the keys that exist, in no particular order (consistent
    /// reads, unprocessed keys retried).
    pub(super) async fn get_all(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        self.batch_get(keys, None).await
    }

    /// BatchGetItem over `keys`, each item whole or only `projection`.
    async fn batch_get(
        &self,
        keys: Vec<Item>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let found = std::sync::Mutex::new(Vec::with_capacity(keys.len()));
        retrying(keys, BATCH_GET_MAX, "a batch read", |pending| {
            let found = &found;
            async move {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .set_projection_expression(projection.map(str::to_owned))
                    .consistent_read(true)
                    .build()
                    .map_err(build_err)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(self.table.clone(), request)
                    .send()
                    .await
                    .map_err(|e| unavailable("a batch read", &e))?;
                let mut responses = out.responses.unwrap_or_default();
                let items = responses.remove(&self.table).unwrap_or_default();
                let count = items.len();
                found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(items);
                let left = out
                    .unprocessed_keys
                    .and_then(|mut left| left.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                Ok((count, left))
            }
        })
        .await?;
        Ok(found.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) async fn delete_all(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let requests = keys
            .into_iter()
            .map(|k| {
                DeleteRequest::builder()
                    .set_key(Some(k))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await
    }
}

/// Sends `items` in chunks of at most `chunk`, each chunk with `send`, which
/// answers how many results it got and what DynamoDB left unprocessed; the
/// unprocessed rest is sent again after a backoff until none is left, or the
/// store is unavailable after `BATCH_ATTEMPTS`. Answers the results' total.
async fn retrying<T, F, Fut>(
    items: Vec<T>,
    chunk: usize,
    what: &str,
    mut send: F,
) -> Result<usize, StoreError>
where
    T: Clone,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<(usize, Vec<T>), StoreError>>,
{
    let mut total = 0;
    for chunk in items.chunks(chunk) {
        let mut pending = chunk.to_vec();
        let mut attempt = 0;
        while !pending.is_empty() {
            if attempt > 0 {
                backoff(attempt).await;
            }
            if attempt == BATCH_ATTEMPTS {
                return Err(StoreError::Unavailable(format!(
                    "{what} stayed unprocessed after every retry"
                )));
            }
            attempt += 1;
            let (found, left) = send(pending).await?;
            total += found;
            pending = left;
        }
    }
    Ok(total)
}

/// 50 ms, 100 ms, 200 ms … capped at 2 s, with jitter from the clock so that
/// concurrent writers do not retry in step.
async fn backoff(attempt: u32) {
    let base = 50u64.saturating_mul(1 << attempt.min(6)).min(2_000);
    let jitter = u64::from(OffsetDateTime::now_utc().nanosecond()) % (base / 2 + 1);
    tokio::time::sleep(StdDuration::from_millis(base / 2 + jitter)).await;
}
