//! CPR06/CPR07: each record and withdrawal checked on its own, with the
//! pointer to what failed.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};
use time::Date;

use super::parse::{Batch, RawRecord};
use super::MAX_LOCAL_ID;
use crate::acknowledgement::{RecordDetail, RecordOutcome, RecordOutcomeCode};
use crate::dates::parse_iso_date;
use crate::{NhsNumber, OdsCode, Plan, PlanKey, PlanType};

pub(super) const RECORD_FIELDS: [&str; 7] = [
    "nhs_number",
    "plan_type",
    "start_date",
    "end_date",
    "delete_date",
    "due_date",
    "local_id",
];
pub(super) const WITHDRAWAL_FIELDS: [&str; 3] = ["nhs_number", "plan_type", "start_date"];

pub(super) struct ValidatedRecords {
    pub(super) outcomes: Vec<RecordOutcome>,
    pub(super) plans: Vec<Plan>,
    pub(super) indexed: Vec<(usize, Plan)>,
    /// Children named by a failed record: a full snapshot leaves their plans alone.
    pub(super) protected_children: HashSet<NhsNumber>,
    /// A failed record with no usable NHS number.
    pub(super) unidentifiable_failure: bool,
}

pub(super) fn validate_records(
    authority: &OdsCode,
    batch: &Batch,
    today: Date,
) -> ValidatedRecords {
    let mut outcomes = Vec::with_capacity(batch.records.len());
    let mut parsed: Vec<Option<Plan>> = Vec::with_capacity(batch.records.len());
    let mut protected_children = HashSet::new();
    let mut unidentifiable_failure = false;

    for (index, raw) in batch.records.iter().enumerate() {
        let parsed_record = raw
            .repeat()
            .map_or_else(|| parse_record(authority, &raw.value, today), Err);
        match parsed_record {
            Ok(plan) => {
                outcomes.push(success(index));
                parsed.push(Some(plan));
            }
            Err((detail, field)) => {
                match raw.child() {
                    Some(nhs) => {
                        protected_children.insert(nhs);
                    }
                    None => unidentifiable_failure = true,
                }
                outcomes.push(failure(index, detail, format!("/records/{index}{field}")));
                parsed.push(None);
            }
        }
    }

    // Duplicate identities: every occurrence is rejected, none guessed at.
    let mut seen: HashMap<PlanKey, usize> = HashMap::new();
    for plan in parsed.iter().flatten() {
        *seen.entry(plan.key()).or_default() += 1;
    }
    let mut plans = Vec::new();
    let mut indexed = Vec::new();
    for (index, slot) in parsed.into_iter().enumerate() {
        let Some(plan) = slot else { continue };
        if seen.get(&plan.key()).copied().unwrap_or(0) > 1 {
            protected_children.insert(plan.nhs_number);
            outcomes[index] = failure(
                index,
                RecordDetail::DuplicateInBatch,
                format!("/records/{index}"),
            );
        } else {
            indexed.push((index, plan.clone()));
            plans.push(plan);
        }
    }
    ValidatedRecords {
        outcomes,
        plans,
        indexed,
        protected_children,
        unidentifiable_failure,
    }
}

pub(super) fn success(index: usize) -> RecordOutcome {
    RecordOutcome {
        index,
        outcome: RecordOutcomeCode::Success,
        detail: None,
        location: None,
    }
}

pub(super) fn failure(index: usize, detail: RecordDetail, location: String) -> RecordOutcome {
    RecordOutcome {
        index,
        outcome: RecordOutcomeCode::Failure,
        detail: Some(detail),
        location: Some(location),
    }
}

pub(super) type FieldFailure = (RecordDetail, String);

pub(super) fn field_ptr(name: &str) -> String {
    format!("/{name}")
}

pub(super) fn unexpected_field(
    object: &Map<String, Value>,
    allowed: &[&str],
) -> Option<FieldFailure> {
    object
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            (
                RecordDetail::UnexpectedField,
                format!("/{}", escape_pointer(k)),
            )
        })
}

/// Optional fields treat `null` as absent.
pub(super) fn optional<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

pub(super) fn parse_date_field(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<Date>, FieldFailure> {
    match optional(object, name) {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .and_then(parse_iso_date)
            .map(Some)
            .ok_or((RecordDetail::InvalidDate, field_ptr(name))),
    }
}

pub(super) fn parse_identity(
    object: &Map<String, Value>,
) -> Result<(NhsNumber, PlanType, Date), FieldFailure> {
    let plan_type = match optional(object, "plan_type") {
        None => return Err((RecordDetail::MissingPlanType, field_ptr("plan_type"))),
        Some(v) => v
            .as_str()
            .and_then(PlanType::parse)
            .ok_or((RecordDetail::UnknownPlanType, field_ptr("plan_type")))?,
    };
    let nhs_number = match optional(object, "nhs_number") {
        None if plan_type == PlanType::UnbornChildProtection => {
            return Err((
                RecordDetail::MissingMothersNhsNumber,
                field_ptr("nhs_number"),
            ))
        }
        None => return Err((RecordDetail::MissingNhsNumber, field_ptr("nhs_number"))),
        Some(v) => v
            .as_str()
            .and_then(|s| NhsNumber::parse(s).ok())
            .ok_or((RecordDetail::InvalidNhsNumber, field_ptr("nhs_number")))?,
    };
    let start_date = parse_date_field(object, "start_date")?
        .ok_or((RecordDetail::MissingStartDate, field_ptr("start_date")))?;
    Ok((nhs_number, plan_type, start_date))
}

pub(super) fn parse_record(
    authority: &OdsCode,
    raw: &Value,
    today: Date,
) -> Result<Plan, FieldFailure> {
    let Value::Object(object) = raw else {
        return Err((RecordDetail::NotAnObject, String::new()));
    };
    if let Some(failure) = unexpected_field(object, &RECORD_FIELDS) {
        return Err(failure);
    }
    let (nhs_number, plan_type, start_date) = parse_identity(object)?;
    if start_date > today {
        return Err((RecordDetail::StartDateInFuture, field_ptr("start_date")));
    }
    let end_date = parse_date_field(object, "end_date")?;
    if end_date.is_some_and(|end| end < start_date) {
        return Err((RecordDetail::EndBeforeStart, field_ptr("end_date")));
    }
    let delete_date = parse_date_field(object, "delete_date")?;
    if delete_date.is_some_and(|d| d < start_date) {
        return Err((RecordDetail::DeleteBeforeStart, field_ptr("delete_date")));
    }
    let due_date = parse_date_field(object, "due_date")?;
    if due_date.is_some() && plan_type != PlanType::UnbornChildProtection {
        return Err((RecordDetail::DueDateNotUnborn, field_ptr("due_date")));
    }
    if due_date.is_some_and(|due| due < start_date) {
        return Err((RecordDetail::DueBeforeStart, field_ptr("due_date")));
    }
    let local_id = match optional(object, "local_id") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .filter(|s| {
                    !s.is_empty() && s.len() <= MAX_LOCAL_ID && !s.chars().any(char::is_control)
                })
                .ok_or((RecordDetail::InvalidLocalId, field_ptr("local_id")))?
                .to_owned(),
        ),
    };
    Ok(Plan {
        authority: authority.clone(),
        nhs_number,
        plan_type,
        start_date,
        end_date,
        delete_date,
        due_date,
        local_id,
        // Set when the plan is stored (`process_upload`).
        upload_sequence: None,
    })
}

pub(super) fn validate_withdrawals(
    authority: &OdsCode,
    raw: &[RawRecord],
) -> (Vec<PlanKey>, Vec<RecordOutcome>) {
    let mut keys = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(raw.len());
    for (index, record) in raw.iter().enumerate() {
        let parsed = match (&record.value, record.repeat()) {
            (_, Some(repeat)) => Err(repeat),
            (Value::Object(object), None) => unexpected_field(object, &WITHDRAWAL_FIELDS)
                .map_or_else(|| parse_identity(object), Err),
            _ => Err((RecordDetail::NotAnObject, String::new())),
        };
        match parsed {
            Ok((nhs_number, plan_type, start_date)) => {
                keys.insert(PlanKey {
                    authority: authority.clone(),
                    nhs_number,
                    plan_type,
                    start_date,
                });
                outcomes.push(success(index));
            }
            Err((detail, field)) => outcomes.push(failure(
                index,
                detail,
                format!("/withdrawals/{index}{field}"),
            )),
        }
    }
    (keys.into_iter().collect(), outcomes)
}

/// A field name echoed in a pointer: see [`crate::json::pointer_segment`].
pub(super) fn escape_pointer(segment: &str) -> String {
    crate::json::pointer_segment(segment)
}
