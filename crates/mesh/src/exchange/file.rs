//! One LA Upload file from a linked mailbox: read, checked, uploaded,
//! acknowledged exactly once.

use cpis_domain::ports::AuditTrail;
use cpis_domain::{
    receive_upload, AuditAction, AuditEvent, AuditOutcome, Authority, AuthorityContact, Clock,
    FileOutcome as UploadOutcome, MailboxId, OdsCode, Principal, Received, UploadError, UploadMode,
};
use cpis_hl7v3::{
    parse_upload, render_acknowledgement, render_file_rejection, render_rejection, UploadFile,
};
use time::OffsetDateTime;

use super::{ack_local_id, shown, ExchangeConfig, ExchangeStore, PollError, PollReport};
use crate::{Mailbox, MeshError, Message, Outgoing};

/// What one message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// An upload file applied for the first time, and acknowledged.
    Applied,
    /// An upload file answered from the ledger, and acknowledged.
    Replayed,
    /// A file refused whole (CPF01), and acknowledged.
    Refused,
    /// A MESH report, logged and acknowledged.
    Report,
    /// Left in the inbox on purpose: another workflow.
    Left,
    /// Left in the inbox on purpose: from a mailbox no council is linked to.
    Unlinked,
    /// Left for the next poll.
    Deferred,
    /// MESH no longer had it.
    Gone,
}

impl Handled {
    pub(super) fn count(self, report: &mut PollReport) {
        if self == Self::Unlinked {
            report.unlinked += 1;
        }
        let slot = match self {
            Self::Applied => &mut report.applied,
            Self::Replayed => &mut report.replayed,
            Self::Refused => &mut report.refused,
            Self::Report => &mut report.reports,
            Self::Left | Self::Unlinked => &mut report.left,
            Self::Deferred => &mut report.deferred,
            Self::Gone => &mut report.gone,
        };
        *slot += 1;
    }
}

/// The XPath a refusal for the sender's ODS code points at.
const SENDER_ID: &str = "/File/communicationFunctionSnd/organisation/id/@extension";
/// The XPath a refusal for the file id points at.
const FILE_ID: &str = "/File/id/@extension";

/// An acknowledgement ready to send, and what the message came to once it is.
struct Reply {
    xml: String,
    /// The file id as the acknowledgement names it (`-1` when unread).
    file_id: String,
    outcome: Handled,
}

/// Reads, checks and uploads one file from `from` (linked to `council`),
/// sends its acknowledgement once and acknowledges the message.
pub(super) async fn handle_upload<M, S>(
    mailbox: &M,
    store: &S,
    config: &ExchangeConfig,
    clock: &dyn Clock,
    message: &Message,
    from: &MailboxId,
    council: &OdsCode,
) -> Result<Handled, PollError>
where
    M: Mailbox,
    S: ExchangeStore,
{
    let id = message.meta.id.as_str();
    let now = clock.now();
    // The council acts through its mailbox: the audit names the mailbox.
    let principal = Principal::Council {
        authority: council.clone(),
        client_id: format!("mesh:{from}"),
    };
    let trace_id = format!("mesh:{}", shown(id));
    let reply = match parse_upload(&message.body) {
        Err(error) => {
            tracing::warn!(
                %from, %council, message_id = shown(id),
                problem = error.problem.code(), location = %error.location,
                "an upload file could not be read: refused whole (CPF01)"
            );
            let contact = match store.authority(council).await? {
                Some(entry) => entry.contact(),
                None => Authority::unlisted_contact(council),
            };
            match render_file_rejection(&error, &contact, now) {
                Ok(xml) => {
                    audit_refusal(store, &principal, now, &trace_id).await;
                    Reply {
                        xml,
                        file_id: error.file_id.clone().unwrap_or_else(|| "-1".to_owned()),
                        outcome: Handled::Refused,
                    }
                }
                Err(why) => {
                    tracing::error!(
                        %council, message_id = shown(id), error = %why,
                        "cannot acknowledge an unreadable file without the council's phone numbers (its directory entry): left in the inbox until it has one"
                    );
                    return Ok(Handled::Deferred);
                }
            }
        }
        Ok(file) if &file.sender.ods_code != council => {
            tracing::error!(
                %from, %council, file_sender = %file.sender.ods_code, message_id = shown(id),
                file_id = %file.file_id,
                "an upload file names another council than the one its mailbox is linked to: refused whole (CPF01)"
            );
            let reason = "SENDER_MISMATCH: the file's sending organisation is not the council this MESH mailbox belongs to";
            match refuse(&file, council, reason, SENDER_ID, now) {
                Some(reply) => {
                    audit_refusal(store, &principal, now, &trace_id).await;
                    reply
                }
                None => return Ok(Handled::Deferred),
            }
        }
        Ok(file) => {
            let body = file.batch_json(UploadMode::Delta);
            let received = receive_upload(
                store,
                &principal,
                council,
                &body,
                now,
                &config.policy,
                &trace_id,
            )
            .await;
            log_side_records(&received, council, &trace_id);
            match received.result {
                Ok(result) => {
                    let ack = &result.acknowledgement;
                    tracing::info!(
                        %from, %council, message_id = shown(id), file_id = %file.file_id,
                        outcome = outcome_code(ack.file_outcome), loaded = ack.loaded,
                        rejected = ack.rejected, replayed = result.replayed,
                        "upload file processed"
                    );
                    match render_acknowledgement(&message.body, ack, now) {
                        Ok(xml) => Reply {
                            xml,
                            file_id: file.file_id.clone(),
                            outcome: if result.replayed {
                                Handled::Replayed
                            } else {
                                Handled::Applied
                            },
                        },
                        Err(why) => {
                            tracing::error!(
                                %council, message_id = shown(id), error = %why,
                                "the acknowledgement could not be rendered: left in the inbox"
                            );
                            return Ok(Handled::Deferred);
                        }
                    }
                }
                Err(UploadError::InProgress { .. }) => {
                    tracing::info!(
                        %council, message_id = shown(id), file_id = %file.file_id,
                        "another upload of the council is being applied: the file waits for the next poll"
                    );
                    return Ok(Handled::Deferred);
                }
                Err(UploadError::Store(error)) => return Err(error.into()),
                Err(refused) => {
                    tracing::warn!(
                        %council, message_id = shown(id), file_id = %file.file_id,
                        error = %refused, "an upload file was refused whole (CPF01)"
                    );
                    match refuse(&file, council, &refusal_reason(&refused), FILE_ID, now) {
                        Some(reply) => reply,
                        None => return Ok(Handled::Deferred),
                    }
                }
            }
        }
    };
    let file_name = format!("CPIS_ACK_{council}_{}.xml", reply.file_id);
    if !send_once(mailbox, config, from, id, &file_name, &reply.xml).await? {
        return Ok(Handled::Deferred);
    }
    mailbox.acknowledge(id).await?;
    Ok(reply.outcome)
}

/// Sends the acknowledgement of message `id` unless tracking finds it sent
/// already (a crash after the send). `Ok(false)`: MESH refused the send
/// (for example an unknown recipient): logged, the message waits.
async fn send_once<M: Mailbox>(
    mailbox: &M,
    config: &ExchangeConfig,
    to: &MailboxId,
    id: &str,
    file_name: &str,
    xml: &str,
) -> Result<bool, PollError> {
    let local_id = ack_local_id(id);
    if let Some(sent) = mailbox.track(&local_id).await? {
        tracing::info!(
            to = %to, message_id = shown(id), ack_message_id = shown(&sent.message_id),
            "the acknowledgement was sent before (found by its local id): not sent again"
        );
        return Ok(true);
    }
    let outgoing = Outgoing {
        to: to.as_str(),
        workflow_id: &config.ack_workflow,
        file_name,
        local_id: &local_id,
        subject: None,
        body: xml.as_bytes(),
    };
    match mailbox.send(&outgoing).await {
        Ok(sent) => {
            tracing::info!(
                to = %to, message_id = shown(id), ack_message_id = shown(&sent),
                "acknowledgement sent"
            );
            Ok(true)
        }
        Err(MeshError::Refused(why)) => {
            tracing::error!(
                to = %to, message_id = shown(id), error = %why,
                "MESH refused the acknowledgement: the file is left in the inbox and tried again at the next poll"
            );
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// A CPF01 for a file read whole: its id and sender are echoed.
fn refuse(
    file: &UploadFile,
    council: &OdsCode,
    reason: &str,
    location: &str,
    now: OffsetDateTime,
) -> Option<Reply> {
    // The receiver is the file's own sender; the contact is not used then.
    let unused: AuthorityContact = Authority::unlisted_contact(council);
    match render_rejection(
        Some(&file.file_id),
        Some(&file.sender),
        &unused,
        reason,
        location,
        now,
    ) {
        Ok(xml) => Some(Reply {
            xml,
            file_id: file.file_id.clone(),
            outcome: Handled::Refused,
        }),
        Err(why) => {
            tracing::error!(%council, file_id = %file.file_id, error = %why, "a refusal could not be rendered");
            None
        }
    }
}

/// The reason a CPF01 gives for a file the domain refused whole. Never a
/// value from the file but its id.
fn refusal_reason(error: &UploadError) -> String {
    match error {
        UploadError::SequenceReused { sequence } => format!(
            "FILE_ID_REUSED: file id {sequence} was already used for a different file; send the new file with the next id"
        ),
        UploadError::StaleSequence { sequence, latest } => format!(
            "FILE_ID_STALE: file id {sequence} is older than the latest file processed ({latest}); an older file never undoes a newer one"
        ),
        _ => "BATCH_REFUSED: the file's records could not be taken as one upload".to_owned(),
    }
}

fn outcome_code(outcome: UploadOutcome) -> &'static str {
    match outcome {
        UploadOutcome::Malformed => "CPF01",
        UploadOutcome::AllLoaded => "CPF02",
        UploadOutcome::Partial => "CPF03",
        UploadOutcome::NoneLoaded => "CPF04",
    }
}

/// A file refused before the upload use case ran is audited as the JSON
/// route audits a body it cannot read: `Upload`, `Invalid`; once its
/// refusal is rendered (one that waits in the inbox is audited when it is
/// answered).
async fn audit_refusal<S: AuditTrail>(
    store: &S,
    principal: &Principal,
    now: OffsetDateTime,
    trace_id: &str,
) {
    let event = AuditEvent::new(
        Some(principal),
        AuditAction::Upload,
        None,
        AuditOutcome::Invalid,
        now,
        trace_id,
    );
    if let Err(error) = store.append(&event).await {
        tracing::error!(trace_id, %error, "could not write the audit event");
    }
}

/// The upload stands either way: a failed feed or audit record is logged
/// at error level (the store's readiness shows the failed write).
fn log_side_records(received: &Received, council: &OdsCode, trace_id: &str) {
    if let Some(error) = &received.feed_error {
        tracing::error!(%error, %council, "could not record the council's full snapshot; its feed may be reported stale");
    }
    if let Some(error) = &received.audit_error {
        tracing::error!(trace_id, %error, "could not write the audit event");
    }
}
