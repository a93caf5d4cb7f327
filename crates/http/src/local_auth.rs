//! The embedded service's own credentials (feature `local-auth`): an
//! Ed25519 key pair in its data directory mints and verifies its bearer
//! tokens and the portal's one-time sign-in tickets. The Lambda functions
//! trust the API Gateway authorizer instead and build without it: its JWT
//! and curve crates were about 0.7 MB of each binary (BENCHMARKS.md, 5).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::{CallerClaims, SignInTicket, LOCAL_AUDIENCE, LOCAL_ISSUER, SIGN_IN_AUDIENCE};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

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
            verified: Arc::default(),
        }
    }
}

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
    /// Tokens whose signature, algorithm, issuer and audience this key
    /// already accepted, by their exact text (shared by every clone).
    verified: Arc<Mutex<HashMap<Box<str>, Verified>>>,
}

/// What a token already verified still needs checking against the clock:
/// its lifetime. Everything else is fixed by its bytes and the key.
struct Verified {
    caller: CallerClaims,
    not_before: u64,
    expires: u64,
}

impl Verified {
    /// `jsonwebtoken`'s own time rules, with the same leeway.
    fn current_at(&self, now: u64) -> Result<(), Lapsed> {
        if self.expires < now.saturating_sub(LEEWAY_SECONDS) {
            return Err(Lapsed::Expired);
        }
        if self.not_before > now.saturating_add(LEEWAY_SECONDS) {
            return Err(Lapsed::NotYet);
        }
        Ok(())
    }
}

enum Lapsed {
    Expired,
    NotYet,
}

/// Longest token accepted: anything longer is refused before parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Tokens remembered as verified; when full, the memory starts again empty
/// (at most this many tokens of at most [`MAX_TOKEN_BYTES`] each).
const VERIFIED_TOKENS: usize = 1024;

impl LocalVerifier {
    /// Verifies signature, algorithm, issuer, audience, `exp` and `nbf`.
    /// The reason for a failure is deliberately not returned to callers.
    ///
    /// The Ed25519 check was a fifth of the embedded service's CPU per
    /// request (BENCHMARKS.md, 3), and callers present the same token for
    /// its whole life: a token this key has verified once is remembered by
    /// its exact text, and later presentations check only its lifetime, by
    /// the same rule and leeway. Only accepted tokens are remembered.
    pub fn verify(&self, token: &str) -> Option<CallerClaims> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`Self::verify`] with the clock of a remembered token's lifetime
    /// check given (a token not yet remembered is checked by `jsonwebtoken`
    /// against the system clock).
    fn verify_at(&self, token: &str, now: u64) -> Option<CallerClaims> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        {
            let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(known) = verified.get(token) {
                return match known.current_at(now) {
                    Ok(()) => Some(known.caller.clone()),
                    Err(Lapsed::NotYet) => None,
                    Err(Lapsed::Expired) => {
                        verified.remove(token);
                        None
                    }
                };
            }
        }
        let claims = jsonwebtoken::decode::<TokenClaims>(token, &self.key, &self.validation)
            .ok()?
            .claims;
        if let (Ok(not_before), Ok(expires)) =
            (u64::try_from(claims.nbf), u64::try_from(claims.exp))
        {
            let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
            verified.insert(
                token.into(),
                Verified {
                    caller: claims.caller.clone(),
                    not_before,
                    expires,
                },
            );
        }
        Some(claims.caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::council;

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

    #[test]
    fn a_remembered_token_is_still_refused_outside_its_lifetime() {
        let keys = LocalKeys::ephemeral().unwrap();
        let now = OffsetDateTime::now_utc();
        let token = keys
            .mint(&council(), now, time::Duration::hours(1))
            .unwrap();
        let verifier = keys.verifier();
        assert_eq!(verifier.verify(&token), Some(council()));
        let clone = verifier.clone();
        let minted = u64::try_from(now.unix_timestamp()).unwrap();
        let expires = minted + 3600;
        assert_eq!(
            clone.verify_at(&token, expires + LEEWAY_SECONDS),
            Some(council()),
            "within the leeway, as jsonwebtoken"
        );
        assert_eq!(
            clone.verify_at(&token, minted - LEEWAY_SECONDS - 1),
            None,
            "before its nbf"
        );
        assert_eq!(
            clone.verify_at(&token, expires + LEEWAY_SECONDS + 1),
            None,
            "after its exp"
        );
        assert_eq!(verifier.verify(&token), Some(council()), "verified again");
        let mut tampered = token.clone();
        tampered.pop();
        assert_eq!(verifier.verify(&tampered), None, "another text");
        assert_eq!(
            LocalKeys::ephemeral().unwrap().verifier().verify(&token),
            None,
            "another key remembers nothing"
        );
    }
}
