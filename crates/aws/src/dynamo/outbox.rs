//! `AsnOutbox`: undelivered ASNs (the sparse gsi2), claims and delivery leases.

use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem, Update};
use cpis_domain::ports::{record_one, AsnOutbox, DeliveryRecord, DeliveryStart, StoreError};
use cpis_domain::{Asn, AuditEvent};
use time::{Duration, OffsetDateTime};

use super::audit::{audit_item, APPEND_ONLY};
use super::item::{
    asn_from_item, build_err, get_s, is_conditional_failure, nanos, readable_asns, s,
};
use super::keys::{asn_pk, key};
use super::{DynamoStore, Item, MAX_ASN_ID, PENDING};
use crate::errors::{corrupt, unavailable};

/// Recording a delivery: leaving the sparse outbox index is what takes it
/// out of every sweep.
const FINISH: &str = "SET delivered_at = if_not_exists(delivered_at, :at) REMOVE gsi2pk, gsi2sk";
/// A delivery is recorded only on an ASN that exists (a purge may have
/// taken it meanwhile).
const EXISTS: &str = "attribute_exists(pk)";
/// TransactWriteItems takes at most 100 actions: two per delivery.
const TRANSACT_DELIVERIES_MAX: usize = 50;

impl AsnOutbox for DynamoStore {
    async fn claim_undelivered(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Asn>, StoreError> {
        let mut claimed = Vec::new();
        let mut start: Option<Item> = None;
        while claimed.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi2")
                .key_condition_expression("gsi2pk = :pending")
                .filter_expression("attribute_not_exists(claimed_until) OR claimed_until <= :now")
                .expression_attribute_values(":pending", s(PENDING))
                .expression_attribute_values(":now", nanos(now))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("the outbox query", &e))?;
            for candidate in out.items() {
                if claimed.len() == limit {
                    break;
                }
                // The index lags the table: the conditional claim is what
                // makes two sweepers never claim the same ASN.
                let pk = get_s(candidate, "pk")?.to_owned();
                let taken = self
                    .lease(pk, "claimed_until", now, lease, "an outbox claim")
                    .await?;
                // Claimed even when unreadable, so that it rotates out of
                // the sweep's window instead of filling it every time.
                if let Some(item) = taken {
                    claimed.extend(readable_asns(item.as_ref()));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(claimed)
    }

    async fn begin_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<DeliveryStart, StoreError> {
        if id.is_empty() || id.len() > MAX_ASN_ID {
            return Ok(DeliveryStart::Unknown);
        }
        let taken = self
            .lease(asn_pk(id), "lease_until", now, lease, "a delivery lease")
            .await?;
        match taken {
            Some(item) => {
                let item = item.ok_or_else(|| corrupt("a leased ASN came back empty"))?;
                Ok(DeliveryStart::Proceed(Box::new(asn_from_item(&item)?)))
            }
            None => {
                // Why it failed decides the answer; read it back.
                match self.get(key(asn_pk(id), "ASN")).await? {
                    None => Ok(DeliveryStart::Unknown),
                    Some(item) if item.contains_key("delivered_at") => {
                        Ok(DeliveryStart::AlreadyDelivered)
                    }
                    Some(_) => Ok(DeliveryStart::InProgress),
                }
            }
        }
    }

    async fn finish_delivery(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        if id.is_empty() || id.len() > MAX_ASN_ID {
            return Ok(());
        }
        // Leaving the sparse outbox index is what takes it out of every sweep.
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(asn_pk(id), "ASN")))
            .update_expression(FINISH)
            .condition_expression(EXISTS)
            .expression_attribute_values(":at", nanos(at))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("a delivery record", &e)),
        }
    }

    /// Each chunk of deliveries (records and events) in one
    /// `TransactWriteItems`, both tables at once. A chunk the transaction
    /// refuses (a condition: an ASN purged meanwhile, or an event written
    /// already; a conflict; throttling) falls back to the two writes each,
    /// which answer per delivery: the record is what stops a second send,
    /// so it is never held back by its event.
    async fn record_deliveries(
        &self,
        deliveries: &[(&str, &AuditEvent)],
        at: OffsetDateTime,
    ) -> Vec<Result<DeliveryRecord, StoreError>> {
        let mut answers = Vec::with_capacity(deliveries.len());
        for chunk in deliveries.chunks(TRANSACT_DELIVERIES_MAX) {
            if self.transact_deliveries(chunk, at).await.is_ok() {
                answers.extend(chunk.iter().map(|_| Ok(DeliveryRecord::Audited)));
                continue;
            }
            for (id, event) in chunk {
                answers.push(record_one(self, id, event, at).await);
            }
        }
        answers
    }
}

impl DynamoStore {
    /// Records the deliveries and appends their events in one transaction.
    async fn transact_deliveries(
        &self,
        deliveries: &[(&str, &AuditEvent)],
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut actions = Vec::with_capacity(2 * deliveries.len());
        for (id, event) in deliveries {
            if id.is_empty() || id.len() > MAX_ASN_ID {
                return Err(corrupt("not an ASN id"));
            }
            let record = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(asn_pk(id), "ASN")))
                .update_expression(FINISH)
                .condition_expression(EXISTS)
                .expression_attribute_values(":at", nanos(at))
                .build()
                .map_err(build_err)?;
            let append = Put::builder()
                .table_name(&self.audit_table)
                .set_item(Some(audit_item(event)?))
                .condition_expression(APPEND_ONLY)
                .build()
                .map_err(build_err)?;
            actions.push(TransactWriteItem::builder().update(record).build());
            actions.push(TransactWriteItem::builder().put(append).build());
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
            .map_err(|e| unavailable("a delivery record", &e))?;
        Ok(())
    }

    /// Sets `attribute` of the ASN in partition `pk` to `now + lease`, if it
    /// exists, is undelivered, and `attribute` is absent or has run out: one
    /// conditional write, so two callers never both hold it. `Some` with the
    /// item as written when taken, `None` when the condition failed.
    async fn lease(
        &self,
        pk: String,
        attribute: &str,
        now: OffsetDateTime,
        lease: Duration,
        what: &str,
    ) -> Result<Option<Option<Item>>, StoreError> {
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, "ASN")))
            .update_expression("SET #lease = :until")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(delivered_at) \
                 AND (attribute_not_exists(#lease) OR #lease <= :now)",
            )
            .expression_attribute_names("#lease", attribute)
            .expression_attribute_values(":until", nanos(now + lease))
            .expression_attribute_values(":now", nanos(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match taken {
            Ok(out) => Ok(Some(out.attributes)),
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(unavailable(what, &e)),
        }
    }
}
