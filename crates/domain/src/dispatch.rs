//! Delivering ASNs to councils' duty teams, at least once and never twice
//! once delivery is recorded.

use time::{Duration, OffsetDateTime};

use crate::ports::{
    AsnOutbox, AsnQueue, AuthorityDirectory, DeliveryError, DeliveryStart, NotificationChannel,
    StoreError,
};

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
}

/// Delivers one ASN by id. Safe to call any number of times for the same id.
pub async fn dispatch<S, C>(
    store: &S,
    channel: &C,
    id: &str,
    now: OffsetDateTime,
    view_url: &str,
) -> Result<DispatchOutcome, DispatchError>
where
    S: AsnOutbox + AuthorityDirectory,
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
            channel.deliver(&authority, &asn.notice(view_url)).await?;
            DispatchOutcome::Delivered
        }
        _ => DispatchOutcome::NoChannels,
    };
    store.finish_delivery(id, now).await?;
    Ok(outcome)
}

/// Counts from one sweep of the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub claimed: usize,
    pub delivered: usize,
    pub no_channels: usize,
    pub failed: usize,
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
    S: AsnOutbox + AuthorityDirectory,
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
            // Left undelivered: the claim lapses and a later sweep retries.
            Err(_) => report.failed += 1,
        }
    }
    Ok(report)
}

/// The production relay's sweep: hands undelivered ASNs whose claim lapsed to
/// the queue again, so an ASN whose hand-off failed or whose message was lost
/// is still delivered. Duplicates are absorbed by [`dispatch`].
pub async fn relay_pending<S, Q>(
    store: &S,
    queue: &Q,
    now: OffsetDateTime,
    lease: Duration,
    limit: usize,
) -> Result<usize, StoreError>
where
    S: AsnOutbox,
    Q: AsnQueue,
{
    let claimed = store.claim_undelivered(now, lease, limit).await?;
    let ids: Vec<String> = claimed.into_iter().map(|asn| asn.id).collect();
    if !ids.is_empty() {
        queue.enqueue(&ids).await?;
    }
    Ok(ids.len())
}
