//! Plan upload: `POST /v1/uploads`, `POST /v1/uploads/rewind` and the
//! council's own plans, `GET /v1/plans`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cpis_domain::{receive_upload, AuditAction, OdsCode, Plan, Received, MAX_SEQUENCE};
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
    let audit = Audit::new(&caller.principal, AuditAction::Upload, &request_id);
    let body = match body.map_err(upload_body_problem).and_then(|body| {
        require_json(&headers)?;
        Ok(body)
    }) {
        Ok(body) => body,
        Err(problem) => return Problem::into_response(audit.invalid(&state, problem).await),
    };
    // The one upload use case (the MESH exchange runs it too): the upload,
    // the council's feed, the audit event.
    let received = receive_upload(
        &state.store,
        &caller.principal,
        &caller.authority,
        &body,
        state.clock.now(),
        &state.policy,
        &request_id.0,
    )
    .await;
    report_side_records(&received, &caller.authority, &request_id.0);
    match received.result {
        Ok(result) => {
            let mut response = Json(result.acknowledgement).into_response();
            if result.replayed {
                response
                    .headers_mut()
                    .insert("x-cpis-replayed", HeaderValue::from_static("true"));
            }
            response
        }
        Err(error) => Problem::from(error).into_response(),
    }
}

/// The upload is on disk either way: a failed feed or audit record is
/// logged at error level, never shown to the caller (the store's readiness
/// shows the failed write).
fn report_side_records(received: &Received, council: &OdsCode, request_id: &str) {
    if let Some(error) = &received.feed_error {
        tracing::error!(%error, %council, "could not record the council's full snapshot; its feed may be reported stale");
    }
    if let Some(error) = &received.audit_error {
        tracing::error!(request_id, %error, action = ?AuditAction::Upload, "could not write the audit event");
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
