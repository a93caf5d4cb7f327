//! The council's ASN inbox: `GET /v1/notifications`, one ASN, and its
//! acknowledgement.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cpis_domain::{AckNote, Asn, AsnPlan, AuditAction};
use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::caller::Council;
use crate::dialect::json_answer;
use crate::extract::parse_json;
use crate::paging::council_listing;
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::{AppState, CouncilStore, Queue};
use crate::usecase::{self, AsnAccess};

#[derive(Serialize)]
struct AccessorView {
    kind: cpis_domain::AccessorKind,
    user_id: String,
    rbac: cpis_domain::Rbac,
    organisation_ods: String,
    organisation_name: String,
    setting: String,
}

/// A plan as the inbox shows it (the stored [`AsnPlan`] also keeps the
/// upload it came from, for the council's ASN file).
#[derive(Clone, Serialize)]
struct AsnPlanView {
    plan_type: cpis_domain::PlanType,
    local_id: Option<String>,
}

impl From<&AsnPlan> for AsnPlanView {
    fn from(plan: &AsnPlan) -> Self {
        Self {
            plan_type: plan.plan_type,
            local_id: plan.local_id.clone(),
        }
    }
}

#[derive(Serialize)]
struct AsnView {
    id: String,
    nhs_number: String,
    /// `plan_type` and `local_id` of the plan the ASN is about (the first).
    #[serde(flatten)]
    first_plan: Option<AsnPlanView>,
    plans: Vec<AsnPlanView>,
    #[serde(with = "time::serde::rfc3339")]
    accessed_at: time::OffsetDateTime,
    accessor: AccessorView,
    acknowledged: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    acknowledged_at: Option<time::OffsetDateTime>,
    /// The note given with the acknowledgement, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledgement_note: Option<String>,
}

impl From<Asn> for AsnView {
    fn from(a: Asn) -> Self {
        let plans: Vec<AsnPlanView> = a.plans.iter().map(AsnPlanView::from).collect();
        Self {
            id: a.id,
            nhs_number: a.nhs_number.expose(),
            first_plan: plans.first().cloned(),
            plans,
            accessed_at: a.accessed_at,
            accessor: AccessorView {
                kind: a.accessor.kind,
                user_id: a.accessor.user_id,
                rbac: a.accessor.rbac,
                organisation_ods: a.accessor.organisation_ods.to_string(),
                organisation_name: a.accessor.organisation_name,
                setting: a.accessor.setting,
            },
            acknowledged: a.acknowledged_at.is_some(),
            acknowledged_at: a.acknowledged_at,
            acknowledgement_note: a.acknowledgement_note,
        }
    }
}

#[derive(Serialize)]
struct AsnPage {
    notifications: Vec<AsnView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub(crate) async fn list_notifications<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    RawQuery(query): RawQuery,
) -> Response {
    let (store, council) = (&state.store, &caller.authority);
    let fetch = |cursor: Option<String>, limit| async move {
        store.notifications(council, cursor.as_deref(), limit).await
    };
    let body = |notifications, next_cursor| AsnPage {
        notifications,
        next_cursor,
    };
    let action = AuditAction::ListNotifications;
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

/// `POST /v1/notifications/{id}/ack`'s optional body: the duty team's note.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    #[serde(default)]
    note: Option<String>,
}

pub(crate) async fn read_notification<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let audit = Audit::new(
        &caller.principal,
        AuditAction::ReadNotification,
        &request_id,
    );
    let read = usecase::notification::<_, _, Problem>(
        &state,
        &audit,
        &caller.authority,
        &id,
        AsnAccess::Read,
    );
    json_answer(read.await.map(AsnView::from))
}

/// Acknowledges one ASN; the body is optional (none, or `{"note": "..."}`,
/// at most 1,000 characters, kept with the ASN: [`AckNote`]).
pub(crate) async fn acknowledge_notification<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let audit = Audit::new(
        &caller.principal,
        AuditAction::AcknowledgeNotification,
        &request_id,
    );
    let note = match ack_note(&headers, body) {
        Ok(note) => note,
        Err(problem) => return audit.invalid(&state, problem).await.into_response(),
    };
    let acknowledged = usecase::notification::<_, _, Problem>(
        &state,
        &audit,
        &caller.authority,
        &id,
        AsnAccess::Acknowledge(note.as_ref()),
    );
    json_answer(acknowledged.await.map(AsnView::from))
}

/// The note of an acknowledgement: none for an empty body.
fn ack_note(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<AckNote>, Problem> {
    if body.as_ref().is_ok_and(|b| b.is_empty()) {
        return Ok(None);
    }
    let request: AckRequest = parse_json(headers, body, "note (string, optional)")?;
    request
        .note
        .as_deref()
        .map(AckNote::parse)
        .transpose()
        .map(Option::flatten)
        .map_err(|error| {
            Problem::bad_request("INVALID_NOTE", error.to_string()).with_pointer("/note")
        })
}
