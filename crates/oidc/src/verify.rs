//! ID token validation (OpenID Connect Core 1.0 §3.1.3.7). The signature
//! is jsonwebtoken's; every claim rule is checked here, against the
//! caller's clock.

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

use crate::{Claims, Settings};

/// The only signature algorithms accepted: asymmetric ones. Never `none`
/// (no signature), never an HMAC (`HS256` with the issuer's public key as
/// the "secret" is the classic forgery).
pub const ALLOWED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;
/// An ID token issued longer ago than this (seconds) is refused: the
/// browser's round trip takes minutes at most, so an older one is a replay.
pub const MAX_TOKEN_AGE_SECONDS: i64 = 600;

/// Why an ID token was refused. Says which rule failed, never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("it is not a signed JWT")]
    Malformed,
    #[error("its algorithm is not allowed")]
    Algorithm,
    #[error("it names no key of the issuer's")]
    UnknownKey,
    #[error("its signature is not valid")]
    Signature,
    #[error("its issuer is not the configured one")]
    Issuer,
    #[error("its audience is not this client")]
    Audience,
    #[error("it has expired")]
    Expired,
    #[error("it is not yet valid, or was issued in the future")]
    NotYetValid,
    #[error("it was issued too long ago")]
    TooOld,
    #[error("its nonce is not the one sent")]
    Nonce,
    #[error("it has no subject")]
    Subject,
}

/// The header, if the algorithm is allowed. A token with `"alg":"none"`
/// does not even parse (jsonwebtoken knows no such algorithm).
pub(crate) fn header(token: &str) -> Result<Header, IdTokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    if !ALLOWED_ALGORITHMS.contains(&header.alg) {
        return Err(IdTokenError::Algorithm);
    }
    Ok(header)
}

fn number(claims: &Claims, name: &str) -> Option<i64> {
    claims.get(name).and_then(Value::as_i64)
}

pub(crate) fn claims(
    token: &str,
    header: &Header,
    key: &DecodingKey,
    settings: &Settings,
    nonce: &str,
    now: time::OffsetDateTime,
) -> Result<Claims, IdTokenError> {
    // The signature only (and the key's family matching the algorithm);
    // the claims are checked below, against `now`.
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                IdTokenError::Algorithm
            }
            ErrorKind::InvalidSignature => IdTokenError::Signature,
            _ => IdTokenError::Malformed,
        }
    })?;
    let claims = data.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(settings.issuer.as_str()) {
        return Err(IdTokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&settings.client_id.as_str()) {
        return Err(IdTokenError::Audience);
    }
    // §3.1.3.7 items 4 and 5: with several audiences, or an azp at all,
    // the azp must be this client.
    let azp = claims.get("azp").and_then(Value::as_str);
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(settings.client_id.as_str()) {
        return Err(IdTokenError::Audience);
    }
    let now = now.unix_timestamp();
    let exp = number(&claims, "exp").ok_or(IdTokenError::Malformed)?;
    let iat = number(&claims, "iat").ok_or(IdTokenError::Malformed)?;
    if now >= exp + LEEWAY_SECONDS {
        return Err(IdTokenError::Expired);
    }
    let nbf = number(&claims, "nbf").unwrap_or(iat);
    if iat > now + LEEWAY_SECONDS || nbf > now + LEEWAY_SECONDS {
        return Err(IdTokenError::NotYetValid);
    }
    if now - iat > MAX_TOKEN_AGE_SECONDS + LEEWAY_SECONDS {
        return Err(IdTokenError::TooOld);
    }
    let theirs = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if nonce.is_empty() || !same(theirs, nonce) {
        return Err(IdTokenError::Nonce);
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(claims),
        _ => Err(IdTokenError::Subject),
    }
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
