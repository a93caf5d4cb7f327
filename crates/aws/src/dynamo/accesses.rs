//! `AccessLog` (the 24-hour collapse as a transaction condition),
//! `CheckReceipts` and `CheckLedger`.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use cpis_domain::ports::{
    AccessLog, AccessWrite, AuditTrail, CheckLedger, CheckReceipts, CheckWrite, StoreError,
};
use cpis_domain::{AccessRecord, Asn, AuditEvent, NhsNumber, OdsCode};
use time::{Duration, OffsetDateTime};

use super::audit::{audit_item, APPEND_ONLY};
use super::item::{access_from_item, access_item, asn_item, build_err, get_time, n, nanos, s};
use super::keys::{child_pk, key};
use super::DynamoStore;
use crate::errors::unavailable;

/// TransactWriteItems takes at most 100 actions: the collapse item, the
/// access, the ASNs and the audit event.
const TRANSACTION_MAX: usize = 100;
/// The collapse item outlives the 24-hour window by a margin, then TTL removes it.
const COLLAPSE_ITEM_LIFETIME: Duration = Duration::days(3);

impl AccessLog for DynamoStore {
    async fn record_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> Result<AccessWrite, StoreError> {
        self.transact_access(access, asns, collapse_since, None)
            .await
    }

    async fn recent_accesses(
        &self,
        nhs_number: &NhsNumber,
        limit: usize,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.query_prefix(child_pk(nhs_number), "ACCESS#", false, Some(limit))
            .await?
            .iter()
            .map(access_from_item)
            .collect()
    }
}

impl CheckLedger for DynamoStore {
    /// The receipt first, alone: its latest-wins rule is a condition an
    /// older time fails, and a failed condition would cancel the whole
    /// transaction. Then the access, its ASNs and the audit event in one
    /// transaction (one call), or the audit event alone when the access
    /// collapsed or there is none.
    async fn record_check(
        &self,
        write: &CheckWrite<'_>,
    ) -> Result<Option<AccessWrite>, StoreError> {
        let (nhs_number, organisation, at) = write.receipt;
        self.note_check(nhs_number, organisation, at).await?;
        let written = match write.access {
            Some(new) => Some(
                self.transact_access(new.record, new.asns, new.collapse_since, write.audit)
                    .await?,
            ),
            None => None,
        };
        if let (Some(event), None | Some(AccessWrite::Collapsed)) = (write.audit, written) {
            self.append(event).await?;
        }
        Ok(written)
    }
}

impl DynamoStore {
    /// The access and its ASNs (and `audit`, when given) in one
    /// transaction, unless the collapse condition cancels it.
    async fn transact_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
        audit: Option<&AuditEvent>,
    ) -> Result<AccessWrite, StoreError> {
        if asns.len() + 3 > TRANSACTION_MAX {
            return Err(StoreError::Unavailable(
                "too many notifications for one transaction".to_owned(),
            ));
        }
        let child = child_pk(&access.nhs_number);
        let collapse_key = key(
            child.clone(),
            format!("LASTACCESS#{}", access.accessor.author_key()),
        );
        let expires = access.accessed_at + COLLAPSE_ITEM_LIFETIME;
        // The collapse rule as a condition: the author's last access is older
        // than the window (or there is none). Its failure cancels everything.
        let collapse = Update::builder()
            .table_name(&self.table)
            .set_key(Some(collapse_key))
            .update_expression("SET last_at = :at, expires_at = :expires, entity = :entity")
            .condition_expression("attribute_not_exists(pk) OR last_at < :since")
            .expression_attribute_values(":at", nanos(access.accessed_at))
            .expression_attribute_values(":since", nanos(collapse_since))
            .expression_attribute_values(":expires", n(expires.unix_timestamp()))
            .expression_attribute_values(":entity", s("LASTACCESS"))
            .build()
            .map_err(build_err)?;
        let mut actions = vec![TransactWriteItem::builder().update(collapse).build()];
        let mut new_items = vec![access_item(access)];
        for asn in asns {
            new_items.push(asn_item(asn)?);
        }
        for item in new_items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_err)?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        if let Some(event) = audit {
            let put = Put::builder()
                .table_name(&self.audit_table)
                .set_item(Some(audit_item(event)?))
                .condition_expression(APPEND_ONLY)
                .build()
                .map_err(build_err)?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match written {
            Ok(_) => Ok(AccessWrite::Recorded),
            Err(SdkError::ServiceError(service)) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled)
                    if cancelled
                        .cancellation_reasons()
                        .first()
                        .and_then(|r| r.code())
                        == Some("ConditionalCheckFailed") =>
                {
                    Ok(AccessWrite::Collapsed)
                }
                other => Err(unavailable("the access transaction", other)),
            },
            Err(e) => Err(unavailable("the access transaction", &e)),
        }
    }
}

impl CheckReceipts for DynamoStore {
    async fn note_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // Keeps the latest time: an older note never overwrites a newer one.
        self.move_time_forward(
            key(child_pk(nhs_number), format!("CHECK#{organisation}")),
            "checked_at",
            "CHECK",
            at,
            "a check receipt write",
        )
        .await
    }

    async fn last_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        match self
            .get(key(child_pk(nhs_number), format!("CHECK#{organisation}")))
            .await?
        {
            Some(item) => Ok(Some(get_time(&item, "checked_at")?)),
            None => Ok(None),
        }
    }
}
