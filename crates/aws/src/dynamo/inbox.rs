//! `NotificationInbox`: a council's ASNs, newest first (gsi1).

use aws_sdk_dynamodb::types::ReturnValue;
use cpis_domain::ports::{NotificationInbox, Page, StoreError};
use cpis_domain::{AckNote, Asn, OdsCode};
use time::OffsetDateTime;

use super::item::{
    asn_from_item, get_s, inbox_cursor_from_item, inbox_sk_from_cursor, is_conditional_failure,
    nanos, readable_asns, s,
};
use super::keys::{asn_pk, key};
use super::{DynamoStore, MAX_ASN_ID};
use crate::errors::unavailable;

impl NotificationInbox for DynamoStore {
    async fn notifications(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asn>, StoreError> {
        let before = cursor.map(inbox_sk_from_cursor).transpose()?;
        let items = self
            .query_gsi1(
                format!("INBOX#{authority}"),
                before.as_deref(),
                false,
                limit + 1,
            )
            .await?;
        let page = Page::try_from_overfetch(items, limit, inbox_cursor_from_item)?;
        Ok(Page {
            items: readable_asns(&page.items),
            next_cursor: page.next_cursor,
        })
    }

    async fn notification(&self, authority: &OdsCode, id: &str) -> Result<Option<Asn>, StoreError> {
        if id.is_empty() || id.len() > MAX_ASN_ID {
            return Ok(None);
        }
        match self.get(key(asn_pk(id), "ASN")).await? {
            Some(item) if get_s(&item, "authority")? == authority.as_str() => {
                Ok(Some(asn_from_item(&item)?))
            }
            _ => Ok(None),
        }
    }

    async fn acknowledge(
        &self,
        authority: &OdsCode,
        id: &str,
        at: OffsetDateTime,
        note: Option<&AckNote>,
    ) -> Result<Option<Asn>, StoreError> {
        if id.is_empty() || id.len() > MAX_ASN_ID {
            return Ok(None);
        }
        // Scoped by the council in the condition: another council's ASN
        // behaves exactly like a missing one.
        // The first time and the first note given are kept.
        let update = if note.is_some() {
            "SET acknowledged_at = if_not_exists(acknowledged_at, :at), \
             acknowledgement_note = if_not_exists(acknowledgement_note, :note)"
        } else {
            "SET acknowledged_at = if_not_exists(acknowledged_at, :at)"
        };
        let updated =
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(asn_pk(id), "ASN")))
                .update_expression(update)
                .set_expression_attribute_values(note.map(|n| {
                    std::collections::HashMap::from([(":note".to_owned(), s(n.as_str()))])
                }))
                .condition_expression("attribute_exists(pk) AND authority = :authority")
                .expression_attribute_values(":at", nanos(at))
                .expression_attribute_values(":authority", s(authority.as_str()))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
        match updated {
            Ok(out) => out.attributes.as_ref().map(asn_from_item).transpose(),
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(unavailable("an acknowledgement", &e)),
        }
    }
}
