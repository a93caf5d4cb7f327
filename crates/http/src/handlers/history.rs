//! The history query: `POST /v1/history`.

use crate::dialect::json_ok;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cpis_domain::{AccessSummary, AuditAction};
use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::caller::AnyCaller;
use crate::extract::{parse_json, parse_nhs_number};
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::{AppState, HistoryStore, Queue};
use crate::usecase;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryRequest {
    nhs_number: String,
}

#[derive(Serialize)]
struct HistoryResponse {
    access_history: Vec<AccessSummary>,
}

pub(crate) async fn history<S: HistoryStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    AnyCaller(principal): AnyCaller,
    request_id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let audit = Audit::new(&principal, AuditAction::ReadHistory, &request_id);
    let parsed = parse_json::<HistoryRequest>(&headers, body, "nhs_number (string)")
        .and_then(|r| parse_nhs_number(&r.nhs_number));
    let nhs_number = match parsed {
        Ok(n) => n,
        Err(problem) => return audit.invalid(&state, problem).await.into_response(),
    };
    match usecase::history(&state, &audit, &nhs_number).await {
        Ok(access_history) => json_ok(&HistoryResponse { access_history }),
        Err(error) => Problem::from(error).into_response(),
    }
}
