//! The issuer's discovery document (OpenID Connect Discovery 1.0 §4).

use serde::Deserialize;

use crate::fetch::get_json;
use crate::OidcError;

/// What the relying party uses of the discovery document.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    /// `client_secret_basic` unless the issuer offers only
    /// `client_secret_post` (RFC 8414 §2; absent means basic).
    pub secret_in_body: bool,
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    response_types_supported: Vec<String>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// `https`, or `http` on loopback only (tests, a developer's machine).
pub(crate) fn check_url(what: &str, url: &str) -> Result<(), OidcError> {
    let bad = || {
        OidcError::Setting(format!(
            "{what} is not an https URL (http only on loopback)"
        ))
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| bad())?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let ok = parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback);
    if !ok || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(bad());
    }
    Ok(())
}

pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Metadata, OidcError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc: Document = get_json(http, &url, None, "the discovery document").await?;
    // Discovery §4.3: the document's issuer is exactly the one asked for.
    if doc.issuer != issuer {
        return Err(OidcError::Setting(
            "issuer is not the issuer its discovery document names (they must match exactly)"
                .into(),
        ));
    }
    for (what, url) in [
        ("authorization endpoint", &doc.authorization_endpoint),
        ("token endpoint", &doc.token_endpoint),
        ("JWKS URI", &doc.jwks_uri),
    ] {
        check_url(what, url).map_err(|_| {
            OidcError::Protocol(format!("the discovery document's {what} is not https"))
        })?;
    }
    if let Some(userinfo) = &doc.userinfo_endpoint {
        check_url("UserInfo endpoint", userinfo).map_err(|_| {
            OidcError::Protocol("the discovery document's UserInfo endpoint is not https".into())
        })?;
    }
    if !doc.response_types_supported.iter().any(|t| t == "code") {
        return Err(OidcError::Protocol(
            "the issuer does not offer the authorization code flow".into(),
        ));
    }
    // Absent is not a refusal (many issuers that do PKCE do not say so); a
    // list without S256 is.
    if let Some(methods) = &doc.code_challenge_methods_supported {
        if !methods.iter().any(|m| m == "S256") {
            return Err(OidcError::Protocol(
                "the issuer does not offer PKCE with S256".into(),
            ));
        }
    }
    let secret_in_body = match &doc.token_endpoint_auth_methods_supported {
        None => false,
        Some(methods) if methods.iter().any(|m| m == "client_secret_basic") => false,
        Some(methods) if methods.iter().any(|m| m == "client_secret_post") => true,
        Some(_) => {
            return Err(OidcError::Protocol(
                "the issuer's token endpoint takes no client secret".into(),
            ))
        }
    };
    Ok(Metadata {
        issuer: doc.issuer,
        authorization_endpoint: doc.authorization_endpoint,
        token_endpoint: doc.token_endpoint,
        jwks_uri: doc.jwks_uri,
        userinfo_endpoint: doc.userinfo_endpoint,
        secret_in_body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for good in [
            "https://am.nhsint.auth-ptl.cis2.spineservices.nhs.uk/openam/oauth2/realms/root/realms/oidc",
            "http://127.0.0.1:4444",
            "http://localhost:4444/x",
            "http://[::1]:4444",
        ] {
            assert!(check_url("issuer", good).is_ok(), "{good}");
        }
        for bad in [
            "http://idp.example.org",
            "http://192.0.2.1",
            "ftp://localhost",
            "https://user@idp.example.org",
            "https://idp.example.org/#x",
            "not a url",
            "",
        ] {
            assert!(check_url("issuer", bad).is_err(), "{bad}");
        }
    }
}
