//! The portal function's settings (`functions/portal`): what the check
//! function needs (the tables, the policy, the pseudonymisation key, the ASN
//! queue), the directory's topic sync, the stale-feed banner, and the
//! OpenID Connect sign-in, whose client secret is in Secrets Manager.
//! Parsed whole at init; the secret is read and the issuer discovered once,
//! also at init, so a wrong setting is one JSON line naming it.

use cpis_http::claim_map::ClaimMap;
use cpis_http::portal::OidcSignIn;

use crate::settings::{
    CheckSettings, ConfigError, Env, FromEnv, TopicSyncSettings, FEED_STALE_AFTER_HOURS,
};
use crate::Clients;

pub const OIDC_ISSUER: &str = "CPIS_OIDC_ISSUER";
pub const OIDC_CLIENT_ID: &str = "CPIS_OIDC_CLIENT_ID";
pub const OIDC_CLIENT_SECRET_ARN: &str = "CPIS_OIDC_CLIENT_SECRET_ARN";
pub const OIDC_REDIRECT_BASE: &str = "CPIS_OIDC_REDIRECT_BASE";
pub const OIDC_SCOPES: &str = "CPIS_OIDC_SCOPES";
pub const OIDC_USERINFO: &str = "CPIS_OIDC_USERINFO";
pub const OIDC_CLAIMS: &str = "CPIS_OIDC_CLAIMS";
pub const OIDC_LABEL: &str = "CPIS_OIDC_LABEL";

/// The path the issuer sends the browser back to, under the redirect base.
pub const CALLBACK_PATH: &str = "/portal/sign-in/callback";

/// The issuer and this client's registration with it, the secret still in
/// Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// `CPIS_OIDC_ISSUER`: exactly as the discovery document gives it.
    pub issuer: String,
    /// `CPIS_OIDC_CLIENT_ID`.
    pub client_id: String,
    /// `CPIS_OIDC_CLIENT_SECRET_ARN`: the secret whose string is the client secret.
    pub client_secret_arn: String,
    /// `CPIS_OIDC_REDIRECT_BASE` + [`CALLBACK_PATH`]: the redirect URI.
    pub redirect_uri: String,
    /// `CPIS_OIDC_SCOPES`: space-separated, besides `openid`.
    pub scopes: Vec<String>,
    /// `CPIS_OIDC_USERINFO`: `true` to read UserInfo too.
    pub userinfo: bool,
    /// `CPIS_OIDC_CLAIMS`: the claim mapping (default: the contract's names).
    pub claims: ClaimMap,
    /// `CPIS_OIDC_LABEL`: the sign-in button's text.
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSettings {
    pub check: CheckSettings,
    pub topic_sync: TopicSyncSettings,
    /// `CPIS_FEED_STALE_AFTER_HOURS`: the uploads page's banner.
    pub feed_stale_after: time::Duration,
    pub oidc: OidcSettings,
}

impl FromEnv for OidcSettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        let issuer = env.required(OIDC_ISSUER)?;
        let base = env.required(OIDC_REDIRECT_BASE)?;
        if !base.starts_with("https://") {
            return Err(ConfigError::Invalid(
                OIDC_REDIRECT_BASE,
                "it must be an https URL",
            ));
        }
        let userinfo = match env.optional(OIDC_USERINFO).as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ConfigError::Invalid(OIDC_USERINFO, "true or false")),
        };
        let claims = ClaimMap::parse(&env.optional(OIDC_CLAIMS).unwrap_or_default())
            .map_err(|_| ConfigError::Invalid(OIDC_CLAIMS, "FIELD=SOURCE, comma-separated"))?;
        Ok(Self {
            issuer,
            client_id: env.required(OIDC_CLIENT_ID)?,
            client_secret_arn: env.required(OIDC_CLIENT_SECRET_ARN)?,
            redirect_uri: format!("{}{CALLBACK_PATH}", base.trim_end_matches('/')),
            scopes: env
                .optional(OIDC_SCOPES)
                .unwrap_or_default()
                .split_whitespace()
                .filter(|s| *s != "openid")
                .map(str::to_owned)
                .collect(),
            userinfo,
            claims,
            label: env
                .optional(OIDC_LABEL)
                .unwrap_or_else(|| "Sign in with your organisation's account".to_owned()),
        })
    }
}

impl FromEnv for PortalSettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        let check = CheckSettings::from_env_with(env)?;
        let hours = env.whole_number(
            FEED_STALE_AFTER_HOURS,
            1..=720,
            cpis_domain::feed::DEFAULT_STALE_AFTER.whole_hours(),
            "a whole number of hours from 1 to 720",
        )?;
        Ok(Self {
            check,
            topic_sync: TopicSyncSettings {
                kms_key_id: env.optional("CPIS_SNS_KMS_KEY_ID"),
                dlq_arn: env.optional("CPIS_SNS_DLQ_ARN"),
            },
            feed_stale_after: time::Duration::hours(hours),
            oidc: OidcSettings::from_env_with(env)?,
        })
    }
}

impl OidcSettings {
    /// The sign-in: the client secret read once from Secrets Manager, the
    /// issuer discovered and its keys read. Each failure names its variable.
    pub async fn sign_in(&self, clients: &Clients) -> Result<OidcSignIn, ConfigError> {
        let client_secret = clients
            .secret_setting(&self.client_secret_arn, OIDC_CLIENT_SECRET_ARN)
            .await?;
        let settings = cpis_oidc::Settings {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret,
            redirect_uri: self.redirect_uri.clone(),
            scopes: self.scopes.clone(),
            userinfo: self.userinfo,
        };
        let provider = cpis_oidc::Provider::discover(settings)
            .await
            .map_err(|e| ConfigError::Issuer(e.to_string()))?;
        Ok(OidcSignIn {
            provider,
            claims: self.claims.clone(),
            label: self.label.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{with_tables, SECRET_ARN};
    use std::collections::HashMap;

    const OIDC: [(&str, &str); 4] = [
        (OIDC_ISSUER, "https://idp.example.org"),
        (OIDC_CLIENT_ID, "cpis-portal"),
        (
            OIDC_CLIENT_SECRET_ARN,
            "arn:aws:secretsmanager:eu-west-2:1:secret:oidc",
        ),
        (OIDC_REDIRECT_BASE, "https://cpis.example.org/"),
    ];

    fn parse(extra: &[(&'static str, &'static str)]) -> Result<PortalSettings, ConfigError> {
        let mut vars = with_tables(&[SECRET_ARN, ("CPIS_ASN_QUEUE_URL", "q")]);
        vars.extend_from_slice(extra);
        let map: HashMap<&str, &str> = vars.into_iter().collect();
        PortalSettings::from_env_with(&Env::from_lookup(move |n: &str| {
            map.get(n).map(|v| (*v).to_owned())
        }))
    }

    #[test]
    fn the_portal_needs_its_issuer_client_secret_and_redirect_base() {
        let settings = parse(&OIDC).unwrap();
        assert_eq!(
            settings.oidc.redirect_uri,
            "https://cpis.example.org/portal/sign-in/callback"
        );
        assert_eq!(settings.oidc.claims, ClaimMap::default());
        assert!(!settings.oidc.userinfo && settings.oidc.scopes.is_empty());
        for (missing, _) in OIDC {
            let without: Vec<_> = OIDC
                .iter()
                .copied()
                .filter(|(n, _)| *n != missing)
                .collect();
            assert_eq!(parse(&without).unwrap_err().variable(), missing);
        }
        let plain = [OIDC[0], OIDC[1], OIDC[2], (OIDC_REDIRECT_BASE, "http://x")];
        assert_eq!(parse(&plain).unwrap_err().variable(), OIDC_REDIRECT_BASE);
        let mut bad = OIDC.to_vec();
        bad.push((OIDC_CLAIMS, "colour=value:red"));
        assert_eq!(parse(&bad).unwrap_err().variable(), OIDC_CLAIMS);
        let mut bad = OIDC.to_vec();
        bad.push((OIDC_USERINFO, "yes"));
        assert_eq!(parse(&bad).unwrap_err().variable(), OIDC_USERINFO);
        let mut cis2 = OIDC.to_vec();
        cis2.push((
            OIDC_SCOPES,
            "openid profile nationalrbacaccess selectedrole",
        ));
        cis2.push((OIDC_USERINFO, "true"));
        let settings = parse(&cis2).unwrap();
        assert_eq!(
            settings.oidc.scopes,
            ["profile", "nationalrbacaccess", "selectedrole"]
        );
        assert!(settings.oidc.userinfo);
    }
}
