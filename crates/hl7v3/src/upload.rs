//! The LA Upload, `REPC_MT000002GB01` (root `File`): read into the batch the
//! JSON route takes.

use std::fmt;

use cpis_domain::{OdsCode, UploadMode};
use serde_json::{Map, Value};

use crate::tree::{shown, Node, Ns, Stream, XmlError};
use crate::{oid, ts};

/// Largest upload file read (bytes). The largest council's file (8,000
/// records at about 1.5 KB) is about 12 MB.
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;
/// Most records (and most plans: a record carries up to three) one file may
/// carry; the domain takes at most this many records a batch.
pub const MAX_RECORDS: usize = 10_000;
/// The marker member that makes the domain reject a record whose XML could
/// not be read whole (it fails as an unexpected field): the record still has
/// its own CPR07 outcome, and a full snapshot still protects its child.
pub(crate) const RECORD_ERROR_MEMBER: &str = "hl7v3_record_error";
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
    pub value: Map<String, Value>,
    /// JSON member name → XPath of the element or attribute it came from
    /// (or, when missing, of the element that should hold it).
    pub locations: Vec<(&'static str, String)>,
    /// XPath of the plan as a whole (`pertinentInformation[m]`).
    pub whole: String,
    pub problem: Option<(RecordProblem, String)>,
}

impl Row {
    /// The XPath for a domain outcome's pointer relative to the record
    /// (`/end_date`, or empty for the record as a whole).
    pub fn xpath_for(&self, relative: &str) -> &str {
        if let Some((_, at)) = &self.problem {
            return at;
        }
        let field = relative.strip_prefix('/').unwrap_or(relative);
        self.locations
            .iter()
            .find(|(name, _)| *name == field)
            .map_or(&self.whole, |(_, at)| at)
    }
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
        // Members inserted in sorted order: the same bytes whether or not
        // serde_json's `preserve_order` is enabled anywhere in the build.
        let sorted = |map: &Map<String, Value>| {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            entries
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<String, Value>>()
        };
        let records: Vec<Value> = self
            .rows
            .iter()
            .map(|row| Value::Object(sorted(&row.value)))
            .collect();
        let mode = match mode {
            UploadMode::Delta => "delta",
            UploadMode::Full => "full",
        };
        let mut body = Map::new();
        body.insert("mode".into(), Value::from(mode));
        body.insert("records".into(), Value::Array(records));
        body.insert("sequence".into(), Value::from(self.sequence));
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
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
    while let Some(child) = stream
        .next_child("/File")
        .map_err(|e| xml_fail(e, &envelope))?
    {
        let name = match (child.ns, child.name.as_str()) {
            (Ns::Hl7, "creationTime") => "creationTime",
            (Ns::Hl7, "id") => "id",
            (Ns::Hl7, "transmissionQuantity") => "transmissionQuantity",
            (Ns::Hl7, "communicationFunctionSnd") => "communicationFunctionSnd",
            (Ns::Hl7, "record") => "record",
            _ => {
                return Err(fail(
                    FileProblem::UnexpectedElement,
                    &format!("/File/{}", shown(&child.name)),
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
            let (record_rows, record_echo) = read_record(&child, records - 1, echo);
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
            .read(name, &child)
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

fn xml_fail(e: XmlError, envelope: &Envelope) -> FileError {
    let (problem, location) = match e {
        XmlError::NotUtf8 | XmlError::UnsupportedEncoding => (FileProblem::NotUtf8, "/".to_owned()),
        XmlError::Doctype => (FileProblem::Doctype, "/".to_owned()),
        XmlError::UndefinedEntity => (FileProblem::UndefinedEntity, "/".to_owned()),
        XmlError::NotWellFormed { position } => (
            FileProblem::NotWellFormed,
            // Not an XPath: where the reader stopped.
            format!("byte offset {position}"),
        ),
        XmlError::TooLarge { path } => (FileProblem::TooLarge, path),
        XmlError::UnexpectedText { path } => (FileProblem::UnexpectedElement, path),
        XmlError::NoDocumentElement => (FileProblem::NotAnUpload, "/".to_owned()),
    };
    FileError {
        problem,
        location,
        file_id: envelope.file_id.as_ref().map(|(text, _)| text.clone()),
        sender: envelope.sender.clone().map(Box::new),
    }
}

#[derive(Default)]
struct Envelope {
    file_id: Option<(String, u64)>,
    creation_time: Option<String>,
    quantity: Option<u64>,
    sender: Option<Organisation>,
}

type EnvelopeFault = (FileProblem, String);

fn no_children(node: &Node, at: &str) -> Result<(), EnvelopeFault> {
    if let Some(child) = node.children.first() {
        return Err((
            FileProblem::UnexpectedElement,
            format!("{at}/{}", shown(&child.name)),
        ));
    }
    if node.has_text() {
        return Err((FileProblem::UnexpectedElement, format!("{at}/text()")));
    }
    Ok(())
}

fn required_attr<'n>(node: &'n Node, name: &str, at: &str) -> Result<&'n str, EnvelopeFault> {
    node.attr(name)
        .ok_or_else(|| (FileProblem::MissingElement, format!("{at}/@{name}")))
}

impl Envelope {
    fn read(&mut self, name: &'static str, node: &Node) -> Result<(), EnvelopeFault> {
        let at = format!("/File/{name}");
        match name {
            "creationTime" => {
                no_children(node, &at)?;
                let value = required_attr(node, "value", &at)?;
                if !ts::is_ts(value) {
                    return Err((FileProblem::InvalidValue, format!("{at}/@value")));
                }
                self.creation_time = Some(value.to_owned());
            }
            "id" => {
                no_children(node, &at)?;
                let value = required_attr(node, "extension", &at)?;
                let sequence = (!value.is_empty()
                    && value.len() <= MAX_FILE_ID
                    && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .filter(|s| (1..=cpis_domain::MAX_SEQUENCE).contains(s))
                .ok_or_else(|| (FileProblem::InvalidValue, format!("{at}/@extension")))?;
                self.file_id = Some((value.to_owned(), sequence));
            }
            "transmissionQuantity" => {
                no_children(node, &at)?;
                let value = required_attr(node, "value", &at)?;
                let quantity = (!value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| (FileProblem::InvalidValue, format!("{at}/@value")))?;
                self.quantity = Some(quantity);
            }
            _ => {
                self.sender = Some(read_sender(node, &at)?);
            }
        }
        Ok(())
    }
}

fn read_sender(node: &Node, at: &str) -> Result<Organisation, EnvelopeFault> {
    let mut organisation = None;
    for child in &node.children {
        if child.ns != Ns::Hl7 || child.name != "organisation" {
            return Err((
                FileProblem::UnexpectedElement,
                format!("{at}/{}", shown(&child.name)),
            ));
        }
        if organisation.is_some() {
            return Err((
                FileProblem::RepeatedElement,
                format!("{at}/organisation[2]"),
            ));
        }
        organisation = Some(child);
    }
    if node.has_text() {
        return Err((FileProblem::UnexpectedElement, format!("{at}/text()")));
    }
    let org =
        organisation.ok_or_else(|| (FileProblem::MissingElement, format!("{at}/organisation")))?;
    let at = format!("{at}/organisation");
    let (mut id, mut name, mut telecoms) = (None, None, Vec::new());
    for child in &org.children {
        match (child.ns, child.name.as_str()) {
            (Ns::Hl7, "id") => {
                let here = format!("{at}/id");
                if id.is_some() {
                    return Err((FileProblem::RepeatedElement, format!("{at}/id[2]")));
                }
                no_children(child, &here)?;
                let root = required_attr(child, "root", &here)?;
                if root != oid::ODS_ORGANISATION && root != oid::ODS_SITE {
                    return Err((FileProblem::InvalidValue, format!("{here}/@root")));
                }
                let ods = required_attr(child, "extension", &here)?;
                let ods = OdsCode::parse(ods)
                    .map_err(|_| (FileProblem::InvalidValue, format!("{here}/@extension")))?;
                id = Some((root.to_owned(), ods));
            }
            (Ns::Hl7, "name") => {
                let here = format!("{at}/name");
                if name.is_some() {
                    return Err((FileProblem::RepeatedElement, format!("{at}/name[2]")));
                }
                if let Some(c) = child.children.first() {
                    return Err((
                        FileProblem::UnexpectedElement,
                        format!("{here}/{}", shown(&c.name)),
                    ));
                }
                let text = child.text.trim();
                if text.is_empty() || text.chars().any(char::is_control) {
                    return Err((FileProblem::InvalidValue, here));
                }
                name = Some(text.to_owned());
            }
            (Ns::Hl7, "telecom") => {
                let here = format!("{at}/telecom[{}]", telecoms.len() + 1);
                if telecoms.len() == 2 {
                    return Err((FileProblem::RepeatedElement, here));
                }
                no_children(child, &here)?;
                let use_code = required_attr(child, "use", &here)?;
                let value = required_attr(child, "value", &here)?;
                // The schema's TelecommunicationAddressUse codes (a list):
                // anything else would make the acknowledgement's echo invalid.
                const USES: [&str; 8] = ["H", "HP", "HV", "WP", "AS", "EC", "PG", "MC"];
                let valid_use = use_code.len() <= 40
                    && use_code.split_whitespace().next().is_some()
                    && use_code.split_whitespace().all(|u| USES.contains(&u));
                if !valid_use {
                    return Err((FileProblem::InvalidValue, format!("{here}/@use")));
                }
                if !is_tel(value) {
                    return Err((FileProblem::InvalidValue, format!("{here}/@value")));
                }
                telecoms.push(Telecom {
                    use_code: use_code.to_owned(),
                    value: value.to_owned(),
                });
            }
            _ => {
                return Err((
                    FileProblem::UnexpectedElement,
                    format!("{at}/{}", shown(&child.name)),
                ))
            }
        }
    }
    if org.has_text() {
        return Err((FileProblem::UnexpectedElement, format!("{at}/text()")));
    }
    let (id_root, ods_code) =
        id.ok_or_else(|| (FileProblem::MissingElement, format!("{at}/id")))?;
    let name = name.ok_or_else(|| (FileProblem::MissingElement, format!("{at}/name")))?;
    if telecoms.is_empty() {
        return Err((FileProblem::MissingElement, format!("{at}/telecom")));
    }
    Ok(Organisation {
        id_root,
        ods_code,
        name,
        telecoms,
    })
}

/// `TEL.NHS.value.mandatory`: `tel:`, an optional `+`, digits.
pub(crate) fn is_tel(value: &str) -> bool {
    value.strip_prefix("tel:").is_some_and(|rest| {
        let digits = rest.strip_prefix('+').unwrap_or(rest);
        digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

// ---------------------------------------------------------------------------
// Records

/// Collects the first structural fault of a record.
struct Faults {
    first: Option<(RecordProblem, String)>,
}

impl Faults {
    fn add(&mut self, problem: RecordProblem, at: String) {
        if self.first.is_none() {
            self.first = Some((problem, at));
        }
    }

    /// Text directly in an element that holds elements only.
    fn no_text(&mut self, node: &Node, at: &str) {
        if node.has_text() {
            self.add(RecordProblem::UnexpectedElement, format!("{at}/text()"));
        }
    }

    fn leaf(&mut self, node: &Node, at: &str) {
        if let Some(c) = node.children.first() {
            self.add(
                RecordProblem::UnexpectedElement,
                format!("{at}/{}", shown(&c.name)),
            );
        }
        self.no_text(node, at);
    }
}

/// The single HL7 child of `node` named `name`: a fault if missing or repeated.
fn one<'n>(node: &'n Node, name: &str, at: &str, faults: &mut Faults) -> Option<&'n Node> {
    let mut found = None;
    for child in node.children.iter().filter(|c| c.name == name) {
        if found.is_some() {
            faults.add(RecordProblem::RepeatedElement, format!("{at}/{name}[2]"));
            break;
        }
        found = Some(child);
    }
    if found.is_none() {
        faults.add(RecordProblem::MissingElement, format!("{at}/{name}"));
    }
    found
}

/// Faults any child not named in `allowed` (or not in the HL7 namespace).
fn only(node: &Node, allowed: &[&str], at: &str, faults: &mut Faults) {
    for child in &node.children {
        let contentid = child.ns == Ns::Npfit && child.name == "contentId";
        let known = child.ns == Ns::Hl7 && allowed.contains(&child.name.as_str());
        if !(known || contentid && allowed.contains(&"npfitlc:contentId")) {
            faults.add(
                RecordProblem::UnexpectedElement,
                format!("{at}/{}", shown(&child.name)),
            );
        }
    }
    faults.no_text(node, at);
}

struct SubjectRead {
    unborn: bool,
    /// XPath of the subject's template element.
    at: String,
    nhs: Option<(String, String)>,
    local: Option<(String, String)>,
    echo: Option<SubjectEcho>,
}

fn read_record(node: &Node, index: usize, echo: bool) -> (Vec<Row>, Option<RecordEcho>) {
    let at = format!("/File/record[{}]", index + 1);
    let mut faults = Faults { first: None };
    only(node, &["CP-ISRecord"], &at, &mut faults);
    let record = one(node, "CP-ISRecord", &at, &mut faults);
    let at = format!("{at}/CP-ISRecord");
    let mut plans: Vec<(PlanKind, String, PlanRead)> = Vec::new();
    let mut subjects: Vec<SubjectRead> = Vec::new();
    if let Some(record) = record {
        only(
            record,
            &["pertinentInformation", "subject"],
            &at,
            &mut faults,
        );
        let infos: Vec<&Node> = record
            .children
            .iter()
            .filter(|c| c.name == "pertinentInformation")
            .collect();
        if infos.is_empty() {
            faults.add(
                RecordProblem::MissingElement,
                format!("{at}/pertinentInformation"),
            );
        }
        for (m, info) in infos.iter().enumerate() {
            let here = format!("{at}/pertinentInformation[{}]", m + 1);
            if m >= 3 {
                faults.add(RecordProblem::RepeatedElement, here);
                break;
            }
            if let Some((kind, plan_at, plan)) = read_plan(info, &here, &mut faults) {
                plans.push((kind, plan_at, plan));
            }
        }
        let subject_nodes: Vec<&Node> = record
            .children
            .iter()
            .filter(|c| c.name == "subject")
            .collect();
        if subject_nodes.is_empty() {
            faults.add(RecordProblem::MissingElement, format!("{at}/subject"));
        }
        for (k, subject) in subject_nodes.iter().enumerate() {
            let here = format!("{at}/subject[{}]", k + 1);
            if k >= 2 {
                faults.add(RecordProblem::RepeatedElement, here);
                break;
            }
            if let Some(read) = read_subject(subject, &here, echo, &mut faults) {
                if subjects.iter().any(|s| s.unborn == read.unborn) {
                    faults.add(RecordProblem::RepeatedElement, read.at.clone());
                } else {
                    subjects.push(read);
                }
            }
        }
    }

    let mut rows = Vec::new();
    for (kind, plan_at, plan) in &plans {
        let subject = subjects
            .iter()
            .find(|s| s.unborn == (*kind == PlanKind::Ucp));
        let mut value = Map::new();
        let mut locations = Vec::new();
        value.insert("plan_type".into(), Value::from(kind.plan_type()));
        match subject {
            Some(s) => {
                match &s.nhs {
                    Some((number, number_at)) => {
                        value.insert("nhs_number".into(), Value::from(number.as_str()));
                        locations.push(("nhs_number", number_at.clone()));
                    }
                    None => locations.push(("nhs_number", s.at.clone())),
                }
                if let Some((local, local_at)) = &s.local {
                    value.insert("local_id".into(), Value::from(local.as_str()));
                    locations.push(("local_id", local_at.clone()));
                }
            }
            None => {
                let template = if *kind == PlanKind::Ucp {
                    "COCT_TP145100GB01.UnbornChild"
                } else {
                    "COCT_TP145101GB01.Child"
                };
                locations.push(("nhs_number", format!("{at}/subject/{template}")));
            }
        }
        for (member, date) in [
            ("start_date", &plan.start),
            ("end_date", &plan.end),
            ("delete_date", &plan.delete),
        ] {
            match date {
                Some((raw, date_at)) => {
                    let iso = ts::plan_date(raw).map_or_else(String::new, |d| d.iso);
                    value.insert(member.into(), Value::from(iso));
                    locations.push((member, date_at.clone()));
                }
                None => locations.push((member, plan_at.clone())),
            }
        }
        if faults.first.is_some() {
            value.insert(RECORD_ERROR_MEMBER.into(), Value::Bool(true));
        }
        rows.push(Row {
            record: index,
            value,
            locations,
            whole: plan_at.clone(),
            problem: faults.first.clone(),
        });
    }
    if rows.is_empty() {
        // No plan could be read: one failing domain record stands for the
        // record (its child, if named, is still protected in a snapshot).
        let mut value = Map::new();
        if let Some((number, _)) = subjects.iter().find_map(|s| s.nhs.as_ref()) {
            value.insert("nhs_number".into(), Value::from(number.as_str()));
        }
        value.insert(RECORD_ERROR_MEMBER.into(), Value::Bool(true));
        let fault = faults.first.clone().unwrap_or((
            RecordProblem::MissingElement,
            format!("{at}/pertinentInformation"),
        ));
        rows.push(Row {
            record: index,
            value,
            locations: Vec::new(),
            whole: at.clone(),
            problem: Some(fault),
        });
    }

    let echo = echo.then(|| {
        let plan_echoes: Vec<PlanEcho> = plans
            .iter()
            .filter_map(|(kind, _, plan)| {
                let date = |d: &Option<(String, String)>| -> Option<Option<String>> {
                    match d {
                        None => Some(None),
                        Some((raw, _)) => ts::plan_date(raw).map(|d| Some(d.twelve)),
                    }
                };
                Some(PlanEcho {
                    kind: *kind,
                    start: date(&plan.start)??,
                    end: date(&plan.end)?,
                    delete: date(&plan.delete)?,
                })
            })
            .collect();
        let subject_echoes: Vec<SubjectEcho> =
            subjects.into_iter().filter_map(|s| s.echo).collect();
        let echoable = faults.first.is_none()
            && !plan_echoes.is_empty()
            && plan_echoes.len() == plans.len()
            && plan_echoes
                .iter()
                .all(|p| p.kind != PlanKind::Ucp || p.end.is_some())
            && !subject_echoes.is_empty();
        RecordEcho {
            echoable,
            plans: plan_echoes,
            subjects: subject_echoes,
        }
    });
    (rows, echo)
}

struct PlanRead {
    start: Option<(String, String)>,
    end: Option<(String, String)>,
    delete: Option<(String, String)>,
}

fn read_plan(info: &Node, at: &str, faults: &mut Faults) -> Option<(PlanKind, String, PlanRead)> {
    let mut template = None;
    for child in &info.children {
        if child.ns == Ns::Npfit && child.name == "contentId" {
            continue;
        }
        match (child.ns, PlanKind::from_element(&child.name)) {
            (Ns::Hl7, Some(kind)) if template.is_none() => template = Some((kind, child)),
            (Ns::Hl7, Some(_)) => faults.add(
                RecordProblem::RepeatedElement,
                format!("{at}/{}", shown(&child.name)),
            ),
            _ => faults.add(
                RecordProblem::UnexpectedElement,
                format!("{at}/{}", shown(&child.name)),
            ),
        }
    }
    faults.no_text(info, at);
    let Some((kind, plan)) = template else {
        faults.add(
            RecordProblem::MissingElement,
            format!("{at}/COCT_TP146101GB01.CPPInformation"),
        );
        return None;
    };
    let plan_at = format!("{at}/{}", kind.element());
    only(
        plan,
        &["component", "component1", "component2"],
        &plan_at,
        faults,
    );
    let prefix = kind.prefix();
    let mut date = |component: &str, suffix: &str, required: bool| {
        let mut found = None;
        for c in plan.children.iter().filter(|c| c.name == component) {
            if found.is_some() {
                faults.add(
                    RecordProblem::RepeatedElement,
                    format!("{plan_at}/{component}[2]"),
                );
                break;
            }
            found = Some(c);
        }
        let Some(c) = found else {
            if required {
                faults.add(
                    RecordProblem::MissingElement,
                    format!("{plan_at}/{component}"),
                );
            }
            return None;
        };
        let c_at = format!("{plan_at}/{component}");
        let name = format!("{prefix}{suffix}");
        only(c, &[name.as_str()], &c_at, faults);
        let inner = one(c, &name, &c_at, faults)?;
        let inner_at = format!("{c_at}/{name}");
        only(inner, &["value"], &inner_at, faults);
        let value = one(inner, "value", &inner_at, faults)?;
        let value_at = format!("{inner_at}/value");
        faults.leaf(value, &value_at);
        let Some(raw) = value.attr("value") else {
            faults.add(RecordProblem::MissingElement, format!("{value_at}/@value"));
            return None;
        };
        Some((raw.to_owned(), format!("{value_at}/@value")))
    };
    let start = date("component", "StartDate", true);
    let end = date("component1", "EndDate", kind == PlanKind::Ucp);
    let delete = date("component2", "DeleteDate", false);
    Some((kind, plan_at, PlanRead { start, end, delete }))
}

fn read_subject(subject: &Node, at: &str, echo: bool, faults: &mut Faults) -> Option<SubjectRead> {
    let mut template = None;
    for child in &subject.children {
        if child.ns == Ns::Npfit && child.name == "contentId" {
            continue;
        }
        let unborn = match (child.ns, child.name.as_str()) {
            (Ns::Hl7, "COCT_TP145101GB01.Child") => false,
            (Ns::Hl7, "COCT_TP145100GB01.UnbornChild") => true,
            _ => {
                faults.add(
                    RecordProblem::UnexpectedElement,
                    format!("{at}/{}", shown(&child.name)),
                );
                continue;
            }
        };
        if template.is_some() {
            faults.add(
                RecordProblem::RepeatedElement,
                format!("{at}/{}", shown(&child.name)),
            );
        } else {
            template = Some((unborn, child));
        }
    }
    faults.no_text(subject, at);
    let Some((unborn, node)) = template else {
        faults.add(
            RecordProblem::MissingElement,
            format!("{at}/COCT_TP145101GB01.Child"),
        );
        return None;
    };
    let t_at = format!("{at}/{}", node.name);
    // Child: id[1..2], childPerson. UnbornChild: parentMotherPerson, whose
    // playedMother holds the ids.
    let (person, person_at, id_holder, id_holder_at) = if unborn {
        only(node, &["parentMotherPerson"], &t_at, faults);
        let person = one(node, "parentMotherPerson", &t_at, faults);
        let person_at = format!("{t_at}/parentMotherPerson");
        let holder = person.and_then(|p| {
            only(
                p,
                &["birthTime", "name", "playedMother"],
                &person_at,
                faults,
            );
            let mother = one(p, "playedMother", &person_at, faults)?;
            only(
                mother,
                &["id"],
                &format!("{person_at}/playedMother"),
                faults,
            );
            Some(mother)
        });
        let holder_at = format!("{person_at}/playedMother");
        (person, person_at, holder, holder_at)
    } else {
        only(node, &["id", "childPerson"], &t_at, faults);
        let person = one(node, "childPerson", &t_at, faults);
        let person_at = format!("{t_at}/childPerson");
        if let Some(p) = person {
            only(p, &["birthTime", "name"], &person_at, faults);
        }
        (person, person_at, Some(node), t_at.clone())
    };
    let mut nhs = None;
    let mut local = None;
    let mut ids = Vec::new();
    if let Some(holder) = id_holder {
        let id_nodes: Vec<&Node> = holder.children.iter().filter(|c| c.name == "id").collect();
        if id_nodes.is_empty() {
            faults.add(RecordProblem::MissingElement, format!("{id_holder_at}/id"));
        }
        for (j, id) in id_nodes.iter().enumerate() {
            let id_at = format!("{id_holder_at}/id[{}]", j + 1);
            if j >= 2 {
                faults.add(RecordProblem::RepeatedElement, id_at);
                break;
            }
            faults.leaf(id, &id_at);
            let (Some(root), Some(extension)) = (id.attr("root"), id.attr("extension")) else {
                faults.add(RecordProblem::MissingElement, id_at);
                continue;
            };
            let slot = match root {
                oid::NHS_NUMBER => &mut nhs,
                oid::LOCAL_ID => &mut local,
                _ => {
                    faults.add(RecordProblem::InvalidValue, format!("{id_at}/@root"));
                    continue;
                }
            };
            if slot.is_some() {
                faults.add(RecordProblem::RepeatedElement, id_at);
                continue;
            }
            *slot = Some((extension.to_owned(), format!("{id_at}/@extension")));
            if echo {
                ids.push(IdEcho {
                    root: if root == oid::NHS_NUMBER {
                        oid::NHS_NUMBER
                    } else {
                        oid::LOCAL_ID
                    },
                    extension: extension.to_owned(),
                    assigning_authority_name: id.attr("assigningAuthorityName").map(str::to_owned),
                });
            }
        }
    }
    // Date of birth and name: the shape is checked, the values are kept only
    // for an acknowledgement's echo.
    let mut demographics = None;
    if let Some(person) = person {
        let birth = one(person, "birthTime", &person_at, faults);
        let birth_time = birth.and_then(|b| {
            let b_at = format!("{person_at}/birthTime");
            faults.leaf(b, &b_at);
            match b.attr("value") {
                Some(v) if ts::is_ts(v) => Some(v),
                Some(_) => {
                    faults.add(RecordProblem::InvalidValue, format!("{b_at}/@value"));
                    None
                }
                None => {
                    faults.add(RecordProblem::MissingElement, format!("{b_at}/@value"));
                    None
                }
            }
        });
        let name_at = format!("{person_at}/name");
        let name = one(person, "name", &person_at, faults).and_then(|n| {
            only(n, &["given", "family"], &name_at, faults);
            let given = one(n, "given", &name_at, faults);
            let family = one(n, "family", &name_at, faults);
            for (part, part_at) in [(given, "given"), (family, "family")] {
                if let Some(p) = part {
                    if let Some(c) = p.children.first() {
                        faults.add(
                            RecordProblem::UnexpectedElement,
                            format!("{name_at}/{part_at}/{}", shown(&c.name)),
                        );
                    }
                    if p.text.trim().is_empty() {
                        faults.add(
                            RecordProblem::MissingElement,
                            format!("{name_at}/{part_at}/text()"),
                        );
                    }
                }
            }
            Some((given?, family?))
        });
        if echo {
            if let (Some(b), Some((g, f))) = (birth_time, name) {
                demographics = Some((
                    b.to_owned(),
                    g.text.trim().to_owned(),
                    f.text.trim().to_owned(),
                ));
            }
        }
    }
    let echo = match demographics {
        Some((birth_time, given, family)) if !ids.is_empty() => Some(SubjectEcho {
            unborn,
            ids,
            birth_time,
            given,
            family,
        }),
        _ => None,
    };
    Some(SubjectRead {
        unborn,
        at: t_at,
        nhs,
        local,
        echo,
    })
}
