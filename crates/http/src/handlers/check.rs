//! The attendance check: `POST /v1/checks`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cpis_domain::{AccessSummary, AuditAction, AuthorityContact, VisiblePlan};
use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::caller::CareSetting;
use crate::dialect::json_ok;
use crate::extract::{parse_json, parse_nhs_number};
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::{AppState, CheckStore, Queue};
use crate::usecase;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    nhs_number: String,
    unscheduled: bool,
}

/// A plan as the clinician sees it: the flag and whom to ring.
#[derive(Serialize)]
struct VisiblePlanView {
    plan_type: cpis_domain::PlanType,
    start_date: time::Date,
    end_date: Option<time::Date>,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_date: Option<time::Date>,
    authority: AuthorityContact,
}

impl From<VisiblePlan> for VisiblePlanView {
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
    plans: Vec<VisiblePlanView>,
    access_history: Vec<AccessSummary>,
}

pub(crate) async fn check<S: CheckStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: CareSetting,
    request_id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let audit = Audit::new(&caller.principal, AuditAction::Check, &request_id);
    let parsed =
        parse_json::<CheckRequest>(&headers, body, "nhs_number (string), unscheduled (boolean)")
            .and_then(|r| Ok((parse_nhs_number(&r.nhs_number)?, r.unscheduled)));
    let (nhs_number, unscheduled) = match parsed {
        Ok(parsed) => parsed,
        Err(problem) => return audit.invalid(&state, problem).await.into_response(),
    };
    match usecase::check(&state, &audit, &caller.clinician, &nhs_number, unscheduled).await {
        Ok(result) => json_ok(&CheckResponse {
            plans: result
                .plans
                .into_iter()
                .map(VisiblePlanView::from)
                .collect(),
            access_history: result.access_history,
        }),
        Err(error) => Problem::from(error).into_response(),
    }
}
