//! `FeedLog`: each council's last full snapshot.

use cpis_domain::ports::StoreError;
use cpis_domain::OdsCode;
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;

use crate::codec::{from_nanos, nanos};
use crate::{corrupt, failed, SqliteStore};

impl cpis_domain::FeedLog for SqliteStore {
    fn tracks_feeds(&self) -> bool {
        true
    }

    async fn record_full_snapshot(
        &self,
        authority: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let authority = authority.as_str().to_owned();
        let at = nanos(at)?;
        self.run(move |conn| {
            // A late writer with an older time never moves the feed back.
            conn.prepare_cached(
                "INSERT INTO feeds (authority, last_full_at) VALUES (?1, ?2)
                 ON CONFLICT (authority) DO UPDATE
                 SET last_full_at = MAX(last_full_at, excluded.last_full_at)",
            )
            .and_then(|mut q| q.execute(params![authority, at]))
            .map_err(failed("recording a full snapshot"))?;
            Ok(())
        })
        .await
    }

    async fn last_full_snapshot(
        &self,
        authority: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let authority = authority.as_str().to_owned();
        let at: Option<i64> = self
            .read(move |conn| {
                conn.prepare_cached("SELECT last_full_at FROM feeds WHERE authority = ?1")
                    .and_then(|mut q| q.query_row([authority], |r| r.get(0)).optional())
                    .map_err(failed("reading a council's feed"))
            })
            .await?;
        at.map(from_nanos).transpose()
    }

    async fn last_full_snapshots(&self) -> Result<Vec<(OdsCode, OffsetDateTime)>, StoreError> {
        let rows: Vec<(String, i64)> = self
            .read(|conn| {
                conn.prepare_cached("SELECT authority, last_full_at FROM feeds ORDER BY authority")
                    .and_then(|mut q| {
                        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(failed("reading the councils' feeds"))
            })
            .await?;
        rows.into_iter()
            .map(|(code, at)| {
                Ok((
                    OdsCode::parse(&code).map_err(|_| corrupt("a stored ODS code"))?,
                    from_nanos(at)?,
                ))
            })
            .collect()
    }
}
