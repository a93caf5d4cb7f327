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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn serve_args(extra: &[&str]) -> Result<OidcArgs, clap::Error> {
        let mut argv = vec!["cpis", "serve"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve(serve) => serve.oidc,
            _ => unreachable!("parsed as serve"),
        })
    }

    #[tokio::test]
    async fn without_an_issuer_only_links_sign_in_and_with_one_all_four_are_needed() {
        let none = serve_args(&[]).unwrap();
        assert!(sign_in(&none).await.unwrap().is_none());
        let half = serve_args(&["--oidc-issuer", "https://idp.example.org"]);
        let error = half.expect_err("refused").to_string();
        assert!(error.contains("--oidc-client-id"), "{error}");
        let orphan = serve_args(&["--oidc-client-id", "x"]);
        assert!(orphan.is_err(), "a client id without an issuer");
    }

    #[tokio::test]
    async fn an_issuer_that_cannot_be_used_stops_the_start_naming_it_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t-value\n").unwrap();
        let secret = secret.to_str().unwrap();
        let base = [
            "--oidc-client-id",
            "cpis-portal",
            "--oidc-client-secret-file",
            secret,
        ];
        let mut argv = vec!["--oidc-issuer", "http://127.0.0.1:9"];
        argv.extend_from_slice(&base);
        argv.extend_from_slice(&["--oidc-redirect-base", "http://127.0.0.1:8080"]);
        let error = sign_in(&serve_args(&argv).unwrap()).await.err().unwrap();
        assert!(
            error.contains("http://127.0.0.1:9") && error.contains("could not be reached"),
            "{error}"
        );
        assert!(!error.contains("s3cr3t"), "{error}");
        let mut argv = vec!["--oidc-issuer", "http://idp.example.org"];
        argv.extend_from_slice(&base);
        argv.extend_from_slice(&["--oidc-redirect-base", "https://cpis.example.org"]);
        let error = sign_in(&serve_args(&argv).unwrap()).await.err().unwrap();
        assert!(error.contains("not an https URL"), "{error}");
        let mut argv = vec![
            "--oidc-issuer",
            "https://idp.example.org",
            "--oidc-claims",
            "x=y",
        ];
        argv.extend_from_slice(&base);
        argv.extend_from_slice(&["--oidc-redirect-base", "https://cpis.example.org"]);
        let error = sign_in(&serve_args(&argv).unwrap()).await.err().unwrap();
        assert!(error.starts_with("--oidc-claims"), "{error}");
    }
}
