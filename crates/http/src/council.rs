//! Council routes: uploads, plans, the directory entry and the ASN inbox.
//! Every call is scoped by the council in the credential.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cpis_domain::ports::StoreError;
use cpis_domain::{
    process_upload, Asn, AsnPlan, AuditAction, AuditOutcome, AuthorityUpdate, OdsCode, Plan,
    Principal, RewindError, UploadError, MAX_SEQUENCE,
};
use serde::{Deserialize, Serialize};
use time::Date;

use crate::care::{parse_json, store_problem, upload_body_problem};
use crate::middleware::RequestId;
use crate::problem::Problem;
use crate::{AppState, CouncilStore, Queue};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// The council in the credential. The router only lets councils in, so
/// anything else is a wiring fault, answered as a denial.
fn council_of(principal: &Principal) -> Result<&OdsCode, Problem> {
    match principal {
        Principal::Council { authority, .. } => Ok(authority),
        Principal::Clinician(_) => Err(Problem::forbidden()),
    }
}

/// `?cursor=..&limit=..`; anything else is refused.
fn page_query(raw: Option<&str>) -> Result<(Option<String>, usize), Problem> {
    let mut cursor = None;
    let mut limit = DEFAULT_PAGE;
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| {
            Problem::bad_request("INVALID_QUERY", "the query string is not valid")
        })?;
        match key {
            // An empty cursor is the first page.
            "cursor" => cursor = Some(value).filter(|v| !v.is_empty()),
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        Problem::bad_request(
                            "INVALID_QUERY",
                            "limit must be a whole number from 1 to 500",
                        )
                    })?
            }
            _ => {
                return Err(Problem::bad_request(
                    "INVALID_QUERY",
                    "only the cursor and limit parameters are accepted",
                ))
            }
        }
    }
    Ok((unwrap_cursor(cursor)?, limit))
}

/// Decodes `%XX` and `+`; `None` for malformed input.
pub(crate) fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Page cursors leave the service wrapped (base64url): a store's cursor may
/// carry an NHS number (the memory store's does), and a cursor travels back in
/// a query string, which proxies and gateways may log.
fn wrap_cursor(store_cursor: String) -> String {
    URL_SAFE_NO_PAD.encode(store_cursor)
}

fn unwrap_cursor(cursor: Option<String>) -> Result<Option<String>, Problem> {
    cursor
        .map(|wrapped| {
            URL_SAFE_NO_PAD
                .decode(wrapped.as_bytes())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(invalid_cursor)
        })
        .transpose()
}

fn invalid_cursor() -> Problem {
    Problem::bad_request(
        "INVALID_CURSOR",
        "the cursor is not one this service issued",
    )
}

fn cursor_problem(error: StoreError) -> Problem {
    match error {
        StoreError::InvalidCursor => invalid_cursor(),
        other => store_problem(other),
    }
}

pub async fn upload<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = upload_inner(&state, &principal, &headers, body).await;
    let outcome = match &result {
        Ok(_) => AuditOutcome::Allowed,
        Err(p) if p.status >= 500 => AuditOutcome::Failed,
        Err(_) => AuditOutcome::Invalid,
    };
    state
        .audit(
            Some(&principal),
            AuditAction::Upload,
            None,
            outcome,
            &request_id,
        )
        .await;
    match result {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn upload_inner<S: CouncilStore, Q: Queue>(
    state: &AppState<S, Q>,
    principal: &Principal,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let council = council_of(principal)?;
    let body = body.map_err(upload_body_problem)?;
    crate::care::require_json(headers)?;
    let now = state.clock.now();
    match process_upload(&state.store, council, &body, now, &state.policy).await {
        Ok(result) => {
            record_feed(state, council, &result, now).await;
            let mut response = Json(result.acknowledgement).into_response();
            if result.replayed {
                response.headers_mut().insert(
                    "x-cpis-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
            }
            Ok(response)
        }
        Err(UploadError::Malformed { detail, pointer }) => {
            Err(Problem::bad_request("CPF01", detail)
                .with_pointer(pointer)
                .with_file_outcome("CPF01"))
        }
        Err(error @ UploadError::TooManyRecords) => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_MANY_RECORDS",
            "Batch too large",
            error.to_string(),
        )),
        Err(error @ (UploadError::SequenceReused { .. } | UploadError::StaleSequence { .. })) => {
            Err(Problem::new(
                StatusCode::CONFLICT,
                "SEQUENCE_CONFLICT",
                "Sequence conflict",
                error.to_string(),
            ))
        }
        Err(
            error @ UploadError::InProgress {
                retry_after_seconds,
            },
        ) => Err(in_progress(error.to_string(), retry_after_seconds)),
        Err(UploadError::Store(error)) => Err(store_problem(error)),
    }
}

/// 409 `UPLOAD_IN_PROGRESS`: another upload of the council is being applied
/// (uploads and rewinds run one at a time per council); `Retry-After` says
/// when to try again.
fn in_progress(detail: String, retry_after_seconds: u64) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "UPLOAD_IN_PROGRESS",
        "Upload in progress",
        detail,
    )
    .with_retry_after(retry_after_seconds)
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
pub async fn rewind_sequence<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let council = council_of(&principal)?;
        let request: RewindRequest = parse_json(&headers, body, "sequence")?;
        if request.sequence > MAX_SEQUENCE {
            return Err(Problem::bad_request(
                "INVALID_SEQUENCE",
                format!("sequence must be a whole number from 0 to {MAX_SEQUENCE}"),
            )
            .with_pointer("/sequence"));
        }
        match cpis_domain::rewind_sequence(
            &state.store,
            council,
            request.sequence,
            state.clock.now(),
        )
        .await
        {
            Ok(rewind) => Ok(RewindView {
                sequence: rewind.sequence,
                previous: rewind.previous,
                retired_receipts: rewind.retired,
            }),
            Err(error @ RewindError::AboveLatest { .. }) => Err(Problem::new(
                StatusCode::CONFLICT,
                "REWIND_ABOVE_LATEST",
                "Nothing to rewind",
                error.to_string(),
            )),
            Err(
                error @ RewindError::InProgress {
                    retry_after_seconds,
                },
            ) => Err(in_progress(error.to_string(), retry_after_seconds)),
            Err(RewindError::Store(error)) => Err(store_problem(error)),
        }
    }
    .await;
    respond(
        &state,
        &principal,
        AuditAction::RewindSequence,
        &request_id,
        result,
    )
    .await
}

#[derive(Serialize)]
struct PlanView {
    nhs_number: String,
    plan_type: cpis_domain::PlanType,
    start_date: Date,
    end_date: Option<Date>,
    delete_date: Option<Date>,
    due_date: Option<Date>,
    local_id: Option<String>,
}

impl From<Plan> for PlanView {
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
    plans: Vec<PlanView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub async fn list_plans<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let council = council_of(&principal)?;
        let (cursor, limit) = page_query(query.as_deref())?;
        let page = state
            .store
            .plans_for_authority(council, cursor.as_deref(), limit)
            .await
            .map_err(cursor_problem)?;
        Ok::<_, Problem>(PlanPage {
            plans: page.items.into_iter().map(PlanView::from).collect(),
            next_cursor: page.next_cursor.map(wrap_cursor),
        })
    }
    .await;
    respond(
        &state,
        &principal,
        AuditAction::ListPlans,
        &request_id,
        result,
    )
    .await
}

/// Audits by the result's shape and answers.
async fn respond<S: CouncilStore, Q: Queue, T: Serialize>(
    state: &AppState<S, Q>,
    principal: &Principal,
    action: AuditAction,
    request_id: &RequestId,
    result: Result<T, Problem>,
) -> Response {
    let outcome = match &result {
        Ok(_) => AuditOutcome::Allowed,
        Err(p) if p.status == 403 || p.status == 404 => AuditOutcome::Denied,
        Err(p) if p.status >= 500 => AuditOutcome::Failed,
        Err(_) => AuditOutcome::Invalid,
    };
    state
        .audit(Some(principal), action, None, outcome, request_id)
        .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Feed freshness: an accepted full snapshot is recorded after the upload
/// is stored. A failure to record it is logged at error level and does not
/// fail the upload, which is already on disk (the store's readiness shows
/// the failed write).
async fn record_feed<S: CouncilStore, Q>(
    state: &AppState<S, Q>,
    council: &cpis_domain::OdsCode,
    result: &cpis_domain::upload::UploadResult,
    now: time::OffsetDateTime,
) {
    if !cpis_domain::feed::is_accepted_full_snapshot(&result.acknowledgement, result.replayed) {
        return;
    }
    if let Err(error) = state.store.record_full_snapshot(council, now).await {
        tracing::error!(%error, %council, "could not record the council's full snapshot; its feed may be reported stale");
    }
}

/// The council's feed freshness, where the store keeps it.
async fn feed_view<S: CouncilStore, Q>(
    state: &AppState<S, Q>,
    council: &cpis_domain::OdsCode,
) -> Result<Option<FeedView>, Problem> {
    if !state.store.tracks_feeds() {
        return Ok(None);
    }
    let last = state
        .store
        .last_full_snapshot(council)
        .await
        .map_err(store_problem)?;
    let now = state.clock.now();
    Ok(Some(FeedView {
        last_full_snapshot_at: last,
        seconds_since_last_full_snapshot: last
            .map(|at| cpis_domain::feed::age(at, now).whole_seconds()),
    }))
}

#[derive(Serialize)]
struct AuthorityView {
    ods_code: String,
    name: String,
    office_hours_phone: String,
    emergency_duty_phone: String,
    notify_emails: Vec<String>,
    notify_sms: Vec<String>,
    /// Absent where the store does not keep feed freshness (AWS, for now).
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

impl From<cpis_domain::Authority> for AuthorityView {
    fn from(a: cpis_domain::Authority) -> Self {
        Self {
            ods_code: a.ods_code.to_string(),
            name: a.name,
            office_hours_phone: a.office_hours_phone,
            emergency_duty_phone: a.emergency_duty_phone,
            notify_emails: a.notify_emails,
            notify_sms: a.notify_sms,
            feed: None,
        }
    }
}

pub async fn read_authority<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
) -> Response {
    let result = async {
        let council = council_of(&principal)?;
        let mut view: AuthorityView = state
            .store
            .authority(council)
            .await
            .map_err(store_problem)?
            .map(AuthorityView::from)
            .ok_or_else(|| Problem::not_found("directory entry: PUT /v1/authority creates it"))?;
        view.feed = feed_view(&state, council).await?;
        Ok(view)
    }
    .await;
    respond(
        &state,
        &principal,
        AuditAction::ReadAuthority,
        &request_id,
        result,
    )
    .await
}

pub async fn update_authority<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let council = council_of(&principal)?;
        let update: AuthorityUpdate = parse_json(
            &headers,
            body,
            "name, office_hours_phone, emergency_duty_phone, notify_emails, notify_sms",
        )?;
        let authority = update.validate(council).map_err(|errors| {
            Problem::bad_request(
                "INVALID_DIRECTORY_ENTRY",
                "some fields are not valid; see errors",
            )
            .with_errors(errors)
        })?;
        state
            .store
            .put_authority(&authority)
            .await
            .map_err(store_problem)?;
        let mut view = AuthorityView::from(authority);
        view.feed = feed_view(&state, council).await?;
        Ok(view)
    }
    .await;
    respond(
        &state,
        &principal,
        AuditAction::UpdateAuthority,
        &request_id,
        result,
    )
    .await
}

#[derive(Serialize)]
struct AccessorView {
    kind: cpis_domain::AccessorKind,
    user_id: String,
    rbac: cpis_domain::Rbac,
    organisation_ods: String,
    organisation_name: String,
    setting: String,
}

#[derive(Serialize)]
struct AsnView {
    id: String,
    nhs_number: String,
    local_id: Option<String>,
    plan_type: cpis_domain::PlanType,
    plans: Vec<AsnPlan>,
    #[serde(with = "time::serde::rfc3339")]
    accessed_at: time::OffsetDateTime,
    accessor: AccessorView,
    acknowledged: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    acknowledged_at: Option<time::OffsetDateTime>,
}

impl From<Asn> for AsnView {
    fn from(a: Asn) -> Self {
        Self {
            id: a.id,
            nhs_number: a.nhs_number.expose(),
            local_id: a.local_id,
            plan_type: a.plan_type,
            plans: a.plans,
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

pub async fn list_notifications<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let council = council_of(&principal)?;
        let (cursor, limit) = page_query(query.as_deref())?;
        let page = state
            .store
            .notifications(council, cursor.as_deref(), limit)
            .await
            .map_err(cursor_problem)?;
        Ok::<_, Problem>(AsnPage {
            notifications: page.items.into_iter().map(AsnView::from).collect(),
            next_cursor: page.next_cursor.map(wrap_cursor),
        })
    }
    .await;
    respond(
        &state,
        &principal,
        AuditAction::ListNotifications,
        &request_id,
        result,
    )
    .await
}

/// An id that cannot be an ASN id is answered exactly like a missing one.
fn plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub async fn read_notification<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let council = council_of(&principal)?;
        let id = id.map(|Path(id)| id).unwrap_or_default();
        let found = if plausible_id(&id) {
            state
                .store
                .notification(council, &id)
                .await
                .map_err(store_problem)?
        } else {
            None
        };
        found
            .map(AsnView::from)
            .ok_or_else(|| Problem::not_found("notification"))
    }
    .await;
    respond(
        &state,
        &principal,
        AuditAction::ReadNotification,
        &request_id,
        result,
    )
    .await
}

pub async fn acknowledge_notification<S: CouncilStore, Q: Queue>(
    State(state): State<AppState<S, Q>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let council = council_of(&principal)?;
        let id = id.map(|Path(id)| id).unwrap_or_default();
        let found = if plausible_id(&id) {
            state
                .store
                .acknowledge(council, &id, state.clock.now())
                .await
                .map_err(store_problem)?
        } else {
            None
        };
        found
            .map(AsnView::from)
            .ok_or_else(|| Problem::not_found("notification"))
    }
    .await;
    respond(
        &state,
        &principal,
        AuditAction::AcknowledgeNotification,
        &request_id,
        result,
    )
    .await
}
