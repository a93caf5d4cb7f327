//! The acknowledgement vocabulary of an upload (CP-ISUploadFileResponse and
//! CP-ISUploadRecordResponse): what a council is told, what the ledger
//! stores and replays. Plain values, below the ports that store them and the
//! upload use case that decides them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMode {
    /// Upsert the records and withdraw those listed.
    Delta,
    /// A snapshot: every plan of the council not in the batch is withdrawn.
    Full,
}

/// CP-ISUploadFileResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileOutcome {
    /// Malformed: nothing loaded.
    #[serde(rename = "CPF01")]
    Malformed,
    /// All loaded.
    #[serde(rename = "CPF02")]
    AllLoaded,
    /// Partially loaded: invalid records rejected.
    #[serde(rename = "CPF03")]
    Partial,
    /// None loaded.
    #[serde(rename = "CPF04")]
    NoneLoaded,
}

/// CP-ISUploadRecordResponse (CPR01–CPR05 need PDS and are out of scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOutcomeCode {
    #[serde(rename = "CPR06")]
    Success,
    #[serde(rename = "CPR07")]
    Failure,
}

/// Why a record failed. Stable codes: councils' systems match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordDetail {
    NotAnObject,
    UnexpectedField,
    MissingNhsNumber,
    MissingMothersNhsNumber,
    InvalidNhsNumber,
    MissingPlanType,
    UnknownPlanType,
    MissingStartDate,
    InvalidDate,
    StartDateInFuture,
    EndBeforeStart,
    DeleteBeforeStart,
    DueDateNotUnborn,
    DueBeforeStart,
    InvalidLocalId,
    DuplicateInBatch,
    /// A member name given twice in the record (RFC 8259 leaves the meaning
    /// open; we do not guess which value was meant). `location` points at it.
    RepeatedMember,
    /// Accepted, but already past visibility: nothing is stored (data minimisation).
    ExpiredNotStored,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOutcome {
    pub index: usize,
    pub outcome: RecordOutcomeCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<RecordDetail>,
    /// JSON pointer to the failing field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The acknowledgement of one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub sequence: u64,
    pub mode: UploadMode,
    pub file_outcome: FileOutcome,
    pub loaded: usize,
    pub rejected: usize,
    pub withdrawn: usize,
    pub records: Vec<RecordOutcome>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawals: Vec<RecordOutcome>,
    /// Set when a full snapshot withdrew nothing to protect plans its failed
    /// records may have been meant to update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawals_held_back: Option<String>,
}
