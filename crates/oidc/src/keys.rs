//! The issuer's signing keys (its JWKS), kept in memory and read again
//! when a token names a key id not among them: the issuer has rotated its
//! keys. Read again at most once a minute, so tokens with made-up key ids
//! cannot make the service hammer the issuer (the first rotation after
//! start-up is never held back).

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{DecodingKey, Header};
use tokio::sync::Mutex;

use crate::fetch::get_json;
use crate::verify::IdTokenError;
use crate::OidcError;

/// Least time between two reads of the JWKS.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct KeyCache {
    state: Mutex<State>,
}

struct State {
    keys: Vec<Jwk>,
    /// When an unknown key id last made us read the JWKS again.
    refreshed_at: Option<Instant>,
}

/// The keys that may sign: no encryption keys, no symmetric ones.
fn signing_keys(set: JwkSet) -> Vec<Jwk> {
    set.keys
        .into_iter()
        .filter(|k| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter(|k| {
            !matches!(
                k.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            )
        })
        .collect()
}

async fn read(http: &reqwest::Client, jwks_uri: &str) -> Result<Vec<Jwk>, OidcError> {
    let set: JwkSet = get_json(http, jwks_uri, None, "the JWKS").await?;
    Ok(signing_keys(set))
}

/// The key a header names: by `kid`, or the only key when the token names
/// none and the set has one.
fn find<'a>(keys: &'a [Jwk], header: &Header) -> Option<&'a Jwk> {
    match &header.kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid.as_str())),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
}

impl KeyCache {
    pub(crate) async fn load(http: &reqwest::Client, jwks_uri: &str) -> Result<Self, OidcError> {
        let keys = read(http, jwks_uri).await?;
        Ok(Self {
            state: Mutex::new(State {
                keys,
                refreshed_at: None,
            }),
        })
    }

    /// The decoding key for a token's header, the JWKS read again once if
    /// the key is unknown and the last read is a minute old. A key whose
    /// own `alg` differs from the header's is refused.
    pub(crate) async fn key_for(
        &self,
        http: &reqwest::Client,
        jwks_uri: &str,
        header: &Header,
    ) -> Result<DecodingKey, OidcError> {
        let mut state = self.state.lock().await;
        let may_refresh = state
            .refreshed_at
            .is_none_or(|at| at.elapsed() >= REFRESH_AT_MOST_EVERY);
        if find(&state.keys, header).is_none() && may_refresh {
            state.refreshed_at = Some(Instant::now());
            state.keys = read(http, jwks_uri).await?;
        }
        let jwk = find(&state.keys, header).ok_or(IdTokenError::UnknownKey)?;
        if let Some(alg) = jwk.common.key_algorithm {
            let same = format!("{:?}", header.alg).parse::<KeyAlgorithm>().ok() == Some(alg);
            if !same {
                return Err(IdTokenError::Algorithm.into());
            }
        }
        DecodingKey::from_jwk(jwk).map_err(|_| IdTokenError::UnknownKey.into())
    }
}
