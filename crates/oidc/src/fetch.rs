//! Requests to the issuer: bounded bodies, no redirects, no secret in an
//! error.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::{Claims, Metadata, OidcError, Settings};

/// Largest answer read from the issuer (a discovery document, a JWKS, a
/// token response): 256 KB is far above any real one.
const MAX_BODY: usize = 256 * 1024;

/// What the token endpoint gave.
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    access_token: String,
    token_type: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

async fn body(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, OidcError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| OidcError::Unreachable(format!("{what}: the answer broke off")))?
    {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(OidcError::Protocol(format!("{what} is too large")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn unreachable(what: &str, error: &reqwest::Error) -> OidcError {
    let why = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "no connection"
    } else {
        "request failed"
    };
    OidcError::Unreachable(format!("{what}: {why}"))
}

/// GET `url` as JSON (with a bearer token for UserInfo).
pub(crate) async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    what: &str,
) -> Result<T, OidcError> {
    let mut request = http.get(url).header(ACCEPT, "application/json");
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await.map_err(|e| unreachable(what, &e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(OidcError::Protocol(format!(
            "{what}: HTTP {}",
            status.as_u16()
        )));
    }
    let bytes = body(response, what).await?;
    serde_json::from_slice(&bytes).map_err(|_| OidcError::Protocol(format!("{what} is not valid")))
}

/// RFC 6749 §2.3.1: the id and secret are form-encoded, then base64'd.
fn basic(settings: &Settings) -> String {
    let encode = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let pair = format!(
        "{}:{}",
        encode(&settings.client_id),
        encode(&settings.client_secret)
    );
    format!("Basic {}", STANDARD.encode(pair))
}

/// The token request's form (a sync fn: the serializer is not Send, and
/// must not live across an await).
fn token_form(metadata: &Metadata, settings: &Settings, code: &str, verifier: &str) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &settings.redirect_uri)
        .append_pair("code_verifier", verifier);
    if metadata.secret_in_body {
        form.append_pair("client_id", &settings.client_id)
            .append_pair("client_secret", &settings.client_secret);
    }
    form.finish()
}

pub(crate) async fn exchange(
    http: &reqwest::Client,
    metadata: &Metadata,
    settings: &Settings,
    code: &str,
    verifier: &str,
) -> Result<Tokens, OidcError> {
    let what = "the token endpoint";
    let mut request = http
        .post(&metadata.token_endpoint)
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    if !metadata.secret_in_body {
        request = request.header(AUTHORIZATION, basic(settings));
    }
    let response = request
        .body(token_form(metadata, settings, code, verifier))
        .send()
        .await
        .map_err(|e| unreachable(what, &e))?;
    let status = response.status();
    let bytes = body(response, what).await?;
    if !status.is_success() {
        // Only the standard error code, and only if it is a plain word.
        let code = serde_json::from_slice::<ErrorResponse>(&bytes)
            .ok()
            .map(|e| e.error)
            .filter(|e| e.len() <= 40 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        return Err(OidcError::Refused(code));
    }
    let tokens: TokenResponse = serde_json::from_slice(&bytes)
        .map_err(|_| OidcError::Protocol(format!("{what}'s answer is not valid")))?;
    if !tokens.token_type.eq_ignore_ascii_case("bearer") {
        return Err(OidcError::Protocol(format!("{what} gave no bearer token")));
    }
    let id_token = tokens
        .id_token
        .ok_or_else(|| OidcError::Protocol(format!("{what} gave no ID token")))?;
    Ok(Tokens {
        id_token,
        access_token: tokens.access_token,
    })
}

pub(crate) async fn userinfo(
    http: &reqwest::Client,
    endpoint: &str,
    access_token: &str,
) -> Result<Claims, OidcError> {
    get_json(http, endpoint, Some(access_token), "the UserInfo endpoint").await
}
