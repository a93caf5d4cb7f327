//! The council's directory entry: `GET` and `PUT /v1/authority`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cpis_domain::feed::Freshness;
use cpis_domain::{AuditAction, Authority, AuthorityUpdate};
use serde::Serialize;

use crate::audit::Audit;
use crate::caller::Council;
use crate::dialect::json_answer;
use crate::extract::parse_json;
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::{AppState, CouncilStore, Queue};
use crate::usecase;

#[derive(Serialize)]
struct AuthorityView {
    ods_code: String,
    name: String,
    office_hours_phone: String,
    emergency_duty_phone: String,
    notify_emails: Vec<String>,
    notify_sms: Vec<String>,
    /// Absent where the store does not keep feed freshness.
    #[serde(skip_serializing_if = "Option::is_none")]
    feed: Option<FeedView>,
}

/// How fresh the council's feed is: its last accepted full snapshot (RFC
/// 3339, `null` if none yet) and the whole seconds since then.
#[derive(Serialize)]
struct FeedView {
    #[serde(with = "time::serde::rfc3339::option")]
    last_full_snapshot_at: Option<time::OffsetDateTime>,
    seconds_since_last_full_snapshot: Option<i64>,
}

impl AuthorityView {
    fn new(a: Authority, feed: Option<Freshness>) -> Self {
        Self {
            ods_code: a.ods_code.to_string(),
            name: a.name,
            office_hours_phone: a.office_hours_phone,
            emergency_duty_phone: a.emergency_duty_phone,
            notify_emails: a.notify_emails,
            notify_sms: a.notify_sms,
            feed: feed.map(|f| FeedView {
                last_full_snapshot_at: f.last_full_snapshot_at,
                seconds_since_last_full_snapshot: f.age.map(|age| age.whole_seconds()),
            }),
        }
    }
}

/// The entry, or 404 before the council's first `PUT` (audited `Allowed`:
/// see [`usecase::read_authority`]).
pub(crate) async fn read_authority<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
) -> Response {
    let audit = Audit::new(&caller.principal, AuditAction::ReadAuthority, &request_id);
    match usecase::read_authority::<_, _, Problem>(&state, &audit, &caller.authority).await {
        Ok(None) => {
            Problem::not_found("directory entry: PUT /v1/authority creates it").into_response()
        }
        found => json_answer(found.map(|f| f.map(|(a, feed)| AuthorityView::new(a, feed)))),
    }
}

pub(crate) async fn update_authority<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let audit = Audit::new(&caller.principal, AuditAction::UpdateAuthority, &request_id);
    let update: AuthorityUpdate = match parse_json(
        &headers,
        body,
        "name, office_hours_phone, emergency_duty_phone, notify_emails, notify_sms",
    ) {
        Ok(update) => update,
        Err(problem) => return audit.invalid(&state, problem).await.into_response(),
    };
    let stored =
        usecase::update_authority::<_, _, Problem>(&state, &audit, &caller.authority, update).await;
    json_answer(stored.map(|(a, feed)| AuthorityView::new(a, feed)))
}
