//! The web portal (issue 14): server-rendered pages in the NHS design
//! system for a council's duty team and administrator and for a clinician
//! whose system is not integrated. Every page works without JavaScript.
//!
//! Each page is the HTML dialect of an API route: it admits that route's
//! callers ([`crate::routes::PORTAL_ROUTES`]), runs the same audited use
//! case ([`crate::usecase`]) and renders its typed result. Who is calling
//! comes from a portal session ([`session`]), made by a sign-in that yields
//! the same [`cpis_domain::Principal`] an API token yields ([`sign_in`]):
//! a one-time link (`cpis login-link`), or OpenID Connect's authorization
//! code flow with PKCE against a configured issuer ([`oidc`]); [`SignIn`]
//! says which are on.
//!
//! Security, for every page: the session cookie is HttpOnly, SameSite=Strict
//! and Secure off loopback; sessions end when idle; every POST carries the
//! session's CSRF token; responses carry `Cache-Control: no-store` and a
//! strict Content-Security-Policy ([`SECURITY_HEADERS`], set by
//! [`crate::middleware::observe`] on every `/portal` answer, errors too).

pub(crate) mod assets;
mod check;
mod council;
mod inbox;
#[cfg(feature = "oidc")]
mod oidc;
pub(crate) mod page;
pub(crate) mod session;

pub use session::safe_next;
mod sign_in;

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use cpis_domain::ports::UploadHistory;
use cpis_domain::session::PortalSessions;
use time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cpis_domain::ports::StoreError;

use crate::auth::TicketVerifier;
use crate::routes::{self, RouteSpec};
use crate::state::{AppState, CheckStore, CouncilStore, Queue};
use crate::usecase::AsnError;

pub use assets::NHSUK_FRONTEND_VERSION;
#[cfg(feature = "oidc")]
pub use oidc::OidcSignIn;

/// The URL the portal serves a built asset at (e.g. `nhsuk-frontend.css`).
pub fn assets_url(logical: &str) -> String {
    assets::url(logical)
}

/// Headers on every portal answer. The policy allows nothing but this
/// origin's own files: no inline script or style, no frames of or around
/// it, forms posted only here.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'; object-src 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    // A result handle or an ASN id in a URL is never sent to another site.
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];

/// How people sign in to the portal: either way, or both.
#[derive(Clone, Default)]
pub struct SignIn {
    /// One-time links from `cpis login-link`, signed by the data
    /// directory's key (the embedded service).
    pub ticket: Option<TicketVerifier>,
    /// OpenID Connect against the configured issuer (production; feature
    /// `oidc`).
    #[cfg(feature = "oidc")]
    pub oidc: Option<OidcSignIn>,
}

impl SignIn {
    /// The OpenID Connect button's text, when that way in is on.
    pub(crate) fn oidc_label(&self) -> Option<&str> {
        #[cfg(feature = "oidc")]
        if let Some(oidc) = &self.oidc {
            return Some(&oidc.label);
        }
        None
    }
}

/// The portal's settings.
#[derive(Clone)]
pub struct PortalConfig {
    pub sign_in: SignIn,
    /// Mark the session cookie `Secure` (with the `__Host-` prefix): true
    /// unless the service is served over plain HTTP on loopback.
    pub secure_cookies: bool,
    /// The uploads page's banner: a feed older than this is stale (the
    /// `--feed-stale-after-hours` of `cpis serve`).
    pub feed_stale_after: Duration,
}

/// The ports the portal uses: the council's and the check's, its sessions
/// and the upload history.
pub trait PortalStore: CouncilStore + CheckStore + PortalSessions + UploadHistory {}
impl<T> PortalStore for T where T: CouncilStore + CheckStore + PortalSessions + UploadHistory {}

/// The API's state and the portal's settings.
pub(crate) struct PortalState<S, Q> {
    pub app: AppState<S, Q>,
    pub config: Arc<PortalConfig>,
}

impl<S: Clone, Q: Clone> Clone for PortalState<S, Q> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            config: self.config.clone(),
        }
    }
}

/// One page's handler behind its spec, as [`crate::endpoint`] does for the
/// API: the method filter and [`session::authenticate`] bound when built.
fn page_route<S, Q, H, T>(
    state: &PortalState<S, Q>,
    spec: &'static RouteSpec,
    handler: H,
) -> MethodRouter<PortalState<S, Q>>
where
    S: PortalStore,
    Q: Queue,
    H: Handler<T, PortalState<S, Q>>,
    T: 'static,
{
    let filter = Method::from_bytes(spec.method.as_bytes())
        .ok()
        .and_then(|m| MethodFilter::try_from(m).ok())
        .unwrap_or(MethodFilter::GET);
    on(filter, handler).route_layer(axum::middleware::from_fn_with_state(
        (state.clone(), spec),
        session::authenticate::<S, Q>,
    ))
}

/// Every portal page. Serve it beside the API routers inside
/// [`crate::service_router_with`] (which adds the route-table gate, the
/// request id, the log line and the portal's 404 and 405 pages).
pub fn router<S: PortalStore, Q: Queue>(app: AppState<S, Q>, config: PortalConfig) -> Router {
    use routes::*;
    let state = PortalState {
        app,
        config: Arc::new(config),
    };
    let s = &state;
    let router = Router::new();
    // Without the feature the two sign-in routes are not served: the
    // portal's 404 page, as for an issuer not configured.
    #[cfg(feature = "oidc")]
    let router = router
        .route(
            PORTAL_OIDC_START.path,
            page_route(s, &PORTAL_OIDC_START, oidc::start::<S, Q>),
        )
        .route(
            PORTAL_OIDC_CALLBACK.path,
            page_route(s, &PORTAL_OIDC_CALLBACK, oidc::callback::<S, Q>),
        );
    router
        .route(
            PORTAL_HOME.path,
            page_route(s, &PORTAL_HOME, sign_in::home::<S, Q>),
        )
        .route(
            PORTAL_ASSET.path,
            page_route(s, &PORTAL_ASSET, assets::asset),
        )
        .route(
            PORTAL_SIGN_IN.path,
            page_route(s, &PORTAL_SIGN_IN, sign_in::sign_in::<S, Q>),
        )
        .route(
            PORTAL_SIGN_OUT.path,
            page_route(s, &PORTAL_SIGN_OUT, sign_in::sign_out::<S, Q>),
        )
        .route(
            PORTAL_INBOX.path,
            page_route(s, &PORTAL_INBOX, inbox::inbox::<S, Q>),
        )
        .route(
            PORTAL_NOTIFICATION.path,
            page_route(s, &PORTAL_NOTIFICATION, inbox::notification::<S, Q>),
        )
        .route(
            PORTAL_ACKNOWLEDGE.path,
            page_route(s, &PORTAL_ACKNOWLEDGE, inbox::acknowledge::<S, Q>),
        )
        .route(
            PORTAL_AUTHORITY.path,
            page_route(s, &PORTAL_AUTHORITY, council::authority::<S, Q>).merge(page_route(
                s,
                &PORTAL_AUTHORITY_UPDATE,
                council::update_authority::<S, Q>,
            )),
        )
        .route(
            PORTAL_UPLOADS.path,
            page_route(s, &PORTAL_UPLOADS, council::uploads::<S, Q>),
        )
        .route(
            PORTAL_CHECK_FORM.path,
            page_route(s, &PORTAL_CHECK_FORM, check::form).merge(page_route(
                s,
                &PORTAL_CHECK,
                check::check::<S, Q>,
            )),
        )
        .route(
            PORTAL_CHECK_RESULT.path,
            page_route(s, &PORTAL_CHECK_RESULT, check::result::<S, Q>),
        )
        .with_state(state)
}

/// The portal's one mapping of a store failure: the 503 page (a cursor the
/// store cannot read is the caller's mistake: 400).
pub(crate) struct PageError(Response);

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        Self(match error {
            StoreError::InvalidCursor => page::error_page(StatusCode::BAD_REQUEST),
            error => {
                tracing::error!(%error, "store error");
                page::error_page(StatusCode::SERVICE_UNAVAILABLE)
            }
        })
    }
}

/// An ASN not in the caller's inbox is the 404 page, like any other.
impl From<AsnError> for PageError {
    fn from(error: AsnError) -> Self {
        match error {
            AsnError::NotInInbox => Self(page::not_found()),
            AsnError::Store(error) => error.into(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0
    }
}

/// Whether a path is the portal's (its errors are pages, with its headers).
pub(crate) fn is_portal(path: &str) -> bool {
    path == "/portal" || path.starts_with("/portal/")
}
