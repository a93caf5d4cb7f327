//! `FeedLog`: each council's last full snapshot.

use cpis_domain::ports::StoreError;
use cpis_domain::OdsCode;
use time::OffsetDateTime;

use super::item::{get_s, opt_time};
use super::keys::key;
use super::DynamoStore;
use crate::errors::corrupt;

/// Feed freshness: one item per council in the `FEEDS` partition (153
/// councils: one query lists them all), `last_full_at` in nanoseconds.
const FEEDS_PK: &str = "FEEDS";

impl cpis_domain::FeedLog for DynamoStore {
    fn tracks_feeds(&self) -> bool {
        true
    }

    async fn record_full_snapshot(
        &self,
        authority: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // A slow upload recorded late keeps the later time.
        self.move_time_forward(
            key(FEEDS_PK.to_owned(), authority.as_str()),
            "last_full_at",
            "FEED",
            at,
            "a feed write",
        )
        .await
    }

    async fn last_full_snapshot(
        &self,
        authority: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        match self
            .get(key(FEEDS_PK.to_owned(), authority.as_str()))
            .await?
        {
            Some(item) => opt_time(&item, "last_full_at"),
            None => Ok(None),
        }
    }

    async fn last_full_snapshots(&self) -> Result<Vec<(OdsCode, OffsetDateTime)>, StoreError> {
        let items = self
            .query_prefix(FEEDS_PK.to_owned(), "", true, None)
            .await?;
        items
            .iter()
            .map(|item| {
                let council = OdsCode::parse(get_s(item, "sk")?)
                    .map_err(|_| corrupt("a feed's council is not an ODS code"))?;
                let at = opt_time(item, "last_full_at")?
                    .ok_or_else(|| corrupt("attribute last_full_at is missing"))?;
                Ok((council, at))
            })
            .collect()
    }
}
