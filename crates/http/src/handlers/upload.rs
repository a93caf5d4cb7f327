//! Plan upload: `POST /v1/uploads`, `POST /v1/uploads/rewind` and the
//! council's own plans, `GET /v1/plans`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cpis_domain::upload::UploadResult;
use cpis_domain::{process_upload, AuditAction, OdsCode, Plan, MAX_SEQUENCE};
use serde::{Deserialize, Serialize};
use time::Date;

use crate::audit::{Audit, Failure};
use crate::caller::Council;
use crate::dialect::json_answer;
use crate::extract::{parse_json, require_json, upload_body_problem};
use crate::paging::council_listing;
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::{AppState, CouncilStore, Queue};

pub(crate) async fn upload<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = body.map_err(|r| Failure::invalid(upload_body_problem(r)))?;
        require_json(&headers).map_err(Failure::invalid)?;
        let now = state.clock.now();
        let result = process_upload(&state.store, &caller.authority, &body, now, &state.policy)
            .await
            .map_err(Failure::of)?;
        record_feed(&state, &caller.authority, &result, now).await;
        Ok(result)
    }
    .await;
    let audit = Audit::new(&caller.principal, AuditAction::Upload, &request_id);
    match audit.record(&state, None, result).await {
        Ok(result) => {
            let mut response = Json(result.acknowledgement).into_response();
            if result.replayed {
                response
                    .headers_mut()
                    .insert("x-cpis-replayed", HeaderValue::from_static("true"));
            }
            response
        }
        Err(problem) => Problem::into_response(problem),
    }
}

/// Feed freshness: an accepted full snapshot is recorded after the upload
/// is stored. A failure to record it is logged at error level and does not
/// fail the upload, which is already on disk (the store's readiness shows
/// the failed write).
async fn record_feed<S: CouncilStore, Q>(
    state: &AppState<S, Q>,
    council: &OdsCode,
    result: &UploadResult,
    now: time::OffsetDateTime,
) {
    if !cpis_domain::feed::is_accepted_full_snapshot(&result.acknowledgement, result.replayed) {
        return;
    }
    if let Err(error) = state.store.record_full_snapshot(council, now).await {
        tracing::error!(%error, %council, "could not record the council's full snapshot; its feed may be reported stale");
    }
}

/// `POST /v1/uploads/rewind` body: the last good sequence.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewindRequest {
    sequence: u64,
}

#[derive(Serialize)]
struct RewindView {
    sequence: u64,
    previous: u64,
    retired_receipts: usize,
}

/// The council's way back from a wrong sequence (see
/// [`cpis_domain::rewind_sequence`]); audited as `RewindSequence`.
pub(crate) async fn rewind_sequence<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request: RewindRequest =
            parse_json(&headers, body, "sequence").map_err(Failure::invalid)?;
        if request.sequence > MAX_SEQUENCE {
            return Err(Failure::invalid(
                Problem::bad_request(
                    "INVALID_SEQUENCE",
                    format!("sequence must be a whole number from 0 to {MAX_SEQUENCE}"),
                )
                .with_pointer("/sequence"),
            ));
        }
        let now = state.clock.now();
        let rewind =
            cpis_domain::rewind_sequence(&state.store, &caller.authority, request.sequence, now)
                .await
                .map_err(Failure::of)?;
        Ok(RewindView {
            sequence: rewind.sequence,
            previous: rewind.previous,
            retired_receipts: rewind.retired,
        })
    }
    .await;
    let audit = Audit::new(&caller.principal, AuditAction::RewindSequence, &request_id);
    json_answer(audit.record(&state, None, result).await)
}

/// A plan as its own council sees it.
#[derive(Serialize)]
struct CouncilPlanView {
    nhs_number: String,
    plan_type: cpis_domain::PlanType,
    start_date: Date,
    end_date: Option<Date>,
    delete_date: Option<Date>,
    due_date: Option<Date>,
    local_id: Option<String>,
}

impl From<Plan> for CouncilPlanView {
    fn from(p: Plan) -> Self {
        Self {
            nhs_number: p.nhs_number.expose(),
            plan_type: p.plan_type,
            start_date: p.start_date,
            end_date: p.end_date,
            delete_date: p.delete_date,
            due_date: p.due_date,
            local_id: p.local_id,
        }
    }
}

#[derive(Serialize)]
struct PlanPage {
    plans: Vec<CouncilPlanView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub(crate) async fn list_plans<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    RawQuery(query): RawQuery,
) -> Response {
    let (store, council) = (&state.store, &caller.authority);
    let fetch = |cursor: Option<String>, limit| async move {
        store
            .plans_for_authority(council, cursor.as_deref(), limit)
            .await
    };
    let body = |plans, next_cursor| PlanPage { plans, next_cursor };
    let action = AuditAction::ListPlans;
    council_listing(
        &state,
        &caller,
        &request_id,
        action,
        query.as_deref(),
        fetch,
        body,
    )
    .await
}
