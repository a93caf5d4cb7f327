//! The council's ASN inbox: `GET /v1/notifications`, one ASN, and its
//! acknowledgement.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use cpis_domain::{Asn, AsnPlan, AuditAction};
use serde::Serialize;

use crate::audit::{Audit, Failure};
use crate::caller::Council;
use crate::dialect::json_answer;
use crate::paging::council_listing;
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::{AppState, CouncilStore, Queue};

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

/// What a request does to one ASN of the caller's inbox.
enum AsnAccess {
    Read,
    Acknowledge,
}

/// Reads or acknowledges one ASN. An id that is not in the council's inbox
/// (another council's, none at all, or one that cannot be an ASN id) is the
/// same 404, audited `Denied`: the answer never says which.
async fn one_asn<S: CouncilStore, Q: Queue>(
    state: &AppState<S, Q>,
    caller: &Council,
    request_id: &RequestId,
    id: Result<Path<String>, PathRejection>,
    access: AsnAccess,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let result = async {
        let found = if plausible_id(&id) {
            match access {
                AsnAccess::Read => state.store.notification(&caller.authority, &id).await,
                AsnAccess::Acknowledge => {
                    let now = state.clock.now();
                    state.store.acknowledge(&caller.authority, &id, now).await
                }
            }
            .map_err(Failure::of)?
        } else {
            None
        };
        found
            .map(AsnView::from)
            .ok_or_else(|| Failure::denied(Problem::not_found("notification")))
    }
    .await;
    let action = match access {
        AsnAccess::Read => AuditAction::ReadNotification,
        AsnAccess::Acknowledge => AuditAction::AcknowledgeNotification,
    };
    let audit = Audit::new(&caller.principal, action, request_id);
    json_answer(audit.record(state, None, result).await)
}

/// An id that cannot be an ASN id is answered exactly like a missing one.
fn plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(crate) async fn read_notification<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    one_asn(&state, &caller, &request_id, id, AsnAccess::Read).await
}

pub(crate) async fn acknowledge_notification<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    one_asn(&state, &caller, &request_id, id, AsnAccess::Acknowledge).await
}
