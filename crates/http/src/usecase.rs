//! The audited use cases the JSON and FHIR handlers share: each runs the
//! domain rule, writes the request's one audit event from its typed result,
//! and returns that result for the route's dialect to render.

use cpis_domain::ports::StoreError;
use cpis_domain::{AccessEffect, AccessSummary, Audited, CheckResult, Clinician, NhsNumber};
use cpis_telemetry::event;

use crate::audit::{Audit, Failure};
use crate::state::{AppState, CheckStore, HistoryStore, Queue};

/// The attendance check (`POST /v1/checks`, FHIR CareTeam and Flag):
/// audited `Allowed` or `Failed`, then watched for unusual volume.
pub(crate) async fn check<S: CheckStore, Q: Queue>(
    state: &AppState<S, Q>,
    audit: &Audit<'_>,
    clinician: &Clinician,
    nhs_number: &NhsNumber,
    unscheduled: bool,
) -> Result<CheckResult, StoreError> {
    let result = cpis_domain::check(
        &state.store,
        &state.queue,
        clinician,
        nhs_number,
        unscheduled,
        state.clock.now(),
        &state.policy,
    )
    .await;
    let result = audit
        .record(
            state,
            Some(nhs_number),
            result.map_err(Failure::<StoreError>::of),
        )
        .await?;
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
