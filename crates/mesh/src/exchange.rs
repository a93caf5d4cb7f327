//! The exchange: the CP-IS mailbox's traffic turned into the domain's
//! uploads, and their acknowledgements sent back (issue 13). Generic over the
//! [`Mailbox`] port and the store ports, so `cpis serve`, the AWS poller and
//! the tests run the same code.
//!
//! One [`poll`] reads the inbox page by page, oldest first, and handles each
//! message:
//!
//! - **REPORT** (MESH's own report on a message the CP-IS mailbox sent, e.g.
//!   a council that did not collect a file within 5 days): logged at error
//!   level, ids and status only; a report on an ASN file (its local id is the
//!   ASN's id) says so: the ASN stays in the council's inbox
//!   (`GET /v1/notifications`). Then acknowledged.
//! - **DATA from a mailbox no council is linked to**: nothing changes; logged
//!   at error level with the mailbox and message ids; **left in the inbox**,
//!   so that a link made within MESH's 5 days processes it at the next poll,
//!   and otherwise MESH returns a non-delivery report to the sender.
//! - **DATA with another workflow id** than the upload workflow: the same
//!   (not processed, logged, left in the inbox: the sender learns of it from
//!   MESH's non-delivery report rather than from a silent acknowledgement).
//! - **An upload file** from a linked mailbox: read with `cpis_hl7v3`; a file
//!   whose sending organisation is not the linked council is refused (CPF01);
//!   otherwise the one upload use case ([`receive_upload`]) runs as that
//!   council (the audit names the mailbox); the acknowledgement is rendered
//!   from the file in hand and the outcomes (for a replay, the stored ones),
//!   sent to the sending mailbox with the acknowledgement workflow id, and
//!   only then is the inbound message acknowledged.
//!
//! **Exactly once.** The acknowledgement's MESH local id is derived from the
//! inbound message id ([`ack_local_id`]); before sending, tracking by that
//! local id decides, so a crash between the send and MESH's acknowledge does
//! not send it twice, and a replayed file (a new message) is acknowledged
//! again. A crash anywhere between download and acknowledge loses nothing:
//! the message is still in the inbox, and the upload ledger (sequence and
//! digest) makes the re-run a replay that applies nothing twice.
//!
//! **Order.** A council's files are applied in inbox order: when one cannot
//! be finished now (an upload of the council in progress, a refused send),
//! the council's later files in the same poll wait for the next one, so a
//! transient fault never turns file 457 into a stale sequence behind 458.
//!
//! Logs carry mailbox ids, message ids, file ids, ODS codes and counts:
//! never a file's content, name or subject.

use std::collections::HashSet;

use cpis_domain::ports::{AuditTrail, AuthorityDirectory, MailboxMap, PlanStore, UploadLedger};
use cpis_domain::upload::body_digest;
use cpis_domain::{Clock, FeedLog, MailboxId, VisibilityPolicy};

use crate::{Mailbox, MessageType};

mod file;

pub use file::Handled;

/// Most inbox pages one poll reads (MESH lists up to 500 ids a page by
/// default): a bound on a listing that never ends, not a limit a real inbox
/// reaches between two polls.
pub const MAX_PAGES: usize = 100;

/// What the exchange is configured with (`cpis serve --mesh-*`, the AWS
/// poller's settings).
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// `Mex-WorkflowID` of the councils' LA Upload files (default
    /// `CPIS_LA_UPLOAD`; the real one is not public).
    pub upload_workflow: String,
    /// `Mex-WorkflowID` of the acknowledgements sent back (default
    /// `CPIS_LA_UPLOAD_ACK`).
    pub ack_workflow: String,
    /// The visibility rules the uploads are stored under.
    pub policy: VisibilityPolicy,
}

/// The store ports the exchange uses.
pub trait ExchangeStore:
    PlanStore + UploadLedger + FeedLog + AuditTrail + AuthorityDirectory + MailboxMap
{
}
impl<T> ExchangeStore for T where
    T: PlanStore + UploadLedger + FeedLog + AuditTrail + AuthorityDirectory + MailboxMap
{
}

/// Why a poll stopped before the end of the inbox. What was not handled
/// stays in the inbox for the next poll.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Mesh(#[from] crate::MeshError),
    #[error(transparent)]
    Store(#[from] cpis_domain::ports::StoreError),
}

/// Counts from one poll (what each message came to), and why it stopped
/// early, if it did.
#[derive(Debug, Default)]
pub struct PollReport {
    /// Message ids the inbox listed.
    pub listed: usize,
    /// Upload files applied for the first time and acknowledged.
    pub applied: usize,
    /// Upload files answered from the ledger (a replayed file, or a
    /// message handled again after a crash) and acknowledged.
    pub replayed: usize,
    /// Files refused whole (CPF01: unreadable, another council's, a reused
    /// or stale file id) and acknowledged.
    pub refused: usize,
    /// MESH reports logged and acknowledged.
    pub reports: usize,
    /// Left in the inbox on purpose: from an unlinked mailbox, or another workflow.
    pub left: usize,
    /// Of `left`, those from a mailbox no council is linked to (or whose
    /// sender is not a mailbox id): what an operator's link would take in.
    pub unlinked: usize,
    /// Left for the next poll: could not be finished now, or a later file of
    /// a council whose earlier one could not.
    pub deferred: usize,
    /// Listed, but MESH no longer had it (another poller took it).
    pub gone: usize,
    pub stopped: Option<PollError>,
}

/// The MESH local id of the acknowledgement of inbound message
/// `message_id`: `ACK_` and the id (or, for an id that is not letters,
/// digits, `-` and `_` of at most 100 characters, `ACK_` and its SHA-256 in
/// hex). Derived, never random: the same message always gives the same
/// local id, which is what tracking finds after a crash; a replayed file
/// arrives as a new message and gets an acknowledgement of its own.
pub fn ack_local_id(message_id: &str) -> String {
    if plain_id(message_id, 100) {
        format!("ACK_{message_id}")
    } else {
        format!("ACK_{}", body_digest(message_id.as_bytes()))
    }
}

/// Letters, digits, `-` and `_`, 1 to `max` characters: safe in a log line,
/// a header and a file name.
pub(crate) fn plain_id(id: &str, max: usize) -> bool {
    (1..=max).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An id from MESH as it may be logged: itself if plain, otherwise a
/// placeholder (MESH's ids are plain; anything else is not repeated).
pub(crate) fn shown(id: &str) -> &str {
    if plain_id(id, 100) {
        id
    } else {
        "(not a plain id)"
    }
}

/// Handles every message in the CP-IS mailbox's inbox once (see the module
/// documentation). Never fails as a whole: the report says what each
/// message came to, and `stopped` why it ended early (MESH unavailable, the
/// store failing); anything not finished is still in the inbox.
pub async fn poll<M, S>(
    mailbox: &M,
    store: &S,
    config: &ExchangeConfig,
    clock: &dyn Clock,
) -> PollReport
where
    M: Mailbox,
    S: ExchangeStore,
{
    let mut report = PollReport::default();
    // Councils (by sending mailbox) one of whose files could not be
    // finished in this poll: their later files wait.
    let mut held: HashSet<String> = HashSet::new();
    let mut continue_from: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = match mailbox.inbox(continue_from.as_deref()).await {
            Ok(page) => page,
            Err(error) => {
                report.stopped = Some(error.into());
                return report;
            }
        };
        report.listed += page.ids.len();
        for id in &page.ids {
            match handle(mailbox, store, config, clock, id, &mut held).await {
                Ok(outcome) => outcome.count(&mut report),
                Err(stop) => {
                    tracing::error!(
                        mailbox = %mailbox.mailbox_id(),
                        message_id = shown(id),
                        error = %stop,
                        "the MESH poll stopped; what was not handled stays in the inbox"
                    );
                    report.stopped = Some(stop);
                    return report;
                }
            }
        }
        match page.continue_from {
            Some(next) => continue_from = Some(next),
            None => return report,
        }
    }
    tracing::warn!(
        mailbox = %mailbox.mailbox_id(),
        pages = MAX_PAGES,
        "the MESH inbox listing did not end; the rest waits for the next poll"
    );
    report
}

/// One message: downloaded, classified, handled.
async fn handle<M, S>(
    mailbox: &M,
    store: &S,
    config: &ExchangeConfig,
    clock: &dyn Clock,
    id: &str,
    held: &mut HashSet<String>,
) -> Result<Handled, PollError>
where
    M: Mailbox,
    S: ExchangeStore,
{
    let Some(message) = mailbox.download(id).await? else {
        tracing::info!(message_id = shown(id), "a listed MESH message is gone");
        return Ok(Handled::Gone);
    };
    let meta = &message.meta;
    if meta.message_type == MessageType::Report {
        log_report(mailbox, meta);
        mailbox.acknowledge(id).await?;
        return Ok(Handled::Report);
    }
    let Ok(from) = MailboxId::parse(&meta.from.to_ascii_uppercase()) else {
        tracing::error!(
            message_id = shown(id),
            "a MESH file's sending mailbox is not a MESH mailbox id; nothing changed, the file is left in the inbox"
        );
        return Ok(Handled::Unlinked);
    };
    let Some(council) = store.council_of(&from).await? else {
        tracing::error!(
            from = %from,
            message_id = shown(id),
            "a file from a MESH mailbox no council is linked to: nothing changed, and it is left in the inbox (link it with `cpis mesh link`; MESH reports non-delivery to the sender after 5 days)"
        );
        return Ok(Handled::Unlinked);
    };
    if meta.workflow_id.as_deref() != Some(config.upload_workflow.as_str()) {
        tracing::error!(
            from = %from,
            %council,
            message_id = shown(id),
            workflow_id = meta.workflow_id.as_deref().map_or("(none)", shown),
            expected = %config.upload_workflow,
            "a file with another workflow id than the upload workflow: not processed, left in the inbox"
        );
        return Ok(Handled::Left);
    }
    if held.contains(from.as_str()) {
        return Ok(Handled::Deferred);
    }
    let outcome =
        file::handle_upload(mailbox, store, config, clock, &message, &from, &council).await?;
    if outcome == Handled::Deferred {
        held.insert(from.as_str().to_owned());
    }
    Ok(outcome)
}

/// A MESH report, at error level: ids and status only.
fn log_report<M: Mailbox>(mailbox: &M, meta: &crate::MessageMeta) {
    let local_id = meta.local_id.as_deref().unwrap_or("");
    let message_id = shown(&meta.id);
    let linked_message_id = meta.linked_message_id.as_deref().map_or("(none)", shown);
    let status_code = meta.status_code.as_deref().map_or("(none)", shown);
    let status = meta
        .status_description
        .as_deref()
        .filter(|d| d.len() <= 200 && !d.chars().any(char::is_control))
        .unwrap_or("(none)");
    if uuid::Uuid::parse_str(local_id).is_ok() {
        tracing::error!(
            mailbox = %mailbox.mailbox_id(),
            message_id,
            linked_message_id,
            asn_id = local_id,
            status_code,
            status,
            "MESH reports that an ASN file was not delivered; the ASN stays in the council's inbox (GET /v1/notifications)"
        );
    } else {
        tracing::error!(
            mailbox = %mailbox.mailbox_id(),
            message_id,
            linked_message_id,
            local_id = if local_id.is_empty() { "(none)" } else { shown(local_id) },
            status_code,
            status,
            "MESH reports on a message the CP-IS mailbox sent"
        );
    }
}
