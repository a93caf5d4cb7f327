//! The FHIR R4 routes of NHS England's CP-IS API, over the same use cases as
//! the JSON API. Errors are `OperationOutcome`s. The query string carries
//! the NHS number here (as in NHS England's API): nothing of ours logs it.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use cpis_domain::{AuditAction, NhsNumber};
use cpis_fhir::{FhirError, PATIENT_IDENTIFIER_PARAM, UNSCHEDULED_HEADER};
use serde_json::Value;

use crate::audit::Audit;
use crate::caller::CareSetting;
use crate::dialect::{fhir_json, outcome_response, IntoFhir};
use crate::extract::query_pairs;
use crate::request_id::RequestId;
use crate::routes::{self, RouteSpec};
use crate::state::{AppState, CheckStore, HistoryStore, Queue};
use crate::usecase;

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
/// `Prefer: handling=strict`. `Accept` must admit FHIR JSON (else 406).
fn search(spec: &RouteSpec, query: Option<&str>, headers: &HeaderMap) -> Result<Search, FhirError> {
    accepted(headers)?;
    let pairs = query_pairs(query).ok_or(FhirError::InvalidSearchData(
        "the query string is not valid",
    ))?;
    let mut found = None;
    let mut unknown = false;
    for (key, value) in pairs {
        if key == PATIENT_IDENTIFIER_PARAM {
            if found.is_some() {
                return Err(FhirError::InvalidSearchData("give patient:identifier once"));
            }
            found = Some(value);
        } else if key == "_format" {
            if !json_format(&value) {
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
        "{}?{PATIENT_IDENTIFIER_PARAM}={}%7C{}",
        spec.path,
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
fn accepts_fhir_json(headers: &HeaderMap) -> bool {
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

/// Which check a search runs: CareTeam takes `IsUnscheduledAccessEvent`;
/// Flag is scheduled care, a silent read whatever the caller's RBAC.
#[derive(Clone, Copy)]
enum CheckSearch {
    CareTeam,
    Flag,
}

/// The CareTeam and Flag searches: parse, check (audited), render.
async fn check_search<S: CheckStore, Q: Queue>(
    state: &AppState<S, Q>,
    caller: &CareSetting,
    request_id: &RequestId,
    headers: &HeaderMap,
    query: Option<&str>,
    kind: CheckSearch,
) -> Result<Value, FhirError> {
    let audit = Audit::new(&caller.principal, AuditAction::Check, request_id);
    let spec = match kind {
        CheckSearch::CareTeam => &routes::FHIR_CARE_TEAM,
        CheckSearch::Flag => &routes::FHIR_FLAG,
    };
    let parsed = search(spec, query, headers).and_then(|search| {
        let unscheduled = match kind {
            CheckSearch::CareTeam => cpis_fhir::parse_unscheduled_header(
                headers
                    .get(UNSCHEDULED_HEADER)
                    .and_then(|v| v.to_str().ok()),
            )?,
            CheckSearch::Flag => false,
        };
        Ok((search, unscheduled))
    });
    let (Search { nhs, self_link }, unscheduled) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Err(audit.invalid(state, error).await),
    };
    let result = usecase::check(state, &audit, &caller.clinician, &nhs, unscheduled)
        .await
        .map_err(IntoFhir::into_fhir)?;
    let bundle = match kind {
        CheckSearch::CareTeam => {
            cpis_fhir::care_team_bundle(&nhs, &result.plans, state.clock.today())
        }
        CheckSearch::Flag => cpis_fhir::flag_bundle(&nhs, &result.plans),
    };
    Ok(with_self_link(bundle, self_link))
}

fn answer(result: Result<Value, FhirError>) -> Response {
    match result {
        Ok(bundle) => fhir_json(StatusCode::OK, &bundle),
        Err(error) => outcome_response(&error),
    }
}

/// The `CARE_TEAM` argument of [`check_search_route`]: `CareTeam` ...
pub(crate) const CARE_TEAM: bool = true;
/// ... or `Flag`.
pub(crate) const FLAG: bool = false;

/// `GET /FHIR/R4/CareTeam` and `GET /FHIR/R4/Flag`: one handler, which
/// search it answers fixed when the route is built.
pub(crate) async fn check_search_route<S: CheckStore, Q: Queue, const CARE_TEAM: bool>(
    State(state): State<AppState<S, Q>>,
    caller: CareSetting,
    request_id: RequestId,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let kind = if CARE_TEAM {
        CheckSearch::CareTeam
    } else {
        CheckSearch::Flag
    };
    let query = query.as_deref();
    answer(check_search(&state, &caller, &request_id, &headers, query, kind).await)
}

pub(crate) async fn audit_events<S: HistoryStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: CareSetting,
    request_id: RequestId,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let audit = Audit::new(&caller.principal, AuditAction::ReadHistory, &request_id);
    let result = async {
        let Search { nhs, self_link } =
            match search(&routes::FHIR_AUDIT_EVENT, query.as_deref(), &headers) {
                Ok(search) => search,
                Err(error) => return Err(audit.invalid(&state, error).await),
            };
        let history = usecase::history(&state, &audit, &nhs)
            .await
            .map_err(IntoFhir::into_fhir)?;
        let bundle = cpis_fhir::audit_event_bundle(&nhs, &history);
        Ok(with_self_link(bundle, self_link))
    };
    answer(result.await)
}

pub(crate) async fn metadata<S: CheckStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // `_format` only; the capability statement takes no search parameters.
    let wanted = match query_pairs(query.as_deref()) {
        None => Err(FhirError::InvalidSearchData(
            "the query string is not valid",
        )),
        Some(pairs) if pairs.iter().any(|(k, v)| k == "_format" && !json_format(v)) => {
            Err(FhirError::NotAcceptable)
        }
        Some(_) => accepted(&headers),
    };
    answer(wanted.map(|()| cpis_fhir::capability_statement(state.clock.now())))
}
