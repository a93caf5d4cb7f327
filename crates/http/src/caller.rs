//! Typed callers: a handler's signature says who may call it. The
//! authentication layer ([`crate::middleware::authenticate`]) has verified
//! the credential, refused (and audited) any caller the route's spec does
//! not admit, and left the [`Principal`]; these extractors hand it over in
//! the shape the handler needs.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cpis_domain::{Clinician, OdsCode, Principal};

use crate::dialect::error_response;
use crate::problem::Problem;
use crate::routes::{Dialect, RouteSpec};

/// A council: tenancy is the council in its credential, never the request.
pub struct Council {
    pub authority: OdsCode,
    pub principal: Principal,
}

/// A clinician or a care-setting system.
pub struct CareSetting {
    pub clinician: Clinician,
    pub principal: Principal,
}

/// Any authenticated caller (the use case decides what each may see).
pub struct AnyCaller(pub Principal);

/// A handler that takes a caller its route's spec does not admit (or a
/// route built without the authentication layer): a fault in this crate,
/// answered 500 in the route's dialect and logged, never served.
pub struct WiringFault(Dialect);

impl WiringFault {
    fn of(parts: &Parts) -> Self {
        Self(
            parts
                .extensions
                .get::<&'static RouteSpec>()
                .map_or(Dialect::Json, |spec| spec.dialect),
        )
    }
}

impl IntoResponse for WiringFault {
    fn into_response(self) -> Response {
        tracing::error!("a handler's caller does not match its route's spec: refused");
        error_response(
            self.0,
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal error",
                "the service could not handle this request",
            ),
            cpis_fhir::FhirError::Unavailable,
        )
    }
}

fn principal(parts: &Parts) -> Result<Principal, WiringFault> {
    parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| WiringFault::of(parts))
}

impl<S: Send + Sync> FromRequestParts<S> for Council {
    type Rejection = WiringFault;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WiringFault> {
        let principal = principal(parts)?;
        let Principal::Council { authority, .. } = &principal else {
            return Err(WiringFault::of(parts));
        };
        Ok(Self {
            authority: authority.clone(),
            principal,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CareSetting {
    type Rejection = WiringFault;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WiringFault> {
        match principal(parts)? {
            Principal::Clinician(clinician) => Ok(Self {
                principal: Principal::Clinician(clinician.clone()),
                clinician,
            }),
            Principal::Council { .. } => Err(WiringFault::of(parts)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AnyCaller {
    type Rejection = WiringFault;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WiringFault> {
        principal(parts).map(Self)
    }
}
