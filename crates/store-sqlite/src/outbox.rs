//! `AsnOutbox`: claims and delivery leases on undelivered ASNs.

use cpis_domain::ports::{AsnOutbox, DeliveryStart, StoreError};
use cpis_domain::Asn;
use rusqlite::{params, OptionalExtension};
use time::{Duration, OffsetDateTime};

use crate::codec::{asn_from, later, nanos, nanos_clamped, sql_limit, DeliveryRow};
use crate::{failed, SqliteStore};

impl AsnOutbox for SqliteStore {
    async fn claim_undelivered(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Asn>, StoreError> {
        let now_n = nanos_clamped(now);
        let until = later(now, lease)?;
        let rows: Vec<(String, String, Option<i64>)> = self
            .run(move |conn| {
                let tx = conn
                    .savepoint()
                    .map_err(failed("starting a claim"))?;
                let rows: Vec<(String, String, Option<i64>)> = tx
                    .prepare_cached(
                        "SELECT id, asn, acknowledged_at FROM asns
                         WHERE delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?1)
                         ORDER BY accessed_at, id LIMIT ?2",
                    )
                    .and_then(|mut q| {
                        q.query_map(params![now_n, sql_limit(limit)], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(failed("finding undelivered notifications"))?;
                {
                    let mut claim = tx
                        .prepare_cached("UPDATE asns SET claimed_until = ?2 WHERE id = ?1")
                        .map_err(failed("claiming notifications"))?;
                    for (id, _, _) in &rows {
                        claim
                            .execute(params![id, until])
                            .map_err(failed("claiming a notification"))?;
                    }
                }
                tx.commit().map_err(failed("committing a claim"))?;
                Ok(rows)
            })
            .await?;
        // A row this build cannot read (another version wrote it, or a hand
        // edit) is poison: failing the whole claim would hold up every ASN
        // claimed with it, sweep after sweep. It stays claimed, so it rotates
        // out of the sweep's window, and undelivered, so it is never purged.
        Ok(rows
            .iter()
            .filter_map(|(id, body, acked)| match asn_from(body, *acked) {
                Ok(asn) => Some(asn),
                Err(error) => {
                    tracing::error!(asn_id = %id, %error, "an outbox ASN cannot be read; it stays undelivered");
                    None
                }
            })
            .collect())
    }

    async fn begin_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<DeliveryStart, StoreError> {
        let id = id.to_owned();
        let now_n = nanos_clamped(now);
        let until = later(now, lease)?;
        enum Seen {
            Unknown,
            Delivered,
            Leased,
            Granted(String, Option<i64>),
        }
        let seen = self
            .run(move |conn| {
                let tx = conn
                    .savepoint()
                    .map_err(failed("starting a delivery"))?;
                let row: Option<DeliveryRow> = tx
                    .prepare_cached(
                        "SELECT asn, acknowledged_at, lease_until, delivered_at FROM asns WHERE id = ?1",
                    )
                    .and_then(|mut q| {
                        q.query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                            .optional()
                    })
                    .map_err(failed("reading a notification for delivery"))?;
                let seen = match row {
                    None => Seen::Unknown,
                    Some((_, _, _, Some(_))) => Seen::Delivered,
                    Some((_, _, Some(lease_until), None)) if lease_until > now_n => Seen::Leased,
                    Some((body, acked, _, None)) => {
                        tx.prepare_cached("UPDATE asns SET lease_until = ?2 WHERE id = ?1")
                            .and_then(|mut q| q.execute(params![id, until]))
                            .map_err(failed("taking a delivery lease"))?;
                        Seen::Granted(body, acked)
                    }
                };
                tx.commit().map_err(failed("committing a delivery lease"))?;
                Ok(seen)
            })
            .await?;
        Ok(match seen {
            Seen::Unknown => DeliveryStart::Unknown,
            Seen::Delivered => DeliveryStart::AlreadyDelivered,
            Seen::Leased => DeliveryStart::InProgress,
            Seen::Granted(body, acked) => DeliveryStart::Proceed(Box::new(asn_from(&body, acked)?)),
        })
    }

    async fn finish_delivery(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        let at = nanos(at)?;
        self.run(move |conn| {
            conn.prepare_cached(
                "UPDATE asns SET delivered_at = COALESCE(delivered_at, ?2) WHERE id = ?1",
            )
            .and_then(|mut q| q.execute(params![id, at]))
            .map_err(failed("recording a delivery"))?;
            Ok(())
        })
        .await
    }
}
