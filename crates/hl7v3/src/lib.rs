//! The councils' CP-IS interface in HL7 v3, pure (no I/O): the **LA Upload**
//! (`REPC_MT000002GB01`) read into the batch the JSON route takes, and the
//! **Acknowledgement Response** (`REPC_MT000003GB01`) and **Access to Service
//! Notification** (`REPC_MT000004GB01`) rendered. Message trees, XPaths,
//! OIDs and codes: `shared/domain/council-interface.md`; schemas:
//! `shared/hl7v3/CPIS/`.
//!
//! # One upload path
//!
//! [`parse_upload`] reads a file into an [`UploadFile`];
//! [`UploadFile::batch_json`] renders the batch as the JSON route's body
//! (`{"sequence", "mode", "records"}`), which goes through the domain's
//! `process_upload` unchanged: same validation, same sequence ledger (the
//! file id is the sequence), same outcomes, same audit. The body is a pure
//! function of the file's content, so a replayed file has the same digest
//! and gets the stored acknowledgement. [`render_acknowledgement`] then turns
//! the domain's [`cpis_domain::Acknowledgement`] back into the XML, mapping
//! each record outcome's JSON pointer to the XPath of the element it came
//! from.
//!
//! # What is read, what is dropped
//!
//! | Upload | Becomes |
//! |---|---|
//! | `id/@extension` | the sequence (digits, 1 to 2^53 - 1; zero padding kept for the echo) |
//! | `transmissionQuantity/@value` | checked: must equal the number of `record`s (CPF01) |
//! | `creationTime/@value` | checked (`TS`), kept as sent |
//! | `communicationFunctionSnd/organisation` (`id`, `name`, `telecom`) | the sending council, echoed back as the acknowledgement's receiver; its ODS code for the caller to compare with the mailbox's council |
//! | each `pertinentInformation` of a `record` | one domain record: `plan_type` from the template (`LACInformation` → `LAC`, `CPPInformation` → `CPP`, `UCPInformation` → `UCPP`), `start_date`, `end_date`, `delete_date` from `component`, `component1`, `component2` |
//! | `Child/id` (NHS number root) | `nhs_number` of its LAC and CPP plans |
//! | `UnbornChild/parentMotherPerson/playedMother/id` (NHS number root) | `nhs_number` (the mother's) of its UCP plan |
//! | `id` with the local-id root (`…18.24`) | `local_id` |
//! | `birthTime`, `name/given`, `name/family` | **dropped**: their shape is checked, their values are never stored, logged or put into an error; only the acknowledgement echoes them, read again from the file in hand while it is rendered |
//! | `assigningAuthorityName` | dropped (echoed in the acknowledgement) |
//! | `npfitlc:contentId`, fixed-value attributes (`classCode`…), comments, processing instructions, attributes with a prefix | ignored |
//!
//! # Refused
//!
//! A file is refused whole (CPF01, [`FileError`] with an XPath, nothing
//! loaded) when it is larger than [`MAX_FILE_BYTES`], not UTF-8, carries a
//! `<!DOCTYPE` (no DTD is ever read, so no entity is declared or expanded),
//! refers to any entity but XML's five, is not well-formed, its document
//! element is not `File` in `urn:hl7-org:v3`, an envelope element is missing,
//! repeated, unknown or malformed, `transmissionQuantity` disagrees with the
//! records, or it carries more than [`MAX_RECORDS`] records or plans.
//! [`render_file_rejection`] acknowledges it with the file id when read,
//! otherwise `-1`.
//!
//! A fault inside one `record` (an element missing, repeated beyond the
//! schema, unknown, an id root that is neither the NHS number's nor the local
//! id's) fails that record only: CPR07 with the XPath of the fault. So do the
//! domain's checks (an NHS number with a bad check digit, an end before the
//! start, a duplicate plan...), each with the XPath of the element or
//! attribute that carried the value.
//!
//! # Decisions the public specification does not fix
//!
//! - A record carrying several plans becomes one domain record per plan; the
//!   record is acknowledged as rejected (`invalidCP-ISRecord`, counted in
//!   `failedReturnedCP-ISRecords`) when any of its plans is, though its other
//!   plans are loaded; one `acknowledgementRecordDetail` per failing plan.
//! - A record's structural fault is a CPR07 for that record, not a CPF01 for
//!   the file: one bad record does not stop a council's other flags.
//! - The UCP end date is the plan's `end_date` (not `due_date`): the schema
//!   has no due date; visibility (28 days after the earlier of the two) is
//!   the same either way. A UCP plan without an end date is a CPR07 (the
//!   schema makes it mandatory).
//! - Plan dates: 8, 12 or 14 digits (with an optional offset after 12 or 14)
//!   are read; the calendar date is the one written. The echo writes 12.
//! - Locations are absolute XPaths into the upload, no prefixes, with an
//!   index on every element the schema lets repeat (`record`,
//!   `pertinentInformation`, `subject`, `id`, `telecom`), e.g.
//!   `/File/record[3]/CP-ISRecord/pertinentInformation[1]/COCT_TP146102GB01.UCPInformation/component1/uCPEndDate/value/@value`.
//!   A missing element is located at where it should be.
//! - CPR07's detail travels in `code/originalText` as `DETAIL_CODE: reason`
//!   (the CP-ISUploadRecordResponseDetail vocabulary is not public); the
//!   display name is the published vocabulary's spelling,
//!   "Unsucessful Record Upload". Only failures are listed in
//!   `acknowledgementRecord`; every record is echoed in `message`, except one
//!   whose XML is too broken to echo validly.
//! - A CPF01 acknowledgement carries `transmissionQuantity` -1 and zero
//!   counts; since the file code cannot carry text, the reason and the XPath
//!   of the fault go in one `acknowledgementRecordDetail` coded CPF01 (code
//!   system CP-ISUploadFileResponse), `originalText` and `location`.
//! - Only UTF-8 files are read (an `encoding` declaration of anything else is
//!   CPF01).
//! - An ASN carries one access (`TotalReturnedRecords` 1); a person author
//!   needs its SDS job role (the schema requires it; the domain keeps it
//!   from the credential's optional `job_role` claims) and gets
//!   `nullFlavor="UNK"` for a name not given; a system author's id must be a
//!   12-digit ASID.

mod ack;
mod asn;
mod tree;
mod ts;
mod upload;
mod xml;
#[cfg(feature = "test-support")]
pub mod xsd;

pub use ack::{render_acknowledgement, render_file_rejection, render_rejection};
pub use asn::{render_asn, AsnContext};
/// An SDS job role, as the domain keeps it from the credential.
pub use cpis_domain::JobRole;
pub use upload::{
    parse_upload, FileError, FileProblem, Organisation, RecordProblem, Telecom, UploadFile,
    MAX_FILE_BYTES, MAX_RECORDS,
};

/// The OIDs cpis reads and writes.
pub mod oid {
    /// NHS number (`id/@root`).
    pub const NHS_NUMBER: &str = "2.16.840.1.113883.2.1.4.1";
    /// A council's local identifier for the child or mother.
    pub const LOCAL_ID: &str = "2.16.840.1.113883.2.1.3.2.4.18.24";
    /// ODS organisation code.
    pub const ODS_ORGANISATION: &str = "2.16.840.1.113883.2.1.3.2.4.19.1";
    /// ODS site code.
    pub const ODS_SITE: &str = "2.16.840.1.113883.2.1.3.2.4.19.2";
    /// `npfitlc:contentId/@root` (template ids).
    pub const TEMPLATE: &str = "2.16.840.1.113883.2.1.3.2.4.18.16";
    /// CP-ISUploadFileResponse.
    pub const UPLOAD_FILE_RESPONSE: &str = "2.16.840.1.113883.2.1.3.2.4.17.474";
    /// CP-ISUploadRecordResponse.
    pub const UPLOAD_RECORD_RESPONSE: &str = "2.16.840.1.113883.2.1.3.2.4.17.473";
    /// SDS JobRoleName.
    pub const SDS_JOB_ROLE: &str = "2.16.840.1.113883.2.1.3.2.4.17.124";
    /// SDS user id.
    pub const SDS_USER: &str = "1.2.826.0.1285.0.2.0.65";
    /// Spine ASID (a care-setting system).
    pub const SDS_DEVICE: &str = "1.2.826.0.1285.0.2.0.107";
}

/// Why a message could not be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The acknowledgement does not belong to this file (another sequence,
    /// another number of plans), or the file no longer reads.
    #[error("the acknowledgement does not match the upload file")]
    NotTheFile,
    /// The council's directory entry has no usable phone number, and the
    /// acknowledgement's receiver needs one.
    #[error("the council's directory entry has no phone number for the acknowledgement")]
    NoPhone,
    #[error("an ASN or access id is not a UUID")]
    NotAUuid,
    #[error("a person author needs an SDS job role")]
    MissingJobRole,
    #[error("a system author's id is not a 12-digit ASID")]
    NotAnAsid,
    #[error("the upload file id of the plan is missing")]
    MissingUploadFileId,
}
