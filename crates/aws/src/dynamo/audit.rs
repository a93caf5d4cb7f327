//! `AuditTrail` and `AuditReader` on the append-only audit table.

use cpis_domain::ports::{AuditReader, AuditTrail, StoreError};
use cpis_domain::AuditEvent;

use super::item::{get_s, is_conditional_failure, s};
use super::keys::{key, time_key};
use super::{DynamoStore, Item};
use crate::errors::{corrupt, unavailable};

/// An audit event as the audit table stores it.
pub(super) fn audit_item(event: &AuditEvent) -> Result<Item, StoreError> {
    let body =
        serde_json::to_string(event).map_err(|_| corrupt("an audit event could not be encoded"))?;
    let mut item = key(
        format!("DAY#{}", event.at.date()),
        format!("{}#{}", time_key(event.at), event.id),
    );
    item.insert("event".into(), s(body));
    item.insert("actor_id".into(), s(event.actor_id.as_str()));
    item.insert("organisation".into(), s(event.organisation.as_str()));
    if let Some(subject) = &event.subject {
        item.insert("subject".into(), s(subject.as_str()));
    }
    Ok(item)
}

/// Append-only: an event is never overwritten, even by a retry.
pub(super) const APPEND_ONLY: &str = "attribute_not_exists(pk)";

impl AuditTrail for DynamoStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let item = audit_item(event)?;
        let written = self
            .client
            .put_item()
            .table_name(&self.audit_table)
            .set_item(Some(item))
            .condition_expression(APPEND_ONLY)
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("an audit write", &e)),
        }
    }
}

impl AuditReader for DynamoStore {
    /// The most recent `limit` events, oldest first. Scans the audit table:
    /// for operators and tests, never on a request path.
    async fn audit_events(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.audit_table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("the audit scan", &e))?;
            for item in out.items() {
                let event: AuditEvent = serde_json::from_str(get_s(item, "event")?)
                    .map_err(|_| corrupt("a stored audit event could not be read"))?;
                events.push(event);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        events.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        let skip = events.len().saturating_sub(limit);
        Ok(events.split_off(skip))
    }
}
