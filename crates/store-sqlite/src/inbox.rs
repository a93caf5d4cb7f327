//! `NotificationInbox`: a council's ASNs, newest first.

use cpis_domain::ports::{NotificationInbox, Page, StoreError};
use cpis_domain::{AckNote, Asn, InboxCursor, OdsCode};
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;

use crate::codec::{asn_row, asn_with_note, from_nanos, nanos, nanos_clamped, sql_limit, AsnRow};
use crate::{failed, SqliteStore};

impl NotificationInbox for SqliteStore {
    async fn notifications(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asn>, StoreError> {
        let after = cursor
            .map(InboxCursor::parse)
            .transpose()?
            .map(|c| (nanos_clamped(c.at), c.id));
        let authority = authority.as_str().to_owned();
        let fetch = sql_limit(limit.saturating_add(1));
        let rows: Vec<AsnRow> = self
            .read(move |conn| {
                let rows = match after {
                    None => conn
                        .prepare_cached(
                            "SELECT id, accessed_at, asn, acknowledged_at, acknowledgement_note FROM asns
                             WHERE authority = ?1 ORDER BY accessed_at DESC, id DESC LIMIT ?2",
                        )
                        .and_then(|mut q| {
                            q.query_map(params![authority, fetch], asn_row)?
                                .collect::<Result<Vec<_>, _>>()
                        }),
                    Some((at, id)) => conn
                        .prepare_cached(
                            "SELECT id, accessed_at, asn, acknowledged_at, acknowledgement_note FROM asns
                             WHERE authority = ?1 AND (accessed_at, id) < (?2, ?3)
                             ORDER BY accessed_at DESC, id DESC LIMIT ?4",
                        )
                        .and_then(|mut q| {
                            q.query_map(params![authority, at, id, fetch], asn_row)?
                                .collect::<Result<Vec<_>, _>>()
                        }),
                };
                rows.map_err(failed("listing notifications"))
            })
            .await?;
        let Page {
            items: rows,
            next_cursor,
        } = Page::try_from_overfetch(rows, limit, |(id, at, _, _, _)| {
            Ok::<_, StoreError>(InboxCursor::after(from_nanos(*at)?, id.as_str()).to_string())
        })?;
        // An unreadable row must not hide the council's other notifications:
        // it is logged at error level and left out (the cursor above comes
        // from the rows themselves, so paging still passes it).
        let items = rows
            .into_iter()
            .filter_map(|(id, _, body, acked, note)| match asn_with_note(&body, acked, note) {
                Ok(asn) => Some(asn),
                Err(error) => {
                    tracing::error!(asn_id = %id, %error, "a stored ASN cannot be read; it is left out of the inbox");
                    None
                }
            })
            .collect();
        Ok(Page { items, next_cursor })
    }

    async fn notification(&self, authority: &OdsCode, id: &str) -> Result<Option<Asn>, StoreError> {
        let authority = authority.as_str().to_owned();
        let id = id.to_owned();
        let row: Option<(String, Option<i64>, Option<String>)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT asn, acknowledged_at, acknowledgement_note FROM asns
                     WHERE id = ?1 AND authority = ?2",
                )
                .and_then(|mut q| {
                    q.query_row(params![id, authority], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(failed("reading a notification"))
            })
            .await?;
        row.map(|(body, acked, note)| asn_with_note(&body, acked, note))
            .transpose()
    }

    async fn acknowledge(
        &self,
        authority: &OdsCode,
        id: &str,
        at: OffsetDateTime,
        note: Option<&AckNote>,
    ) -> Result<Option<Asn>, StoreError> {
        let authority = authority.as_str().to_owned();
        let id = id.to_owned();
        let at = nanos(at)?;
        let note = note.map(|n| n.as_str().to_owned());
        let row: Option<(String, Option<i64>, Option<String>)> = self
            .run(move |conn| {
                let tx = conn
                    .savepoint()
                    .map_err(failed("starting an acknowledgement"))?;
                // The first acknowledgement is kept; the council scopes the update.
                tx.prepare_cached(
                    "UPDATE asns SET acknowledged_at = COALESCE(acknowledged_at, ?3),
                                    acknowledgement_note = COALESCE(acknowledgement_note, ?4)
                     WHERE id = ?1 AND authority = ?2",
                )
                .and_then(|mut q| q.execute(params![id, authority, at, note]))
                .map_err(failed("acknowledging a notification"))?;
                let row = tx
                    .prepare_cached(
                        "SELECT asn, acknowledged_at, acknowledgement_note FROM asns
                     WHERE id = ?1 AND authority = ?2",
                    )
                    .and_then(|mut q| {
                        q.query_row(params![id, authority], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .optional()
                    })
                    .map_err(failed("reading a notification"))?;
                tx.commit()
                    .map_err(failed("committing an acknowledgement"))?;
                Ok(row)
            })
            .await?;
        row.map(|(body, acked, note)| asn_with_note(&body, acked, note))
            .transpose()
    }
}
