//! Plan upload: batch validation, record outcomes, full-snapshot reconciliation
//! and sequence idempotency (the CP-IS file and record outcome vocabularies).

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};

use crate::acknowledgement::{
    Acknowledgement, FileOutcome, RecordDetail, RecordOutcome, RecordOutcomeCode, UploadMode,
};
use crate::dates::parse_iso_date;
use crate::json::Segment;
use crate::ports::{PlanStore, StoreError, StoredPlan, UploadLedger, UploadReceipt};
use crate::sequencing::{self, Decision, HeadState, LedgerHead, RewindDecision};
use crate::{NhsNumber, OdsCode, Plan, PlanKey, PlanType, VisibilityPolicy};

/// Most records one request may carry; larger batches are split by the council.
pub const MAX_RECORDS: usize = 10_000;
/// Largest sequence number (2^53 - 1), defined with the ledger.
pub use crate::sequencing::MAX_SEQUENCE;
/// Longest local case reference accepted.
pub const MAX_LOCAL_ID: usize = 64;

/// Why a whole batch was refused (nothing loaded, nothing withdrawn).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// CPF01: the batch itself is malformed.
    #[error("{detail}")]
    Malformed { detail: String, pointer: String },
    #[error("a request carries at most {MAX_RECORDS} records; split the batch into several delta uploads with consecutive sequence numbers")]
    TooManyRecords,
    #[error("sequence {sequence} was already used for a different batch")]
    SequenceReused { sequence: u64 },
    #[error("sequence {sequence} is older than the latest processed sequence {latest}")]
    StaleSequence { sequence: u64, latest: u64 },
    /// Another upload of the council is being applied (uploads are applied
    /// one at a time per council).
    #[error(
        "another upload of this council is being applied; retry in {retry_after_seconds} seconds"
    )]
    InProgress { retry_after_seconds: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The answer to an upload: the acknowledgement, and whether it is a replay
/// of one stored earlier for the same sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResult {
    pub acknowledgement: Acknowledgement,
    pub replayed: bool,
}

const RECORD_FIELDS: [&str; 7] = [
    "nhs_number",
    "plan_type",
    "start_date",
    "end_date",
    "delete_date",
    "due_date",
    "local_id",
];
const WITHDRAWAL_FIELDS: [&str; 3] = ["nhs_number", "plan_type", "start_date"];
const BATCH_FIELDS: [&str; 4] = ["sequence", "mode", "records", "withdrawals"];

/// Validates and applies one council's batch. `body` is the request body as
/// received; the council comes from the credential.
pub async fn process_upload<S>(
    store: &S,
    authority: &OdsCode,
    body: &[u8],
    now: OffsetDateTime,
    policy: &VisibilityPolicy,
) -> Result<UploadResult, UploadError>
where
    S: PlanStore + UploadLedger,
{
    let batch = parse_batch(body)?;
    let digest = body_digest(body);
    let claimed = match claim_sequence(store, authority, batch.sequence, &digest, now).await? {
        Claimed::Apply(head) => head,
        Claimed::Answer(result) => return Ok(result),
    };
    let today = crate::clock::uk_date(now);
    let validated = validate_records(authority, &batch, today);
    let upserts: Vec<StoredPlan> = validated
        .plans
        .iter()
        .filter(|plan| plan.is_storable(today, policy))
        .map(|plan| StoredPlan {
            plan: plan.clone(),
            purge_from: plan.purge_from(policy),
        })
        .collect();
    let mut records = validated.outcomes;
    for (index, plan) in &validated.indexed {
        if !plan.is_storable(today, policy) {
            records[*index].detail = Some(RecordDetail::ExpiredNotStored);
        }
    }
    let loaded = validated.plans.len();
    let rejected = records.len() - loaded;
    let file_outcome = match (loaded, rejected) {
        (_, 0) => FileOutcome::AllLoaded,
        (0, _) => FileOutcome::NoneLoaded,
        _ => FileOutcome::Partial,
    };

    let (withdraw, withdrawals, held_back) = match batch.mode {
        UploadMode::Delta => {
            let (keys, outcomes) = validate_withdrawals(authority, &batch.withdrawals);
            (keys, outcomes, None)
        }
        UploadMode::Full => {
            if file_outcome == FileOutcome::NoneLoaded {
                (
                    Vec::new(),
                    Vec::new(),
                    Some("no record of the snapshot loaded, so nothing was withdrawn".to_owned()),
                )
            } else if validated.unidentifiable_failure {
                (Vec::new(), Vec::new(), Some("a rejected record has no valid NHS number, so the plan it was meant to update cannot be told apart: nothing was withdrawn; correct it and upload the snapshot again".to_owned()))
            } else {
                let in_batch: HashSet<PlanKey> = validated.plans.iter().map(Plan::key).collect();
                let keys = store
                    .plan_keys_for_authority(authority)
                    .await?
                    .into_iter()
                    .filter(|key| !in_batch.contains(key))
                    .filter(|key| !validated.protected_children.contains(&key.nhs_number))
                    .collect();
                (keys, Vec::new(), None)
            }
        }
    };

    let withdrawn = if upserts.is_empty() && withdraw.is_empty() {
        0
    } else {
        store.apply_changes(authority, &upserts, &withdraw).await?
    };

    let acknowledgement = Acknowledgement {
        sequence: batch.sequence,
        mode: batch.mode,
        file_outcome,
        loaded,
        rejected,
        withdrawn,
        records,
        withdrawals,
        withdrawals_held_back: held_back,
    };
    // The first receipt stays: a resumed run that finds one (its earlier
    // attempt crashed after storing it) answers with the first answer.
    let stored = store
        .record_receipt(
            authority,
            &UploadReceipt {
                sequence: batch.sequence,
                digest: digest.clone(),
                acknowledgement,
            },
        )
        .await?;
    release_sequence(store, authority, &claimed).await?;
    Ok(UploadResult {
        acknowledgement: stored.acknowledgement,
        replayed: false,
    })
}

enum Claimed {
    /// This call holds the sequence: apply the batch.
    Apply(LedgerHead),
    /// Answered without applying anything (a replay).
    Answer(UploadResult),
}

/// Claims `sequence` for this body before anything is applied (see
/// [`crate::sequencing`]): a compare-and-swap loop on the council's head.
async fn claim_sequence<S: UploadLedger>(
    store: &S,
    authority: &OdsCode,
    sequence: u64,
    digest: &str,
    now: OffsetDateTime,
) -> Result<Claimed, UploadError> {
    loop {
        let head = store.ledger_head(authority).await?;
        match sequencing::decide(head.as_ref(), sequence, digest, now) {
            Decision::Claim(new) => {
                if store
                    .swap_ledger_head(authority, head.as_ref(), &new)
                    .await?
                {
                    return Ok(Claimed::Apply(new));
                }
                // Another upload swapped first: decide again on its head.
            }
            Decision::FromReceipt { latest } => {
                return match store.receipt(authority, sequence).await? {
                    Some(earlier) if earlier.digest == digest => {
                        Ok(Claimed::Answer(UploadResult {
                            acknowledgement: earlier.acknowledgement,
                            replayed: true,
                        }))
                    }
                    Some(_) => Err(UploadError::SequenceReused { sequence }),
                    None => Err(UploadError::StaleSequence { sequence, latest }),
                };
            }
            Decision::Reused => return Err(UploadError::SequenceReused { sequence }),
            Decision::Busy { retry_after } => {
                return Err(UploadError::InProgress {
                    retry_after_seconds: retry_after.whole_seconds().max(1).unsigned_abs(),
                })
            }
        }
    }
}

/// Marks the claimed sequence done. If the head moved meanwhile (a retry of
/// the same body resumed it and renewed the lease), the newest claim of the
/// same sequence and body is the one finished.
async fn release_sequence<S: UploadLedger>(
    store: &S,
    authority: &OdsCode,
    claimed: &LedgerHead,
) -> Result<(), UploadError> {
    let mut expected = claimed.clone();
    loop {
        if store
            .swap_ledger_head(
                authority,
                Some(&expected),
                &sequencing::completed(&expected),
            )
            .await?
        {
            return Ok(());
        }
        match store.ledger_head(authority).await? {
            Some(head)
                if head.sequence == claimed.sequence
                    && head.digest == claimed.digest
                    && head.state != HeadState::Done =>
            {
                expected = head
            }
            // Done by the rival run, or taken over after the lease ran out.
            _ => return Ok(()),
        }
    }
}

/// What a rewind did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewind {
    /// The sequence the council's next upload must be above.
    pub sequence: u64,
    /// The sequence it was at before.
    pub previous: u64,
    /// Receipts above `sequence` that were retired.
    pub retired: usize,
}

/// Why a rewind was refused.
#[derive(Debug, thiserror::Error)]
pub enum RewindError {
    #[error("sequence {to} is above the latest sequence {latest}: nothing to rewind")]
    AboveLatest { to: u64, latest: u64 },
    #[error("an upload is being applied; retry in {retry_after_seconds} seconds")]
    InProgress { retry_after_seconds: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A council's way back from a wrong sequence (our decision, README
/// "Uploads"): after a rewind to `to` the next upload must be above `to`;
/// receipts above it are retired, so their sequences may be used again. Plans
/// are untouched. Idempotent: a rewind that crashed is completed by its retry.
pub async fn rewind_sequence<S: UploadLedger>(
    store: &S,
    authority: &OdsCode,
    to: u64,
    now: OffsetDateTime,
) -> Result<Rewind, RewindError> {
    loop {
        let head = store.ledger_head(authority).await?;
        let previous = head.as_ref().map_or(0, |h| h.sequence);
        match sequencing::decide_rewind(head.as_ref(), to, now) {
            RewindDecision::AboveHead { latest } => {
                return Err(RewindError::AboveLatest { to, latest })
            }
            RewindDecision::Busy { retry_after } => {
                return Err(RewindError::InProgress {
                    retry_after_seconds: retry_after.whole_seconds().max(1).unsigned_abs(),
                })
            }
            RewindDecision::Claim(claim) => {
                if !store
                    .swap_ledger_head(authority, head.as_ref(), &claim)
                    .await?
                {
                    continue;
                }
                let retired = store.retire_receipts_above(authority, to).await?;
                // Only this rewind can move the head it holds, but a retry of
                // it may have taken the lease over: then that retry finishes.
                store
                    .swap_ledger_head(authority, Some(&claim), &sequencing::rewound(&claim, to))
                    .await?;
                return Ok(Rewind {
                    sequence: to,
                    previous,
                    retired,
                });
            }
        }
    }
}

impl Plan {
    /// Whether storing it serves any purpose: a plan that can never become
    /// visible is not stored (store nothing about children not on a plan).
    fn is_storable(&self, today: Date, policy: &VisibilityPolicy) -> bool {
        self.purge_from(policy).is_none_or(|purge| purge > today)
    }
}

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
    fn child(&self) -> Option<NhsNumber> {
        if self.repeated.iter().any(|p| p == "/nhs_number") {
            return None;
        }
        let raw = self.value.get("nhs_number")?.as_str()?;
        NhsNumber::parse(raw).ok()
    }

    fn repeat(&self) -> Option<FieldFailure> {
        self.repeated
            .first()
            .map(|field| (RecordDetail::RepeatedMember, field.clone()))
    }
}

fn malformed(detail: impl Into<String>, pointer: &str) -> UploadError {
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

struct ValidatedRecords {
    outcomes: Vec<RecordOutcome>,
    plans: Vec<Plan>,
    indexed: Vec<(usize, Plan)>,
    /// Children named by a failed record: a full snapshot leaves their plans alone.
    protected_children: HashSet<NhsNumber>,
    /// A failed record with no usable NHS number.
    unidentifiable_failure: bool,
}

fn validate_records(authority: &OdsCode, batch: &Batch, today: Date) -> ValidatedRecords {
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

fn success(index: usize) -> RecordOutcome {
    RecordOutcome {
        index,
        outcome: RecordOutcomeCode::Success,
        detail: None,
        location: None,
    }
}

fn failure(index: usize, detail: RecordDetail, location: String) -> RecordOutcome {
    RecordOutcome {
        index,
        outcome: RecordOutcomeCode::Failure,
        detail: Some(detail),
        location: Some(location),
    }
}

type FieldFailure = (RecordDetail, String);

fn field_ptr(name: &str) -> String {
    format!("/{name}")
}

fn unexpected_field(object: &Map<String, Value>, allowed: &[&str]) -> Option<FieldFailure> {
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
fn optional<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

fn parse_date_field(object: &Map<String, Value>, name: &str) -> Result<Option<Date>, FieldFailure> {
    match optional(object, name) {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .and_then(parse_iso_date)
            .map(Some)
            .ok_or((RecordDetail::InvalidDate, field_ptr(name))),
    }
}

fn parse_identity(
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

fn parse_record(authority: &OdsCode, raw: &Value, today: Date) -> Result<Plan, FieldFailure> {
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
    })
}

fn validate_withdrawals(
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
fn escape_pointer(segment: &str) -> String {
    crate::json::pointer_segment(segment)
}

/// The digest that identifies an upload's body in its receipt and ledger
/// head: SHA-256 of the bytes as received, lower-case hex (64 characters).
pub fn body_digest(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
