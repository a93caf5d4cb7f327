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

/// Readiness: served by `cpis serve` only, whose check knows its SQLite
/// store (on AWS, Lambda and API Gateway report health themselves).
pub const HEALTH_READY: RouteSpec = route("GET", "/health/ready", Anyone, None, Json);

/// Routes only the embedded runtime serves (not in the OpenAPI contract).
pub const EMBEDDED_ROUTES: &[RouteSpec] = &[HEALTH_READY];

/// The spec for a matched path and method.
pub fn lookup(method: &str, path: &str) -> Option<&'static RouteSpec> {
    ROUTES
        .iter()
        .chain(EMBEDDED_ROUTES)
        .find(|r| r.method == method && r.path == path)
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

    /// [`crate::endpoint`] builds each route's method filter from its spec.
    #[test]
    fn every_spec_names_a_method_axum_routes() {
        for spec in ROUTES.iter().chain(EMBEDDED_ROUTES) {
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
