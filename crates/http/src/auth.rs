//! Who is calling. Tokens are verified locally (the embedded service) or by
//! the API Gateway JWT authorizer (Lambda); either way the claims become a
//! `Principal` through the one mapping below. Tenancy comes only from it.
//! The local tokens and sign-in tickets themselves are `local_auth.rs`
//! (feature `local-auth`).

use cpis_domain::{AccessorKind, Clinician, JobRole, OdsCode, Principal, Rbac};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[cfg(feature = "local-auth")]
pub use crate::local_auth::{LocalVerifier, TicketVerifier};

pub const LOCAL_ISSUER: &str = "cpis-local";
pub const LOCAL_AUDIENCE: &str = "cpis";

/// The claims cpis reads. Councils: `role = "council"`, `ods_code` is the
/// council. Care settings: `role = "clinician" | "system"`, with `rbac`,
/// `ods_code` and `org_name` of the organisation, and `setting`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerClaims {
    pub sub: String,
    pub role: String,
    pub ods_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rbac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// Optional, clinicians only, with `job_role_name`: the person's SDS
    /// job role code (`R` and four digits), which an ASN file must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_role: Option<String>,
    /// The job role's name (1 to 100 characters), given with `job_role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_role_name: Option<String>,
}

/// Why verified claims do not make a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the credential names no valid role")]
    Role,
    #[error("the credential's ODS code is not valid")]
    OdsCode,
    #[error("the credential's subject is missing or too long")]
    Subject,
    #[error("the credential's RBAC activity is not B0107 or B0170")]
    Rbac,
    #[error("the credential lacks the organisation name or setting")]
    Organisation,
    #[error("the credential's job role is not an SDS job role code with its name")]
    JobRole,
}

fn bounded_text(value: Option<&str>, max: usize) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= max && !v.chars().any(char::is_control))
        .map(str::to_owned)
}

impl CallerClaims {
    /// The one mapping from claims to a principal.
    pub fn principal(&self) -> Result<Principal, ClaimsError> {
        let subject = bounded_text(Some(&self.sub), 128).ok_or(ClaimsError::Subject)?;
        let ods = OdsCode::parse(&self.ods_code).map_err(|_| ClaimsError::OdsCode)?;
        let kind = match self.role.as_str() {
            "council" => {
                return Ok(Principal::Council {
                    authority: ods,
                    client_id: subject,
                })
            }
            "clinician" => AccessorKind::User,
            "system" => AccessorKind::System,
            _ => return Err(ClaimsError::Role),
        };
        let rbac = self
            .rbac
            .as_deref()
            .and_then(Rbac::parse)
            .ok_or(ClaimsError::Rbac)?;
        let organisation_name =
            bounded_text(self.org_name.as_deref(), 200).ok_or(ClaimsError::Organisation)?;
        let setting = bounded_text(self.setting.as_deref(), 64).ok_or(ClaimsError::Organisation)?;
        // A person's job role: both claims or neither (a system's claims
        // are not read: its ASN author is the system).
        let job_role = match (
            kind,
            self.job_role.as_deref(),
            self.job_role_name.as_deref(),
        ) {
            (AccessorKind::System, _, _) | (_, None, None) => None,
            (AccessorKind::User, Some(code), Some(name)) => {
                Some(JobRole::parse(code, name).ok_or(ClaimsError::JobRole)?)
            }
            _ => return Err(ClaimsError::JobRole),
        };
        Ok(Principal::Clinician(Clinician {
            kind,
            user_id: subject,
            rbac,
            organisation_ods: ods,
            organisation_name,
            setting,
            job_role,
        }))
    }
}

/// The audience of a one-time portal sign-in ticket: never a bearer
/// token's ([`LOCAL_AUDIENCE`]), so a ticket opens no API route and a token
/// signs nobody in.
pub const SIGN_IN_AUDIENCE: &str = "cpis-portal-sign-in";

/// A verified sign-in ticket: checked for signature, issuer and audience,
/// not yet for time (the portal checks that against its clock) or reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInTicket {
    pub caller: CallerClaims,
    /// The ticket's id: what its single use is recorded under.
    pub id: String,
    pub not_before: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl SignInTicket {
    /// Whether the ticket may be used at `now`: from its `nbf` up to, not
    /// including, its `exp` (no leeway: the link is minted where it is used).
    pub fn is_current(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now < self.expires_at
    }
}

/// Without `local-auth` (the Lambda functions) no local token can be
/// verified: this type has no value, so [`Authenticator::Local`] cannot be
/// built and the JWT crates are not linked.
#[cfg(not(feature = "local-auth"))]
#[derive(Clone)]
pub enum LocalVerifier {}

#[cfg(not(feature = "local-auth"))]
impl LocalVerifier {
    pub fn verify(&self, _token: &str) -> Option<CallerClaims> {
        match *self {}
    }
}

/// Without `local-auth` no sign-in ticket can be verified: no value of
/// this type exists, so the portal's ticket sign-in cannot be configured.
#[cfg(not(feature = "local-auth"))]
#[derive(Clone)]
pub enum TicketVerifier {}

#[cfg(not(feature = "local-auth"))]
impl TicketVerifier {
    pub fn verify(&self, _ticket: &str) -> Option<SignInTicket> {
        match *self {}
    }
}

/// How a router learns who is calling.
#[derive(Clone)]
pub enum Authenticator {
    /// Verify `Authorization: Bearer` tokens with the local key.
    Local(LocalVerifier),
    /// Trust claims the API Gateway JWT authorizer verified, placed in the
    /// request extensions as [`GatewayClaims`] by the Lambda adapter.
    Gateway,
}

/// Claims verified by API Gateway. Only the Lambda adapter inserts these;
/// nothing from the network can place a value in request extensions.
#[derive(Debug, Clone)]
pub struct GatewayClaims(pub CallerClaims);

impl Authenticator {
    /// The caller's claims, or `None` when the request carries no valid credential.
    pub fn claims(&self, parts: &http::request::Parts) -> Option<CallerClaims> {
        match self {
            Self::Local(verifier) => {
                let header = parts
                    .headers
                    .get(http::header::AUTHORIZATION)?
                    .to_str()
                    .ok()?;
                let (scheme, token) = header.split_once(' ')?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return None;
                }
                verifier.verify(token.trim())
            }
            Self::Gateway => parts.extensions.get::<GatewayClaims>().map(|c| c.0.clone()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A council's claims, for this crate's tests.
    pub(crate) fn council() -> CallerClaims {
        CallerClaims {
            job_role: None,
            job_role_name: None,
            sub: "client-1".into(),
            role: "council".into(),
            ods_code: "E09000033".into(),
            rbac: None,
            org_name: None,
            setting: None,
        }
    }

    #[test]
    fn councils_and_clinicians_map_to_principals() {
        assert!(matches!(
            council().principal(),
            Ok(Principal::Council { .. })
        ));
        let clinician = CallerClaims {
            job_role: None,
            job_role_name: None,
            sub: "u1".into(),
            role: "clinician".into(),
            ods_code: "RJ1".into(),
            rbac: Some("B0107".into()),
            org_name: Some("St Thomas'".into()),
            setting: Some("emergency-department".into()),
        };
        assert!(
            matches!(clinician.principal(), Ok(Principal::Clinician(c)) if c.rbac == Rbac::B0107)
        );
        let no_rbac = CallerClaims {
            rbac: None,
            ..clinician.clone()
        };
        assert_eq!(no_rbac.principal(), Err(ClaimsError::Rbac));
        let bad_role = CallerClaims {
            role: "admin".into(),
            ..clinician
        };
        assert_eq!(bad_role.principal(), Err(ClaimsError::Role));
        let bad_ods = CallerClaims {
            ods_code: "e09".into(),
            ..council()
        };
        assert_eq!(bad_ods.principal(), Err(ClaimsError::OdsCode));
    }
}
