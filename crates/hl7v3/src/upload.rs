//! The LA Upload, `REPC_MT000002GB01` (root `File`): read into the batch the
//! JSON route takes.

use std::fmt;

use cpis_domain::{OdsCode, UploadMode};
use serde::Serialize;

use crate::tree::{shown, Ns, Stream, Tree};

mod envelope;
mod path;
mod record;

use envelope::*;
use record::*;

/// Largest upload file read (bytes). The largest council's file (8,000
/// records at about 1.5 KB) is about 12 MB.
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;
/// Most records (and most plans: a record carries up to three) one file may
/// carry; the domain takes at most this many records a batch.
pub const MAX_RECORDS: usize = 10_000;
/// Longest file id read (the sequence is at most 2^53 - 1: 16 digits, and
/// councils may zero-pad).
const MAX_FILE_ID: usize = 20;

/// Why a whole file is refused: CPF01, nothing loaded. Stable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileProblem {
    /// Larger than [`MAX_FILE_BYTES`].
    Oversize,
    /// Not UTF-8 (broken bytes), or declares another encoding.
    NotUtf8,
    /// Carries a document type declaration (DTDs are never read).
    Doctype,
    /// Refers to an entity that is not one of XML's five predefined ones.
    UndefinedEntity,
    /// Not well-formed XML.
    NotWellFormed,
    /// Nested too deep, too many elements in one record, or a text or
    /// attribute too long.
    TooLarge,
    /// The document element is not `File` in `urn:hl7-org:v3`.
    NotAnUpload,
    MissingElement,
    RepeatedElement,
    UnexpectedElement,
    /// An attribute or text of the file's envelope is missing or malformed.
    InvalidValue,
    /// `transmissionQuantity` is not the number of `record` elements.
    CountMismatch,
    /// More than [`MAX_RECORDS`] records or plans.
    TooManyRecords,
}

impl FileProblem {
    /// A stable code for logs and audit.
    pub fn code(self) -> &'static str {
        match self {
            Self::Oversize => "OVERSIZE",
            Self::NotUtf8 => "NOT_UTF8",
            Self::Doctype => "DOCTYPE",
            Self::UndefinedEntity => "UNDEFINED_ENTITY",
            Self::NotWellFormed => "NOT_WELL_FORMED",
            Self::TooLarge => "TOO_LARGE",
            Self::NotAnUpload => "NOT_AN_UPLOAD",
            Self::MissingElement => "MISSING_ELEMENT",
            Self::RepeatedElement => "REPEATED_ELEMENT",
            Self::UnexpectedElement => "UNEXPECTED_ELEMENT",
            Self::InvalidValue => "INVALID_VALUE",
            Self::CountMismatch => "COUNT_MISMATCH",
            Self::TooManyRecords => "TOO_MANY_RECORDS",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Oversize => "the file is larger than 32 MiB; split it into several files with consecutive ids",
            Self::NotUtf8 => "the file is not UTF-8",
            Self::Doctype => "the file carries a document type declaration, which is not accepted",
            Self::UndefinedEntity => "the file refers to an undefined entity",
            Self::NotWellFormed => "the file is not well-formed XML",
            Self::TooLarge => "an element is nested too deep, a record has too many elements, or a value is too long",
            Self::NotAnUpload => "the document element is not an LA Upload File (urn:hl7-org:v3)",
            Self::MissingElement => "a mandatory element or attribute is missing",
            Self::RepeatedElement => "an element is given more times than the schema allows",
            Self::UnexpectedElement => "an element or text is not allowed here",
            Self::InvalidValue => "a value is malformed",
            Self::CountMismatch => "transmissionQuantity is not the number of records in the file",
            Self::TooManyRecords => "the file carries more than 10,000 records or plans; split it into several files with consecutive ids",
        }
    }
}

/// A CPF01: why, where (an XPath into the upload, no prefixes, 1-based
/// indexes), and what of the envelope was read before the failure (for the
/// acknowledgement). Its `Display` carries the reason and the XPath only,
/// never content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub problem: FileProblem,
    pub location: String,
    /// The file id as sent, when it was read and is a valid sequence: the
    /// acknowledgement echoes it; otherwise it says `-1`.
    pub file_id: Option<String>,
    /// The sending council as the file names it, when read whole.
    pub sender: Option<Box<Organisation>>,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) at {}",
            self.problem.describe(),
            self.problem.code(),
            self.location
        )
    }
}

impl std::error::Error for FileError {}

/// The sending council as its file names it (echoed back in the
/// acknowledgement's `communicationFunctionRcv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    /// `2.16.840.1.113883.2.1.3.2.4.19.1` (organisation) or `.19.2` (site).
    pub id_root: String,
    pub ods_code: OdsCode,
    pub name: String,
    /// One or two, as sent (`use`, `value`); values are `tel:` URIs.
    pub telecoms: Vec<Telecom>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telecom {
    /// e.g. `WP` (office hours) or `EC` (emergency contact).
    pub use_code: String,
    /// `tel:` and digits, optionally with a leading `+`.
    pub value: String,
}

impl Organisation {
    /// The telecom of a use code (`WP`, `EC`), without its `tel:` scheme.
    pub fn phone(&self, use_code: &str) -> Option<&str> {
        self.telecoms
            .iter()
            .find(|t| t.use_code.split_whitespace().any(|u| u == use_code))
            .and_then(|t| t.value.strip_prefix("tel:"))
    }
}

/// Why one record fails before the domain sees its values (CPR07): the
/// record's XML does not have the shape the schema gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordProblem {
    MissingElement,
    RepeatedElement,
    UnexpectedElement,
    /// An identifier's root is neither the NHS number's nor the local id's,
    /// or an attribute is missing.
    InvalidValue,
}

impl RecordProblem {
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingElement => "MISSING_ELEMENT",
            Self::RepeatedElement => "REPEATED_ELEMENT",
            Self::UnexpectedElement => "UNEXPECTED_ELEMENT",
            Self::InvalidValue => "INVALID_VALUE",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::MissingElement => "a mandatory element or attribute of the record is missing",
            Self::RepeatedElement => {
                "an element of the record is given more times than the schema allows"
            }
            Self::UnexpectedElement => "an element or text is not allowed here in the record",
            Self::InvalidValue => "an identifier or attribute of the record is malformed",
        }
    }
}

/// A parsed LA Upload: what cpis keeps of it. Names and dates of birth are
/// not in it: they are read only to check the record's shape and dropped
/// (the acknowledgement re-reads them from the file in hand).
#[derive(Clone, PartialEq)]
pub struct UploadFile {
    /// `id/@extension` as sent (e.g. `000457`).
    pub file_id: String,
    /// The file id as a number: the council's upload sequence.
    pub sequence: u64,
    /// `creationTime/@value` as sent.
    pub creation_time: String,
    pub sender: Organisation,
    /// `transmissionQuantity`: the number of `record` elements.
    pub record_count: usize,
    /// One per plan (a record carries one to three), in file order.
    pub(crate) rows: Vec<Row>,
}

impl fmt::Debug for UploadFile {
    /// No record content: NHS numbers and local ids stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadFile")
            .field("file_id", &self.file_id)
            .field("sequence", &self.sequence)
            .field("sender", &self.sender.ods_code)
            .field("record_count", &self.record_count)
            .field("plans", &self.rows.len())
            .finish_non_exhaustive()
    }
}

/// One plan of one record: the domain record it becomes, and where in the
/// file each of its fields came from.
#[derive(Clone, PartialEq)]
pub(crate) struct Row {
    /// 0-based index of the `record` element.
    pub record: usize,
    pub value: RowValue,
    pub paths: RowPaths,
    pub problem: Option<(RecordProblem, String)>,
}

/// The domain record, as the JSON route takes it. Members in sorted order
/// (as `serde_json`'s map writes them): a batch's bytes, and so its digest
/// in the sequence ledger, stay what earlier versions wrote.
#[derive(Clone, Default, PartialEq, Serialize)]
pub(crate) struct RowValue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// The marker member that makes the domain reject a record whose XML could
    /// not be read whole (it fails as an unexpected field): the record still has
    /// its own CPR07 outcome, and a full snapshot still protects its child.
    #[serde(rename = "hl7v3_record_error", skip_serializing_if = "is_false")]
    pub record_error: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nhs_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// Where a row's fields are in the file, kept as positions: an XPath is
/// written only when the domain rejects a field.
#[derive(Clone, PartialEq)]
pub(crate) enum RowPaths {
    /// A plan: `pertinentInformation[info + 1]/<kind's template>`.
    Plan {
        kind: PlanKind,
        info: usize,
        /// Which of start, end and delete dates the file gives.
        dates: [bool; 3],
        /// The subject the plan is held against, if the record gave one.
        subject: Option<SubjectPath>,
    },
    /// A record none of whose plans could be read (it always has a fault).
    Record,
}

#[derive(Clone, PartialEq)]
pub(crate) struct SubjectPath {
    pub index: usize,
    pub unborn: bool,
    /// 0-based indexes of the `id` elements that gave each identifier.
    pub nhs_id: Option<usize>,
    pub local_id: Option<usize>,
}

impl Row {
    /// The XPath for a domain outcome's pointer relative to the record
    /// (`/end_date`, or empty for the record as a whole): the field's
    /// element or attribute, or (when missing) the element that should hold
    /// it; a record with a structural fault, the fault's.
    pub fn xpath_for(&self, relative: &str) -> String {
        if let Some((_, at)) = &self.problem {
            return at.clone();
        }
        let field = relative.strip_prefix('/').unwrap_or(relative);
        let file = path::At::file();
        let record = file.nth("record", self.record + 1);
        let at = record.child("CP-ISRecord");
        let RowPaths::Plan {
            kind,
            info,
            dates,
            subject,
        } = &self.paths
        else {
            return at.xpath();
        };
        let info_at = at.nth("pertinentInformation", info + 1);
        let plan_at = info_at.child(kind.element());
        let date = |which: usize| match dates[which] {
            true => plan_at
                .child(record::DATE_COMPONENTS[which])
                .child(kind.date_element(which))
                .join("value/@value"),
            false => plan_at.xpath(),
        };
        let id = |j: usize, s: &SubjectPath| {
            let subject_at = at.nth("subject", s.index + 1);
            let template_at = subject_at.child(record::subject_template(s.unborn));
            let holder = template_at.child("parentMotherPerson");
            let holder = holder.child("playedMother");
            let holder = if s.unborn { &holder } else { &template_at };
            holder.nth("id", j + 1).join("@extension")
        };
        match (field, subject) {
            ("start_date", _) => date(0),
            ("end_date", _) => date(1),
            ("delete_date", _) => date(2),
            ("nhs_number", None) => at
                .child("subject")
                .join(record::subject_template(*kind == PlanKind::Ucp)),
            ("nhs_number", Some(s)) => match s.nhs_id {
                Some(j) => id(j, s),
                None => at
                    .nth("subject", s.index + 1)
                    .join(record::subject_template(s.unborn)),
            },
            (
                "local_id",
                Some(SubjectPath {
                    local_id: Some(j), ..
                }),
            ) => id(*j, subject.as_ref().unwrap_or_else(|| unreachable!())),
            _ => plan_at.xpath(),
        }
    }
}

/// The batch as the JSON route takes it; members in sorted order.
#[derive(Serialize)]
struct Batch<'r> {
    mode: &'static str,
    records: Vec<&'r RowValue>,
    sequence: u64,
}

impl UploadFile {
    /// The number of plans (domain records) the file carries.
    pub fn plan_count(&self) -> usize {
        self.rows.len()
    }

    /// The batch as the JSON route takes it (`POST /v1/uploads`):
    /// `{"mode", "records", "sequence"}`, one domain record per plan, in file
    /// order, members sorted. A pure function of the file's content, so the
    /// same file always gives the same bytes (and the same digest in the
    /// sequence ledger: a replayed file is answered from the stored
    /// acknowledgement). Names and dates of birth are not in it.
    pub fn batch_json(&self, mode: UploadMode) -> Vec<u8> {
        let batch = Batch {
            mode: match mode {
                UploadMode::Delta => "delta",
                UploadMode::Full => "full",
            },
            records: self.rows.iter().map(|row| &row.value).collect(),
            sequence: self.sequence,
        };
        // Strings, booleans and integers only: serialising cannot fail.
        serde_json::to_vec(&batch).unwrap_or_default()
    }
}

/// Reads an LA Upload. `Err` is a CPF01 (nothing is loaded); a record whose
/// own XML is malformed does not fail the file: it becomes a domain record
/// that fails (CPR07) with the XPath of the fault.
pub fn parse_upload(bytes: &[u8]) -> Result<UploadFile, FileError> {
    read(bytes, false).map(|(file, _)| file)
}

/// What the acknowledgement echoes of a record, read from the file in hand.
/// Not `Debug`, not `Clone`, not serialisable: it lives only while an
/// acknowledgement is rendered.
pub(crate) struct RecordEcho {
    /// Whether the echo is schema-valid (1..3 plans with dates, 1..2
    /// subjects read whole); a record that is not is listed in
    /// `acknowledgementRecord` but not echoed in `message`.
    pub echoable: bool,
    pub plans: Vec<PlanEcho>,
    pub subjects: Vec<SubjectEcho>,
}

pub(crate) struct PlanEcho {
    pub kind: PlanKind,
    /// 12-digit dates (`TS.NHS.DateType1`).
    pub start: String,
    pub end: Option<String>,
    pub delete: Option<String>,
}

pub(crate) struct SubjectEcho {
    pub unborn: bool,
    pub ids: Vec<IdEcho>,
    pub birth_time: String,
    pub given: String,
    pub family: String,
}

pub(crate) struct IdEcho {
    pub root: &'static str,
    pub extension: String,
    pub assigning_authority_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanKind {
    Lac,
    Cpp,
    Ucp,
}

impl PlanKind {
    fn from_element(name: &str) -> Option<Self> {
        match name {
            "COCT_TP146100GB01.LACInformation" => Some(Self::Lac),
            "COCT_TP146101GB01.CPPInformation" => Some(Self::Cpp),
            "COCT_TP146102GB01.UCPInformation" => Some(Self::Ucp),
            _ => None,
        }
    }

    pub fn element(self) -> &'static str {
        match self {
            Self::Lac => "COCT_TP146100GB01.LACInformation",
            Self::Cpp => "COCT_TP146101GB01.CPPInformation",
            Self::Ucp => "COCT_TP146102GB01.UCPInformation",
        }
    }

    pub fn content_id(self) -> &'static str {
        match self {
            Self::Lac => "COCT_TP146100GB01#LACInformation",
            Self::Cpp => "COCT_TP146101GB01#CPPInformation",
            Self::Ucp => "COCT_TP146102GB01#UCPInformation",
        }
    }

    /// Its start (0), end (1) or delete (2) date element, e.g. `cPPStartDate`.
    pub fn date_element(self, which: usize) -> &'static str {
        const NAMES: [[&str; 3]; 3] = [
            ["lACStartDate", "lACEndDate", "lACDeleteDate"],
            ["cPPStartDate", "cPPEndDate", "cPPDeleteDate"],
            ["uCPStartDate", "uCPEndDate", "uCPDeleteDate"],
        ];
        NAMES[self as usize][which.min(2)]
    }

    /// The prefix of its date elements: `lAC`, `cPP`, `uCP`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Lac => "lAC",
            Self::Cpp => "cPP",
            Self::Ucp => "uCP",
        }
    }

    fn plan_type(self) -> &'static str {
        match self {
            Self::Lac => "LAC",
            Self::Cpp => "CPP",
            Self::Ucp => "UCPP",
        }
    }
}

/// The file, and (when `echo`) what the acknowledgement echoes of each record.
pub(crate) fn read(bytes: &[u8], echo: bool) -> Result<(UploadFile, Vec<RecordEcho>), FileError> {
    let mut envelope = Envelope::default();
    let fail = |problem: FileProblem, location: &str, envelope: &Envelope| FileError {
        problem,
        location: location.to_owned(),
        file_id: envelope.file_id.as_ref().map(|(text, _)| text.clone()),
        sender: envelope.sender.clone().map(Box::new),
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(fail(FileProblem::Oversize, "/", &envelope));
    }
    let (mut stream, root) = Stream::open(bytes).map_err(|e| xml_fail(e, &envelope))?;
    if root.ns != Ns::Hl7 || root.name != "File" {
        return Err(fail(FileProblem::NotAnUpload, "/", &envelope));
    }
    let mut rows = Vec::new();
    let mut echoes = Vec::new();
    let mut records = 0usize;
    let mut seen: Vec<&'static str> = Vec::new();
    let mut tree = Tree::default();
    while stream
        .next_child("/File", &mut tree)
        .map_err(|e| xml_fail(e, &envelope))?
    {
        let child = tree.root();
        let name = match (child.ns(), child.name()) {
            (Ns::Hl7, "creationTime") => "creationTime",
            (Ns::Hl7, "id") => "id",
            (Ns::Hl7, "transmissionQuantity") => "transmissionQuantity",
            (Ns::Hl7, "communicationFunctionSnd") => "communicationFunctionSnd",
            (Ns::Hl7, "record") => "record",
            _ => {
                return Err(fail(
                    FileProblem::UnexpectedElement,
                    &format!("/File/{}", shown(child.name())),
                    &envelope,
                ))
            }
        };
        if name == "record" {
            records += 1;
            if records > MAX_RECORDS {
                return Err(fail(
                    FileProblem::TooManyRecords,
                    &format!("/File/record[{records}]"),
                    &envelope,
                ));
            }
            let (record_rows, record_echo) = read_record(child, records - 1, echo);
            rows.extend(record_rows);
            if rows.len() > MAX_RECORDS {
                return Err(fail(
                    FileProblem::TooManyRecords,
                    &format!("/File/record[{records}]"),
                    &envelope,
                ));
            }
            if let Some(e) = record_echo {
                echoes.push(e);
            }
            continue;
        }
        if seen.contains(&name) {
            return Err(fail(
                FileProblem::RepeatedElement,
                &format!("/File/{name}[2]"),
                &envelope,
            ));
        }
        seen.push(name);
        envelope
            .read(name, child)
            .map_err(|(problem, at)| fail(problem, &at, &envelope))?;
    }
    for name in [
        "creationTime",
        "id",
        "transmissionQuantity",
        "communicationFunctionSnd",
    ] {
        if !seen.contains(&name) {
            return Err(fail(
                FileProblem::MissingElement,
                &format!("/File/{name}"),
                &envelope,
            ));
        }
    }
    if records == 0 {
        return Err(fail(FileProblem::MissingElement, "/File/record", &envelope));
    }
    let (Some((file_id, sequence)), Some(creation_time), Some(quantity), Some(sender)) = (
        envelope.file_id.clone(),
        envelope.creation_time.clone(),
        envelope.quantity,
        envelope.sender.clone(),
    ) else {
        return Err(fail(FileProblem::MissingElement, "/File", &envelope));
    };
    if quantity != records as u64 {
        return Err(fail(
            FileProblem::CountMismatch,
            "/File/transmissionQuantity/@value",
            &envelope,
        ));
    }
    Ok((
        UploadFile {
            file_id,
            sequence,
            creation_time,
            sender,
            record_count: records,
            rows,
        },
        echoes,
    ))
}
