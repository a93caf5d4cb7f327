//! The MESH leg of ASN delivery ([`AsnFileChannel`] over a [`Mailbox`]):
//! each ASN as a `REPC_MT000004GB01` file in its council's mailbox, exactly
//! once. The domain's dispatcher decides when (`cpis_domain::MeshFiles`:
//! the operator's map, then this leg before SMS and email).

use cpis_domain::ports::{AsnFileChannel, DeliveryError, FileSent};
use cpis_domain::{Asn, MailboxId};
use cpis_hl7v3::{render_asn, AsnContext};
use time::OffsetDateTime;

use crate::{Mailbox, MeshError, Outgoing};

/// Sends ASN files from the CP-IS mailbox with the ASN workflow id.
#[derive(Debug, Clone)]
pub struct MeshAsnFiles<M> {
    mailbox: M,
    workflow: String,
}

impl<M: Mailbox> MeshAsnFiles<M> {
    /// `mailbox`: the CP-IS mailbox; `workflow`: `Mex-WorkflowID` of ASN
    /// files (default `CPIS_ASN`; the real one is not public).
    pub fn new(mailbox: M, workflow: impl Into<String>) -> Self {
        Self {
            mailbox,
            workflow: workflow.into(),
        }
    }
}

/// MESH unavailable is worth retrying; a refusal (an unknown recipient, a
/// workflow the mailbox may not send) will not pass on retry.
fn delivery_error(error: MeshError) -> DeliveryError {
    match error {
        MeshError::Transient(why) => DeliveryError::Transient(format!("MESH: {why}")),
        MeshError::Refused(why) => {
            DeliveryError::Permanent(format!("MESH refused the file: {why}"))
        }
    }
}

impl<M: Mailbox> AsnFileChannel for MeshAsnFiles<M> {
    /// The MESH local id is the ASN id, and tracking by it comes first: a
    /// file sent before a crash (before delivery was recorded) is found and
    /// not sent again. `Permanent` when the ASN cannot be a valid file: its
    /// plan predates the upload file id being kept, a person author without
    /// an SDS job role, a system author whose id is not a 12-digit ASID.
    async fn send_asn_file(
        &self,
        mailbox: &MailboxId,
        asn: &Asn,
        council_name: &str,
        now: OffsetDateTime,
    ) -> Result<FileSent, DeliveryError> {
        if self
            .mailbox
            .track(&asn.id)
            .await
            .map_err(delivery_error)?
            .is_some()
        {
            return Ok(FileSent::AlreadySent);
        }
        let sequence = asn
            .first_plan()
            .and_then(|plan| plan.upload_sequence)
            .ok_or_else(|| {
                DeliveryError::Permanent(
                    "the plan was stored before cpis kept the upload file it came from".to_owned(),
                )
            })?;
        let upload_file_id = sequence.to_string();
        let context = AsnContext {
            created_at: now,
            council_name,
            upload_file_id: &upload_file_id,
            job_role: asn.accessor.job_role.as_ref(),
            // cpis does not take the accessing person's name (README
            // decisions): the schema's nullFlavor says it is unknown.
            person_name: None,
        };
        let xml = render_asn(asn, &context).map_err(|why| {
            DeliveryError::Permanent(format!("the ASN file cannot be made: {why}"))
        })?;
        let file_name = format!("CPIS_ASN_{}_{}.xml", asn.authority, asn.id);
        self.mailbox
            .send(&Outgoing {
                to: mailbox.as_str(),
                workflow_id: &self.workflow,
                file_name: &file_name,
                local_id: &asn.id,
                subject: None,
                body: xml.as_bytes(),
            })
            .await
            .map_err(delivery_error)?;
        tracing::info!(
            asn_id = %asn.id,
            council = %asn.authority,
            to = %mailbox,
            "ASN file sent"
        );
        Ok(FileSent::Sent)
    }
}
