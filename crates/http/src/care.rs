//! The attendance check (`POST /v1/checks`), and the body helpers every JSON
//! route shares.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cpis_domain::ports::StoreError;
use cpis_domain::{
    check as domain_check, AccessEffect, AccessSummary, AuditAction, AuditOutcome,
    AuthorityContact, Clinician, NhsNumber, Principal, VisiblePlan,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::middleware::RequestId;
use crate::problem::Problem;
use crate::{AppState, CheckStore, Queue};

/// Requires `content-type: application/json`.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Unsupported media type",
            "send the body as application/json",
        ))
    }
}

/// A body that could not be read. 413 advice fits the route: only an
/// upload is told to split its batch.
pub(crate) fn body_problem(rejection: BytesRejection) -> Problem {
    body_problem_with(
        rejection,
        "the body is larger than this route accepts (16 KB); send only the fields it takes",
    )
}

/// [`body_problem`] for `POST /v1/uploads`.
pub(crate) fn upload_body_problem(rejection: BytesRejection) -> Problem {
    body_problem_with(
        rejection,
        "the body is larger than an upload accepts: at most 5 MB and 10,000 records; split it into several delta uploads with consecutive sequence numbers",
    )
}

fn body_problem_with(rejection: BytesRejection, advice: &'static str) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            "Body too large",
            advice,
        )
    } else {
        Problem::bad_request("UNREADABLE_BODY", "the request body could not be read")
    }
}

/// Parses a JSON body through the one strict reader
/// ([`cpis_domain::json::parse`]), then into `T`. 400 `INVALID_JSON` (line
/// and column), 400 `REPEATED_MEMBER` (a member name given twice at any
/// depth, with its pointer), or 400 `INVALID_BODY` (not an object of the
/// expected fields). Serde's messages can quote the input (an NHS number),
/// so they are never passed on: the caller is told where, not what.
pub(crate) fn parse_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, Problem> {
    let body = body.map_err(body_problem)?;
    require_json(headers)?;
    let invalid_body = || {
        Problem::bad_request(
            "INVALID_BODY",
            format!("the body must be a JSON object with exactly: {expected}"),
        )
    };
    let value = cpis_domain::json::parse(&body).map_err(json_problem)?;
    // Serde's derived structs also take a JSON array (fields by position);
    // the contract is an object with named fields.
    if !value.is_object() {
        return Err(invalid_body());
    }
    serde_json::from_value(value).map_err(|_| invalid_body())
}

/// A body the strict reader refused, as a problem.
pub(crate) fn json_problem(error: cpis_domain::json::JsonError) -> Problem {
    use cpis_domain::json::JsonError;
    match error {
        JsonError::Syntax { .. } => Problem::bad_request("INVALID_JSON", error.to_string()),
        JsonError::RepeatedMember { pointer } => Problem::bad_request(
            "REPEATED_MEMBER",
            "a member name is given more than once in one object; give each once",
        )
        .with_pointer(pointer),
    }
}

pub(crate) fn store_problem(error: StoreError) -> Problem {
    tracing::error!(%error, "store error");
    Problem::unavailable()
}

pub(crate) fn parse_nhs_number(raw: &str) -> Result<NhsNumber, Problem> {
    NhsNumber::parse(raw).map_err(|_| {
        Problem::bad_request(
            "INVALID_NHS_NUMBER",
            "nhs_number must be a valid 10-digit NHS number (Modulus 11 check digit)",
        )
        .with_pointer("/nhs_number")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    nhs_number: String,
    unscheduled: bool,
}

#[derive(Serialize)]
pub(crate) struct PlanView {
    plan_type: cpis_domain::PlanType,
    start_date: time::Date,
    end_date: Option<time::Date>,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_date: Option<time::Date>,
    authority: AuthorityContact,
}

impl From<VisiblePlan> for PlanView {
    fn from(p: VisiblePlan) -> Self {
        Self {
            plan_type: p.plan_type,
            start_date: p.start_date,
            end_date: p.end_date,
            due_date: p.due_date,
            authority: p.authority,
        }
    }
}

#[derive(Serialize)]
struct CheckResponse {
    plans: Vec<PlanView>,
    access_history: Vec<AccessSummary>,
}

pub async fn check<S: CheckStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: Result<CheckRequest, Problem> =
        parse_json(&headers, body, "nhs_number (string), unscheduled (boolean)");
    let parsed = request.and_then(|r| Ok((parse_nhs_number(&r.nhs_number)?, r.unscheduled)));
    let (nhs_number, unscheduled) = match parsed {
        Ok(parsed) => parsed,
        Err(problem) => {
            state
                .audit(
                    Some(&principal),
                    AuditAction::Check,
                    None,
                    AuditOutcome::Invalid,
                    &request_id,
                )
                .await;
            return problem.into_response();
        }
    };
    match run_check(&state, &principal, &nhs_number, unscheduled, &request_id).await {
        Ok(result) => Json(CheckResponse {
            plans: result.plans.into_iter().map(PlanView::from).collect(),
            access_history: result.access_history,
        })
        .into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// One line per answered check naming the caller (never the child), which
/// the AWS stack's Contributor Insights rule ranks per caller; and a warning
/// when one caller passes the enumeration watch's threshold (hazard H6).
fn watch_volume<S, Q>(state: &AppState<S, Q>, clinician: &Clinician) {
    let caller = clinician.user_id.as_str();
    let organisation = clinician.organisation_ods.as_str();
    tracing::info!(caller, organisation, "care-setting check");
    if let Some(checks) = state.volume.observe(caller, state.clock.now()) {
        let window_minutes = state.volume.policy().window.whole_minutes();
        tracing::warn!(
            caller,
            organisation,
            checks,
            window_minutes,
            "unusual check volume from one caller: review it against the audit trail"
        );
    }
}

/// The check itself, shared with the FHIR CareTeam and Flag searches; audits it.
pub(crate) async fn run_check<S: CheckStore, Q: Queue>(
    state: &AppState<S, Q>,
    principal: &Principal,
    nhs_number: &NhsNumber,
    unscheduled: bool,
    request_id: &RequestId,
) -> Result<cpis_domain::CheckResult, Problem> {
    let Principal::Clinician(clinician) = principal else {
        state
            .audit(
                Some(principal),
                AuditAction::Check,
                Some(nhs_number),
                AuditOutcome::Denied,
                request_id,
            )
            .await;
        return Err(Problem::forbidden());
    };
    let result = domain_check(
        &state.store,
        &state.queue,
        clinician,
        nhs_number,
        unscheduled,
        state.clock.now(),
        &state.policy,
    )
    .await;
    let outcome = if result.is_ok() {
        AuditOutcome::Allowed
    } else {
        AuditOutcome::Failed
    };
    state
        .audit(
            Some(principal),
            AuditAction::Check,
            Some(nhs_number),
            outcome,
            request_id,
        )
        .await;
    let result = result.map_err(store_problem)?;
    watch_volume(state, clinician);
    match result.effect {
        AccessEffect::Recorded {
            notifications,
            queued: false,
        } => {
            tracing::warn!(request_id = %request_id.0, notifications, "hand-off to the dispatcher failed; the outbox sweep will deliver");
        }
        AccessEffect::Recorded {
            notifications,
            queued: true,
        } => {
            tracing::info!(request_id = %request_id.0, notifications, "access recorded");
        }
        _ => {}
    }
    Ok(result)
}
