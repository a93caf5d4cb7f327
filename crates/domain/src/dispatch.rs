//! Delivering ASNs to councils, at least once and never twice once delivery
//! is recorded: a file in the council's MESH mailbox (when the operator
//! linked one) and the duty team's SMS and email.

use std::future::Future;

use time::{Duration, OffsetDateTime};

use crate::ports::{
    AsnFileChannel, AsnOutbox, AuditTrail, AuthorityDirectory, DeliveryError, DeliveryRecord,
    DeliveryStart, FileSent, MailboxMap, NotificationChannel, StoreError,
};
use crate::{Asn, AuditAction, AuditEvent, AuditOutcome, Authority, OdsCode};

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

/// The MESH leg of a delivery: an ASN file for a council with a mailbox.
/// [`NoFiles`] where MESH is off; [`MeshFiles`] where it is on.
pub trait FileLeg: Send + Sync {
    /// Sends `asn`'s file if its council has a mailbox. `authority` is the
    /// council's directory entry, if it has one. `Err` only for what is
    /// worth retrying (the store, MESH unavailable).
    fn deliver_file(
        &self,
        asn: &Asn,
        authority: Option<&Authority>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<FileDelivery, DispatchError>> + Send;
}

/// What the MESH leg did for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileDelivery {
    /// The delivery stopped before the legs (delivered already, leased, unknown).
    NotAttempted,
    /// MESH is off, or the council has no mailbox.
    NoMailbox,
    Sent,
    /// Sent before: tracking found it.
    AlreadySent,
    /// This ASN cannot be a valid file, or MESH refuses it (why, no
    /// personal data): the other legs still went; the caller logs it at
    /// error level. The ASN stays in the council's inbox.
    Impossible(String),
}

impl FileDelivery {
    /// Whether the council has the file.
    pub fn reached(&self) -> bool {
        matches!(self, Self::Sent | Self::AlreadySent)
    }
}

/// No MESH: no council gets files.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl FileLeg for NoFiles {
    async fn deliver_file(
        &self,
        _asn: &Asn,
        _authority: Option<&Authority>,
        _now: OffsetDateTime,
    ) -> Result<FileDelivery, DispatchError> {
        Ok(FileDelivery::NoMailbox)
    }
}

/// MESH on: a council the operator linked to a mailbox ([`MailboxMap`],
/// read at every delivery) gets each ASN as a file through `channel`.
#[derive(Debug, Clone)]
pub struct MeshFiles<M, C> {
    pub map: M,
    pub channel: C,
}

impl<M: MailboxMap, C: AsnFileChannel> FileLeg for MeshFiles<M, C> {
    async fn deliver_file(
        &self,
        asn: &Asn,
        authority: Option<&Authority>,
        now: OffsetDateTime,
    ) -> Result<FileDelivery, DispatchError> {
        let Some(mailbox) = self.map.mailbox_of(&asn.authority).await? else {
            return Ok(FileDelivery::NoMailbox);
        };
        // A council with a mailbox but no directory entry is named by its
        // ODS code (the file must name its recipient).
        let name = authority.map_or(asn.authority.as_str(), |a| a.name.as_str());
        match self.channel.send_asn_file(&mailbox, asn, name, now).await {
            Ok(FileSent::Sent) => Ok(FileDelivery::Sent),
            Ok(FileSent::AlreadySent) => Ok(FileDelivery::AlreadySent),
            Err(DeliveryError::Permanent(why)) => Ok(FileDelivery::Impossible(why)),
            Err(transient) => Err(transient.into()),
        }
    }
}

/// One delivery: its outcome, and what the MESH leg did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub outcome: DispatchOutcome,
    pub file: FileDelivery,
}

/// Delivers one ASN by id without the MESH leg: [`dispatch_with`] and
/// [`NoFiles`].
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
    dispatch_with(store, channel, &NoFiles, id, now, view_url)
        .await
        .map(|d| d.outcome)
}

/// Delivers one ASN by id. Safe to call any number of times for the same id:
/// once delivery is recorded, nothing is sent again. Every attempt that
/// reaches the council's channels is audited, whether it worked or not.
///
/// The legs, in this order (README decisions): the MESH file first, which
/// is idempotent by tracking, then the duty team's SMS and email. A retry
/// after any failure therefore never repeats an SMS or email: a failed
/// file stops before them, and a failed SMS or email is retried after a file
/// that tracking finds sent. The one window left is the SMS or email sent and
/// the process gone before delivery was recorded. The ASN counts as
/// delivered when the file or the SMS and email reached the council; with
/// neither, it stays in the council's inbox (`NoChannels`, audited failed).
pub async fn dispatch_with<S, C, F>(
    store: &S,
    channel: &C,
    files: &F,
    id: &str,
    now: OffsetDateTime,
    view_url: &str,
) -> Result<Dispatched, DispatchError>
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
    F: FileLeg,
{
    // A batch of one: the same steps, in the same order, through the one
    // implementation of these rules. Where the store and channel do not
    // batch (their defaults), the calls are those of one delivery: the
    // lease, the council's entry, the file, the notice, the record and its
    // event.
    dispatch_batch_with(store, channel, files, &[id], now, view_url)
        .await
        .pop()
        .unwrap_or_else(|| Err(StoreError::Unavailable("not attempted".into()).into()))
}

/// Delivers a batch of ASNs by id without the MESH leg:
/// [`dispatch_batch_with`] and [`NoFiles`].
pub async fn dispatch_batch<S, C>(
    store: &S,
    channel: &C,
    ids: &[&str],
    now: OffsetDateTime,
    view_url: &str,
) -> Vec<Result<DispatchOutcome, DispatchError>>
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
{
    dispatch_batch_with(store, channel, &NoFiles, ids, now, view_url)
        .await
        .into_iter()
        .map(|r| r.map(|d| d.outcome))
        .collect()
}

/// One claimed ASN on its way through a batch.
struct Claimed {
    /// Its place in the batch.
    at: usize,
    asn: Asn,
    file: FileDelivery,
}

/// Delivers a batch of ASNs by id, as [`dispatch_with`] delivers each, with
/// fewer round trips: one answer per id, in order. This is the one
/// implementation of the rules [`dispatch_with`] states ([`dispatch_with`]
/// is a batch of one): per ASN the same steps, order and outcomes. Per ASN,
/// the MESH file first ([`FileLeg::deliver_file`], idempotent by tracking);
/// an ASN whose file failed in a way worth retrying is audited failed,
/// answers that error and goes no further (no SMS or email, not recorded),
/// while the others of the batch go on; an ASN whose file is
/// [`FileDelivery::Impossible`] still goes to the duty team, and answers
/// with it in [`Dispatched::file`] for the caller to log. What is batched:
///
/// - the councils' directory entries: one [`AuthorityDirectory::authorities`]
///   read for the batch;
/// - the duty teams' notices: one [`NotificationChannel::deliver_batch`]
///   per council;
/// - the records of delivery and their audit events: one
///   [`AsnOutbox::record_deliveries`] per council, right after its notices.
///
/// The duplicate window is one council's `deliver_batch` call: a crash after
/// it and before its record sends those ASNs again (at most a batch), where
/// [`dispatch_with`] sends one again. An ASN whose notice failed is not
/// recorded (and is audited failed), so its retry sends it; one whose notice
/// went out is recorded with the rest and never sent again.
///
/// An id given twice is delivered once: the later copy answers
/// `AlreadyDelivered` if the first was recorded, else `InProgress` (the
/// first holds the lease), so both are retried together.
pub async fn dispatch_batch_with<S, C, F>(
    store: &S,
    channel: &C,
    files: &F,
    ids: &[&str],
    now: OffsetDateTime,
    view_url: &str,
) -> Vec<Result<Dispatched, DispatchError>>
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
    F: FileLeg,
{
    let mut answers: Vec<Option<Result<Dispatched, DispatchError>>> =
        ids.iter().map(|_| None).collect();
    let stopped = |outcome| {
        Some(Ok(Dispatched {
            outcome,
            file: FileDelivery::NotAttempted,
        }))
    };
    // Best effort, as in `dispatch_with`: the failure is what the caller
    // must see, and the retry audits its own attempt.
    let audit_failure = |asn: &Asn| {
        let event = delivery_event(&asn.authority, AuditOutcome::Failed, now, &asn.id);
        async move {
            let _ = store.append(&event).await;
        }
    };

    // 1. The leases, one conditional write each (they cannot be batched: each
    // must succeed or fail on its own).
    let mut first_of: Vec<Option<usize>> = vec![None; ids.len()];
    let mut claimed: Vec<Claimed> = Vec::new();
    for (at, id) in ids.iter().enumerate() {
        if let Some(first) = ids[..at].iter().position(|earlier| earlier == id) {
            first_of[at] = Some(first);
            continue;
        }
        answers[at] = match store.begin_delivery(id, now, DELIVERY_LEASE).await {
            Ok(DeliveryStart::Proceed(asn)) => {
                claimed.push(Claimed {
                    at,
                    asn: *asn,
                    file: FileDelivery::NotAttempted,
                });
                None
            }
            Ok(DeliveryStart::AlreadyDelivered) => stopped(DispatchOutcome::AlreadyDelivered),
            Ok(DeliveryStart::InProgress) => stopped(DispatchOutcome::InProgress),
            Ok(DeliveryStart::Unknown) => stopped(DispatchOutcome::Unknown),
            Err(e) => Some(Err(e.into())),
        };
    }

    // 2. Every council of the batch in one read.
    let mut councils: Vec<OdsCode> = Vec::new();
    for c in &claimed {
        if !councils.contains(&c.asn.authority) {
            councils.push(c.asn.authority.clone());
        }
    }
    let entries = if councils.is_empty() {
        Ok(Vec::new())
    } else {
        store.authorities(&councils).await
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => {
            for c in &claimed {
                answers[c.at] = Some(Err(e.clone().into()));
            }
            claimed.clear();
            Vec::new()
        }
    };
    let entry_of = |ods: &OdsCode| entries.iter().find(|a| &a.ods_code == ods);

    // 3. The MESH leg, per ASN (idempotent by tracking), before any SMS or email.
    let mut legs_done = Vec::with_capacity(claimed.len());
    for mut c in claimed {
        match files
            .deliver_file(&c.asn, entry_of(&c.asn.authority), now)
            .await
        {
            Ok(file) => {
                c.file = file;
                legs_done.push(c);
            }
            Err(error) => {
                audit_failure(&c.asn).await;
                answers[c.at] = Some(Err(error));
            }
        }
    }

    // 4. Per council: its notices in one call, then its records in one write.
    for council in &councils {
        let group: Vec<&Claimed> = legs_done
            .iter()
            .filter(|c| &c.asn.authority == council)
            .collect();
        if group.is_empty() {
            continue;
        }
        let entry = entry_of(council);
        let mut done: Vec<(&Claimed, DispatchOutcome)> = Vec::with_capacity(group.len());
        match entry {
            Some(authority)
                if !(authority.notify_emails.is_empty() && authority.notify_sms.is_empty()) =>
            {
                let notices: Vec<_> = group.iter().map(|c| c.asn.notice(view_url)).collect();
                let batch: Vec<_> = notices.iter().map(|n| (authority, n)).collect();
                let sent = channel.deliver_batch(&batch).await;
                for (c, result) in group
                    .iter()
                    .zip(sent.into_iter().chain(std::iter::repeat_with(|| {
                        Err(DeliveryError::Transient(
                            "the channel gave no answer".into(),
                        ))
                    })))
                {
                    match result {
                        Ok(()) => done.push((c, DispatchOutcome::Delivered)),
                        Err(error) => {
                            audit_failure(&c.asn).await;
                            answers[c.at] = Some(Err(error.into()));
                        }
                    }
                }
            }
            _ => {
                for c in &group {
                    let outcome = if c.file.reached() {
                        DispatchOutcome::Delivered
                    } else {
                        DispatchOutcome::NoChannels
                    };
                    done.push((c, outcome));
                }
            }
        }
        if done.is_empty() {
            continue;
        }
        // Nobody was told when the council has neither channels nor a file:
        // the ASN waits in its inbox, and the trail says so.
        let events: Vec<AuditEvent> = done
            .iter()
            .map(|(c, outcome)| {
                let audited = match outcome {
                    DispatchOutcome::Delivered => AuditOutcome::Allowed,
                    _ => AuditOutcome::Failed,
                };
                delivery_event(council, audited, now, &c.asn.id)
            })
            .collect();
        let records: Vec<(&str, &AuditEvent)> = done
            .iter()
            .zip(&events)
            .map(|((c, _), event)| (c.asn.id.as_str(), event))
            .collect();
        let recorded = store.record_deliveries(&records, now).await;
        for ((c, outcome), record) in
            done.iter()
                .zip(recorded.into_iter().chain(std::iter::repeat_with(|| {
                    Err(StoreError::Unavailable("the store gave no answer".into()))
                })))
        {
            let outcome = *outcome;
            answers[c.at] = Some(match record {
                Ok(DeliveryRecord::Audited) => Ok(Dispatched {
                    outcome,
                    file: c.file.clone(),
                }),
                Ok(DeliveryRecord::Unaudited(source)) => {
                    Err(DispatchError::Audit { outcome, source })
                }
                Err(e) => Err(e.into()),
            });
        }
    }

    // 5. A repeated id shares its first copy's fate.
    for (at, first) in first_of.iter().enumerate() {
        let Some(first) = *first else { continue };
        let outcome = match &answers[first] {
            Some(Ok(Dispatched {
                outcome: DispatchOutcome::Delivered | DispatchOutcome::NoChannels,
                ..
            }))
            | Some(Err(DispatchError::Audit { .. })) => DispatchOutcome::AlreadyDelivered,
            Some(Ok(d)) => d.outcome,
            _ => DispatchOutcome::InProgress,
        };
        answers[at] = stopped(outcome);
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::Unavailable("not attempted".into()).into())))
        .collect()
}

/// Counts from one sweep of the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub claimed: usize,
    pub delivered: usize,
    pub no_channels: usize,
    pub failed: usize,
    /// Deliveries that finished but whose audit event could not be written.
    pub unaudited: usize,
    /// ASN files sent to councils' MESH mailboxes.
    pub files_sent: usize,
    /// ASNs whose file could not be sent (ASN id, why): the caller logs
    /// each at error level.
    pub files_impossible: Vec<(String, String)>,
}

/// The embedded dispatcher's sweep without the MESH leg:
/// [`deliver_pending_with`] and [`NoFiles`].
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
    deliver_pending_with(store, channel, &NoFiles, now, limit, view_url).await
}

/// The embedded dispatcher's sweep: claims undelivered ASNs and delivers
/// each ([`dispatch_with`]).
pub async fn deliver_pending_with<S, C, F>(
    store: &S,
    channel: &C,
    files: &F,
    now: OffsetDateTime,
    limit: usize,
    view_url: &str,
) -> Result<SweepReport, StoreError>
where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
    F: FileLeg,
{
    let claimed = store.claim_undelivered(now, DELIVERY_LEASE, limit).await?;
    let mut report = SweepReport {
        claimed: claimed.len(),
        ..Default::default()
    };
    for asn in claimed {
        let outcome = match dispatch_with(store, channel, files, &asn.id, now, view_url).await {
            Ok(dispatched) => {
                match dispatched.file {
                    FileDelivery::Sent => report.files_sent += 1,
                    FileDelivery::Impossible(why) => {
                        report.files_impossible.push((asn.id.clone(), why))
                    }
                    _ => {}
                }
                dispatched.outcome
            }
            Err(DispatchError::Audit { outcome, .. }) => {
                report.unaudited += 1;
                outcome
            }
            // Left undelivered: the claim lapses and a later sweep retries.
            Err(_) => {
                report.failed += 1;
                continue;
            }
        };
        match outcome {
            DispatchOutcome::Delivered => report.delivered += 1,
            DispatchOutcome::NoChannels => report.no_channels += 1,
            _ => {}
        }
    }
    Ok(report)
}
