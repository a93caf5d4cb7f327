//! A council's SNS subscriptions kept equal to its stored directory entry
//! when updates race (issue 17: no lost channel).
//!
//! `put_item` stores an entry atomically, but the subscription sync that
//! follows is many SNS calls: two updates of one council racing would leave
//! SNS holding what the slower sync saw, a mix of both entries or the one
//! that lost (a channel the entry lists not subscribed, or one it dropped
//! still alerted). So each update syncs, then reads the stored entry again
//! (a consistent read) and syncs once more to it if another update landed
//! meanwhile. A sync to an entry no longer stored is always followed by one
//! to the stored entry, started after it ended; so the last sync to start
//! targets the final entry with no other target in flight, and SNS ends
//! equal to it. `tests/directory_race.rs` races updates on moto.

use cpis_domain::ports::{AuthorityDirectory, StoreError};
use cpis_domain::Authority;

use crate::{DynamoStore, TopicSync};

/// Syncs one update runs at most: a further one is needed only while other
/// updates of the same council keep landing, which a council's own client
/// does not do for long; past this the update answers 503 and its retry
/// (the same idempotent PUT) completes the sync.
const MAX_SYNCS: usize = 8;

pub(crate) async fn sync_to_stored(
    store: &DynamoStore,
    topics: &TopicSync,
    written: &Authority,
) -> Result<(), StoreError> {
    let mut target = written.clone();
    for _ in 0..MAX_SYNCS {
        topics
            .sync(&target)
            .await
            .map_err(|e| StoreError::Unavailable(format!("the duty-team subscriptions: {e}")))?;
        match store.authority(&written.ods_code).await? {
            Some(stored) if stored != target => target = stored,
            _ => return Ok(()),
        }
    }
    Err(StoreError::Unavailable(
        "the duty-team subscriptions kept changing under other updates; send the update again"
            .to_owned(),
    ))
}
