//! The history query (`POST /v1/history`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cpis_domain::{
    history as read_history, AccessSummary, AuditAction, AuditOutcome, HistoryAnswer, NhsNumber,
    Principal,
};
use serde::{Deserialize, Serialize};

use crate::care::{parse_json, parse_nhs_number, store_problem};
use crate::middleware::RequestId;
use crate::problem::Problem;
use crate::{AppState, HistoryStore, Queue};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryRequest {
    nhs_number: String,
}

#[derive(Serialize)]
struct HistoryResponse {
    access_history: Vec<AccessSummary>,
}

pub async fn history<S: HistoryStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = parse_json::<HistoryRequest>(&headers, body, "nhs_number (string)")
        .and_then(|r| parse_nhs_number(&r.nhs_number));
    let nhs_number = match parsed {
        Ok(n) => n,
        Err(problem) => {
            state
                .audit(
                    Some(&principal),
                    AuditAction::ReadHistory,
                    None,
                    AuditOutcome::Invalid,
                    &request_id,
                )
                .await;
            return problem.into_response();
        }
    };
    match run_history(&state, &principal, &nhs_number, &request_id).await {
        Ok(access_history) => Json(HistoryResponse { access_history }).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Reads and audits a history; a caller who may not see it gets the answer
/// for a child with no history, and the audit trail records the denial.
pub(crate) async fn run_history<S: HistoryStore, Q: Queue>(
    state: &AppState<S, Q>,
    principal: &Principal,
    nhs_number: &NhsNumber,
    request_id: &RequestId,
) -> Result<Vec<AccessSummary>, Problem> {
    let answer = read_history(&state.store, principal, nhs_number, state.clock.now()).await;
    let outcome = match &answer {
        Ok(HistoryAnswer::Permitted(_)) => AuditOutcome::Allowed,
        Ok(HistoryAnswer::NotPermitted) => AuditOutcome::Denied,
        Err(_) => AuditOutcome::Failed,
    };
    state
        .audit(
            Some(principal),
            AuditAction::ReadHistory,
            Some(nhs_number),
            outcome,
            request_id,
        )
        .await;
    Ok(answer.map_err(store_problem)?.into_entries())
}
