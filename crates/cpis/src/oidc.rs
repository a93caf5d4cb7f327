//! `cpis serve --oidc-*`: the portal's production sign-in, built once at
//! start (the issuer discovered, its keys read, the mapping parsed), so a
//! wrong setting stops the service before it listens.

use cpis_http::claim_map::ClaimMap;
use cpis_http::portal::OidcSignIn;
use cpis_oidc::{Provider, Settings};

use crate::cli::OidcArgs;
use cpis::mesh::read_secret;

/// The path the issuer sends the browser back to, under the redirect base.
pub const CALLBACK_PATH: &str = "/portal/sign-in/callback";

/// The OpenID Connect sign-in, or `None` without `--oidc-issuer`.
pub async fn sign_in(args: &OidcArgs) -> Result<Option<OidcSignIn>, String> {
    let Some(issuer) = &args.oidc_issuer else {
        return Ok(None);
    };
    // clap's `requires_all` guarantees these with the issuer.
    let missing = |what: &str| format!("--oidc-issuer needs {what}");
    let client_id = args
        .oidc_client_id
        .clone()
        .ok_or_else(|| missing("--oidc-client-id"))?;
    let secret_file = args
        .oidc_client_secret_file
        .as_deref()
        .ok_or_else(|| missing("--oidc-client-secret-file"))?;
    let base = args
        .oidc_redirect_base
        .as_deref()
        .ok_or_else(|| missing("--oidc-redirect-base"))?;
    let client_secret = read_secret(secret_file, "OpenID Connect client secret")?;
    let claims = ClaimMap::parse(&args.oidc_claims).map_err(|e| format!("--oidc-claims: {e}"))?;
    let settings = Settings {
        issuer: issuer.clone(),
        client_id,
        client_secret,
        redirect_uri: format!("{}{CALLBACK_PATH}", base.trim_end_matches('/')),
        scopes: args
            .oidc_scopes
            .split_whitespace()
            .filter(|s| *s != "openid")
            .map(str::to_owned)
            .collect(),
        userinfo: args.oidc_userinfo,
    };
    let provider = Provider::discover(settings)
        .await
        .map_err(|e| format!("OpenID Connect issuer {issuer}: {e}"))?;
    tracing::info!(
        issuer = %issuer,
        redirect_uri = %provider.settings().redirect_uri,
        "portal sign-in: OpenID Connect on"
    );
    Ok(Some(OidcSignIn {
        provider,
        claims,
        label: args.oidc_label.clone(),
    }))
}
