//! The duty team's pages: the inbox and one ASN with its acknowledgement,
//! over the API's audited use cases (`ListNotifications`,
//! `ReadNotification`, `AcknowledgeNotification`).

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cpis_domain::{AckNote, AckNoteError, Asn, AuditAction};

use super::page::{self, ago, html, spaced, uk_datetime, FormError, Layout};
use super::session::{Form, SignedIn};
use super::{PageError, PortalState, PortalStore};
use crate::audit::Audit;
use crate::caller::Council;
use crate::paging;
use crate::request_id::RequestId;
use crate::state::Queue;
use crate::usecase::{self, AsnAccess};

struct Row {
    id: String,
    acknowledged: bool,
    ago: String,
    at: String,
    setting: String,
}

#[derive(Template)]
#[template(path = "portal/inbox.html")]
struct InboxPage {
    layout: Layout,
    rows: Vec<Row>,
    next_page: Option<String>,
}

/// The inbox's page size: the API's default page.
const INBOX_PAGE: usize = 100;

/// `GET /portal/notifications`: one page of the inbox, unacknowledged first
/// (then newest first, the store's order), with the opaque reference the
/// SMS carried, how long ago and where the child was seen.
pub(crate) async fn inbox<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    caller: Council,
    SignedIn(session): SignedIn,
    request_id: RequestId,
    RawQuery(query): RawQuery,
) -> Response {
    let audit = Audit::new(
        &caller.principal,
        AuditAction::ListNotifications,
        &request_id,
    );
    let page_query = match paging::page_query(query.as_deref()) {
        Ok(q) => q,
        Err(_) => {
            let refused = page::error_page(StatusCode::BAD_REQUEST);
            return audit.invalid(&state.app, refused).await;
        }
    };
    let listed = usecase::notifications::<_, _, PageError>(
        &state.app,
        &audit,
        &caller.authority,
        page_query.cursor.as_deref(),
        INBOX_PAGE.min(page_query.limit),
    )
    .await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(error) => return error.into_response(),
    };
    let now = state.app.clock.now();
    let (mut asns, next_page) = paging::listing::<Asn, Asn>(listed);
    // Stable: within each group the store's newest-first order stays.
    asns.sort_by_key(|a| a.acknowledged_at.is_some());
    let rows = asns
        .into_iter()
        .map(|a| Row {
            acknowledged: a.acknowledged_at.is_some(),
            ago: ago(a.accessed_at, now),
            at: uk_datetime(a.accessed_at),
            setting: a.accessor.setting,
            id: a.id,
        })
        .collect();
    let layout = Layout::signed_in("Notifications", &session, "/portal/notifications");
    html(
        StatusCode::OK,
        &InboxPage {
            layout,
            rows,
            next_page,
        },
    )
}

struct PlanLine {
    name: &'static str,
    local_id: String,
}

/// One ASN in full, as its council's duty team reads it.
struct AsnDetail {
    id: String,
    nhs_number: String,
    plans: Vec<PlanLine>,
    at: String,
    ago: String,
    organisation: String,
    organisation_ods: String,
    setting: String,
    accessor: String,
    rbac: &'static str,
    acknowledged_at: Option<String>,
    note: Option<String>,
}

impl AsnDetail {
    fn new(asn: Asn, now: time::OffsetDateTime) -> Self {
        let accessor = match asn.accessor.kind {
            cpis_domain::AccessorKind::User => asn.accessor.user_id.clone(),
            cpis_domain::AccessorKind::System => {
                format!("{} (a care setting's system)", asn.accessor.user_id)
            }
        };
        Self {
            nhs_number: spaced(&asn.nhs_number),
            plans: asn
                .plans
                .iter()
                .map(|p| PlanLine {
                    name: p.plan_type.name(),
                    local_id: p.local_id.clone().unwrap_or_else(|| "none given".into()),
                })
                .collect(),
            at: uk_datetime(asn.accessed_at),
            ago: ago(asn.accessed_at, now),
            organisation: asn.accessor.organisation_name,
            organisation_ods: asn.accessor.organisation_ods.to_string(),
            setting: asn.accessor.setting,
            accessor,
            rbac: asn.accessor.rbac.code(),
            acknowledged_at: asn.acknowledged_at.map(uk_datetime),
            note: asn.acknowledgement_note,
            id: asn.id,
        }
    }
}

#[derive(Template)]
#[template(path = "portal/notification.html")]
struct NotificationPage {
    layout: Layout,
    asn: AsnDetail,
    csrf: String,
    errors: Vec<FormError>,
    note_value: String,
    just_acknowledged: bool,
}

fn notification_page(
    session: &cpis_domain::PortalSession,
    mut asn: AsnDetail,
    errors: Vec<FormError>,
    note_value: String,
    just_acknowledged: bool,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        // An answer that refuses the form never carries the NHS number
        // (privacy: nothing personal in an error), even to the duty team
        // entitled to it; the page without the error shows it again.
        asn.nhs_number = "Shown again once the note is corrected".to_owned();
        StatusCode::BAD_REQUEST
    };
    let title = if errors.is_empty() {
        "Notification"
    } else {
        "Error: Notification"
    };
    let layout = Layout::signed_in(title, session, "/portal/notifications");
    html(
        status,
        &NotificationPage {
            layout,
            asn,
            csrf: session.csrf_token.clone(),
            errors,
            note_value,
            just_acknowledged,
        },
    )
}

/// `GET /portal/notifications/{id}`: the ASN in full (the SMS link lands
/// here, through sign-in); audited `ReadNotification`.
pub(crate) async fn notification<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    caller: Council,
    SignedIn(session): SignedIn,
    request_id: RequestId,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let audit = Audit::new(
        &caller.principal,
        AuditAction::ReadNotification,
        &request_id,
    );
    let read = usecase::notification::<_, _, PageError>(
        &state.app,
        &audit,
        &caller.authority,
        &id,
        AsnAccess::Read,
    );
    match read.await {
        Ok(asn) => {
            let acknowledged = query.as_deref() == Some("acknowledged=1");
            let detail = AsnDetail::new(asn, state.app.clock.now());
            notification_page(&session, detail, Vec::new(), String::new(), acknowledged)
        }
        Err(error) => error.into_response(),
    }
}

/// `POST /portal/notifications/{id}/acknowledge` (note optional): audited
/// `AcknowledgeNotification`; then back to the ASN's page, which says so.
/// A note that cannot be kept is shown again with the NHS error summary,
/// audited `Invalid`.
pub(crate) async fn acknowledge<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    caller: Council,
    SignedIn(session): SignedIn,
    request_id: RequestId,
    id: Result<Path<String>, PathRejection>,
    form: Form,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let action = AuditAction::AcknowledgeNotification;
    let audit = Audit::new(&caller.principal, action, &request_id);
    let raw_note = form.get("note").unwrap_or_default().to_owned();
    let note = match AckNote::parse(&raw_note) {
        Ok(note) => note,
        Err(error) => {
            // Shown again as it is, if the council may see the ASN at all.
            let read_audit = Audit::new(
                &caller.principal,
                AuditAction::ReadNotification,
                &request_id,
            );
            let read = usecase::notification::<_, _, PageError>(
                &state.app,
                &read_audit,
                &caller.authority,
                &id,
                AsnAccess::Read,
            );
            let asn = match read.await {
                Ok(asn) => asn,
                Err(error) => return error.into_response(),
            };
            let message = match error {
                AckNoteError::TooLong => "Note must be 1,000 characters or fewer",
                AckNoteError::Unprintable => {
                    "Note must only include letters, numbers, punctuation and line breaks"
                }
            };
            let errors = vec![FormError::new("note", message)];
            let detail = AsnDetail::new(asn, state.app.clock.now());
            let page = notification_page(&session, detail, errors, raw_note, false);
            return audit.invalid(&state.app, page).await;
        }
    };
    let acknowledged = usecase::notification::<_, _, PageError>(
        &state.app,
        &audit,
        &caller.authority,
        &id,
        AsnAccess::Acknowledge(note.as_ref()),
    );
    match acknowledged.await {
        Ok(asn) => Redirect::to(&format!("/portal/notifications/{}?acknowledged=1", asn.id))
            .into_response(),
        Err(error) => error.into_response(),
    }
}
