//! The clinician's check: the form, the check itself (the API's audited
//! `Check` use case) and its result behind a short-lived handle, so the
//! NHS number never appears in a URL (POST, then redirect).

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cpis_domain::session::CHECK_RESULT_TTL;
use cpis_domain::{
    AuditAction, CheckResult, NhsNumber, NhsNumberError, PortalSession, SecretDigest,
    StoredCheckResult, VisiblePlan,
};
use serde::{Deserialize, Serialize};

use super::page::{self, html, spaced, uk_date, uk_datetime, FormError, Layout};
use super::session::{new_secret, plausible_secret, Form, SignedIn};
use super::{PageError, PortalState, PortalStore};
use crate::audit::Audit;
use crate::caller::CareSetting;
use crate::request_id::RequestId;
use crate::state::Queue;
use crate::usecase;

#[derive(Template)]
#[template(path = "portal/check.html")]
struct CheckPage {
    layout: Layout,
    organisation: String,
    csrf: String,
    errors: Vec<FormError>,
    nhs_number: String,
    nhs_number_error: Option<String>,
    asks_unscheduled: bool,
    unscheduled: Option<bool>,
    unscheduled_error: Option<String>,
}

/// The form as sent, and what is wrong with it.
struct Sent {
    nhs_number: String,
    unscheduled: Option<bool>,
    errors: Vec<FormError>,
}

fn check_page(session: &PortalSession, caller: &CareSetting, sent: Sent) -> Response {
    let error = |field: &str| {
        sent.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.clone())
    };
    let (status, title) = if sent.errors.is_empty() {
        (StatusCode::OK, "Check a child")
    } else {
        (StatusCode::BAD_REQUEST, "Error: Check a child")
    };
    let page = CheckPage {
        layout: Layout::signed_in(title, session, "/portal/check"),
        organisation: caller.clinician.organisation_name.clone(),
        csrf: session.csrf_token.clone(),
        nhs_number_error: error("nhs_number"),
        unscheduled_error: error("unscheduled"),
        errors: sent.errors,
        nhs_number: sent.nhs_number,
        asks_unscheduled: caller.clinician.rbac.may_notify(),
        unscheduled: sent.unscheduled,
    };
    html(status, &page)
}

/// `GET /portal/check`: the form. The unscheduled-attendance question is
/// asked only of B0107 callers, the only ones whose checks notify.
pub(crate) async fn form(caller: CareSetting, SignedIn(session): SignedIn) -> Response {
    let sent = Sent {
        nhs_number: String::new(),
        unscheduled: None,
        errors: Vec::new(),
    };
    check_page(&session, &caller, sent)
}

/// An NHS number as typed: spaces anywhere are allowed (people copy
/// "999 000 0018"), anything else must be its ten digits.
fn typed_nhs_number(typed: &str) -> Result<NhsNumber, &'static str> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.is_empty() {
        return Err("Enter the child's NHS number");
    }
    NhsNumber::parse(&digits).map_err(|error| match error {
        NhsNumberError::WrongShape => "NHS number must be 10 digits",
        _ => "Enter a valid NHS number",
    })
}

/// `POST /portal/check`: the check, audited `Check` (a form that cannot be
/// read is shown again with the error summary, audited `Invalid`); the
/// result is kept behind a new handle for this session only, for
/// [`CHECK_RESULT_TTL`], and the browser is sent there.
pub(crate) async fn check<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    caller: CareSetting,
    SignedIn(session): SignedIn,
    request_id: RequestId,
    form: Form,
) -> Response {
    let audit = Audit::new(&caller.principal, AuditAction::Check, &request_id);
    let typed = form.get("nhs_number").unwrap_or_default().to_owned();
    let mut errors = Vec::new();
    let nhs_number = typed_nhs_number(&typed)
        .map_err(|message| errors.push(FormError::new("nhs_number", message)))
        .ok();
    let unscheduled = if caller.clinician.rbac.may_notify() {
        match form.get("unscheduled") {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => {
                let message = "Select whether the child is here for unscheduled care";
                errors.push(FormError::new("unscheduled", message));
                None
            }
        }
    } else {
        // B0170: a view that never notifies, whatever was sent.
        Some(false)
    };
    let (Some(nhs_number), Some(unscheduled), true) = (nhs_number, unscheduled, errors.is_empty())
    else {
        // An answer that refuses the form never carries the NHS number
        // (privacy: nothing personal in an error); the clinician types it
        // again.
        let sent = Sent {
            nhs_number: String::new(),
            unscheduled,
            errors,
        };
        let page = check_page(&session, &caller, sent);
        return audit.invalid(&state.app, page).await;
    };
    let checked = usecase::check(
        &state.app,
        &audit,
        &caller.clinician,
        &nhs_number,
        unscheduled,
    );
    let result = match checked.await {
        Ok(result) => result,
        Err(error) => return PageError::from(error).into_response(),
    };
    let kept = keep_result(&state, &session, ResultView::new(&nhs_number, result)).await;
    match kept {
        Ok(handle) => Redirect::to(&format!("/portal/check/results/{handle}")).into_response(),
        Err(error) => PageError::from(error).into_response(),
    }
}

/// Stores the result for this session behind a new handle.
async fn keep_result<S: PortalStore, Q>(
    state: &PortalState<S, Q>,
    session: &PortalSession,
    view: ResultView,
) -> Result<String, cpis_domain::ports::StoreError> {
    let handle = new_secret()?;
    let payload = serde_json::to_string(&view).map_err(|_| {
        cpis_domain::ports::StoreError::Unavailable("a check result could not be encoded".into())
    })?;
    let stored = StoredCheckResult {
        handle: SecretDigest::of(&handle),
        session: session.id.clone(),
        payload,
        expires_at: state.app.clock.now() + CHECK_RESULT_TTL,
    };
    state.app.store.put_check_result(&stored).await?;
    Ok(handle)
}

#[derive(Template)]
#[template(path = "portal/check_result.html")]
struct ResultPage {
    layout: Layout,
    result: ResultView,
}

/// `GET /portal/check/results/{handle}`: the result, to the session that
/// made it, until it expires; anything else is the 404 page. Not audited
/// again: showing it is not a new access (the check was audited).
pub(crate) async fn result<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    _caller: CareSetting,
    SignedIn(session): SignedIn,
    handle: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(handle)) = handle else {
        return page::not_found();
    };
    if !plausible_secret(&handle) {
        return page::not_found();
    }
    let now = state.app.clock.now();
    let digest = SecretDigest::of(&handle);
    let payload = match state
        .app
        .store
        .check_result(&digest, &session.id, now)
        .await
    {
        Ok(Some(payload)) => payload,
        Ok(None) => return page::not_found(),
        Err(error) => return PageError::from(error).into_response(),
    };
    let Ok(result) = serde_json::from_str::<ResultView>(&payload) else {
        tracing::error!("a stored check result could not be read");
        return page::error_page(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let title = if result.plans.is_empty() {
        "No child protection information"
    } else {
        "Child protection information"
    };
    let layout = Layout::signed_in(title, &session, "/portal/check");
    html(StatusCode::OK, &ResultPage { layout, result })
}

/// A phone number: as shown, and as dialled (`tel:` takes digits and `+`).
#[derive(Serialize, Deserialize)]
struct Phone {
    shown: String,
    dial: String,
}

impl Phone {
    fn of(number: &str) -> Option<Self> {
        let dial: String = number
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        (!dial.is_empty()).then(|| Self {
            shown: number.to_owned(),
            dial,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct PlanView {
    name: String,
    council: String,
    office_hours: Option<Phone>,
    out_of_hours: Option<Phone>,
    dates: String,
}

#[derive(Serialize, Deserialize)]
struct AccessView {
    at: String,
    organisation: String,
    setting: String,
}

/// A result as its page shows it, kept behind its handle.
#[derive(Serialize, Deserialize)]
struct ResultView {
    nhs_number: String,
    plans: Vec<PlanView>,
    accesses: Vec<AccessView>,
}

impl ResultView {
    fn new(nhs_number: &NhsNumber, result: CheckResult) -> Self {
        Self {
            nhs_number: spaced(nhs_number),
            plans: result.plans.iter().map(plan_view).collect(),
            accesses: result
                .access_history
                .into_iter()
                .map(|a| AccessView {
                    at: uk_datetime(a.accessed_at),
                    organisation: format!("{} ({})", a.organisation_name, a.organisation_ods),
                    setting: a.setting,
                })
                .collect(),
        }
    }
}

fn plan_view(plan: &VisiblePlan) -> PlanView {
    let mut dates = format!("From {}", uk_date(plan.start_date));
    if let Some(end) = plan.end_date {
        dates.push_str(&format!(" to {}", uk_date(end)));
    }
    if let Some(due) = plan.due_date {
        dates.push_str(&format!("; baby due {}", uk_date(due)));
    }
    PlanView {
        name: plan.plan_type.name().to_owned(),
        council: plan.authority.name.clone(),
        office_hours: Phone::of(&plan.authority.office_hours_phone),
        out_of_hours: Phone::of(&plan.authority.emergency_duty_phone),
        dates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_nhs_number_may_be_typed_with_spaces_anywhere() {
        for typed in [
            "9990000018",
            "999 000 0018",
            " 99 90 00 00 18 ",
            "999\u{a0}000\u{a0}0018",
        ] {
            assert_eq!(
                typed_nhs_number(typed).map(|n| n.expose()),
                Ok("9990000018".into()),
                "{typed:?}"
            );
        }
        assert_eq!(typed_nhs_number("  "), Err("Enter the child's NHS number"));
        assert_eq!(
            typed_nhs_number("999-000-0018"),
            Err("NHS number must be 10 digits")
        );
        assert_eq!(
            typed_nhs_number("9990000017"),
            Err("Enter a valid NHS number")
        );
    }

    #[test]
    fn phones_dial_their_digits() {
        let phone = Phone::of("020 7946 0999").unwrap();
        assert_eq!(
            (phone.shown.as_str(), phone.dial.as_str()),
            ("020 7946 0999", "02079460999")
        );
        assert!(Phone::of("").is_none());
    }
}
