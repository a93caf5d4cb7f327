//! `MailboxMap`: the operator's council <-> MESH mailbox map.
//!
//! `cpis mesh link` writes it from another process while `cpis serve`
//! runs: every write is one transaction on the file (the writer's
//! `BEGIN IMMEDIATE`, SQLite's lock between processes), and the table's
//! keys hold both directions to one row each whoever writes.

use cpis_domain::ports::{LinkError, MailboxMap, StoreError};
use cpis_domain::{MailboxId, OdsCode};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{corrupt, failed, SqliteStore};

fn mailbox_of(conn: &Connection, council: &str) -> Result<Option<MailboxId>, StoreError> {
    let raw: Option<String> = conn
        .prepare_cached("SELECT mailbox FROM mesh_mailboxes WHERE authority = ?1")
        .and_then(|mut q| q.query_row([council], |r| r.get(0)).optional())
        .map_err(failed("reading a council's mailbox"))?;
    raw.map(|m| MailboxId::parse(&m).map_err(|_| corrupt("a stored mailbox id")))
        .transpose()
}

fn council_of(conn: &Connection, mailbox: &str) -> Result<Option<OdsCode>, StoreError> {
    let raw: Option<String> = conn
        .prepare_cached("SELECT authority FROM mesh_mailboxes WHERE mailbox = ?1")
        .and_then(|mut q| q.query_row([mailbox], |r| r.get(0)).optional())
        .map_err(failed("reading a mailbox's council"))?;
    raw.map(|c| OdsCode::parse(&c).map_err(|_| corrupt("a stored ODS code")))
        .transpose()
}

/// A link refused for another council's hold on the mailbox, inside the
/// writer's `Ok` (it is not a store failure, and nothing was written).
type Linked = Result<Option<MailboxId>, (MailboxId, OdsCode)>;

impl MailboxMap for SqliteStore {
    async fn link_mailbox(
        &self,
        council: &OdsCode,
        mailbox: &MailboxId,
    ) -> Result<Option<MailboxId>, LinkError> {
        let (council_text, mailbox_id) = (council.as_str().to_owned(), mailbox.clone());
        let linked: Linked = self
            .run(move |conn| {
                let tx = conn
                    .savepoint()
                    .map_err(failed("starting a mailbox link"))?;
                if let Some(holder) = council_of(&tx, mailbox_id.as_str())? {
                    if holder.as_str() != council_text {
                        return Ok(Err((mailbox_id, holder)));
                    }
                }
                let previous = mailbox_of(&tx, &council_text)?;
                tx.prepare_cached(
                    "INSERT INTO mesh_mailboxes (authority, mailbox) VALUES (?1, ?2)
                     ON CONFLICT (authority) DO UPDATE SET mailbox = excluded.mailbox",
                )
                .and_then(|mut q| q.execute(params![council_text, mailbox_id.as_str()]))
                .map_err(failed("linking a mailbox"))?;
                tx.commit().map_err(failed("committing a mailbox link"))?;
                Ok(Ok(previous))
            })
            .await?;
        linked.map_err(|(mailbox, council)| LinkError::MailboxTaken { mailbox, council })
    }

    async fn unlink_mailbox(&self, council: &OdsCode) -> Result<Option<MailboxId>, StoreError> {
        let council = council.as_str().to_owned();
        self.run(move |conn| {
            let tx = conn
                .savepoint()
                .map_err(failed("starting a mailbox unlink"))?;
            let previous = mailbox_of(&tx, &council)?;
            tx.prepare_cached("DELETE FROM mesh_mailboxes WHERE authority = ?1")
                .and_then(|mut q| q.execute([&council]))
                .map_err(failed("unlinking a mailbox"))?;
            tx.commit().map_err(failed("committing a mailbox unlink"))?;
            Ok(previous)
        })
        .await
    }

    async fn mailbox_of(&self, council: &OdsCode) -> Result<Option<MailboxId>, StoreError> {
        let council = council.as_str().to_owned();
        self.read(move |conn| mailbox_of(conn, &council)).await
    }

    async fn council_of(&self, mailbox: &MailboxId) -> Result<Option<OdsCode>, StoreError> {
        let mailbox = mailbox.as_str().to_owned();
        self.read(move |conn| council_of(conn, &mailbox)).await
    }
}
