//! CPF01: reading the batch envelope; records stay raw for their own checks.

use std::collections::HashMap;

use serde_json::Value;

use super::validate::{escape_pointer, FieldFailure};
use super::{UploadError, MAX_RECORDS, MAX_SEQUENCE};
use crate::acknowledgement::{RecordDetail, UploadMode};
use crate::json::Segment;
use crate::NhsNumber;

const BATCH_FIELDS: [&str; 4] = ["sequence", "mode", "records", "withdrawals"];

/// The batch envelope, parsed; records stay raw so that each gets its own outcome.
#[derive(Debug)]
pub struct Batch {
    /// 1..=[`MAX_SEQUENCE`].
    pub sequence: u64,
    pub mode: UploadMode,
    pub records: Vec<RawRecord>,
    pub withdrawals: Vec<RawRecord>,
}

/// One record or withdrawal as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The record; a repeated member holds its first value.
    pub value: Value,
    /// Pointers, relative to the record, of the member names it repeats
    /// (plain names only, as [`crate::json::pointer`] renders them): any makes
    /// the record fail with [`RecordDetail::RepeatedMember`].
    pub repeated: Vec<String>,
}

impl RawRecord {
    /// The child the record names, when it names exactly one valid NHS
    /// number: with `nhs_number` repeated, which child was meant is unknown.
    pub(super) fn child(&self) -> Option<NhsNumber> {
        if self.repeated.iter().any(|p| p == "/nhs_number") {
            return None;
        }
        let raw = self.value.get("nhs_number")?.as_str()?;
        NhsNumber::parse(raw).ok()
    }

    pub(super) fn repeat(&self) -> Option<FieldFailure> {
        self.repeated
            .first()
            .map(|field| (RecordDetail::RepeatedMember, field.clone()))
    }
}

pub(super) fn malformed(detail: impl Into<String>, pointer: &str) -> UploadError {
    UploadError::Malformed {
        detail: detail.into(),
        pointer: pointer.to_owned(),
    }
}

/// CPF01 checks: the body is a JSON object (read by the strict reader,
/// [`crate::json`]) with a sequence, a mode and records.
///
/// CPF01 (`UploadError::Malformed`, with a pointer) when: the body is not
/// JSON; a member name is repeated outside a record (`/mode` given twice);
/// a field is unknown; `sequence` is not a whole number in
/// 1..=[`MAX_SEQUENCE`] (2^53 - 1); `mode` is not `delta` or `full`; the
/// record lists are the wrong shape or empty for the mode. Over
/// [`MAX_RECORDS`]: `TooManyRecords`. A member name repeated inside
/// `/records/N` or `/withdrawals/N` is not CPF01: that record alone fails
/// (CPR07, `REPEATED_MEMBER`).
pub fn parse_batch(body: &[u8]) -> Result<Batch, UploadError> {
    let crate::json::Lenient { value, repeated } = crate::json::parse_noting_repeats(body)
        .map_err(|e| {
            // Line and column only: never the content.
            malformed(e.to_string(), "")
        })?;
    let mut record_repeats: HashMap<(bool, usize), Vec<String>> = HashMap::new();
    for repeat in &repeated {
        match repeat.path.as_slice() {
            [Segment::Key(list), Segment::Index(index), rest @ ..]
                if !rest.is_empty() && (list == "records" || list == "withdrawals") =>
            {
                // Rendered whole (its digit cap counts the record's index),
                // then made relative to the record.
                let whole = repeat.pointer();
                let prefix = format!("/{list}/{index}");
                let relative = whole
                    .strip_prefix(&prefix)
                    .map_or_else(|| crate::json::pointer(rest), str::to_owned);
                record_repeats
                    .entry((list == "records", *index))
                    .or_default()
                    .push(relative);
            }
            _ => {
                return Err(malformed(
                    "a member name is given more than once; give each once",
                    &repeat.pointer(),
                ))
            }
        }
    }
    let mut raw = |is_record: bool, values: Vec<Value>| -> Vec<RawRecord> {
        values
            .into_iter()
            .enumerate()
            .map(|(index, value)| RawRecord {
                value,
                repeated: record_repeats
                    .remove(&(is_record, index))
                    .unwrap_or_default(),
            })
            .collect()
    };
    let Value::Object(mut object) = value else {
        return Err(malformed("the body must be a JSON object", ""));
    };
    if let Some(field) = object.keys().find(|k| !BATCH_FIELDS.contains(&k.as_str())) {
        return Err(malformed(
            "unexpected field in the batch",
            &format!("/{}", escape_pointer(field)),
        ));
    }
    let sequence = object
        .get("sequence")
        .and_then(Value::as_u64)
        .filter(|s| (1..=MAX_SEQUENCE).contains(s))
        .ok_or_else(|| {
            malformed(
                "sequence must be a whole number from 1 to 9007199254740991 (2^53 - 1)",
                "/sequence",
            )
        })?;
    let mode = match object.get("mode").and_then(Value::as_str) {
        Some("delta") => UploadMode::Delta,
        Some("full") => UploadMode::Full,
        _ => return Err(malformed("mode must be \"delta\" or \"full\"", "/mode")),
    };
    let records = match object.remove("records") {
        Some(Value::Array(records)) => records,
        None if mode == UploadMode::Delta => Vec::new(),
        _ => return Err(malformed("records must be an array", "/records")),
    };
    let withdrawals = match object.remove("withdrawals") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(w)) if mode == UploadMode::Delta => w,
        Some(Value::Array(_)) => {
            return Err(malformed(
                "a full snapshot withdraws by omission; withdrawals are for delta uploads",
                "/withdrawals",
            ))
        }
        Some(_) => return Err(malformed("withdrawals must be an array", "/withdrawals")),
    };
    if records.len() + withdrawals.len() > MAX_RECORDS {
        return Err(UploadError::TooManyRecords);
    }
    if mode == UploadMode::Full && records.is_empty() {
        return Err(malformed(
            "a full snapshot must hold at least one record; to withdraw every plan use delta withdrawals",
            "/records",
        ));
    }
    if mode == UploadMode::Delta && records.is_empty() && withdrawals.is_empty() {
        return Err(malformed(
            "a delta upload must hold records or withdrawals",
            "/records",
        ));
    }
    Ok(Batch {
        sequence,
        mode,
        records: raw(true, records),
        withdrawals: raw(false, withdrawals),
    })
}
