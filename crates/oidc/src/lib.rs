//! The portal's OpenID Connect relying party (issue 14): the authorization
//! code flow with PKCE (OpenID Connect Core 1.0 §3.1; RFC 7636, `S256`
//! only) against one configured issuer, such as NHS CIS2 for clinicians or a
//! council's own identity provider for its staff.
//!
//! What is here is the protocol, with no storage: [`Provider::discover`]
//! reads the issuer's discovery document (its `issuer` must be exactly the
//! one configured) and its keys; [`Provider::authorization_url`] is where
//! the browser is sent; [`Provider::exchange`] swaps the code, with its PKCE
//! verifier, for an ID token; [`Provider::verify_id_token`] checks that
//! token ([`IdTokenError`] says what failed). The state, nonce and verifier
//! are the caller's to keep server-side (the portal's session store) and to
//! take once.
//!
//! Nothing here logs a token, a code, a claim's value or the client secret.

mod discovery;
mod fetch;
mod keys;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

pub use discovery::Metadata;
pub use verify::{IdTokenError, ALLOWED_ALGORITHMS, LEEWAY_SECONDS, MAX_TOKEN_AGE_SECONDS};

/// Verified claims: the ID token's, with the UserInfo endpoint's beneath
/// them when asked for.
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// A relying party's registration with its issuer.
#[derive(Clone)]
pub struct Settings {
    /// The issuer's identifier, exactly as its discovery document and its
    /// ID tokens give it (`https://…`; `http://` only on loopback).
    pub issuer: String,
    pub client_id: String,
    /// The client secret (`client_secret_basic`, or `client_secret_post`
    /// where the issuer offers only that). Never logged.
    pub client_secret: String,
    /// The redirect URI registered with the issuer, sent exactly.
    pub redirect_uri: String,
    /// Scopes asked for besides `openid` (e.g. CIS2's `nationalrbacaccess`
    /// and `selectedrole`).
    pub scopes: Vec<String>,
    /// Also read the UserInfo endpoint (CIS2 gives its roles only there).
    pub userinfo: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<secret>")
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .field("userinfo", &self.userinfo)
            .finish()
    }
}

/// Why the issuer could not be used or answered wrongly. The texts name
/// the step and the setting, never a token, code or secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    #[error("the OpenID Connect setting {0}")]
    Setting(String),
    #[error("the identity provider could not be reached ({0})")]
    Unreachable(String),
    #[error("the identity provider answered wrongly ({0})")]
    Protocol(String),
    /// The token endpoint refused the code (RFC 6749 §5.2's `error`, e.g.
    /// `invalid_grant` for a code used twice).
    #[error("the identity provider refused the code ({0})")]
    Refused(String),
    #[error("the ID token was refused: {0}")]
    IdToken(#[from] IdTokenError),
}

/// Seconds each request to the issuer may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The issuer, as discovered, with its keys. Cheap to clone.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    metadata: Metadata,
    http: reqwest::Client,
    keys: keys::KeyCache,
}

impl Provider {
    /// Reads `<issuer>/.well-known/openid-configuration` and the issuer's
    /// JWKS. Fails if the issuer is not `https` (or loopback `http`), if
    /// the document names another issuer, lacks the code flow or `S256`,
    /// or if an endpoint is not `https` either.
    pub async fn discover(settings: Settings) -> Result<Self, OidcError> {
        discovery::check_url("issuer", &settings.issuer)?;
        discovery::check_url("redirect URI", &settings.redirect_uri)?;
        if settings.client_id.trim().is_empty() {
            return Err(OidcError::Setting("client id is empty".into()));
        }
        if settings.client_secret.is_empty() {
            return Err(OidcError::Setting("client secret is empty".into()));
        }
        // reqwest has no provider of its own (workspace Cargo.toml): ring, as
        // the AWS SDK's client; a default already installed stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // A redirect could carry the client secret elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cpis-oidc/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| OidcError::Setting("could not build an HTTP client".into()))?;
        let metadata = discovery::discover(&http, &settings.issuer).await?;
        let keys = keys::KeyCache::load(&http, &metadata.jwks_uri).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                metadata,
                http,
                keys,
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// Where to send the browser: the authorization endpoint with
    /// `response_type=code`, the scopes, the exact redirect URI, `state`,
    /// `nonce` and the PKCE challenge of `verifier` (`S256`).
    pub fn authorization_url(&self, state: &str, nonce: &str, verifier: &str) -> String {
        let settings = &self.inner.settings;
        let scope = std::iter::once("openid")
            .chain(settings.scopes.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", &settings.redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256")
            .finish();
        let endpoint = &self.inner.metadata.authorization_endpoint;
        let joiner = if endpoint.contains('?') { '&' } else { '?' };
        format!("{endpoint}{joiner}{query}")
    }

    /// Swaps `code` for the ID token (and the access token, for UserInfo),
    /// proving the code's request with `verifier`; then verifies the ID
    /// token against `nonce` at `now` and, if configured, reads UserInfo
    /// (whose `sub` must be the token's; the token's claims win).
    pub async fn sign_in(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
        now: time::OffsetDateTime,
    ) -> Result<Claims, OidcError> {
        let tokens = self.exchange(code, verifier).await?;
        let mut claims = self.verify_id_token(&tokens.id_token, nonce, now).await?;
        if self.inner.settings.userinfo {
            let info = self.userinfo(&tokens.access_token).await?;
            if info.get("sub") != claims.get("sub") {
                return Err(OidcError::Protocol(
                    "UserInfo's sub is not the ID token's".into(),
                ));
            }
            for (name, value) in info {
                claims.entry(name).or_insert(value);
            }
        }
        Ok(claims)
    }

    /// The token request (RFC 6749 §4.1.3 with RFC 7636 §4.5).
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<fetch::Tokens, OidcError> {
        fetch::exchange(
            &self.inner.http,
            &self.inner.metadata,
            &self.inner.settings,
            code,
            verifier,
        )
        .await
    }

    /// The ID token checked: signature by one of the issuer's keys (its
    /// JWKS fetched again, at most once a minute, for a key id it does not
    /// know: key rotation), an algorithm of [`ALLOWED_ALGORITHMS`], `iss`
    /// exactly the issuer, `aud` containing the client id (and `azp` it,
    /// when given or when there are several audiences), `exp`, `nbf` and
    /// `iat` with [`LEEWAY_SECONDS`], `iat` no older than
    /// [`MAX_TOKEN_AGE_SECONDS`], and `nonce` exactly the one sent.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: &str,
        now: time::OffsetDateTime,
    ) -> Result<Claims, OidcError> {
        let inner = &self.inner;
        let header = verify::header(token)?;
        let key = inner
            .keys
            .key_for(&inner.http, &inner.metadata.jwks_uri, &header)
            .await?;
        Ok(verify::claims(
            token,
            &header,
            &key,
            &inner.settings,
            nonce,
            now,
        )?)
    }

    async fn userinfo(&self, access_token: &str) -> Result<Claims, OidcError> {
        let endpoint = self
            .inner
            .metadata
            .userinfo_endpoint
            .as_deref()
            .ok_or_else(|| {
                OidcError::Setting("asks for UserInfo, which the issuer lacks".into())
            })?;
        fetch::userinfo(&self.inner.http, endpoint, access_token).await
    }
}

/// The PKCE `S256` challenge of `verifier`: base64url(SHA-256(verifier)),
/// unpadded (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Axum handlers run these: their futures must be Send.
    #[allow(dead_code)]
    fn the_flows_futures_are_send(p: &Provider) {
        fn is_send<T: Send>(_: T) {}
        let now = time::OffsetDateTime::now_utc();
        is_send(p.sign_in("", "", "", now));
        is_send(p.verify_id_token("", "", now));
    }

    #[test]
    fn the_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
