//! `MailboxMap`: the operator's council <-> MESH mailbox map, both ways.
//!
//! Two items, written together in one `TransactWriteItems`: the council's
//! link (`LA#<ODS>` / `MESH`, attribute `mailbox`, beside its directory
//! entry) and the mailbox's holder (`MESH#<mailbox>` / `COUNCIL`, attribute
//! `council`). Each write is conditional on what was read, so of any number
//! of links racing (processes, Lambda instances) the map only ever moves
//! from one consistent state to the next: a link whose reads went stale is
//! cancelled, reads again and decides again (the mailbox may now be taken).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use cpis_domain::ports::{LinkError, MailboxMap, StoreError};
use cpis_domain::{MailboxId, OdsCode};

use super::item::{build_err, get_s, s};
use super::keys::{council_pk, key};
use super::{DynamoStore, Item};
use crate::errors::{corrupt, unavailable};

/// The sort key of a council's link (partition `council_pk`).
const LINK_SK: &str = "MESH";
/// The sort key of a mailbox's holder (partition `mailbox_pk`).
const HOLDER_SK: &str = "COUNCIL";
/// Rounds of read-then-write one call makes while other writers keep
/// changing the same items; past it the operator runs the command again.
const MAX_ROUNDS: usize = 8;

fn mailbox_pk(mailbox: &MailboxId) -> String {
    format!("MESH#{mailbox}")
}

/// What one transaction round came to.
enum Round {
    Done,
    /// A condition failed: someone else wrote meanwhile. Read again.
    Raced,
}

impl DynamoStore {
    async fn link_of(&self, council: &OdsCode) -> Result<Option<MailboxId>, StoreError> {
        self.get(key(council_pk(council), LINK_SK))
            .await?
            .map(|item| {
                MailboxId::parse(get_s(&item, "mailbox")?)
                    .map_err(|_| corrupt("a stored mailbox id is not valid"))
            })
            .transpose()
    }

    async fn holder_of(&self, mailbox: &MailboxId) -> Result<Option<OdsCode>, StoreError> {
        self.get(key(mailbox_pk(mailbox), HOLDER_SK))
            .await?
            .map(|item| {
                OdsCode::parse(get_s(&item, "council")?)
                    .map_err(|_| corrupt("a mailbox's council is not an ODS code"))
            })
            .transpose()
    }

    async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<Round, StoreError> {
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match written {
            Ok(_) => Ok(Round::Done),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                Ok(Round::Raced)
            }
            Err(e) => Err(unavailable("a mailbox link transaction", &e)),
        }
    }
}

fn put(
    table: &str,
    item: Item,
    condition: &str,
    values: &[(&str, &str)],
) -> Result<TransactWriteItem, StoreError> {
    let mut put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition);
    for (name, value) in values {
        put = put.expression_attribute_values(*name, s(*value));
    }
    Ok(TransactWriteItem::builder()
        .put(put.build().map_err(build_err)?)
        .build())
}

fn delete(
    table: &str,
    item_key: Item,
    condition: &str,
    values: &[(&str, &str)],
) -> Result<TransactWriteItem, StoreError> {
    let mut delete = Delete::builder()
        .table_name(table)
        .set_key(Some(item_key))
        .condition_expression(condition);
    for (name, value) in values {
        delete = delete.expression_attribute_values(*name, s(*value));
    }
    Ok(TransactWriteItem::builder()
        .delete(delete.build().map_err(build_err)?)
        .build())
}

fn raced_too_often() -> StoreError {
    StoreError::Unavailable(
        "the mailbox map kept changing under other writers; run the command again".to_owned(),
    )
}

impl MailboxMap for DynamoStore {
    async fn link_mailbox(
        &self,
        council: &OdsCode,
        mailbox: &MailboxId,
    ) -> Result<Option<MailboxId>, LinkError> {
        for _ in 0..MAX_ROUNDS {
            let previous = self.link_of(council).await?;
            match self.holder_of(mailbox).await? {
                Some(holder) if &holder != council => {
                    return Err(LinkError::MailboxTaken {
                        mailbox: mailbox.clone(),
                        council: holder,
                    })
                }
                Some(_) if previous.as_ref() == Some(mailbox) => return Ok(previous),
                _ => {}
            }
            let mut holder = key(mailbox_pk(mailbox), HOLDER_SK);
            holder.insert("entity".into(), s("MESH_MAILBOX"));
            holder.insert("council".into(), s(council.as_str()));
            let mut link = key(council_pk(council), LINK_SK);
            link.insert("entity".into(), s("MESH_LINK"));
            link.insert("mailbox".into(), s(mailbox.as_str()));
            let mut actions = vec![put(
                &self.table,
                holder,
                "attribute_not_exists(pk) OR council = :council",
                &[(":council", council.as_str())],
            )?];
            match &previous {
                None => actions.push(put(&self.table, link, "attribute_not_exists(pk)", &[])?),
                Some(old) => {
                    actions.push(put(
                        &self.table,
                        link,
                        "mailbox = :old",
                        &[(":old", old.as_str())],
                    )?);
                    if old != mailbox {
                        // The replaced mailbox is free again (unless, against
                        // every write here, another council holds it).
                        actions.push(delete(
                            &self.table,
                            key(mailbox_pk(old), HOLDER_SK),
                            "attribute_not_exists(pk) OR council = :council",
                            &[(":council", council.as_str())],
                        )?);
                    }
                }
            }
            if let Round::Done = self.transact(actions).await? {
                return Ok(previous);
            }
        }
        Err(raced_too_often().into())
    }

    async fn unlink_mailbox(&self, council: &OdsCode) -> Result<Option<MailboxId>, StoreError> {
        for _ in 0..MAX_ROUNDS {
            let Some(old) = self.link_of(council).await? else {
                return Ok(None);
            };
            let actions = vec![
                delete(
                    &self.table,
                    key(council_pk(council), LINK_SK),
                    "mailbox = :old",
                    &[(":old", old.as_str())],
                )?,
                delete(
                    &self.table,
                    key(mailbox_pk(&old), HOLDER_SK),
                    "attribute_not_exists(pk) OR council = :council",
                    &[(":council", council.as_str())],
                )?,
            ];
            if let Round::Done = self.transact(actions).await? {
                return Ok(Some(old));
            }
        }
        Err(raced_too_often())
    }

    async fn mailbox_of(&self, council: &OdsCode) -> Result<Option<MailboxId>, StoreError> {
        self.link_of(council).await
    }

    async fn council_of(&self, mailbox: &MailboxId) -> Result<Option<OdsCode>, StoreError> {
        self.holder_of(mailbox).await
    }
}
