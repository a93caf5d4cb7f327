//! The route table: the one list of every route, its caller and its audit
//! action. Routers are built from it, the OpenAPI test checks against it, and
//! the authentication middleware looks up who may call what in it.

use cpis_domain::AuditAction;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anyone,
    Council,
    /// A clinician or a care-setting system.
    CareSetting,
    /// A council or a care setting (the history query decides which may see what).
    CouncilOrCareSetting,
}

/// How errors are shaped on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 9457 problem details.
    Json,
    /// FHIR `OperationOutcome`.
    Fhir,
    /// The portal: HTML pages, and NHS-style error pages.
    Html,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub caller: Caller,
    pub action: Option<AuditAction>,
    pub dialect: Dialect,
}

const fn route(
    method: &'static str,
    path: &'static str,
    caller: Caller,
    action: Option<AuditAction>,
    dialect: Dialect,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        caller,
        action,
        dialect,
    }
}

use AuditAction as A;
use Caller::*;
use Dialect::*;

pub const HEALTH: RouteSpec = route("GET", "/health", Anyone, None, Json);
pub const UPLOAD: RouteSpec = route("POST", "/v1/uploads", Council, Some(A::Upload), Json);
pub const REWIND_SEQUENCE: RouteSpec = route(
    "POST",
    "/v1/uploads/rewind",
    Council,
    Some(A::RewindSequence),
    Json,
);
pub const LIST_PLANS: RouteSpec = route("GET", "/v1/plans", Council, Some(A::ListPlans), Json);
pub const READ_AUTHORITY: RouteSpec = route(
    "GET",
    "/v1/authority",
    Council,
    Some(A::ReadAuthority),
    Json,
);
pub const UPDATE_AUTHORITY: RouteSpec = route(
    "PUT",
    "/v1/authority",
    Council,
    Some(A::UpdateAuthority),
    Json,
);
pub const LIST_NOTIFICATIONS: RouteSpec = route(
    "GET",
    "/v1/notifications",
    Council,
    Some(A::ListNotifications),
    Json,
);
pub const READ_NOTIFICATION: RouteSpec = route(
    "GET",
    "/v1/notifications/{id}",
    Council,
    Some(A::ReadNotification),
    Json,
);
pub const ACK_NOTIFICATION: RouteSpec = route(
    "POST",
    "/v1/notifications/{id}/ack",
    Council,
    Some(A::AcknowledgeNotification),
    Json,
);
pub const CHECK: RouteSpec = route("POST", "/v1/checks", CareSetting, Some(A::Check), Json);
pub const HISTORY: RouteSpec = route(
    "POST",
    "/v1/history",
    CouncilOrCareSetting,
    Some(A::ReadHistory),
    Json,
);
pub const FHIR_CARE_TEAM: RouteSpec = route(
    "GET",
    "/FHIR/R4/CareTeam",
    CareSetting,
    Some(A::Check),
    Fhir,
);
pub const FHIR_FLAG: RouteSpec = route("GET", "/FHIR/R4/Flag", CareSetting, Some(A::Check), Fhir);
/// Public: FHIR clients read the CapabilityStatement before they authenticate
/// (FHIR R4 RESTful API, "capabilities"); it holds no personal data.
pub const FHIR_METADATA: RouteSpec = route("GET", "/FHIR/R4/metadata", Anyone, None, Fhir);
pub const FHIR_AUDIT_EVENT: RouteSpec = route(
    "GET",
    "/FHIR/R4/AuditEvent",
    CareSetting,
    Some(A::ReadHistory),
    Fhir,
);

/// Every route the service serves.
pub const ROUTES: &[RouteSpec] = &[
    HEALTH,
    UPLOAD,
    REWIND_SEQUENCE,
    LIST_PLANS,
    READ_AUTHORITY,
    UPDATE_AUTHORITY,
    LIST_NOTIFICATIONS,
    READ_NOTIFICATION,
    ACK_NOTIFICATION,
    CHECK,
    HISTORY,
    FHIR_CARE_TEAM,
    FHIR_FLAG,
    FHIR_METADATA,
    FHIR_AUDIT_EVENT,
];

/// A portal page that mirrors an API route: the same callers, and the same
/// audit action (written once, in the API route's spec).
const fn mirror(method: &'static str, path: &'static str, api: &RouteSpec) -> RouteSpec {
    route(method, path, api.caller, api.action, Html)
}

// The portal (issue 14). Each page admits exactly the callers of the API
// route it mirrors and audits as that route does; a caller it does not admit
// gets the page for something that does not exist.

/// `/portal`: to the signed-in caller's start page, or to sign-in.
pub const PORTAL_HOME: RouteSpec = route("GET", "/portal", Anyone, None, Html);
/// The stylesheet, scripts and icons (content-addressed names, cached a year).
pub const PORTAL_ASSET: RouteSpec = route("GET", "/portal/assets/{file}", Anyone, None, Html);
/// Sign-in: the page, and a one-time link's redemption (`?ticket=`).
pub const PORTAL_SIGN_IN: RouteSpec =
    route("GET", "/portal/sign-in", Anyone, Some(A::SignIn), Html);
/// OpenID Connect: off to the issuer (`?next=` kept server-side).
pub const PORTAL_OIDC_START: RouteSpec = route("GET", "/portal/sign-in/oidc", Anyone, None, Html);
/// OpenID Connect: the issuer's redirect back (the registered redirect URI).
pub const PORTAL_OIDC_CALLBACK: RouteSpec = route(
    "GET",
    "/portal/sign-in/callback",
    Anyone,
    Some(A::SignIn),
    Html,
);
pub const PORTAL_SIGN_OUT: RouteSpec = route(
    "POST",
    "/portal/sign-out",
    CouncilOrCareSetting,
    Some(A::SignOut),
    Html,
);
pub const PORTAL_INBOX: RouteSpec = mirror("GET", "/portal/notifications", &LIST_NOTIFICATIONS);
pub const PORTAL_NOTIFICATION: RouteSpec =
    mirror("GET", "/portal/notifications/{id}", &READ_NOTIFICATION);
pub const PORTAL_ACKNOWLEDGE: RouteSpec = mirror(
    "POST",
    "/portal/notifications/{id}/acknowledge",
    &ACK_NOTIFICATION,
);
pub const PORTAL_AUTHORITY: RouteSpec = mirror("GET", "/portal/authority", &READ_AUTHORITY);
pub const PORTAL_AUTHORITY_UPDATE: RouteSpec =
    mirror("POST", "/portal/authority", &UPDATE_AUTHORITY);
/// A council's upload history: the callers of `POST /v1/uploads`.
pub const PORTAL_UPLOADS: RouteSpec = route(
    "GET",
    "/portal/uploads",
    UPLOAD.caller,
    Some(A::ListUploads),
    Html,
);
pub const PORTAL_CHECK_FORM: RouteSpec = mirror("GET", "/portal/check", &CHECK);
pub const PORTAL_CHECK: RouteSpec = mirror("POST", "/portal/check", &CHECK);
/// A check's result behind its short-lived handle (the NHS number never in a URL).
pub const PORTAL_CHECK_RESULT: RouteSpec = mirror("GET", "/portal/check/results/{handle}", &CHECK);

/// Every portal route.
pub const PORTAL_ROUTES: &[RouteSpec] = &[
    PORTAL_HOME,
    PORTAL_ASSET,
    PORTAL_SIGN_IN,
    PORTAL_OIDC_START,
    PORTAL_OIDC_CALLBACK,
    PORTAL_SIGN_OUT,
    PORTAL_INBOX,
    PORTAL_NOTIFICATION,
    PORTAL_ACKNOWLEDGE,
    PORTAL_AUTHORITY,
    PORTAL_AUTHORITY_UPDATE,
    PORTAL_UPLOADS,
    PORTAL_CHECK_FORM,
    PORTAL_CHECK,
    PORTAL_CHECK_RESULT,
];

/// Readiness: served by `cpis serve` only, whose check knows its SQLite
/// store (on AWS, Lambda and API Gateway report health themselves).
pub const HEALTH_READY: RouteSpec = route("GET", "/health/ready", Anyone, None, Json);

/// Routes only the embedded runtime serves (not in the OpenAPI contract).
pub const EMBEDDED_ROUTES: &[RouteSpec] = &[HEALTH_READY];

/// The spec for a matched path and method.
pub fn lookup(method: &str, path: &str) -> Option<&'static RouteSpec> {
    all_routes().find(|r| r.method == method && r.path == path)
}

/// Every route of every table: the API's, the embedded runtime's and the portal's.
pub fn all_routes() -> impl Iterator<Item = &'static RouteSpec> {
    ROUTES.iter().chain(EMBEDDED_ROUTES).chain(PORTAL_ROUTES)
}

impl Caller {
    pub fn admits(self, principal: &cpis_domain::Principal) -> bool {
        use cpis_domain::Principal::{Clinician, Council as C};
        matches!(
            (self, principal),
            (Anyone | CouncilOrCareSetting, _) | (Council, C { .. }) | (CareSetting, Clinician(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each page admits exactly the callers of the API route it mirrors.
    #[test]
    fn portal_pages_admit_the_callers_of_their_api_routes() {
        for (page, api) in [
            (&PORTAL_INBOX, &LIST_NOTIFICATIONS),
            (&PORTAL_NOTIFICATION, &READ_NOTIFICATION),
            (&PORTAL_ACKNOWLEDGE, &ACK_NOTIFICATION),
            (&PORTAL_AUTHORITY, &READ_AUTHORITY),
            (&PORTAL_AUTHORITY_UPDATE, &UPDATE_AUTHORITY),
            (&PORTAL_CHECK_FORM, &CHECK),
            (&PORTAL_CHECK, &CHECK),
            (&PORTAL_CHECK_RESULT, &CHECK),
        ] {
            assert_eq!(
                (page.caller, page.action),
                (api.caller, api.action),
                "{}",
                page.path
            );
            assert_eq!(page.dialect, Dialect::Html);
        }
        assert_eq!(PORTAL_UPLOADS.caller, UPLOAD.caller);
        let paths: Vec<_> = all_routes().map(|r| (r.method, r.path)).collect();
        let mut unique = paths.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), paths.len(), "a route written twice");
        for spec in PORTAL_ROUTES {
            assert!(spec.path == "/portal" || spec.path.starts_with("/portal/"));
        }
    }

    /// [`crate::endpoint`] builds each route's method filter from its spec.
    #[test]
    fn every_spec_names_a_method_axum_routes() {
        for spec in all_routes() {
            let method = axum::http::Method::from_bytes(spec.method.as_bytes());
            let filter = method.ok().map(axum::routing::MethodFilter::try_from);
            assert!(
                matches!(filter, Some(Ok(_))),
                "{} {}",
                spec.method,
                spec.path
            );
        }
    }
}
