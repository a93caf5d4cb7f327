//! The CP-IS HTTP API. One `axum::Router` per capability, generic over the
//! ports; the Lambda functions run one each with `lambda_http::run`, and the
//! `cpis` binary merges them all into one local server. Every route is in
//! [`routes::ROUTES`], written once, and each is built here from its spec.
//!
//! Layers, each importing only those below it: `lib` (router assembly) →
//! `handlers`, `portal` → `usecase` → `audit`, `caller`, `extract`, `paging`,
//! `dialect` → `problem`, `portal::page`, `routes`, `state`, `request_id`,
//! `auth`. The portal (issue 14) is the API's HTML dialect: its pages run
//! the same use cases (`portal`'s module doc).

mod audit;
pub mod auth;
pub mod caller;
pub mod claim_map;
mod dialect;
mod extract;
mod handlers;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "local-auth")]
mod local_auth;
mod middleware;
mod paging;
pub mod portal;
pub mod problem;
mod request_id;
pub mod routes;
mod state;
#[cfg(feature = "test-support")]
pub mod testing;
mod usecase;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use cpis_domain::ports::AuditTrail;

pub use auth::{
    Authenticator, CallerClaims, ClaimsError, GatewayClaims, LocalVerifier, SignInTicket,
    TicketVerifier, LOCAL_AUDIENCE, LOCAL_ISSUER, SIGN_IN_AUDIENCE,
};
#[cfg(feature = "local-auth")]
pub use local_auth::{KeyError, LocalKeys};
pub use problem::Problem;
pub use request_id::{strict_request_id, RequestId};
pub use routes::RouteSpec;
pub use state::{AppState, CheckStore, CouncilStore, HistoryStore, Queue};

use handlers::{check, directory, fhir, history, inbox, upload};

/// Largest upload body: 10,000 records are about 2 MB; 5 MB leaves room.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// Largest body on every other route.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// One route's handler behind its spec: the method filter and the
/// authentication layer come from the spec, bound here when the router is
/// built (no lookup by path at run time). Every route of this crate is made
/// by this function, and anything built another way is refused by the
/// route-table gate in [`finish`].
pub fn endpoint<S, Q, H, T>(
    state: &AppState<S, Q>,
    spec: &'static RouteSpec,
    handler: H,
) -> MethodRouter<AppState<S, Q>>
where
    S: AuditTrail + Clone + Send + Sync + 'static,
    Q: Clone + Send + Sync + 'static,
    H: Handler<T, AppState<S, Q>>,
    T: 'static,
{
    let filter = Method::from_bytes(spec.method.as_bytes())
        .ok()
        .and_then(|m| MethodFilter::try_from(m).ok())
        // Every spec's method is one axum routes (routes.rs's tests); were
        // one not, `authenticate` still refuses any other method with 405.
        .unwrap_or(MethodFilter::GET);
    on(filter, handler).route_layer(axum::middleware::from_fn_with_state(
        (state.clone(), spec),
        middleware::authenticate::<S, Q>,
    ))
}

/// Plan upload: `POST /v1/uploads`, `POST /v1/uploads/rewind`, `GET /v1/plans`.
pub fn plan_upload_router<S: CouncilStore, Q: Queue>(state: AppState<S, Q>) -> Router {
    Router::new()
        .route(
            routes::UPLOAD.path,
            endpoint(&state, &routes::UPLOAD, upload::upload::<S, Q>)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            routes::REWIND_SEQUENCE.path,
            endpoint(
                &state,
                &routes::REWIND_SEQUENCE,
                upload::rewind_sequence::<S, Q>,
            ),
        )
        .route(
            routes::LIST_PLANS.path,
            endpoint(&state, &routes::LIST_PLANS, upload::list_plans::<S, Q>),
        )
        // The upload's own limit, set nearer its handler, overrides this one.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The council's directory entry and ASN inbox.
pub fn council_router<S: CouncilStore, Q: Queue>(state: AppState<S, Q>) -> Router {
    Router::new()
        .route(
            routes::READ_AUTHORITY.path,
            endpoint(
                &state,
                &routes::READ_AUTHORITY,
                directory::read_authority::<S, Q>,
            )
            .merge(endpoint(
                &state,
                &routes::UPDATE_AUTHORITY,
                directory::update_authority::<S, Q>,
            )),
        )
        .route(
            routes::LIST_NOTIFICATIONS.path,
            endpoint(
                &state,
                &routes::LIST_NOTIFICATIONS,
                inbox::list_notifications::<S, Q>,
            ),
        )
        .route(
            routes::READ_NOTIFICATION.path,
            endpoint(
                &state,
                &routes::READ_NOTIFICATION,
                inbox::read_notification::<S, Q>,
            ),
        )
        .route(
            routes::ACK_NOTIFICATION.path,
            endpoint(
                &state,
                &routes::ACK_NOTIFICATION,
                inbox::acknowledge_notification::<S, Q>,
            ),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The attendance check: `POST /v1/checks` and the FHIR CareTeam, Flag and metadata.
pub fn check_router<S: CheckStore, Q: Queue>(state: AppState<S, Q>) -> Router {
    Router::new()
        .route(
            routes::CHECK.path,
            endpoint(&state, &routes::CHECK, check::check::<S, Q>),
        )
        .route(
            routes::FHIR_CARE_TEAM.path,
            endpoint(
                &state,
                &routes::FHIR_CARE_TEAM,
                fhir::check_search_route::<S, Q, { fhir::CARE_TEAM }>,
            ),
        )
        .route(
            routes::FHIR_FLAG.path,
            endpoint(
                &state,
                &routes::FHIR_FLAG,
                fhir::check_search_route::<S, Q, { fhir::FLAG }>,
            ),
        )
        .route(
            routes::FHIR_METADATA.path,
            endpoint(&state, &routes::FHIR_METADATA, fhir::metadata::<S, Q>),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The history query: `POST /v1/history` and the FHIR AuditEvent search.
pub fn history_router<S: HistoryStore, Q: Queue>(state: AppState<S, Q>) -> Router {
    Router::new()
        .route(
            routes::HISTORY.path,
            endpoint(&state, &routes::HISTORY, history::history::<S, Q>),
        )
        .route(
            routes::FHIR_AUDIT_EVENT.path,
            endpoint(
                &state,
                &routes::FHIR_AUDIT_EVENT,
                fhir::audit_events::<S, Q>,
            ),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `GET /health`: liveness only.
pub fn health_router() -> Router {
    Router::new().route(
        routes::HEALTH.path,
        axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
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
        .fallback(dialect::not_found)
        .method_not_allowed_fallback(dialect::method_not_allowed)
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
