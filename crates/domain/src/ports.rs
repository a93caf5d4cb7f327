//! Ports: one narrow trait per capability. Adapters (in-memory, SQLite,
//! DynamoDB/SQS/SNS) implement them; every adapter passes the one conformance
//! suite in `cpis-conformance`.
//!
//! Messages inside errors never carry personal data: adapters describe what
//! failed, not what they were given.

use std::future::Future;

use time::{Date, Duration, OffsetDateTime};

use crate::acknowledgement::Acknowledgement;
use crate::notification::AckNote;
use crate::page::InvalidCursor;
use crate::sequencing::LedgerHead;
use crate::{
    AccessRecord, Asn, AuditEvent, Authority, MailboxId, NhsNumber, NoticeText, OdsCode, Plan,
    PlanKey,
};

pub use crate::page::Page;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("the page cursor is not valid")]
    InvalidCursor,
}

impl From<InvalidCursor> for StoreError {
    fn from(_: InvalidCursor) -> Self {
        Self::InvalidCursor
    }
}

/// A plan as stored: the plan and the day from which it must be purged
/// (computed by the domain; `None` while the plan is open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub plan: Plan,
    pub purge_from: Option<Date>,
}

pub trait PlanStore: Send + Sync {
    /// Every stored plan for the child, from every council. Visibility is the
    /// domain's to decide, not the store's.
    fn plans_for_child(
        &self,
        nhs_number: &NhsNumber,
    ) -> impl Future<Output = Result<Vec<Plan>, StoreError>> + Send;

    /// One council's plans in a stable order, at most `limit` per page.
    fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Plan>, StoreError>> + Send;

    /// The identities of every plan the council holds (for full snapshots).
    fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> impl Future<Output = Result<Vec<PlanKey>, StoreError>> + Send;

    /// Upserts by identity, then withdrawals (deletes). Every key belongs to
    /// `authority`. Returns how many withdrawn plans existed.
    fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// What was stored for an upload sequence: the request digest and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReceipt {
    pub sequence: u64,
    pub digest: String,
    pub acknowledgement: Acknowledgement,
    /// When the upload was processed (`None` for receipts stored before
    /// the time was kept): the portal's upload history shows it.
    pub received_at: Option<OffsetDateTime>,
}

/// A council's upload receipts and its ledger head (see [`crate::sequencing`]).
pub trait UploadLedger: Send + Sync {
    fn receipt(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> impl Future<Output = Result<Option<UploadReceipt>, StoreError>> + Send;

    /// Stores the receipt unless one exists for the sequence; returns the
    /// receipt that is now stored (the earlier one if it existed).
    fn record_receipt(
        &self,
        authority: &OdsCode,
        receipt: &UploadReceipt,
    ) -> impl Future<Output = Result<UploadReceipt, StoreError>> + Send;

    /// The council's ledger head, read consistently (never a stale replica).
    fn ledger_head(
        &self,
        authority: &OdsCode,
    ) -> impl Future<Output = Result<Option<LedgerHead>, StoreError>> + Send;

    /// Replaces the head with `new` only if the stored head is still
    /// `expected` (compared by `version`; `None`: no head yet). Atomic across
    /// every process sharing the store. Returns whether it was swapped.
    fn swap_ledger_head(
        &self,
        authority: &OdsCode,
        expected: Option<&LedgerHead>,
        new: &LedgerHead,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the council's receipts above `sequence` (a rewind); returns
    /// how many there were.
    fn retire_receipts_above(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Why a council could not be linked to a mailbox.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Another council holds the mailbox: one council per mailbox, so the
    /// operator unlinks it first (a file's tenancy is never ambiguous).
    #[error("mailbox {mailbox} is linked to council {council}; unlink that council first")]
    MailboxTaken {
        mailbox: MailboxId,
        council: OdsCode,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operator's map between councils and their MESH mailboxes (issue 13:
/// tenancy from the transport). One mailbox per council and one council per
/// mailbox, in both directions at every moment another process can see.
/// Written by the operator (`cpis mesh link`), never by a council's call;
/// read on every poll and every dispatch, never cached, so a change takes
/// effect at the next message.
pub trait MailboxMap: Send + Sync {
    /// Links `council` to `mailbox`, replacing the council's previous
    /// mailbox, which is returned (`None` if it had none; `Some(mailbox)`
    /// when the pair was linked already, which changes nothing). Refused with
    /// [`LinkError::MailboxTaken`] when another council holds `mailbox`.
    /// Atomic across every process sharing the store: of two links racing
    /// for one mailbox exactly one wins.
    fn link_mailbox(
        &self,
        council: &OdsCode,
        mailbox: &MailboxId,
    ) -> impl Future<Output = Result<Option<MailboxId>, LinkError>> + Send;

    /// Removes the council's link; returns the mailbox it had (`None`: it
    /// had none, which is not an error).
    fn unlink_mailbox(
        &self,
        council: &OdsCode,
    ) -> impl Future<Output = Result<Option<MailboxId>, StoreError>> + Send;

    /// The council's mailbox, read consistently.
    fn mailbox_of(
        &self,
        council: &OdsCode,
    ) -> impl Future<Output = Result<Option<MailboxId>, StoreError>> + Send;

    /// The council a mailbox belongs to, read consistently.
    fn council_of(
        &self,
        mailbox: &MailboxId,
    ) -> impl Future<Output = Result<Option<OdsCode>, StoreError>> + Send;
}

/// A council's upload history (the portal's `/portal/uploads`): its
/// receipts read back, newest first. Apart from [`UploadLedger`] so that
/// the upload path needs nothing it does not use.
pub trait UploadHistory: Send + Sync {
    /// The council's receipts with the highest sequences, highest first, at
    /// most `limit`; another council's never.
    fn recent_receipts(
        &self,
        authority: &OdsCode,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<UploadReceipt>, StoreError>> + Send;
}

pub trait AuthorityDirectory: Send + Sync {
    fn authority(
        &self,
        ods_code: &OdsCode,
    ) -> impl Future<Output = Result<Option<Authority>, StoreError>> + Send;

    fn put_authority(
        &self,
        authority: &Authority,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The entries of those of `ods_codes` that have one, each once, in no
    /// particular order, each read as [`authority`](Self::authority) reads it. For a
    /// dispatcher's batch: one read where the store can (DynamoDB's
    /// `BatchGetItem`); by default one [`authority`](Self::authority) each.
    fn authorities(
        &self,
        ods_codes: &[OdsCode],
    ) -> impl Future<Output = Result<Vec<Authority>, StoreError>> + Send {
        async move {
            let mut found = Vec::with_capacity(ods_codes.len());
            for (i, ods_code) in ods_codes.iter().enumerate() {
                if ods_codes[..i].contains(ods_code) {
                    continue;
                }
                if let Some(entry) = self.authority(ods_code).await? {
                    found.push(entry);
                }
            }
            Ok(found)
        }
    }
}

/// Whether an access was written or collapsed into an earlier one by the same author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessWrite {
    Recorded,
    Collapsed,
}

pub trait AccessLog: Send + Sync {
    /// Writes the access and its ASNs together (all or nothing), unless the
    /// same author has an access for the child at or after `collapse_since`:
    /// then nothing is written.
    fn record_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> impl Future<Output = Result<AccessWrite, StoreError>> + Send;

    /// At least the `limit` most recent accesses for the child.
    fn recent_accesses(
        &self,
        nhs_number: &NhsNumber,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AccessRecord>, StoreError>> + Send;
}

/// When an organisation last checked a child who has a plan (silent or not):
/// what lets a care setting read the history of a child it has just seen.
pub trait CheckReceipts: Send + Sync {
    fn note_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn last_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
    ) -> impl Future<Output = Result<Option<OffsetDateTime>, StoreError>> + Send;
}

/// The access one check makes: the record, its ASNs, and the start of the
/// collapse window (an access by the same author for the child at or after
/// it collapses this one).
#[derive(Debug, Clone, Copy)]
pub struct NewAccess<'a> {
    pub record: &'a AccessRecord,
    pub asns: &'a [Asn],
    pub collapse_since: OffsetDateTime,
}

/// Everything one answered check writes ([`crate::check`]).
#[derive(Debug, Clone, Copy)]
pub struct CheckWrite<'a> {
    /// The organisation's check receipt (as [`CheckReceipts::note_check`]);
    /// a check writes only when the child has a visible plan, so always.
    pub receipt: (&'a NhsNumber, &'a OdsCode, OffsetDateTime),
    /// The access and its ASNs (as [`AccessLog::record_access`]): an
    /// unscheduled check by a caller who may notify.
    pub access: Option<NewAccess<'a>>,
    /// The request's audit event, `Allowed` (as [`AuditTrail::append`]).
    pub audit: Option<&'a AuditEvent>,
}

/// A check's writes in one durable step, so that a check waits for one
/// commit instead of one per write (issue 16: the check's p99 under load).
pub trait CheckLedger: Send + Sync {
    /// Writes `write`'s parts together, all or nothing, and answers whether
    /// its access was recorded or collapsed (`None` without an access). A
    /// collapsed access still writes the receipt and the audit event.
    /// Adapters without a transaction spanning all the parts (DynamoDB:
    /// the receipt and the rest) write the receipt first: it is idempotent,
    /// the latest time wins, and on its own it only says the organisation
    /// checked the child, which it did.
    fn record_check(
        &self,
        write: &CheckWrite<'_>,
    ) -> impl Future<Output = Result<Option<AccessWrite>, StoreError>> + Send;
}

/// A council's ASN inbox. Every call is scoped by the council: another
/// council's ASN is indistinguishable from one that does not exist.
pub trait NotificationInbox: Send + Sync {
    /// Newest first.
    fn notifications(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Asn>, StoreError>> + Send;

    fn notification(
        &self,
        authority: &OdsCode,
        id: &str,
    ) -> impl Future<Output = Result<Option<Asn>, StoreError>> + Send;

    /// Marks it acknowledged (the first time only: the first time is kept)
    /// and returns it. A `note` is kept if the ASN has none yet (the first
    /// note given stays, whichever acknowledgement carried it).
    fn acknowledge(
        &self,
        authority: &OdsCode,
        id: &str,
        at: OffsetDateTime,
        note: Option<&AckNote>,
    ) -> impl Future<Output = Result<Option<Asn>, StoreError>> + Send;
}

/// The answer to "may I deliver this ASN now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStart {
    /// Go ahead; nobody else will until the lease runs out.
    Proceed(Box<Asn>),
    AlreadyDelivered,
    /// Another dispatcher holds the lease.
    InProgress,
    Unknown,
}

/// The transactional outbox of ASNs awaiting delivery.
pub trait AsnOutbox: Send + Sync {
    /// Undelivered ASNs nobody has claimed (or whose claim has lapsed),
    /// claimed for `lease`.
    fn claim_undelivered(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Asn>, StoreError>> + Send;

    /// Takes the delivery lease for one ASN unless it was delivered already.
    fn begin_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> impl Future<Output = Result<DeliveryStart, StoreError>> + Send;

    /// Records delivery: from now on `begin_delivery` answers `AlreadyDelivered`.
    fn finish_delivery(
        &self,
        id: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records each delivery as [`finish_delivery`](Self::finish_delivery)
    /// does and appends its audit event; one answer per entry, in order:
    /// `Err` when the delivery is not recorded (the ASN will be delivered
    /// again), [`DeliveryRecord::Unaudited`] when it is recorded but its
    /// event could not be written. The ids are distinct. With as few writes
    /// as the store allows (DynamoDB: one `TransactWriteItems` for all of
    /// them, falling back to the two writes each if it fails); by default
    /// the two writes each, in that order.
    fn record_deliveries(
        &self,
        deliveries: &[(&str, &AuditEvent)],
        at: OffsetDateTime,
    ) -> impl Future<Output = Vec<Result<DeliveryRecord, StoreError>>> + Send
    where
        Self: AuditTrail,
    {
        async move {
            let mut answers = Vec::with_capacity(deliveries.len());
            for (id, event) in deliveries {
                answers.push(record_one(self, id, event, at).await);
            }
            answers
        }
    }
}

/// What recording one finished delivery came to.
#[derive(Debug)]
pub enum DeliveryRecord {
    /// Recorded, and its audit event written.
    Audited,
    /// Recorded (never delivered again), but its audit event could not be
    /// written.
    Unaudited(StoreError),
}

/// One delivery recorded with the two writes: the record, then its event.
/// What [`AsnOutbox::record_deliveries`] does by default, and what a store
/// that batches falls back to.
pub async fn record_one<S: AsnOutbox + AuditTrail + ?Sized>(
    store: &S,
    id: &str,
    event: &AuditEvent,
    at: OffsetDateTime,
) -> Result<DeliveryRecord, StoreError> {
    store.finish_delivery(id, at).await?;
    Ok(match store.append(event).await {
        Ok(()) => DeliveryRecord::Audited,
        Err(e) => DeliveryRecord::Unaudited(e),
    })
}

/// Hands ASN ids to the dispatcher (SQS in production, a wake-up locally).
pub trait AsnQueue: Send + Sync {
    fn enqueue(&self, ids: &[String]) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The hand-off of ASN ids to the dispatcher failed. The ASNs are already
/// in the outbox, so the sweep delivers them: a queue fault is logged, and
/// is never a store fault or the caller's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ASN queue is unavailable: {0}")]
pub struct QueueError(pub String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub plans: usize,
    pub accesses: usize,
    pub notifications: usize,
    pub receipts: usize,
}

pub trait Retention: Send + Sync {
    /// Removes plans whose `purge_from` is on or before `today`; then, for
    /// children with no plan left, their accesses, check receipts and
    /// delivered ASNs.
    fn purge(&self, today: Date) -> impl Future<Output = Result<PurgeReport, StoreError>> + Send;
}

pub trait AuditTrail: Send + Sync {
    /// Appends; nothing ever updates or deletes an audit event.
    fn append(&self, event: &AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Reading the audit trail back (operators, and the tests that count events).
pub trait AuditReader: Send + Sync {
    fn audit_events(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (throttling, a network fault).
    #[error("delivery failed for now: {0}")]
    Transient(String),
    /// Will not succeed as it is (configuration).
    #[error("delivery is impossible: {0}")]
    Permanent(String),
}

/// What the MESH leg did with an ASN file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSent {
    Sent,
    /// Tracking found it sent before (a crash after the send, or a
    /// duplicate delivery attempt): not sent again.
    AlreadySent,
}

/// Sends an ASN to a council's MESH mailbox as a `REPC_MT000004GB01` file,
/// exactly once: the MESH local id is the ASN's id, and before sending,
/// tracking by it decides (so a crash between the send and the record of
/// delivery does not send it twice). Errors: `Transient` (MESH unavailable:
/// retried later), `Permanent` (this ASN can never become a valid file, or
/// MESH refuses it: the other legs still go, and the caller logs it).
pub trait AsnFileChannel: Send + Sync {
    /// `council_name` is what the file names the recipient council.
    fn send_asn_file(
        &self,
        mailbox: &MailboxId,
        asn: &Asn,
        council_name: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<FileSent, DeliveryError>> + Send;
}

/// Delivers a rendered notice to a council's duty-team channels.
pub trait NotificationChannel: Send + Sync {
    fn deliver(
        &self,
        authority: &Authority,
        notice: &NoticeText,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;

    /// Delivers each notice to its council; one answer per notice, in order.
    /// `Ok`: delivered. `Err`: not delivered, or not known to be (a call
    /// that failed as a whole): the caller retries it, and an entry that
    /// answered `Ok` is never sent again by the caller. Where the channel
    /// can, one call for several (SNS `PublishBatch`, per topic); by default
    /// one [`deliver`](Self::deliver) each, in order.
    fn deliver_batch(
        &self,
        notices: &[(&Authority, &NoticeText)],
    ) -> impl Future<Output = Vec<Result<(), DeliveryError>>> + Send {
        async move {
            let mut answers = Vec::with_capacity(notices.len());
            for (authority, notice) in notices {
                answers.push(self.deliver(authority, notice).await);
            }
            answers
        }
    }
}
