//! The CP-IS domain: every rule of the service, and the ports the adapters
//! implement. Pure: no AWS, HTTP or database code lives here.
//!
//! Rules and their sources are in `shared/domain/cpis-brief.md`; each module
//! says which part it implements.

pub mod access;
pub mod acknowledgement;
pub mod audit;
pub mod authority;
pub mod check;
pub mod clock;
pub mod dates;
pub mod dispatch;
pub mod feed;
pub mod json;
pub mod mailbox;
pub mod nhs_number;
pub mod notification;
pub mod ods;
pub mod page;
pub mod plan;
pub mod ports;
pub mod principal;
pub mod sequencing;
pub mod session;
pub mod upload;
pub mod volume;

pub use access::{AccessRecord, AccessSummary, Accessor, COLLAPSE_WINDOW, HISTORY_LIMIT};
pub use acknowledgement::{
    Acknowledgement, FileOutcome, RecordDetail, RecordOutcome, RecordOutcomeCode, UploadMode,
};
pub use audit::{AuditAction, AuditEvent, AuditOutcome, Audited, Pseudonymiser};
pub use authority::{Authority, AuthorityContact, AuthorityUpdate, FieldError};
pub use check::{check, history, AccessEffect, CheckResult, HistoryAnswer, VisiblePlan};
pub use clock::{uk_date, uk_time, Clock, ManualClock, SystemClock};
pub use dispatch::{
    deliver_pending, deliver_pending_with, dispatch, dispatch_batch, dispatch_batch_with,
    dispatch_with, DispatchError, DispatchOutcome, Dispatched, FileDelivery, FileLeg, MeshFiles,
    NoFiles, SweepReport, DISPATCHER_ACTOR,
};
pub use feed::FeedLog;
pub use mailbox::{MailboxId, MailboxIdError};
pub use nhs_number::{find_nhs_numbers, NhsNumber, NhsNumberError};
pub use notification::{AckNote, AckNoteError, Asn, AsnCutoffs, AsnPlan, NoticeText};
pub use ods::{OdsCode, OdsCodeError};
pub use page::{InboxCursor, InvalidCursor, Page, PlanCursor};
pub use plan::{Plan, PlanKey, PlanType, VisibilityPolicy};
pub use principal::{AccessorKind, Clinician, JobRole, Principal, Rbac};
pub use sequencing::{LedgerHead, MAX_SEQUENCE};
pub use session::{PortalSession, PortalSessions, SecretDigest, SignInAttempt, StoredCheckResult};
pub use upload::{
    process_upload, receive_upload, rewind_sequence, Received, Rewind, RewindError, UploadError,
    UploadResult,
};
pub use volume::{VolumePolicy, VolumeWatch};
