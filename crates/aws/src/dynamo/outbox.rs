//! `AsnOutbox`: undelivered ASNs (the sparse gsi2), claims and delivery leases.

use aws_sdk_dynamodb::types::ReturnValue;
use cpis_domain::ports::{AsnOutbox, DeliveryStart, StoreError};
use cpis_domain::Asn;
use time::{Duration, OffsetDateTime};

use super::item::{asn_from_item, get_s, is_conditional_failure, nanos, readable_asns, s};
use super::keys::{asn_pk, key};
use super::{DynamoStore, Item, MAX_ASN_ID, PENDING};
use crate::errors::{corrupt, unavailable};

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
            .update_expression(
                "SET delivered_at = if_not_exists(delivered_at, :at) REMOVE gsi2pk, gsi2sk",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", nanos(at))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(unavailable("a delivery record", &e)),
        }
    }
}

impl DynamoStore {
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
