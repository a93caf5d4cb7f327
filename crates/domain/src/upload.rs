//! Plan upload: batch validation, record outcomes, full-snapshot reconciliation
//! and sequence idempotency (the CP-IS file and record outcome vocabularies).

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};

use crate::acknowledgement::{Acknowledgement, FileOutcome, RecordDetail, UploadMode};
use crate::ports::{PlanStore, StoreError, StoredPlan, UploadLedger, UploadReceipt};
use crate::sequencing::{self, Decision, HeadState, LedgerHead, RewindDecision};
use crate::{OdsCode, Plan, PlanKey, VisibilityPolicy};

/// Most records one request may carry; larger batches are split by the council.
pub const MAX_RECORDS: usize = 10_000;
/// Largest sequence number (2^53 - 1), defined with the ledger.
pub use crate::sequencing::MAX_SEQUENCE;
/// Longest local case reference accepted.
pub const MAX_LOCAL_ID: usize = 64;

mod parse;
mod receive;
mod validate;

pub use parse::{parse_batch, Batch, RawRecord};
pub use receive::{receive_upload, Received};

use validate::{validate_records, validate_withdrawals};

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
            plan: Plan {
                upload_sequence: Some(batch.sequence),
                ..plan.clone()
            },
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
                (Vec::new(), Vec::new(), Some("a rejected record has no valid NHS number, so the plan it was meant to update cannot be told apart: no plan missing from the snapshot was withdrawn; correct it and upload the snapshot again".to_owned()))
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

    // A record past its purge day (its delete date, or the visibility tail
    // after its end) is not stored, and the copy an earlier upload stored is
    // withdrawn with it: "never after delete_date" holds for the plan the
    // council already sent too (brief, "Visibility"). Idempotent, so a
    // replayed or resumed batch withdraws the same keys.
    let mut withdraw = withdraw;
    for (_, plan) in &validated.indexed {
        let key = plan.key();
        if !plan.is_storable(today, policy) && !withdraw.contains(&key) {
            withdraw.push(key);
        }
    }
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
                received_at: Some(now),
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

/// The digest that identifies an upload's body in its receipt and ledger
/// head: SHA-256 of the bytes as received, lower-case hex (64 characters).
pub fn body_digest(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
