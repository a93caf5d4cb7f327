//! The council administrator's pages: the directory entry as a form (the
//! API's `ReadAuthority` and `UpdateAuthority` use cases) and the upload
//! history with each rejected record and the stale-feed banner.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cpis_domain::feed::Freshness;
use cpis_domain::ports::UploadReceipt;
use cpis_domain::{
    AuditAction, Authority, AuthorityUpdate, FieldError, FileOutcome, RecordDetail,
    RecordOutcomeCode, UploadMode,
};

use super::page::{ago, html, uk_datetime, FormError, Layout};
use super::session::{Form, SignedIn};
use super::{PageError, PortalState, PortalStore};
use crate::audit::Audit;
use crate::caller::Council;
use crate::request_id::RequestId;
use crate::state::Queue;
use crate::usecase::{self, DirectoryError};

/// One field of the directory form.
struct Field {
    id: &'static str,
    label: &'static str,
    hint: &'static str,
    kind: &'static str,
    autocomplete: &'static str,
    multiline: bool,
    value: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/authority.html")]
struct AuthorityPage {
    layout: Layout,
    council: String,
    csrf: String,
    fields: Vec<Field>,
    errors: Vec<FormError>,
    missing: bool,
    saved: bool,
}

/// The form's values: what is stored, or what was sent.
struct Values {
    name: String,
    office_hours_phone: String,
    emergency_duty_phone: String,
    notify_emails: String,
    notify_sms: String,
}

impl Values {
    fn of(a: &Authority) -> Self {
        Self {
            name: a.name.clone(),
            office_hours_phone: a.office_hours_phone.clone(),
            emergency_duty_phone: a.emergency_duty_phone.clone(),
            notify_emails: a.notify_emails.join("\n"),
            notify_sms: a.notify_sms.join("\n"),
        }
    }

    fn empty() -> Self {
        Self {
            name: String::new(),
            office_hours_phone: String::new(),
            emergency_duty_phone: String::new(),
            notify_emails: String::new(),
            notify_sms: String::new(),
        }
    }

    /// The update the API's body would carry: one address per line.
    fn update(&self) -> AuthorityUpdate {
        let lines = |text: &str| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        AuthorityUpdate {
            name: self.name.clone(),
            office_hours_phone: self.office_hours_phone.clone(),
            emergency_duty_phone: self.emergency_duty_phone.clone(),
            notify_emails: lines(&self.notify_emails),
            notify_sms: lines(&self.notify_sms),
            ods_code: None,
            feed: None,
        }
    }
}

/// Each failed field as the form shows it: the field's id and a message in
/// the NHS's words ("Enter ...").
fn form_errors(errors: &[FieldError]) -> Vec<FormError> {
    errors
        .iter()
        .map(|e| {
            let mut parts = e.pointer.trim_start_matches('/').splitn(2, '/');
            let field = parts.next().unwrap_or_default();
            let item = parts.next().and_then(|i| i.parse::<usize>().ok());
            let message = match (field, item) {
                ("name", _) => "Enter the council's name (1 to 200 characters)".to_owned(),
                ("office_hours_phone", _) => {
                    "Enter the office hours phone number, like 020 7946 0000".to_owned()
                }
                ("emergency_duty_phone", _) => {
                    "Enter the out of hours phone number, like 020 7946 0999".to_owned()
                }
                ("notify_emails", Some(i)) => format!(
                    "Email address {} must be an email address, like duty.team@example.gov.uk",
                    i + 1
                ),
                ("notify_emails", None) => "Enter at most 10 email addresses".to_owned(),
                ("notify_sms", Some(i)) => format!(
                    "SMS number {} must start with +44, like +447700900123",
                    i + 1
                ),
                ("notify_sms", None) => "Enter at most 10 SMS numbers".to_owned(),
                _ => e.detail.clone(),
            };
            FormError::new(field, message)
        })
        .collect()
}

fn fields(values: Values, errors: &[FormError]) -> Vec<Field> {
    let error = |id: &str| {
        let messages: Vec<&str> = errors
            .iter()
            .filter(|e| e.field == id)
            .map(|e| e.message.as_str())
            .collect();
        (!messages.is_empty()).then(|| messages.join(". "))
    };
    let field = |id, label, hint, kind, autocomplete, multiline, value| Field {
        id,
        label,
        hint,
        kind,
        autocomplete,
        multiline,
        value,
        error: error(id),
    };
    vec![
        field(
            "name",
            "Council name",
            "As clinicians should see it.",
            "text",
            "organization",
            false,
            values.name,
        ),
        field(
            "office_hours_phone",
            "Office hours phone number",
            "Shown to clinicians with every plan.",
            "tel",
            "tel",
            false,
            values.office_hours_phone,
        ),
        field(
            "emergency_duty_phone",
            "Out of hours phone number",
            "Your emergency duty team. Shown to clinicians with every plan.",
            "tel",
            "tel",
            false,
            values.emergency_duty_phone,
        ),
        field(
            "notify_emails",
            "Duty team email addresses",
            "One per line, at most 10. Each is sent every notification.",
            "email",
            "off",
            true,
            values.notify_emails,
        ),
        field(
            "notify_sms",
            "Duty team SMS numbers",
            "One per line, at most 10, starting +44. Each is sent every notification.",
            "tel",
            "off",
            true,
            values.notify_sms,
        ),
    ]
}

fn authority_page(
    session: &cpis_domain::PortalSession,
    council: &Council,
    values: Values,
    errors: Vec<FormError>,
    missing: bool,
    saved: bool,
) -> Response {
    let (status, title) = if errors.is_empty() {
        (StatusCode::OK, "Directory entry")
    } else {
        (StatusCode::BAD_REQUEST, "Error: Directory entry")
    };
    let page = AuthorityPage {
        layout: Layout::signed_in(title, session, "/portal/authority"),
        council: format!("Council {}", council.authority),
        csrf: session.csrf_token.clone(),
        fields: fields(values, &errors),
        errors,
        missing,
        saved,
    };
    html(status, &page)
}

/// `GET /portal/authority`: the council's directory entry as a form;
/// audited `ReadAuthority` (before the first entry: an empty form).
pub(crate) async fn authority<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    caller: Council,
    SignedIn(session): SignedIn,
    request_id: RequestId,
    RawQuery(query): RawQuery,
) -> Response {
    let audit = Audit::new(&caller.principal, AuditAction::ReadAuthority, &request_id);
    let read = usecase::read_authority::<_, _, PageError>(&state.app, &audit, &caller.authority);
    let saved = query.as_deref() == Some("saved=1");
    match read.await {
        Ok(Some((entry, _))) => authority_page(
            &session,
            &caller,
            Values::of(&entry),
            Vec::new(),
            false,
            saved,
        ),
        Ok(None) => authority_page(&session, &caller, Values::empty(), Vec::new(), true, false),
        Err(error) => error.into_response(),
    }
}

/// `POST /portal/authority`: validated and stored as `PUT /v1/authority`
/// does (audited `UpdateAuthority`); every field that fails is shown in the
/// error summary and at the field, with what was sent kept.
pub(crate) async fn update_authority<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    caller: Council,
    SignedIn(session): SignedIn,
    request_id: RequestId,
    form: Form,
) -> Response {
    let audit = Audit::new(&caller.principal, AuditAction::UpdateAuthority, &request_id);
    let text = |name| form.get(name).unwrap_or_default().to_owned();
    let values = Values {
        name: text("name"),
        office_hours_phone: text("office_hours_phone"),
        emergency_duty_phone: text("emergency_duty_phone"),
        notify_emails: text("notify_emails"),
        notify_sms: text("notify_sms"),
    };
    let update = values.update();
    let stored = usecase::update_authority::<_, _, DirectoryError>(
        &state.app,
        &audit,
        &caller.authority,
        update,
    );
    match stored.await {
        Ok(_) => Redirect::to("/portal/authority?saved=1").into_response(),
        Err(DirectoryError::Invalid(errors)) => {
            let errors = form_errors(&errors);
            authority_page(&session, &caller, values, errors, false, false)
        }
        Err(DirectoryError::Store(error)) => PageError::from(error).into_response(),
    }
}

/// A rejected record as the uploads page shows it.
struct Rejected {
    position: String,
    detail: &'static str,
    code: String,
    location: String,
}

struct UploadRow {
    sequence: u64,
    received: String,
    mode: &'static str,
    outcome: &'static str,
    loaded: usize,
    rejected_count: usize,
    withdrawn: usize,
    rejected: Vec<Rejected>,
}

struct Stale {
    heading: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "portal/uploads.html")]
struct UploadsPage {
    layout: Layout,
    council: String,
    uploads: Vec<UploadRow>,
    stale: Option<Stale>,
    last_full: Option<String>,
}

/// How many uploads the page shows: a fortnight of nightly extracts and
/// their deltas.
const UPLOADS_SHOWN: usize = 30;

/// A record's failure in plain words (the code is shown beside it).
fn detail_text(detail: RecordDetail) -> &'static str {
    use RecordDetail::*;
    match detail {
        NotAnObject => "The record is not a JSON object",
        UnexpectedField => "The record has a field the data set does not allow",
        MissingNhsNumber => "The NHS number is missing",
        MissingMothersNhsNumber => "The mother's NHS number is missing (unborn child plan)",
        InvalidNhsNumber => "The NHS number is not valid",
        MissingPlanType => "The plan type is missing",
        UnknownPlanType => "The plan type is not CPP, LAC or UCPP",
        MissingStartDate => "The start date is missing",
        InvalidDate => "A date is not a real date in the form YYYY-MM-DD",
        StartDateInFuture => "The start date is in the future",
        EndBeforeStart => "The end date is before the start date",
        DeleteBeforeStart => "The delete date is before the start date",
        DueDateNotUnborn => "Only an unborn child protection plan has a due date",
        DueBeforeStart => "The due date is before the start date",
        InvalidLocalId => "The case reference is too long or not printable",
        DuplicateInBatch => "The same plan is in this upload more than once",
        RepeatedMember => "A field is given twice in the record",
        ExpiredNotStored => "The plan has expired and was not stored",
    }
}

fn upload_row(receipt: UploadReceipt) -> UploadRow {
    let ack = receipt.acknowledgement;
    let rejected = ack
        .records
        .iter()
        .map(|r| ("Record", r))
        .chain(ack.withdrawals.iter().map(|r| ("Withdrawal", r)))
        .filter(|(_, r)| r.outcome == RecordOutcomeCode::Failure)
        .map(|(kind, r)| Rejected {
            position: format!("{kind} {}", r.index + 1),
            detail: r.detail.map_or("Rejected", detail_text),
            code: r
                .detail
                .and_then(|d| serde_json::to_value(d).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            location: r.location.clone().unwrap_or_default(),
        })
        .collect();
    UploadRow {
        sequence: receipt.sequence,
        received: receipt
            .received_at
            .map_or_else(|| "Not recorded".to_owned(), uk_datetime),
        mode: match ack.mode {
            UploadMode::Full => "Full snapshot",
            UploadMode::Delta => "Changes",
        },
        outcome: match ack.file_outcome {
            FileOutcome::AllLoaded => "all loaded (CPF02)",
            FileOutcome::Partial => "some records rejected (CPF03)",
            FileOutcome::NoneLoaded => "no records loaded (CPF04)",
            FileOutcome::Malformed => "not read (CPF01)",
        },
        loaded: ack.loaded,
        rejected_count: ack.rejected,
        withdrawn: ack.withdrawn,
        rejected,
    }
}

fn stale_banner(
    feed: &Freshness,
    stale_after: time::Duration,
    now: time::OffsetDateTime,
) -> Option<Stale> {
    if !feed.is_stale(stale_after) {
        return None;
    }
    let hours = stale_after.whole_hours();
    Some(match feed.last_full_snapshot_at {
        None => Stale {
            heading: "Your council has not sent a full snapshot".to_owned(),
            detail: "Until one is accepted, clinicians may not see all of your plans. Send your full extract.".to_owned(),
        },
        Some(last) => Stale {
            heading: "Your council's feed has stopped".to_owned(),
            detail: format!(
                "The last accepted full snapshot was {} ({}), more than {hours} hours ago. Until the next one, clinicians may miss new plans and still see plans that have ended.",
                uk_datetime(last),
                ago(last, now)
            ),
        },
    })
}

/// `GET /portal/uploads`: the council's last uploads, newest first, each
/// rejected record with why and where; a banner when the feed is stale.
/// Audited `ListUploads`.
pub(crate) async fn uploads<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    caller: Council,
    SignedIn(session): SignedIn,
    request_id: RequestId,
) -> Response {
    let audit = Audit::new(&caller.principal, AuditAction::ListUploads, &request_id);
    let listed = usecase::upload_history::<_, _, PageError>(
        &state.app,
        &audit,
        &caller.authority,
        UPLOADS_SHOWN,
    );
    let (receipts, feed) = match listed.await {
        Ok(listed) => listed,
        Err(error) => return error.into_response(),
    };
    let now = state.app.clock.now();
    let page = UploadsPage {
        layout: Layout::signed_in("Uploads", &session, "/portal/uploads"),
        council: format!("Council {}", caller.authority),
        uploads: receipts.into_iter().map(upload_row).collect(),
        stale: feed
            .as_ref()
            .and_then(|f| stale_banner(f, state.config.feed_stale_after, now)),
        last_full: feed
            .and_then(|f| f.last_full_snapshot_at)
            .map(|at| format!("{} ({})", uk_datetime(at), ago(at, now))),
    };
    html(StatusCode::OK, &page)
}
