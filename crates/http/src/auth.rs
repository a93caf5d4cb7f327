//! Who is calling. Tokens are verified locally (the embedded service) or by
//! the API Gateway JWT authorizer (Lambda); either way the claims become a
//! `Principal` through the one mapping below. Tenancy comes only from it.

use std::sync::Arc;

use cpis_domain::{AccessorKind, Clinician, JobRole, OdsCode, Principal, Rbac};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub const LOCAL_ISSUER: &str = "cpis-local";
pub const LOCAL_AUDIENCE: &str = "cpis";
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

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

/// A token's full claim set, as minted and verified locally.
#[derive(Debug, Serialize, Deserialize)]
struct TokenClaims {
    iss: String,
    aud: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    #[serde(flatten)]
    caller: CallerClaims,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key is not valid Ed25519 PKCS#8 PEM")]
    Invalid,
    #[error("no randomness available from the operating system")]
    Random,
    #[error("could not sign the token")]
    Sign,
}

/// The embedded service's own Ed25519 key pair, kept in its data directory.
/// Tokens minted with one data directory are rejected by another.
#[derive(Clone)]
pub struct LocalKeys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    public_pem: Arc<str>,
}

impl std::fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKeys(..)")
    }
}

impl LocalKeys {
    /// A new key pair from the operating system's randomness, as PKCS#8
    /// PEM: what [`LocalKeys::from_pem`] reads. Where it is kept (the data
    /// directory, mode 0600) is the caller's (`cpis`'s `DataDir`).
    pub fn generate_pem() -> Result<String, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| KeyError::Random)?;
        SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(Default::default())
            .map(|pem| pem.to_string())
            .map_err(|_| KeyError::Invalid)
    }

    /// A key pair held in memory only (tests, benchmarks): its tokens are
    /// refused by every other key pair.
    pub fn ephemeral() -> Result<Self, KeyError> {
        Self::from_pem(&Self::generate_pem()?)
    }

    /// The key pair from its private key (Ed25519 PKCS#8 PEM).
    pub fn from_pem(private_pem: &str) -> Result<Self, KeyError> {
        let signing = SigningKey::from_pkcs8_pem(private_pem).map_err(|_| KeyError::Invalid)?;
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(Default::default())
            .map_err(|_| KeyError::Invalid)?;
        let encoding =
            EncodingKey::from_ed_pem(private_pem.as_bytes()).map_err(|_| KeyError::Invalid)?;
        let decoding =
            DecodingKey::from_ed_pem(public_pem.as_bytes()).map_err(|_| KeyError::Invalid)?;
        Ok(Self {
            encoding: Arc::new(encoding),
            decoding: Arc::new(decoding),
            public_pem: Arc::from(public_pem.as_str()),
        })
    }

    /// The public key (SPKI PEM): what another verifier needs to accept
    /// these tokens. Public by nature; never the private key.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// A bearer token for `caller`, valid for `ttl` from `now`.
    pub fn mint(
        &self,
        caller: &CallerClaims,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<String, KeyError> {
        let claims = TokenClaims {
            iss: LOCAL_ISSUER.into(),
            aud: LOCAL_AUDIENCE.into(),
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: (now + ttl).unix_timestamp(),
            caller: caller.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(|_| KeyError::Sign)
    }

    /// The verifier for tokens minted with these keys.
    pub fn verifier(&self) -> LocalVerifier {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[LOCAL_ISSUER]);
        validation.set_audience(&[LOCAL_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        LocalVerifier {
            key: self.decoding.clone(),
            validation: Arc::new(validation),
        }
    }
}

/// The audience of a one-time portal sign-in ticket: never a bearer
/// token's ([`LOCAL_AUDIENCE`]), so a ticket opens no API route and a token
/// signs nobody in.
pub const SIGN_IN_AUDIENCE: &str = "cpis-portal-sign-in";

/// A one-time sign-in ticket's claims (`cpis login-link`): who, the
/// ticket's own id (redeemed once, `PortalSessions::redeem_ticket`) and
/// its lifetime.
#[derive(Debug, Serialize, Deserialize)]
struct TicketClaims {
    iss: String,
    aud: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    #[serde(flatten)]
    caller: CallerClaims,
}

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

impl LocalKeys {
    /// A one-time sign-in ticket for `caller`, usable from `now` for `ttl`
    /// (the portal refuses it after that, or once used). `ticket_id` must be
    /// unique: 128 random bits, as `cpis login-link` makes.
    pub fn mint_ticket(
        &self,
        caller: &CallerClaims,
        ticket_id: &str,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<String, KeyError> {
        let claims = TicketClaims {
            iss: LOCAL_ISSUER.into(),
            aud: SIGN_IN_AUDIENCE.into(),
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: (now + ttl).unix_timestamp(),
            jti: ticket_id.to_owned(),
            caller: caller.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(|_| KeyError::Sign)
    }

    /// The verifier of this key's sign-in tickets.
    pub fn ticket_verifier(&self) -> TicketVerifier {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[LOCAL_ISSUER]);
        validation.set_audience(&[SIGN_IN_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Time is checked against the portal's clock (SignInTicket::is_current).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        TicketVerifier {
            key: self.decoding.clone(),
            validation: Arc::new(validation),
        }
    }
}

/// Verifies one-time sign-in tickets signed by the local key.
#[derive(Clone)]
pub struct TicketVerifier {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl TicketVerifier {
    /// The ticket, if it is ours (signature, algorithm, issuer, audience);
    /// why not is deliberately not said.
    pub fn verify(&self, ticket: &str) -> Option<SignInTicket> {
        if ticket.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let claims = jsonwebtoken::decode::<TicketClaims>(ticket, &self.key, &self.validation)
            .ok()?
            .claims;
        let id_ok = (16..=64).contains(&claims.jti.len())
            && claims
                .jti
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        id_ok.then_some(())?;
        Some(SignInTicket {
            caller: claims.caller,
            id: claims.jti,
            not_before: OffsetDateTime::from_unix_timestamp(claims.nbf).ok()?,
            expires_at: OffsetDateTime::from_unix_timestamp(claims.exp).ok()?,
        })
    }
}

/// Verifies bearer tokens signed by the local key.
#[derive(Clone)]
pub struct LocalVerifier {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

/// Longest token accepted: anything longer is refused before parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

impl LocalVerifier {
    /// Verifies signature, algorithm, issuer, audience, `exp` and `nbf`.
    /// The reason for a failure is deliberately not returned to callers.
    pub fn verify(&self, token: &str) -> Option<CallerClaims> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        jsonwebtoken::decode::<TokenClaims>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims.caller)
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
mod tests {
    use super::*;

    fn council() -> CallerClaims {
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

    #[test]
    fn keys_round_trip_through_their_pem_and_refuse_other_keys() {
        let pem = LocalKeys::generate_pem().unwrap();
        let keys_a = LocalKeys::from_pem(&pem).unwrap();
        let again_a = LocalKeys::from_pem(&pem).unwrap();
        let keys_b = LocalKeys::ephemeral().unwrap();
        let now = OffsetDateTime::now_utc();
        let token = keys_a
            .mint(&council(), now, time::Duration::hours(1))
            .unwrap();
        assert_eq!(again_a.verifier().verify(&token), Some(council()));
        assert_eq!(keys_b.verifier().verify(&token), None);
        assert!(matches!(
            LocalKeys::from_pem("not a key"),
            Err(KeyError::Invalid)
        ));
    }

    #[test]
    fn tickets_and_tokens_never_stand_in_for_each_other() {
        let keys = LocalKeys::ephemeral().unwrap();
        let now = OffsetDateTime::now_utc();
        let ticket = keys
            .mint_ticket(
                &council(),
                "fedcba98abcdef012345",
                now,
                time::Duration::minutes(10),
            )
            .unwrap();
        let token = keys
            .mint(&council(), now, time::Duration::hours(1))
            .unwrap();
        assert_eq!(
            keys.verifier().verify(&ticket),
            None,
            "a ticket is no bearer token"
        );
        assert_eq!(
            keys.ticket_verifier().verify(&token),
            None,
            "a token is no ticket"
        );
        let verified = keys.ticket_verifier().verify(&ticket).unwrap();
        assert_eq!(verified.caller, council());
        assert_eq!(verified.id, "fedcba98abcdef012345");
        assert!(verified.is_current(now));
        assert!(
            !verified.is_current(now + time::Duration::minutes(10)),
            "at its expiry"
        );
        assert!(
            !verified.is_current(now - time::Duration::seconds(1)),
            "before it was made"
        );
        let other = LocalKeys::ephemeral().unwrap();
        assert_eq!(other.ticket_verifier().verify(&ticket), None);
        let short_id = keys
            .mint_ticket(&council(), "short", now, time::Duration::minutes(10))
            .unwrap();
        assert_eq!(keys.ticket_verifier().verify(&short_id), None);
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let keys = LocalKeys::ephemeral().unwrap();
        let now = OffsetDateTime::now_utc();
        let expired = keys
            .mint(
                &council(),
                now - time::Duration::hours(2),
                time::Duration::hours(1),
            )
            .unwrap();
        assert_eq!(keys.verifier().verify(&expired), None);
        let future = keys
            .mint(
                &council(),
                now + time::Duration::hours(1),
                time::Duration::hours(1),
            )
            .unwrap();
        assert_eq!(keys.verifier().verify(&future), None);
    }
}
