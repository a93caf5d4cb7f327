//! Signing in and out. A sign-in ends in [`begin_session`] with a
//! [`Principal`] made by the one mapping every credential goes through
//! ([`crate::auth::CallerClaims::principal`]): from a one-time link here,
//! or from an OpenID Connect ID token's claims (`super::oidc`, through
//! [`crate::claim_map`]).

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cpis_domain::{AuditAction, AuditOutcome, PortalSession, Principal, SecretDigest};

use super::page::{self, html, FormError, Layout};
use super::session::{self, current_session, safe_next, SignedIn};
use super::{PortalState, PortalStore};
use crate::extract::query_pairs;
use crate::request_id::RequestId;
use crate::state::Queue;

#[derive(Template)]
#[template(path = "portal/sign_in.html")]
struct SignInPage {
    layout: Layout,
    next: Option<String>,
    errors: Vec<FormError>,
    signed_out: bool,
    /// The one-time link's form is offered (the embedded service).
    tickets: bool,
    /// The OpenID Connect button: its text and where it goes.
    oidc: Option<(String, String)>,
}

impl SignInPage {
    fn ticket_error(&self) -> bool {
        self.errors.iter().any(|e| e.field == "ticket")
    }
}

/// The sign-in page: the configured ways in, keeping `next`.
pub(crate) fn sign_in_page<S, Q>(
    state: &PortalState<S, Q>,
    status: StatusCode,
    next: Option<String>,
    errors: Vec<FormError>,
    signed_out: bool,
) -> Response {
    let sign_in = &state.config.sign_in;
    let oidc = sign_in.oidc_label().map(|label| {
        let href = match &next {
            Some(next) => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish();
                format!("/portal/sign-in/oidc?{query}")
            }
            None => "/portal/sign-in/oidc".to_owned(),
        };
        (label.to_owned(), href)
    });
    html(
        status,
        &SignInPage {
            layout: Layout::public("Sign in"),
            next,
            errors,
            signed_out,
            tickets: sign_in.ticket.is_some(),
            oidc,
        },
    )
}

/// Where a signed-in caller starts: a council at its inbox, a care setting
/// at the check.
pub(crate) fn home_of(principal: &Principal) -> &'static str {
    match principal {
        Principal::Council { .. } => "/portal/notifications",
        Principal::Clinician(_) => "/portal/check",
    }
}

/// `GET /portal`: the caller's start page, or sign-in.
pub(crate) async fn home<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    headers: HeaderMap,
) -> Response {
    match current_session(&state, &headers).await {
        Ok(Some(session)) => Redirect::to(home_of(&session.principal)).into_response(),
        Ok(None) => session::to_sign_in(None),
        Err(error) => {
            tracing::error!(%error, "could not read a portal session");
            page::error_page(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// What `GET /portal/sign-in` was given.
struct SignInQuery {
    ticket: Option<String>,
    next: Option<String>,
    signed_out: bool,
}

fn sign_in_query(raw: Option<&str>) -> Option<SignInQuery> {
    let mut query = SignInQuery {
        ticket: None,
        next: None,
        signed_out: false,
    };
    for (key, value) in query_pairs(raw)? {
        match key.as_str() {
            "ticket" => query.ticket = Some(value).filter(|v| !v.trim().is_empty()),
            // A `next` that is not a portal page is dropped, never followed.
            "next" => query.next = safe_next(&value),
            "signed_out" => query.signed_out = true,
            _ => {}
        }
    }
    Some(query)
}

/// The ticket in what was pasted: the whole link, or the ticket alone.
fn ticket_in(pasted: &str) -> &str {
    let pasted = pasted.trim();
    match pasted.split_once("ticket=") {
        Some((_, rest)) => rest.split('&').next().unwrap_or_default(),
        None => pasted,
    }
}

/// `GET /portal/sign-in`: the sign-in page, or (`?ticket=`) a one-time
/// link redeemed. A ticket is used once: signature, audience and time are
/// checked, then its use is recorded in the store (a reuse fails, across
/// restarts too), then a new session starts and the browser goes on to
/// `next` (a portal page) or its start page, with the ticket gone from the
/// address bar. A ticket refused is audited `Denied` and answered with the
/// sign-in page and what to do, never with why.
pub(crate) async fn sign_in<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    request_id: RequestId,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(query) = sign_in_query(query.as_deref()) else {
        return page::error_page(StatusCode::BAD_REQUEST);
    };
    let Some(pasted) = query.ticket else {
        // Signed in already: straight on.
        if let Ok(Some(session)) = current_session(&state, &headers).await {
            let to = query.next.as_deref().unwrap_or(home_of(&session.principal));
            return Redirect::to(to).into_response();
        }
        return sign_in_page(
            &state,
            StatusCode::OK,
            query.next,
            Vec::new(),
            query.signed_out,
        );
    };
    // Where one-time links are off (the Lambda portal), every ticket is
    // refused, and audited, like a bad one.
    let verifier = state.config.sign_in.ticket.as_ref();
    let now = state.app.clock.now();
    let ticket = verifier
        .and_then(|v| v.verify(ticket_in(&pasted)))
        .filter(|t| t.is_current(now))
        .and_then(|t| t.caller.principal().ok().map(|p| (t, p)));
    let redeemed = match &ticket {
        Some((ticket, _)) => state
            .app
            .store
            .redeem_ticket(&ticket.id, ticket.expires_at)
            .await
            .map(|first| first.then_some(())),
        None => Ok(None),
    };
    match (ticket, redeemed) {
        (Some((_, principal)), Ok(Some(()))) => {
            let next = query.next.as_deref();
            start_session(&state, &request_id, &headers, principal, next).await
        }
        (_, Ok(_)) => {
            let action = AuditAction::SignIn;
            let outcome = AuditOutcome::Denied;
            state
                .app
                .audit(None, action, None, outcome, &request_id)
                .await;
            let error = FormError::new(
                "ticket",
                "This sign-in link has expired or has already been used. Ask for a new link.",
            );
            sign_in_page(
                &state,
                StatusCode::FORBIDDEN,
                query.next,
                vec![error],
                false,
            )
        }
        (_, Err(error)) => {
            tracing::error!(%error, "could not record a sign-in ticket");
            page::error_page(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// Starts a new session for `principal` (any session the browser had is
/// ended first, so no id outlives a sign-in), audits `SignIn` and sends the
/// browser on to `next` or its start page.
pub(crate) async fn start_session<S: PortalStore, Q: Queue>(
    state: &PortalState<S, Q>,
    request_id: &RequestId,
    headers: &HeaderMap,
    principal: Principal,
    next: Option<&str>,
) -> Response {
    let (cookie, session) = match begin_session(state, request_id, headers, principal).await {
        Ok(begun) => begun,
        Err(response) => return response,
    };
    let to = next.unwrap_or(home_of(&session.principal));
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// The end of every sign-in: a new session for `principal` (any session
/// the browser had is ended first, so no id outlives a sign-in), audited
/// `SignIn`; gives the session cookie to set, or the 503 page.
pub(crate) async fn begin_session<S: PortalStore, Q: Queue>(
    state: &PortalState<S, Q>,
    request_id: &RequestId,
    headers: &HeaderMap,
    principal: Principal,
) -> Result<(HeaderValue, PortalSession), Response> {
    let secure = state.config.secure_cookies;
    let started = async {
        if let Some(old) = session::session_digest(headers, secure) {
            state.app.store.destroy_session(&old).await?;
        }
        let id = session::new_secret()?;
        let csrf = session::new_secret()?;
        let now = state.app.clock.now();
        let session = PortalSession::new(SecretDigest::of(&id), principal, csrf, now);
        state.app.store.create_session(&session).await?;
        Ok::<_, cpis_domain::ports::StoreError>((id, session))
    };
    let (id, session) = match started.await {
        Ok(started) => started,
        Err(error) => {
            tracing::error!(%error, "could not start a portal session");
            return Err(page::error_page(StatusCode::SERVICE_UNAVAILABLE));
        }
    };
    let principal = Some(&session.principal);
    let (action, outcome) = (AuditAction::SignIn, AuditOutcome::Allowed);
    state
        .app
        .audit(principal, action, None, outcome, request_id)
        .await;
    Ok((session::session_cookie(secure, &id), session))
}

/// `POST /portal/sign-out`: the session ends here and in the browser.
pub(crate) async fn sign_out<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    SignedIn(session): SignedIn,
    request_id: RequestId,
) -> Response {
    let ended = state.app.store.destroy_session(&session.id).await;
    let outcome = match &ended {
        Ok(()) => AuditOutcome::Allowed,
        Err(_) => AuditOutcome::Failed,
    };
    let principal = Some(&session.principal);
    state
        .app
        .audit(principal, AuditAction::SignOut, None, outcome, &request_id)
        .await;
    if let Err(error) = ended {
        tracing::error!(%error, "could not end a portal session");
        return page::error_page(StatusCode::SERVICE_UNAVAILABLE);
    }
    let mut response = Redirect::to("/portal/sign-in?signed_out=1").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::cleared_cookie(state.config.secure_cookies),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticket_is_found_in_a_pasted_link_or_alone() {
        assert_eq!(ticket_in(" abc.def.ghi "), "abc.def.ghi");
        assert_eq!(
            ticket_in(
                "http://127.0.0.1:8080/portal/sign-in?ticket=abc.def.ghi&next=%2Fportal%2Fcheck"
            ),
            "abc.def.ghi"
        );
        let q = sign_in_query(Some("ticket=t&next=https%3A%2F%2Fevil.example%2F")).unwrap();
        assert_eq!(q.next, None, "a foreign next is dropped");
        let q = sign_in_query(Some("next=%2Fportal%2Fnotifications%2Fabc")).unwrap();
        assert_eq!(q.next.as_deref(), Some("/portal/notifications/abc"));
        assert!(sign_in_query(Some("next=%zz")).is_none());
    }
}
