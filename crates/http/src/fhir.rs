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
use crate::routes;
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

/// A search as applied: the child, and the `self` link of the searchset
/// Bundle, which names only the parameters applied.
struct Search {
    nhs: NhsNumber,
    self_link: String,
}

/// Parses a FHIR search's query string (FHIR R4 "Search", 3.1.1.4: "Handling
/// errors"): `patient:identifier` is the one search parameter applied;
/// `_format` must ask for JSON (else 406). Any other parameter is ignored by
/// default (lenient) and is a 400 `OperationOutcome` under
/// `Prefer: handling=strict`.
fn search(path: &str, query: Option<&str>, headers: &HeaderMap) -> Result<Search, FhirError> {
    let invalid_query = || FhirError::InvalidSearchData("the query string is not valid");
    let mut found = None;
    let mut unknown = false;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key).ok_or_else(invalid_query)?;
        if key == PATIENT_IDENTIFIER_PARAM {
            if found.is_some() {
                return Err(FhirError::InvalidSearchData("give patient:identifier once"));
            }
            found = Some(percent_decode(value).ok_or_else(invalid_query)?);
        } else if key == "_format" {
            let format = percent_decode(value).ok_or_else(invalid_query)?;
            if !json_format(&format) {
                return Err(FhirError::NotAcceptable);
            }
        } else {
            unknown = true;
        }
    }
    if unknown && strict_handling(headers) {
        return Err(FhirError::InvalidSearchData(
            "a search parameter this server does not support was given with Prefer: handling=strict; see metadata",
        ));
    }
    let nhs = cpis_fhir::parse_patient_identifier(found.as_deref())?;
    let self_link = format!(
        "{path}?{PATIENT_IDENTIFIER_PARAM}={}%7C{}",
        cpis_fhir::NHS_NUMBER_SYSTEM
            .replace(':', "%3A")
            .replace('/', "%2F"),
        nhs.expose()
    );
    Ok(Search { nhs, self_link })
}

/// `Prefer: handling=strict` (RFC 7240; FHIR R4 search).
fn strict_handling(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
}

/// `_format` values meaning FHIR JSON (FHIR R4 http.html#mime-type).
fn json_format(format: &str) -> bool {
    let format = format.split(';').next().unwrap_or_default().trim();
    ["json", "application/json", "application/fhir+json"]
        .iter()
        .any(|f| format.eq_ignore_ascii_case(f))
}

/// Whether `Accept` (absent: anything) admits FHIR JSON; a client asking
/// only for XML gets 406 rather than JSON it did not ask for.
pub(crate) fn accepts_fhir_json(headers: &HeaderMap) -> bool {
    let mut ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .peekable();
    if ranges.peek().is_none() {
        return true;
    }
    ranges.any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        !refused
            && [
                "*/*",
                "application/*",
                "application/json",
                "application/fhir+json",
            ]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
    })
}

fn accepted(headers: &HeaderMap) -> Result<(), FhirError> {
    if accepts_fhir_json(headers) {
        Ok(())
    } else {
        Err(FhirError::NotAcceptable)
    }
}

fn with_self_link(mut bundle: Value, self_link: String) -> Value {
    if let Some(object) = bundle.as_object_mut() {
        object.insert(
            "link".to_owned(),
            serde_json::json!([{ "relation": "self", "url": self_link }]),
        );
    }
    bundle
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
    let searched = accepted(&headers)
        .and_then(|()| search(routes::FHIR_CARE_TEAM.path, query.as_deref(), &headers));
    let Search { nhs, self_link } = match searched {
        Ok(search) => search,
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
            &with_self_link(
                cpis_fhir::care_team_bundle(&nhs, &result.plans, state.clock.today()),
                self_link,
            ),
        ),
        Err(problem) => outcome_response(&problem_to_fhir(&problem)),
    }
}

pub async fn flag<S: CheckStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let searched = accepted(&headers)
        .and_then(|()| search(routes::FHIR_FLAG.path, query.as_deref(), &headers));
    let Search { nhs, self_link } = match searched {
        Ok(search) => search,
        Err(e) => return invalid(&state, &principal, AuditAction::Check, &request_id, e).await,
    };
    // Scheduled care: a silent read, whatever the caller's RBAC.
    match run_check(&state, &principal, &nhs, false, &request_id).await {
        Ok(result) => fhir_json(
            StatusCode::OK,
            &with_self_link(cpis_fhir::flag_bundle(&nhs, &result.plans), self_link),
        ),
        Err(problem) => outcome_response(&problem_to_fhir(&problem)),
    }
}

pub async fn audit_events<S: HistoryStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let searched = accepted(&headers)
        .and_then(|()| search(routes::FHIR_AUDIT_EVENT.path, query.as_deref(), &headers));
    let Search { nhs, self_link } = match searched {
        Ok(search) => search,
        Err(e) => {
            return invalid(&state, &principal, AuditAction::ReadHistory, &request_id, e).await
        }
    };
    match run_history(&state, &principal, &nhs, &request_id).await {
        Ok(history) => fhir_json(
            StatusCode::OK,
            &with_self_link(cpis_fhir::audit_event_bundle(&nhs, &history), self_link),
        ),
        Err(problem) => outcome_response(&problem_to_fhir(&problem)),
    }
}

pub async fn metadata<S: CheckStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // `_format` only; the capability statement takes no search parameters.
    let xml_format = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("_format="))
        .any(|format| !percent_decode(format).is_some_and(|f| json_format(&f)));
    let wanted = if xml_format {
        Err(FhirError::NotAcceptable)
    } else {
        accepted(&headers)
    };
    if let Err(error) = wanted {
        return outcome_response(&error);
    }
    fhir_json(
        StatusCode::OK,
        &cpis_fhir::capability_statement(state.clock.now()),
    )
}
