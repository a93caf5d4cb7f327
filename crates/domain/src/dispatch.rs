//! Delivering ASNs to councils' duty teams, at least once and never twice
//! once delivery is recorded.

use time::{Duration, OffsetDateTime};

use crate::ports::{
    AsnOutbox, AuditTrail, AuthorityDirectory, DeliveryError, DeliveryStart, NotificationChannel,
    StoreError,
};
use crate::{AuditAction, AuditEvent, AuditOutcome, OdsCode};

/// The actor named in the audit trail for deliveries.
pub const DISPATCHER_ACTOR: &str = "notification-dispatch";

/// How long one dispatcher may hold an ASN before another may try it.
pub const DELIVERY_LEASE: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchOutcome {
    Delivered,
    /// Delivered earlier: a duplicate message, nothing sent.
    AlreadyDelivered,
    /// The council has no duty-team channels: the ASN stays in its inbox,
    /// and delivery is recorded so the sweep does not spin on it.
    NoChannels,
    /// Another dispatcher holds the lease: try again later.
    InProgress,
    /// No such ASN (a poison message).
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The delivery finished and is recorded (so a retry sends nothing), but
    /// its audit event could not be written: operators must be told, and the
    /// message must not be retried for it.
    #[error("delivery finished ({outcome:?}) but its audit event could not be written: {source}")]
    Audit {
        outcome: DispatchOutcome,
        source: StoreError,
    },
}

/// The audit event for one delivery attempt. The child is not named: the
/// ASN id (as the trace id) joins the event to the notification.
fn delivery_event(
    authority: &OdsCode,
    outcome: AuditOutcome,
    now: OffsetDateTime,
    asn_id: &str,
) -> AuditEvent {
    AuditEvent::system(
        DISPATCHER_ACTOR,
        authority,
        AuditAction::DeliverNotification,
        outcome,
        now,
        asn_id,
    )
}

/// Delivers one ASN by id. Safe to call any number of times for the same id:
/// once delivery is recorded, nothing is sent again. Every attempt that
/// reaches the council's channels is audited, whether it worked or not.
pub async fn dispatch<S, C>(
    store: &S,
    channel: &C,
    id: &str,
    now: OffsetDateTime,
    view_url: &str,
) -> Result<DispatchOutcome, DispatchError>
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
{
    let asn = match store.begin_delivery(id, now, DELIVERY_LEASE).await? {
        DeliveryStart::Proceed(asn) => *asn,
        DeliveryStart::AlreadyDelivered => return Ok(DispatchOutcome::AlreadyDelivered),
        DeliveryStart::InProgress => return Ok(DispatchOutcome::InProgress),
        DeliveryStart::Unknown => return Ok(DispatchOutcome::Unknown),
    };
    let outcome = match store.authority(&asn.authority).await? {
        Some(authority)
            if !(authority.notify_emails.is_empty() && authority.notify_sms.is_empty()) =>
        {
            if let Err(error) = channel.deliver(&authority, &asn.notice(view_url)).await {
                // Best effort: the delivery error is what the caller must see,
                // and the retry audits its own attempt.
                let _ = store
                    .append(&delivery_event(
                        &asn.authority,
                        AuditOutcome::Failed,
                        now,
                        id,
                    ))
                    .await;
                return Err(error.into());
            }
            DispatchOutcome::Delivered
        }
        _ => DispatchOutcome::NoChannels,
    };
    store.finish_delivery(id, now).await?;
    // No duty team was told when the council has no channels: the ASN waits in
    // its inbox, and the trail says so.
    let audited = match outcome {
        DispatchOutcome::Delivered => AuditOutcome::Allowed,
        _ => AuditOutcome::Failed,
    };
    store
        .append(&delivery_event(&asn.authority, audited, now, id))
        .await
        .map_err(|source| DispatchError::Audit { outcome, source })?;
    Ok(outcome)
}

/// Counts from one sweep of the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub claimed: usize,
    pub delivered: usize,
    pub no_channels: usize,
    pub failed: usize,
    /// Deliveries that finished but whose audit event could not be written.
    pub unaudited: usize,
}

/// The embedded dispatcher's sweep: claims undelivered ASNs and delivers them.
pub async fn deliver_pending<S, C>(
    store: &S,
    channel: &C,
    now: OffsetDateTime,
    limit: usize,
    view_url: &str,
) -> Result<SweepReport, StoreError>
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
{
    let claimed = store.claim_undelivered(now, DELIVERY_LEASE, limit).await?;
    let mut report = SweepReport {
        claimed: claimed.len(),
        ..Default::default()
    };
    for asn in claimed {
        match dispatch(store, channel, &asn.id, now, view_url).await {
            Ok(DispatchOutcome::Delivered) => report.delivered += 1,
            Ok(DispatchOutcome::NoChannels) => report.no_channels += 1,
            Ok(_) => {}
            Err(DispatchError::Audit { outcome, .. }) => {
                report.unaudited += 1;
                match outcome {
                    DispatchOutcome::Delivered => report.delivered += 1,
                    DispatchOutcome::NoChannels => report.no_channels += 1,
                    _ => {}
                }
            }
            // Left undelivered: the claim lapses and a later sweep retries.
            Err(_) => report.failed += 1,
        }
    }
    Ok(report)
}
