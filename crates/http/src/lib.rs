//! The CP-IS HTTP API. One `axum::Router` per capability, generic over the
//! ports; the Lambda functions run one each with `lambda_http::run`, and the
//! `cpis` binary merges them all into one local server. Every route is in
//! [`routes::ROUTES`], written once.

pub mod auth;
mod care;
mod council;
mod fhir;
mod history;
#[cfg(feature = "lambda")]
pub mod lambda;
mod middleware;
pub mod problem;
pub mod routes;
#[cfg(feature = "test-support")]
pub mod testing;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use cpis_domain::ports::{
    AccessLog, AsnQueue, AuditTrail, AuthorityDirectory, CheckReceipts, NotificationInbox,
    PlanStore, UploadLedger,
};
use cpis_domain::{Clock, FeedLog, Pseudonymiser, VisibilityPolicy, VolumeWatch};

pub use auth::{
    Authenticator, CallerClaims, ClaimsError, GatewayClaims, KeyError, LocalKeys, LocalVerifier,
    LOCAL_AUDIENCE, LOCAL_ISSUER,
};
pub use middleware::{strict_request_id, RequestId};
pub use problem::Problem;

/// Largest upload body: 10,000 records are about 2 MB; 5 MB leaves room.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// Largest body on every other route.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler needs: the store, the hand-off to the dispatcher, the
/// clock, the rules' configuration and the authenticator.
pub struct AppState<S, Q> {
    pub store: S,
    pub queue: Q,
    pub clock: Arc<dyn Clock>,
    pub policy: VisibilityPolicy,
    pub pseudonymiser: Pseudonymiser,
    pub auth: Authenticator,
    /// The enumeration watch: logs (never refuses) a caller whose checks are unusual.
    pub volume: Arc<VolumeWatch>,
}

impl<S: Clone, Q: Clone> Clone for AppState<S, Q> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            policy: self.policy,
            pseudonymiser: self.pseudonymiser.clone(),
            auth: self.auth.clone(),
            volume: self.volume.clone(),
        }
    }
}

/// The ports the council routes use.
pub trait CouncilStore:
    PlanStore
    + UploadLedger
    + AuthorityDirectory
    + NotificationInbox
    + AuditTrail
    + FeedLog
    + Clone
    + 'static
{
}
impl<T> CouncilStore for T where
    T: PlanStore
        + UploadLedger
        + AuthorityDirectory
        + NotificationInbox
        + AuditTrail
        + FeedLog
        + Clone
        + 'static
{
}

/// The ports the check routes use.
pub trait CheckStore:
    PlanStore + AuthorityDirectory + AccessLog + CheckReceipts + AuditTrail + Clone + 'static
{
}
impl<T> CheckStore for T where
    T: PlanStore + AuthorityDirectory + AccessLog + CheckReceipts + AuditTrail + Clone + 'static
{
}

/// The ports the history routes use: reads, and the audit trail.
pub trait HistoryStore:
    PlanStore + AccessLog + CheckReceipts + AuditTrail + Clone + 'static
{
}
impl<T> HistoryStore for T where
    T: PlanStore + AccessLog + CheckReceipts + AuditTrail + Clone + 'static
{
}

/// The queue bound every router shares.
pub trait Queue: AsnQueue + Clone + 'static {}
impl<T> Queue for T where T: AsnQueue + Clone + 'static {}

fn authenticated<S, Q>(router: Router<AppState<S, Q>>, state: AppState<S, Q>) -> Router
where
    S: AuditTrail + Clone + Send + Sync + 'static,
    Q: Clone + Send + Sync + 'static,
{
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate::<S, Q>,
        ))
        .with_state(state)
}

/// Plan upload: `POST /v1/uploads`, `POST /v1/uploads/rewind`, `GET /v1/plans`.
pub fn plan_upload_router<S: CouncilStore, Q: Queue>(state: AppState<S, Q>) -> Router {
    let router = Router::new()
        .route(routes::UPLOAD.path, post(council::upload::<S, Q>))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .route(
            routes::REWIND_SEQUENCE.path,
            post(council::rewind_sequence::<S, Q>),
        )
        .route(routes::LIST_PLANS.path, get(council::list_plans::<S, Q>));
    authenticated(router, state)
}

/// The council's directory entry and ASN inbox.
pub fn council_router<S: CouncilStore, Q: Queue>(state: AppState<S, Q>) -> Router {
    let router = Router::new()
        .route(
            routes::READ_AUTHORITY.path,
            get(council::read_authority::<S, Q>).put(council::update_authority::<S, Q>),
        )
        .route(
            routes::LIST_NOTIFICATIONS.path,
            get(council::list_notifications::<S, Q>),
        )
        .route(
            routes::READ_NOTIFICATION.path,
            get(council::read_notification::<S, Q>),
        )
        .route(
            routes::ACK_NOTIFICATION.path,
            post(council::acknowledge_notification::<S, Q>),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    authenticated(router, state)
}

/// The attendance check: `POST /v1/checks` and the FHIR CareTeam, Flag and metadata.
pub fn check_router<S: CheckStore, Q: Queue>(state: AppState<S, Q>) -> Router {
    let router = Router::new()
        .route(routes::CHECK.path, post(care::check::<S, Q>))
        .route(routes::FHIR_CARE_TEAM.path, get(fhir::care_team::<S, Q>))
        .route(routes::FHIR_FLAG.path, get(fhir::flag::<S, Q>))
        .route(routes::FHIR_METADATA.path, get(fhir::metadata::<S, Q>))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    authenticated(router, state)
}

/// The history query: `POST /v1/history` and the FHIR AuditEvent search.
pub fn history_router<S: HistoryStore, Q: Queue>(state: AppState<S, Q>) -> Router {
    let router = Router::new()
        .route(routes::HISTORY.path, post(history::history::<S, Q>))
        .route(
            routes::FHIR_AUDIT_EVENT.path,
            get(fhir::audit_events::<S, Q>),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    authenticated(router, state)
}

/// `GET /health`.
pub fn health_router() -> Router {
    Router::new().route(
        routes::HEALTH.path,
        get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    )
}

/// Adds what every served router needs: the route-table gate (fail closed),
/// 404/405 problems, a request id and
/// one log line per request (method, route, status, latency: never a query
/// string or a body).
pub fn finish(router: Router) -> Router {
    router
        // Runs after routing, before any route's own layers: a method the
        // route table does not list is 405 before authentication or a handler.
        .route_layer(axum::middleware::from_fn(middleware::route_table_gate))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn(middleware::observe))
}

/// Every capability in one router: the embedded service.
pub fn service_router<S, Q>(state: AppState<S, Q>) -> Router
where
    S: CouncilStore + CheckStore + HistoryStore,
    Q: Queue,
{
    service_router_with(state, Router::new())
}

/// [`service_router`] plus routes of the runtime's own (`cpis serve` adds
/// its readiness route, which knows its store), behind the same request id,
/// log line and 404/405 problems. `extra` must not have a fallback.
pub fn service_router_with<S, Q>(state: AppState<S, Q>, extra: Router) -> Router
where
    S: CouncilStore + CheckStore + HistoryStore,
    Q: Queue,
{
    finish(
        Router::new()
            .merge(health_router())
            .merge(extra)
            .merge(plan_upload_router(state.clone()))
            .merge(council_router(state.clone()))
            .merge(check_router(state.clone()))
            .merge(history_router(state)),
    )
}
