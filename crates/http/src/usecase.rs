//! The audited use cases the JSON, FHIR and portal handlers share: each runs
//! the domain rule, writes the request's one audit event from its typed
//! result, and returns that result for the route's dialect to render (`R`:
//! a problem, a FHIR error or a portal page, each the dialect's one mapping
//! of the use case's error).

use cpis_domain::feed::Freshness;
use cpis_domain::ports::{Page, StoreError, UploadHistory, UploadReceipt};
use cpis_domain::{
    AccessEffect, AccessSummary, AckNote, Asn, AuditOutcome, Audited, Authority, AuthorityUpdate,
    CheckResult, Clinician, FieldError, NhsNumber, OdsCode,
};
use cpis_telemetry::event;

use crate::audit::{Audit, Failure};
use crate::state::{AppState, CheckStore, CouncilStore, HistoryStore, Queue};

/// The attendance check (`POST /v1/checks`, FHIR CareTeam and Flag):
/// audited `Allowed` (with the check's own writes, one commit) or `Failed`,
/// then watched for unusual volume.
pub(crate) async fn check<S: CheckStore, Q: Queue>(
    state: &AppState<S, Q>,
    audit: &Audit<'_>,
    clinician: &Clinician,
    nhs_number: &NhsNumber,
    unscheduled: bool,
) -> Result<CheckResult, StoreError> {
    let now = state.clock.now();
    let allowed = audit.event(state, Some(nhs_number), AuditOutcome::Allowed, now);
    let result = cpis_domain::check(
        &state.store,
        &state.queue,
        clinician,
        nhs_number,
        unscheduled,
        now,
        &state.policy,
        &allowed,
    )
    .await;
    let result = match result {
        Ok(result) => {
            if !result.audit_written {
                crate::audit::write(&state.store, &allowed).await;
            }
            result
        }
        Err(error) => {
            audit
                .record_outcome(state, Some(nhs_number), error.audit_outcome())
                .await;
            return Err(error);
        }
    };
    watch_volume(state, clinician);
    let request_id = &audit.request_id.0;
    match result.effect {
        AccessEffect::Recorded {
            notifications,
            queued: false,
        } => {
            tracing::warn!(
                request_id,
                notifications,
                "hand-off to the dispatcher failed; the outbox sweep will deliver"
            );
        }
        AccessEffect::Recorded {
            notifications,
            queued: true,
        } => {
            tracing::info!(request_id, notifications, "access recorded");
        }
        _ => {}
    }
    Ok(result)
}

/// The log target of the per-check line and the enumeration warning.
const CHECK_LOG_TARGET: &str = "cpis_http::care";

/// One line per answered check naming the caller (never the child), which
/// the AWS stack's Contributor Insights rule ranks per caller; and a warning
/// when one caller passes the enumeration watch's threshold (hazard H6).
fn watch_volume<S, Q>(state: &AppState<S, Q>, clinician: &Clinician) {
    let caller = clinician.user_id.as_str();
    let organisation = clinician.organisation_ods.as_str();
    // The target is what the AWS stack's rule and the functions' log caps
    // key on (`cpis_aws::telemetry::ENUMERATION_WATCH_TARGET`): keep it.
    tracing::info!(
        target: CHECK_LOG_TARGET,
        event = event::CARE_SETTING_CHECK,
        caller,
        organisation,
        "care-setting check"
    );
    if let Some(checks) = state.volume.observe(caller, state.clock.now()) {
        let window_minutes = state.volume.policy().window.whole_minutes();
        tracing::warn!(
            target: CHECK_LOG_TARGET,
            event = event::CHECK_VOLUME_UNUSUAL,
            caller,
            organisation,
            checks,
            window_minutes,
            "unusual check volume from one caller: review it against the audit trail"
        );
    }
}

/// The history query (`POST /v1/history`, FHIR AuditEvent). A caller who
/// may not see the history gets the answer for a child with no history,
/// and the audit trail records the denial ([`cpis_domain::HistoryAnswer`]).
pub(crate) async fn history<S: HistoryStore, Q: Queue>(
    state: &AppState<S, Q>,
    audit: &Audit<'_>,
    nhs_number: &NhsNumber,
) -> Result<Vec<AccessSummary>, StoreError> {
    let answer =
        cpis_domain::history(&state.store, audit.principal, nhs_number, state.clock.now()).await;
    let outcome = match &answer {
        Ok(answer) => answer.audit_outcome(),
        Err(error) => error.audit_outcome(),
    };
    audit.record_outcome(state, Some(nhs_number), outcome).await;
    Ok(answer?.into_entries())
}

/// The council's inbox, one page (`GET /v1/notifications` pages with its
/// own query; the portal's inbox): audited `ListNotifications`.
pub(crate) async fn notifications<S: CouncilStore, Q, R>(
    state: &AppState<S, Q>,
    audit: &Audit<'_>,
    council: &OdsCode,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<Asn>, R>
where
    StoreError: Into<R>,
{
    let page = state.store.notifications(council, cursor, limit).await;
    audit.record(state, None, page.map_err(Failure::of)).await
}

/// What a request does to one ASN of the caller's inbox.
pub(crate) enum AsnAccess<'a> {
    Read,
    /// With the duty team's note, if any ([`AckNote`]).
    Acknowledge(Option<&'a AckNote>),
}

/// Why an ASN could not be read or acknowledged.
pub(crate) enum AsnError {
    /// Not in the caller's inbox: another council's, none at all, or an id
    /// that cannot be an ASN id. Never says which.
    NotInInbox,
    Store(StoreError),
}

impl Audited for AsnError {
    fn audit_outcome(&self) -> AuditOutcome {
        match self {
            Self::NotInInbox => AuditOutcome::Denied,
            Self::Store(error) => error.audit_outcome(),
        }
    }
}

/// Reads or acknowledges one ASN of the council's inbox (`GET
/// /v1/notifications/{id}`, `POST .../ack`, and the portal's ASN page):
/// audited `ReadNotification` or `AcknowledgeNotification` by the caller;
/// an id not in the inbox is [`AsnError::NotInInbox`], audited `Denied`.
pub(crate) async fn notification<S: CouncilStore, Q, R>(
    state: &AppState<S, Q>,
    audit: &Audit<'_>,
    council: &OdsCode,
    id: &str,
    access: AsnAccess<'_>,
) -> Result<Asn, R>
where
    AsnError: Into<R>,
{
    let found = if plausible_asn_id(id) {
        match access {
            AsnAccess::Read => state.store.notification(council, id).await,
            AsnAccess::Acknowledge(note) => {
                let now = state.clock.now();
                state.store.acknowledge(council, id, now, note).await
            }
        }
        .map_err(AsnError::Store)
    } else {
        Ok(None)
    };
    let result = found.and_then(|asn| asn.ok_or(AsnError::NotInInbox));
    audit.record(state, None, result.map_err(Failure::of)).await
}

/// An id that cannot be an ASN id is answered exactly like a missing one.
fn plausible_asn_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The council's own directory entry, with its feed's freshness where the
/// store keeps it (`GET /v1/authority`, the portal's directory page):
/// audited `ReadAuthority`. `None` before the council's first entry: a
/// permitted read that found nothing, audited `Allowed`.
pub(crate) async fn read_authority<S: CouncilStore, Q, R>(
    state: &AppState<S, Q>,
    audit: &Audit<'_>,
    council: &OdsCode,
) -> Result<Option<(Authority, Option<Freshness>)>, R>
where
    StoreError: Into<R>,
{
    let result = async {
        let Some(authority) = state.store.authority(council).await? else {
            return Ok(None);
        };
        Ok::<_, StoreError>(Some((authority, freshness(state, council).await?)))
    }
    .await;
    audit.record(state, None, result.map_err(Failure::of)).await
}

/// Why a directory entry was not stored.
pub(crate) enum DirectoryError {
    /// Every field that failed validation, with its JSON pointer.
    Invalid(Vec<FieldError>),
    Store(StoreError),
}

impl Audited for DirectoryError {
    fn audit_outcome(&self) -> AuditOutcome {
        match self {
            Self::Invalid(_) => AuditOutcome::Invalid,
            Self::Store(error) => error.audit_outcome(),
        }
    }
}

/// Validates and stores the council's directory entry (`PUT
/// /v1/authority`, the portal's directory form): audited `UpdateAuthority`.
pub(crate) async fn update_authority<S: CouncilStore, Q, R>(
    state: &AppState<S, Q>,
    audit: &Audit<'_>,
    council: &OdsCode,
    update: AuthorityUpdate,
) -> Result<(Authority, Option<Freshness>), R>
where
    DirectoryError: Into<R>,
{
    let result = async {
        let authority = update.validate(council).map_err(DirectoryError::Invalid)?;
        let stored = state.store.put_authority(&authority).await;
        stored.map_err(DirectoryError::Store)?;
        let feed = freshness(state, council).await;
        Ok::<_, DirectoryError>((authority, feed.map_err(DirectoryError::Store)?))
    }
    .await;
    audit.record(state, None, result.map_err(Failure::of)).await
}

/// The council's feed freshness now, where the store keeps it.
async fn freshness<S: CouncilStore, Q>(
    state: &AppState<S, Q>,
    council: &OdsCode,
) -> Result<Option<Freshness>, StoreError> {
    if !state.store.tracks_feeds() {
        return Ok(None);
    }
    let last = state.store.last_full_snapshot(council).await?;
    Ok(Some(Freshness::at(last, state.clock.now())))
}

/// The council's most recent uploads and its feed's freshness (the
/// portal's uploads page): audited `ListUploads`.
pub(crate) async fn upload_history<S: CouncilStore + UploadHistory, Q, R>(
    state: &AppState<S, Q>,
    audit: &Audit<'_>,
    council: &OdsCode,
    limit: usize,
) -> Result<(Vec<UploadReceipt>, Option<Freshness>), R>
where
    StoreError: Into<R>,
{
    let result = async {
        let receipts = state.store.recent_receipts(council, limit).await?;
        Ok::<_, StoreError>((receipts, freshness(state, council).await?))
    }
    .await;
    audit.record(state, None, result.map_err(Failure::of)).await
}

/// The JSON dialect's one mapping of an ASN failure.
impl From<AsnError> for crate::problem::Problem {
    fn from(error: AsnError) -> Self {
        match error {
            AsnError::NotInInbox => Self::not_found("notification"),
            AsnError::Store(error) => error.into(),
        }
    }
}

/// The JSON dialect's one mapping of a directory failure.
impl From<DirectoryError> for crate::problem::Problem {
    fn from(error: DirectoryError) -> Self {
        match error {
            DirectoryError::Invalid(errors) => Self::bad_request(
                "INVALID_DIRECTORY_ENTRY",
                "some fields are not valid; see errors",
            )
            .with_errors(errors),
            DirectoryError::Store(error) => error.into(),
        }
    }
}
