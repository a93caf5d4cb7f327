//! Who is signed in to the portal: the session cookie, the layer that
//! admits a page's callers (as [`crate::middleware::authenticate`] does for
//! the API, and with the same audit), and CSRF on every form.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cpis_domain::ports::StoreError;
use cpis_domain::{AuditOutcome, PortalSession, SecretDigest};

use super::page;
use super::{PortalState, PortalStore};
use crate::extract::query_pairs;
use crate::request_id::RequestId;
use crate::routes::{Caller, RouteSpec};

/// The cookie's name when it is `Secure`: the `__Host-` prefix makes the
/// browser refuse it unless it is Secure, for the whole host, and set by it.
const SECURE_COOKIE: &str = "__Host-cpis-session";
/// On loopback (plain HTTP, `cpis serve`'s default) it cannot be Secure.
const LOOPBACK_COOKIE: &str = "cpis-session";
/// Largest form body read: 16 KB, as the API's JSON bodies.
pub(crate) const MAX_FORM_BYTES: usize = 16 * 1024;

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE
    } else {
        LOOPBACK_COOKIE
    }
}

/// A new secret: 256 bits from the operating system, base64url (43
/// characters). Session ids, CSRF tokens and result handles.
pub(crate) fn new_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|_| StoreError::Unavailable("no randomness from the operating system".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `value` could be one of [`new_secret`]'s.
pub(crate) fn plausible_secret(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `Set-Cookie` for a new session: HttpOnly, SameSite=Strict, Secure
/// unless on loopback; no expiry (the browser forgets it when it closes;
/// the server ends it when idle).
pub(crate) fn session_cookie(secure: bool, id: &str) -> HeaderValue {
    let (name, path, flag) = if secure {
        (SECURE_COOKIE, "/", "; Secure")
    } else {
        (LOOPBACK_COOKIE, "/portal", "")
    };
    HeaderValue::from_str(&format!(
        "{name}={id}; Path={path}; HttpOnly; SameSite=Strict{flag}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie (sign-out).
pub(crate) fn cleared_cookie(secure: bool) -> HeaderValue {
    HeaderValue::from_static(if secure {
        "__Host-cpis-session=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0"
    } else {
        "cpis-session=; Path=/portal; HttpOnly; SameSite=Strict; Max-Age=0"
    })
}

/// The session id the browser sent, if it looks like one.
fn cookie_session_id(headers: &HeaderMap, secure: bool) -> Option<String> {
    let name = cookie_name(secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| plausible_secret(v))
}

/// The caller's live session, used now (its idle time moved on).
pub(crate) async fn current_session<S: PortalStore, Q>(
    state: &PortalState<S, Q>,
    headers: &HeaderMap,
) -> Result<Option<PortalSession>, StoreError> {
    let Some(id) = cookie_session_id(headers, state.config.secure_cookies) else {
        return Ok(None);
    };
    let now = state.app.clock.now();
    state
        .app
        .store
        .touch_session(&SecretDigest::of(&id), now)
        .await
}

/// The digest of the session id the browser sent (sign-out, result handles).
pub(crate) fn session_digest(headers: &HeaderMap, secure: bool) -> Option<SecretDigest> {
    cookie_session_id(headers, secure).map(|id| SecretDigest::of(&id))
}

/// A `next` a sign-in may go on to: a portal page's own path, nothing else
/// (no scheme, host, `//`, backslash, query, dot segment or sign-in
/// itself), so a link can never send a signed-in user off the site.
pub fn safe_next(raw: &str) -> Option<String> {
    let ok = raw.len() <= 200
        && raw.starts_with("/portal/")
        && !raw.contains("//")
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-' || b == b'_')
        && !raw.starts_with("/portal/sign-")
        && !raw.starts_with("/portal/assets/");
    ok.then(|| raw.to_owned())
}

/// The signed-in session, as the layer left it.
pub(crate) struct SignedIn(pub PortalSession);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<PortalSession>()
            .cloned()
            .map(Self)
            .ok_or_else(wiring_fault)
    }
}

/// A form's fields, read by the layer after it checked the CSRF token.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// The field given exactly once, or `None` (absent or repeated).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        match (values.next(), values.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Form {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .remove::<FormFields>()
            .map(|f| Self(f.0))
            .ok_or_else(wiring_fault)
    }
}

#[derive(Clone)]
struct FormFields(Vec<(String, String)>);

/// A handler that found nothing the layer must leave: a fault here.
fn wiring_fault() -> Response {
    tracing::error!("a portal handler ran without its session layer: refused");
    page::error_page(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Equal secrets, compared in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The layer of every portal page, its spec bound when the router is built
/// (`super::page_route`). In order, failing closed at each step:
/// - a method the spec does not name: 405;
/// - no live session: to sign-in, keeping a GET's page as `next`
///   (audited as the API audits a missing credential);
/// - a session whose principal the spec does not admit: the 404 page,
///   audited `Denied` (a denial looks exactly like not-found);
/// - a POST: a form body (16 KB at most) whose `csrf` field is the
///   session's token, else the 403 page, audited `Denied`.
///
/// Leaves the [`PortalSession`], its `Principal` (for the API's typed
/// callers) and the form's fields in the request.
pub(crate) async fn authenticate<S: PortalStore, Q: Clone + Send + Sync + 'static>(
    State((state, spec)): State<(PortalState<S, Q>, &'static RouteSpec)>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method().as_str() != spec.method {
        return page::error_page(StatusCode::METHOD_NOT_ALLOWED);
    }
    request.extensions_mut().insert(spec);
    if spec.caller == Caller::Anyone {
        return next.run(request).await;
    }
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().to_string()));
    let audit_denied = |principal| {
        let state = state.clone();
        let request_id = request_id.clone();
        async move {
            if let Some(action) = spec.action {
                state
                    .app
                    .audit(principal, action, None, AuditOutcome::Denied, &request_id)
                    .await;
            }
        }
    };
    let session = match current_session(&state, request.headers()).await {
        Ok(session) => session,
        Err(error) => {
            tracing::error!(%error, "could not read a portal session");
            return page::error_page(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let Some(session) = session else {
        audit_denied(None).await;
        let next = (request.method() == Method::GET)
            .then(|| safe_next(request.uri().path()))
            .flatten();
        return to_sign_in(next.as_deref());
    };
    if !spec.caller.admits(&session.principal) {
        audit_denied(Some(&session.principal)).await;
        return page::not_found();
    }
    if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let fields = match read_form(&parts.headers, body).await {
            Ok(fields) => fields,
            Err(status) => {
                audit_denied(Some(&session.principal)).await;
                return page::error_page(status);
            }
        };
        // Exactly one token, the session's own.
        let mut tokens = fields.iter().filter(|(k, _)| k == "csrf").map(|(_, v)| v);
        let token = match (tokens.next(), tokens.next()) {
            (Some(token), None) => Some(token),
            _ => None,
        };
        if !token.is_some_and(|t| same_secret(t, &session.csrf_token)) {
            audit_denied(Some(&session.principal)).await;
            return page::error_page(StatusCode::FORBIDDEN);
        }
        request = Request::from_parts(parts, Body::empty());
        request.extensions_mut().insert(FormFields(fields));
    }
    request.extensions_mut().insert(session.principal.clone());
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// A form body: `application/x-www-form-urlencoded`, at most
/// [`MAX_FORM_BYTES`], UTF-8, well-formed escapes.
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Vec<(String, String)>, StatusCode> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(StatusCode::BAD_REQUEST);
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| StatusCode::BAD_REQUEST)?;
    query_pairs(Some(text)).ok_or(StatusCode::BAD_REQUEST)
}

/// 303 to the sign-in page, keeping `next`.
pub(crate) fn to_sign_in(next: Option<&str>) -> Response {
    match next {
        Some(next) => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish();
            Redirect::to(&format!("/portal/sign-in?{query}")).into_response()
        }
        None => Redirect::to("/portal/sign-in").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_portal_page_or_nothing() {
        for good in [
            "/portal/notifications/0f9d-4e",
            "/portal/check",
            "/portal/uploads",
        ] {
            assert_eq!(safe_next(good).as_deref(), Some(good));
        }
        for bad in [
            "https://evil.example/portal/",
            "//evil.example/portal/x",
            "/portal//evil.example",
            "/portal/../v1/plans",
            "/portal/./x",
            "/portal\\evil",
            "/portal/x?y=1",
            "/portal/sign-in",
            "/portal/sign-out",
            "/portal/assets/x.css",
            "/v1/notifications",
            "/portal",
            "",
            "/portal/%2e%2e/x",
            "/portal/x\r\nLocation: https://evil.example",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/portal/{}", "a".repeat(200))), None);
    }

    #[test]
    fn secrets_are_256_bits_and_compared_whole() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert!(plausible_secret(&a) && plausible_secret(&b));
        assert_ne!(a, b);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, &a[..42]));
        assert!(!same_secret("", &a));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_off_loopback() {
        let secure = session_cookie(true, "id");
        let secure = secure.to_str().unwrap();
        assert!(secure.starts_with("__Host-cpis-session=id; Path=/;"));
        assert!(
            secure.contains("HttpOnly")
                && secure.contains("SameSite=Strict")
                && secure.ends_with("Secure")
        );
        let local = session_cookie(false, "id");
        let local = local.to_str().unwrap();
        assert!(local.contains("HttpOnly") && local.contains("SameSite=Strict"));
        assert!(!local.contains("Secure"));
        let mut headers = HeaderMap::new();
        let id = new_secret().unwrap();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; cpis-session={id}")).unwrap(),
        );
        assert_eq!(cookie_session_id(&headers, false), Some(id.clone()));
        assert_eq!(
            cookie_session_id(&headers, true),
            None,
            "the secure name only"
        );
    }
}
