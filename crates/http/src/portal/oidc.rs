//! Production sign-in: OpenID Connect's authorization code flow with PKCE
//! against the configured issuer (`cpis_oidc`), ending, like the one-time
//! link, in [`super::sign_in::begin_session`] with the principal the
//! claims contract gives (`crate::claim_map`).
//!
//! `GET /portal/sign-in/oidc?next=` starts it: a fresh `state`, `nonce`
//! and PKCE verifier are kept in the session store ([`SignInAttempt`]),
//! bound to this browser by a short-lived cookie, and the browser is sent
//! to the issuer. `GET /portal/sign-in/callback` finishes it: the attempt
//! is taken (once: a replayed callback finds nothing), the cookie must be
//! the one that started it, the code is exchanged with the verifier and
//! the ID token checked (issuer, audience, times, nonce, signature).
//!
//! The binding cookie is `SameSite=Lax`, the only kind a browser sends on
//! the issuer's redirect back (a cross-site navigation); the session cookie
//! stays `Strict`. For the same reason the callback answers with a page
//! that moves on to `next` itself (a same-site navigation, which carries
//! the new `Strict` cookie) rather than with a redirect, which would still
//! be part of the issuer's cross-site chain.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cpis_domain::session::SIGN_IN_ATTEMPT_TTL;
use cpis_domain::{AuditAction, AuditOutcome, SecretDigest, SignInAttempt};
use cpis_oidc::{OidcError, Provider};

use super::page::{self, html, FormError, Layout};
use super::session::{new_secret, plausible_secret, safe_next};
use super::sign_in::{begin_session, home_of, sign_in_page};
use super::{PortalState, PortalStore};
use crate::claim_map::ClaimMap;
use crate::extract::query_pairs;
use crate::request_id::RequestId;
use crate::state::Queue;

/// Sign-in with an OpenID Connect issuer.
#[derive(Clone)]
pub struct OidcSignIn {
    /// The issuer, discovered (its keys loaded) at start-up.
    pub provider: Provider,
    /// How its claims become the claims contract's.
    pub claims: ClaimMap,
    /// The sign-in button's text, e.g. "Sign in with NHS Care Identity".
    pub label: String,
}

/// The binding cookie: `__Host-` when Secure (the whole host, set by it);
/// on loopback only under the sign-in paths.
const SECURE_COOKIE: &str = "__Host-cpis-sign-in";
const LOOPBACK_COOKIE: &str = "cpis-sign-in";

fn binding_cookie(secure: bool, value: &str, max_age: i64) -> HeaderValue {
    let text = if secure {
        format!(
            "{SECURE_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age={max_age}"
        )
    } else {
        format!("{LOOPBACK_COOKIE}={value}; Path=/portal/sign-in; HttpOnly; SameSite=Lax; Max-Age={max_age}")
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn binding_of(headers: &HeaderMap, secure: bool) -> Option<SecretDigest> {
    let name = if secure {
        SECURE_COOKIE
    } else {
        LOOPBACK_COOKIE
    };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| plausible_secret(v))
        .map(SecretDigest::of)
}

/// `GET /portal/sign-in/oidc`: off to the issuer.
pub(crate) async fn start<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(oidc) = &state.config.sign_in.oidc else {
        return page::not_found();
    };
    let Some(pairs) = query_pairs(query.as_deref()) else {
        return page::error_page(StatusCode::BAD_REQUEST);
    };
    let next = pairs
        .iter()
        .find(|(k, _)| k == "next")
        .and_then(|(_, v)| safe_next(v));
    let secrets = (new_secret(), new_secret(), new_secret(), new_secret());
    let (Ok(key), Ok(nonce), Ok(verifier), Ok(browser)) = secrets else {
        tracing::error!("no randomness for an OpenID Connect sign-in");
        return page::error_page(StatusCode::SERVICE_UNAVAILABLE);
    };
    let attempt = SignInAttempt {
        state: SecretDigest::of(&key),
        browser: SecretDigest::of(&browser),
        nonce: nonce.clone(),
        pkce_verifier: verifier.clone(),
        next,
        expires_at: state.app.clock.now() + SIGN_IN_ATTEMPT_TTL,
    };
    if let Err(error) = state.app.store.put_sign_in_attempt(&attempt).await {
        tracing::error!(%error, "could not keep an OpenID Connect sign-in");
        return page::error_page(StatusCode::SERVICE_UNAVAILABLE);
    }
    let to = oidc.provider.authorization_url(&key, &nonce, &verifier);
    let mut response = Redirect::to(&to).into_response();
    let secure = state.config.secure_cookies;
    let cookie = binding_cookie(secure, &browser, SIGN_IN_ATTEMPT_TTL.whole_seconds());
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// What the issuer sent back.
#[derive(Default)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: bool,
}

fn callback_query(raw: Option<&str>) -> Option<Callback> {
    let mut callback = Callback::default();
    for (key, value) in query_pairs(raw)? {
        match key.as_str() {
            "code" if callback.code.is_none() => callback.code = Some(value),
            "state" if callback.state.is_none() => callback.state = Some(value),
            // Given twice: refused whole.
            "code" | "state" => return None,
            "error" => callback.error = true,
            _ => {}
        }
    }
    Some(callback)
}

#[derive(Template)]
#[template(path = "portal/signed_in.html")]
struct SignedInPage {
    layout: Layout,
    next: String,
}

/// Why a callback did not sign anyone in (logged; the page says only
/// "try again").
enum Refusal {
    NoAttempt,
    OtherBrowser,
    IssuerError,
    NoCode,
    Flow(OidcError),
    Claims(crate::auth::ClaimsError),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoAttempt => {
                f.write_str("no sign-in under way with that state (replayed, expired or made up)")
            }
            Self::OtherBrowser => f.write_str("the sign-in was started in another browser"),
            Self::IssuerError => f.write_str("the issuer answered with an error"),
            Self::NoCode => f.write_str("the issuer sent no code"),
            Self::Flow(error) => write!(f, "{error}"),
            Self::Claims(error) => write!(f, "the claims make no caller: {error}"),
        }
    }
}

/// `GET /portal/sign-in/callback`: the issuer's answer, checked, then a
/// new session.
pub(crate) async fn callback<S: PortalStore, Q: Queue>(
    State(state): State<PortalState<S, Q>>,
    request_id: RequestId,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(oidc) = &state.config.sign_in.oidc else {
        return page::not_found();
    };
    let Some(query) = callback_query(query.as_deref()) else {
        return page::error_page(StatusCode::BAD_REQUEST);
    };
    let secure = state.config.secure_cookies;
    let now = state.app.clock.now();
    // Taken before anything else is looked at: whatever happens next, this
    // state can never be used again.
    let attempt = match query.state.as_deref().filter(|s| plausible_secret(s)) {
        None => Ok(None),
        Some(key) => {
            let key = SecretDigest::of(key);
            state.app.store.take_sign_in_attempt(&key, now).await
        }
    };
    let attempt = match attempt {
        Ok(attempt) => attempt,
        Err(error) => {
            tracing::error!(%error, "could not read an OpenID Connect sign-in");
            return page::error_page(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let checked = async {
        let attempt = attempt.ok_or(Refusal::NoAttempt)?;
        if binding_of(&headers, secure).as_ref() != Some(&attempt.browser) {
            return Err(Refusal::OtherBrowser);
        }
        if query.error {
            return Err(Refusal::IssuerError);
        }
        let code = query.code.as_deref().ok_or(Refusal::NoCode)?;
        let (verifier, nonce) = (&attempt.pkce_verifier, &attempt.nonce);
        let claims = oidc
            .provider
            .sign_in(code, verifier, nonce, now)
            .await
            .map_err(Refusal::Flow)?;
        let principal = oidc
            .claims
            .caller(&claims)
            .principal()
            .map_err(Refusal::Claims)?;
        Ok((principal, attempt.next))
    };
    let (principal, next) = match checked.await {
        Ok(signed_in) => signed_in,
        Err(Refusal::Flow(error @ (OidcError::Unreachable(_) | OidcError::Protocol(_)))) => {
            tracing::error!(%error, "OpenID Connect sign-in failed at the issuer");
            return page::error_page(StatusCode::SERVICE_UNAVAILABLE);
        }
        Err(refusal) => return refused(&state, &request_id, refusal).await,
    };
    let (cookie, session) = match begin_session(&state, &request_id, &headers, principal).await {
        Ok(begun) => begun,
        Err(response) => return response,
    };
    let next = next
        .as_deref()
        .and_then(safe_next)
        .unwrap_or_else(|| home_of(&session.principal).to_owned());
    let mut response = html(
        StatusCode::OK,
        &SignedInPage {
            layout: Layout::public("Signed in"),
            next,
        },
    );
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookie);
    headers.append(header::SET_COOKIE, binding_cookie(secure, "", 0));
    response
}

async fn refused<S: PortalStore, Q: Queue>(
    state: &PortalState<S, Q>,
    request_id: &RequestId,
    refusal: Refusal,
) -> Response {
    // The refusal's kind and the rule that failed; never a token or claim.
    tracing::warn!(%refusal, "OpenID Connect sign-in refused");
    let (action, outcome) = (AuditAction::SignIn, AuditOutcome::Denied);
    state
        .app
        .audit(None, action, None, outcome, request_id)
        .await;
    let error = FormError::new(
        "oidc",
        "Sign-in did not complete. Start again, and sign in within 10 minutes.",
    );
    let mut response = sign_in_page(state, StatusCode::FORBIDDEN, None, vec![error], false);
    let secure = state.config.secure_cookies;
    response
        .headers_mut()
        .append(header::SET_COOKIE, binding_cookie(secure, "", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_names_its_code_and_state_once() {
        let c = callback_query(Some("code=abc&state=def&iss=x")).unwrap();
        assert_eq!(
            (c.code.as_deref(), c.state.as_deref(), c.error),
            (Some("abc"), Some("def"), false)
        );
        assert!(callback_query(Some("code=a&code=b&state=s")).is_none());
        assert!(callback_query(Some("state=a&state=b")).is_none());
        assert!(
            callback_query(Some("error=access_denied&state=s"))
                .unwrap()
                .error
        );
        assert!(callback_query(Some("code=%zz")).is_none());
    }

    #[test]
    fn the_binding_cookie_is_lax_http_only_and_short_lived() {
        let c = binding_cookie(true, "v", 600);
        let c = c.to_str().unwrap();
        assert!(c.starts_with("__Host-cpis-sign-in=v; Path=/;"));
        assert!(c.contains("SameSite=Lax") && c.contains("HttpOnly") && c.contains("Secure"));
        assert!(c.ends_with("Max-Age=600"));
        let local = binding_cookie(false, "", 0);
        assert!(local.to_str().unwrap().contains("Path=/portal/sign-in"));
        let mut headers = HeaderMap::new();
        let value = new_secret().unwrap();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("cpis-sign-in={value}")).unwrap(),
        );
        assert_eq!(binding_of(&headers, false), Some(SecretDigest::of(&value)));
        assert_eq!(binding_of(&headers, true), None);
    }
}
