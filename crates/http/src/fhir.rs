//! The FHIR R4 routes of NHS England's CP-IS API, over the same rules as the
//! JSON API. Errors are `OperationOutcome`s. The query string carries the NHS
//! number here (as in NHS England's API): nothing of ours logs it.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cpis_domain::{AuditAction, AuditOutcome, NhsNumber, Principal};
use cpis_fhir::{FhirError, FHIR_JSON, PATIENT_IDENTIFIER_PARAM, UNSCHEDULED_HEADER};
use serde_json::Value;

use crate::care::run_check;
use crate::council::percent_decode;
use crate::history::run_history;
use crate::middleware::RequestId;
use crate::problem::Problem;
use crate::{AppState, CheckStore, HistoryStore, Queue};

fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

pub(crate) fn outcome_response(error: &FhirError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = fhir_json(status, &error.operation_outcome());
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn problem_to_fhir(problem: &Problem) -> FhirError {
    match problem.status {
        403 => FhirError::AccessDenied,
        _ => FhirError::Unavailable,
    }
}

/// The `patient:identifier` search parameter; other parameters are ignored,
/// as FHIR servers may.
fn patient(query: Option<&str>) -> Result<NhsNumber, FhirError> {
    let mut found = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key).ok_or(FhirError::InvalidSearchData(
            "the query string is not valid",
        ))?;
        if key == PATIENT_IDENTIFIER_PARAM {
            if found.is_some() {
                return Err(FhirError::InvalidSearchData("give patient:identifier once"));
            }
            found = Some(percent_decode(value).ok_or(FhirError::InvalidSearchData(
                "the query string is not valid",
            ))?);
        }
    }
    cpis_fhir::parse_patient_identifier(found.as_deref())
}

async fn invalid<S: cpis_domain::ports::AuditTrail, Q>(
    state: &AppState<S, Q>,
    principal: &Principal,
    action: AuditAction,
    request_id: &RequestId,
    error: FhirError,
) -> Response {
    state
        .audit(
            Some(principal),
            action,
            None,
            AuditOutcome::Invalid,
            request_id,
        )
        .await;
    outcome_response(&error)
}

pub async fn care_team<S: CheckStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let nhs = match patient(query.as_deref()) {
        Ok(nhs) => nhs,
        Err(e) => return invalid(&state, &principal, AuditAction::Check, &request_id, e).await,
    };
    let header = headers
        .get(UNSCHEDULED_HEADER)
        .and_then(|v| v.to_str().ok());
    let unscheduled = match cpis_fhir::parse_unscheduled_header(header) {
        Ok(u) => u,
        Err(e) => return invalid(&state, &principal, AuditAction::Check, &request_id, e).await,
    };
    match run_check(&state, &principal, &nhs, unscheduled, &request_id).await {
        Ok(result) => fhir_json(
            StatusCode::OK,
            &cpis_fhir::care_team_bundle(&nhs, &result.plans, state.clock.today()),
        ),
        Err(problem) => outcome_response(&problem_to_fhir(&problem)),
    }
}

pub async fn flag<S: CheckStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
) -> Response {
    let nhs = match patient(query.as_deref()) {
        Ok(nhs) => nhs,
        Err(e) => return invalid(&state, &principal, AuditAction::Check, &request_id, e).await,
    };
    // Scheduled care: a silent read, whatever the caller's RBAC.
    match run_check(&state, &principal, &nhs, false, &request_id).await {
        Ok(result) => fhir_json(StatusCode::OK, &cpis_fhir::flag_bundle(&nhs, &result.plans)),
        Err(problem) => outcome_response(&problem_to_fhir(&problem)),
    }
}

pub async fn audit_events<S: HistoryStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
) -> Response {
    let nhs = match patient(query.as_deref()) {
        Ok(nhs) => nhs,
        Err(e) => {
            return invalid(&state, &principal, AuditAction::ReadHistory, &request_id, e).await
        }
    };
    match run_history(&state, &principal, &nhs, &request_id).await {
        Ok(history) => fhir_json(
            StatusCode::OK,
            &cpis_fhir::audit_event_bundle(&nhs, &history),
        ),
        Err(problem) => outcome_response(&problem_to_fhir(&problem)),
    }
}

pub async fn metadata<S: CheckStore, Q: Queue>(State(state): State<AppState<S, Q>>) -> Response {
    fhir_json(
        StatusCode::OK,
        &cpis_fhir::capability_statement(state.clock.now()),
    )
}
