//! The council's directory entry: `GET` and `PUT /v1/authority`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cpis_domain::{AuditAction, Authority, AuthorityUpdate, OdsCode};
use serde::Serialize;

use crate::audit::{Audit, Failure};
use crate::caller::Council;
use crate::dialect::json_answer;
use crate::extract::parse_json;
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::{AppState, CouncilStore, Queue};

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
    fn new(a: Authority, feed: Option<FeedView>) -> Self {
        Self {
            ods_code: a.ods_code.to_string(),
            name: a.name,
            office_hours_phone: a.office_hours_phone,
            emergency_duty_phone: a.emergency_duty_phone,
            notify_emails: a.notify_emails,
            notify_sms: a.notify_sms,
            feed,
        }
    }
}

/// The council's feed freshness, where the store keeps it.
async fn feed_view<S: CouncilStore, Q>(
    state: &AppState<S, Q>,
    council: &OdsCode,
) -> Result<Option<FeedView>, Failure<Problem>> {
    if !state.store.tracks_feeds() {
        return Ok(None);
    }
    let last = state
        .store
        .last_full_snapshot(council)
        .await
        .map_err(Failure::of)?;
    let now = state.clock.now();
    Ok(Some(FeedView {
        last_full_snapshot_at: last,
        seconds_since_last_full_snapshot: last
            .map(|at| cpis_domain::feed::age(at, now).whole_seconds()),
    }))
}

/// The entry, or 404 before the council's first `PUT`. Reading one's own
/// entry that is not there yet is a permitted read that found nothing:
/// audited `Allowed`, not as a denial.
pub(crate) async fn read_authority<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
) -> Response {
    let result = async {
        let Some(authority) = state
            .store
            .authority(&caller.authority)
            .await
            .map_err(Failure::of)?
        else {
            return Ok(None);
        };
        let feed = feed_view(&state, &caller.authority).await?;
        Ok(Some(AuthorityView::new(authority, feed)))
    }
    .await;
    let audit = Audit::new(&caller.principal, AuditAction::ReadAuthority, &request_id);
    match audit.record(&state, None, result).await {
        Ok(None) => {
            Problem::not_found("directory entry: PUT /v1/authority creates it").into_response()
        }
        found => json_answer(found),
    }
}

pub(crate) async fn update_authority<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    caller: Council,
    request_id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let update: AuthorityUpdate = parse_json(
            &headers,
            body,
            "name, office_hours_phone, emergency_duty_phone, notify_emails, notify_sms",
        )
        .map_err(Failure::invalid)?;
        let authority = update.validate(&caller.authority).map_err(|errors| {
            Failure::invalid(
                Problem::bad_request(
                    "INVALID_DIRECTORY_ENTRY",
                    "some fields are not valid; see errors",
                )
                .with_errors(errors),
            )
        })?;
        state
            .store
            .put_authority(&authority)
            .await
            .map_err(Failure::of)?;
        let feed = feed_view(&state, &caller.authority).await?;
        Ok(AuthorityView::new(authority, feed))
    }
    .await;
    let audit = Audit::new(&caller.principal, AuditAction::UpdateAuthority, &request_id);
    json_answer(audit.record(&state, None, result).await)
}
