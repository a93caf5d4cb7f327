//! The functions' settings, one struct per function kind, each parsed whole
//! from the environment at init: a struct exists only if every variable its
//! function needs is present and well formed, so nothing downstream checks a
//! setting again. A missing or malformed variable is a [`ConfigError`] naming
//! it (never its value). Which function reads which variable is the stack's
//! `environment` per function (`infra/lib/cpis-stack.ts`).

use cpis_domain::VisibilityPolicy;

mod mesh;

pub use mesh::{
    mesh_config, AsnFileSettings, MeshSettings, MeshTimeouts, PollSettings, MESH_SECRET_ARN,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {0} is not valid: {1}")]
    Invalid(&'static str, &'static str),
    #[error("the pseudonymisation key could not be read: {0}")]
    Secret(String),
    /// A Secrets Manager secret other than the pseudonymisation key: the
    /// variable naming it, and the AWS error code (never the secret).
    #[error("the secret named by {0} could not be used: {1}")]
    SecretOf(&'static str, String),
    /// The OpenID Connect issuer could not be used (discovery, keys).
    #[error("the OpenID Connect issuer could not be used: {0}")]
    Issuer(String),
    /// The MESH secret could not be read or used: why, naming its members,
    /// never their values.
    #[error("the MESH credentials could not be used: {0}")]
    MeshSecret(String),
}

impl ConfigError {
    /// The variable at fault, for the start-up error line.
    pub fn variable(&self) -> &'static str {
        match self {
            Self::Missing(name) | Self::Invalid(name, _) => name,
            Self::Secret(_) => PSEUDONYM_SECRET_ARN,
            Self::SecretOf(name, _) => name,
            Self::Issuer(_) => crate::portal::OIDC_ISSUER,
            Self::MeshSecret(_) => MESH_SECRET_ARN,
        }
    }
}

const TABLE_NAME: &str = "CPIS_TABLE_NAME";
const AUDIT_TABLE_NAME: &str = "CPIS_AUDIT_TABLE_NAME";
const ASN_QUEUE_URL: &str = "CPIS_ASN_QUEUE_URL";
const SNS_TOPIC_ARN_PREFIX: &str = "CPIS_SNS_TOPIC_ARN_PREFIX";
const SNS_KMS_KEY_ID: &str = "CPIS_SNS_KMS_KEY_ID";
const SNS_DLQ_ARN: &str = "CPIS_SNS_DLQ_ARN";
const VIEW_URL: &str = "CPIS_VIEW_URL";
const VISIBILITY_TAIL_DAYS: &str = "CPIS_VISIBILITY_TAIL_DAYS";
const PSEUDONYM_KEY: &str = "CPIS_PSEUDONYM_KEY";
const PSEUDONYM_SECRET_ARN: &str = "CPIS_PSEUDONYM_SECRET_ARN";
pub(crate) const FEED_STALE_AFTER_HOURS: &str = "CPIS_FEED_STALE_AFTER_HOURS";

/// The environment, read through `lookup`; an empty value counts as unset.
pub struct Env<L>(L);

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok())
    }
}

impl<L: Fn(&str) -> Option<String>> Env<L> {
    /// An environment answered by `lookup` (tests).
    pub fn from_lookup(lookup: L) -> Self {
        Env(lookup)
    }

    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub(crate) fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// A whole number in `range`, or `default` when unset.
    pub(crate) fn whole_number(
        &self,
        name: &'static str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
        expected: &'static str,
    ) -> Result<i64, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(ConfigError::Invalid(name, expected)),
        }
    }
}

/// Parsed whole from the environment.
pub trait FromEnv: Sized {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError>;

    /// From the process environment.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process())
    }
}

/// Every function's two tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// `CPIS_TABLE_NAME`: plans, uploads, directory, accesses, ASNs.
    pub service: String,
    /// `CPIS_AUDIT_TABLE_NAME`: the append-only audit trail.
    pub audit: String,
}

impl FromEnv for Tables {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        Ok(Self {
            service: env.required(TABLE_NAME)?,
            audit: env.required(AUDIT_TABLE_NAME)?,
        })
    }
}

/// Where the pseudonymisation key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PseudonymKeySource {
    /// `CPIS_PSEUDONYM_KEY`, hex (tests and local runs).
    Inline(Vec<u8>),
    /// `CPIS_PSEUDONYM_SECRET_ARN`: a Secrets Manager secret whose string is the hex key.
    Secret(String),
}

impl std::fmt::Debug for PseudonymKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline(..)"),
            Self::Secret(arn) => write!(f, "Secret({arn})"),
        }
    }
}

impl FromEnv for PseudonymKeySource {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        match (
            env.optional(PSEUDONYM_KEY),
            env.optional(PSEUDONYM_SECRET_ARN),
        ) {
            (Some(hex_key), _) => Ok(Self::Inline(decode_key(&hex_key, PSEUDONYM_KEY)?)),
            (None, Some(arn)) => Ok(Self::Secret(arn)),
            (None, None) => Err(ConfigError::Missing(PSEUDONYM_SECRET_ARN)),
        }
    }
}

/// A pseudonymisation key from its hex text: at least 32 bytes.
pub(crate) fn decode_key(text: &str, name: &'static str) -> Result<Vec<u8>, ConfigError> {
    let key =
        hex::decode(text.trim()).map_err(|_| ConfigError::Invalid(name, "the key must be hex"))?;
    if key.len() < 32 {
        return Err(ConfigError::Invalid(
            name,
            "the key must be at least 32 bytes",
        ));
    }
    Ok(key)
}

/// What the three HTTP functions share: the tables, the visibility policy
/// and the pseudonymisation key (every answered request is audited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    pub tables: Tables,
    /// `CPIS_VISIBILITY_TAIL_DAYS` (0 to 3650, default the policy's).
    pub visibility: VisibilityPolicy,
    /// `CPIS_PSEUDONYM_KEY` or `CPIS_PSEUDONYM_SECRET_ARN`.
    pub pseudonym_key: PseudonymKeySource,
}

impl FromEnv for ApiSettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        let tables = Tables::from_env_with(env)?;
        Ok(Self {
            tables,
            visibility: visibility(env)?,
            pseudonym_key: PseudonymKeySource::from_env_with(env)?,
        })
    }
}

/// `CPIS_VISIBILITY_TAIL_DAYS` (0 to 3650, default the policy's).
fn visibility<L: Fn(&str) -> Option<String>>(
    env: &Env<L>,
) -> Result<VisibilityPolicy, ConfigError> {
    let default = VisibilityPolicy::default();
    let tail_days = env.whole_number(
        VISIBILITY_TAIL_DAYS,
        0..=3650,
        default.tail_days,
        "a whole number of days from 0 to 3650",
    )?;
    Ok(VisibilityPolicy {
        tail_days,
        ..default
    })
}

/// history-query: the API settings and nothing more.
pub type HistorySettings = ApiSettings;

/// plan-upload: the API settings and the topic sync's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSettings {
    pub api: ApiSettings,
    pub topic_sync: TopicSyncSettings,
}

/// How the council topics plan-upload creates are protected; both optional
/// (moto and local runs go without).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicSyncSettings {
    /// `CPIS_SNS_KMS_KEY_ID`: the key new topics are encrypted with.
    pub kms_key_id: Option<String>,
    /// `CPIS_SNS_DLQ_ARN`: where undeliverable notices go.
    pub dlq_arn: Option<String>,
}

impl FromEnv for UploadSettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        Ok(Self {
            api: ApiSettings::from_env_with(env)?,
            topic_sync: TopicSyncSettings {
                kms_key_id: env.optional(SNS_KMS_KEY_ID),
                dlq_arn: env.optional(SNS_DLQ_ARN),
            },
        })
    }
}

/// attendance-check: the API settings and the queue that speeds ASNs to the
/// dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSettings {
    pub api: ApiSettings,
    /// `CPIS_ASN_QUEUE_URL`.
    pub asn_queue_url: String,
}

impl FromEnv for CheckSettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        Ok(Self {
            api: ApiSettings::from_env_with(env)?,
            asn_queue_url: env.required(ASN_QUEUE_URL)?,
        })
    }
}

/// notification-dispatch: the tables, the council topics, the link each
/// notice carries and, when the deployment has MESH, the ASN files' leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchSettings {
    pub tables: Tables,
    /// `CPIS_SNS_TOPIC_ARN_PREFIX`: a council's topic is this plus `cpis-la-<ODS>`.
    pub topic_arn_prefix: String,
    /// `CPIS_VIEW_URL`: where a duty team signs in (the only link in SMS and email).
    pub view_url: String,
    /// `CPIS_MESH_SECRET_ARN`, `CPIS_MESH_URL`, `CPIS_MESH_WORKFLOW_ASN`:
    /// `None` (no secret) when the deployment has no MESH, and then no
    /// council gets ASN files.
    pub asn_files: Option<AsnFileSettings>,
}

impl FromEnv for DispatchSettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        Ok(Self {
            tables: Tables::from_env_with(env)?,
            topic_arn_prefix: env.required(SNS_TOPIC_ARN_PREFIX)?,
            view_url: env.required(VIEW_URL)?,
            asn_files: AsnFileSettings::optional(env)?,
        })
    }
}

/// outbox-relay: the tables, the queue it relays to, and when a council's
/// feed counts as stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    pub tables: Tables,
    /// `CPIS_ASN_QUEUE_URL`.
    pub asn_queue_url: String,
    /// `CPIS_FEED_STALE_AFTER_HOURS` (1 to 720, default 48): a council past
    /// it without an accepted full snapshot counts in `StaleFeeds`.
    pub feed_stale_after: time::Duration,
    /// `CPIS_SNS_TOPIC_ARN_PREFIX`: the councils' topics, whose subscriptions
    /// the sweep reads (`CouncilsWithoutConfirmedChannel`).
    pub topic_arn_prefix: String,
}

impl FromEnv for RelaySettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        let tables = Tables::from_env_with(env)?;
        let asn_queue_url = env.required(ASN_QUEUE_URL)?;
        let hours = env.whole_number(
            FEED_STALE_AFTER_HOURS,
            1..=720,
            cpis_domain::feed::DEFAULT_STALE_AFTER.whole_hours(),
            "a whole number of hours from 1 to 720",
        )?;
        Ok(Self {
            tables,
            asn_queue_url,
            feed_stale_after: time::Duration::hours(hours),
            topic_arn_prefix: env.required(SNS_TOPIC_ARN_PREFIX)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::from_lookup(move |name: &str| map.get(name).cloned())
    }

    use crate::testing::{with_tables as with, SECRET_ARN as SECRET, TABLES};

    #[test]
    fn tables_are_required_and_named_when_missing() {
        let err = Tables::from_env_with(&env(&[("CPIS_TABLE_NAME", "t")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable CPIS_AUDIT_TABLE_NAME is required"
        );
        assert_eq!(err.variable(), "CPIS_AUDIT_TABLE_NAME");
        let err = DispatchSettings::from_env_with(&env(&[])).unwrap_err();
        assert_eq!(err.variable(), "CPIS_TABLE_NAME", "the tables come first");
        assert_eq!(
            err.to_string(),
            "environment variable CPIS_TABLE_NAME is required"
        );
    }

    #[test]
    fn defaults_and_optional_settings() {
        let settings = UploadSettings::from_env_with(&env(&with(&[SECRET]))).unwrap();
        assert_eq!(settings.api.visibility, VisibilityPolicy::default());
        assert_eq!(settings.topic_sync, TopicSyncSettings::default());
        assert_eq!(
            settings.api.pseudonym_key,
            PseudonymKeySource::Secret(SECRET.1.to_owned())
        );
        let relay = RelaySettings::from_env_with(&env(&with(&[
            ("CPIS_ASN_QUEUE_URL", "q"),
            ("CPIS_SNS_TOPIC_ARN_PREFIX", "arn:aws:sns:eu-west-2:1:"),
        ])))
        .unwrap();
        assert_eq!(
            relay.feed_stale_after,
            cpis_domain::feed::DEFAULT_STALE_AFTER
        );
    }

    #[test]
    fn each_kind_requires_what_its_function_needs() {
        let cases: [(&str, Result<(), ConfigError>); 4] = [
            ("api", ApiSettings::from_env_with(&env(&TABLES)).map(drop)),
            (
                "check",
                CheckSettings::from_env_with(&env(&with(&[SECRET]))).map(drop),
            ),
            (
                "dispatch",
                DispatchSettings::from_env_with(&env(&with(&[("CPIS_VIEW_URL", "https://v")])))
                    .map(drop),
            ),
            (
                "relay",
                RelaySettings::from_env_with(&env(&TABLES)).map(drop),
            ),
        ];
        let missing: Vec<_> = cases
            .iter()
            .map(|(kind, r)| (*kind, r.as_ref().err().map(ConfigError::variable)))
            .collect();
        assert_eq!(
            missing,
            [
                ("api", Some("CPIS_PSEUDONYM_SECRET_ARN")),
                ("check", Some("CPIS_ASN_QUEUE_URL")),
                ("dispatch", Some("CPIS_SNS_TOPIC_ARN_PREFIX")),
                ("relay", Some("CPIS_ASN_QUEUE_URL")),
            ]
        );
        // A function reads nothing it does not need: the dispatcher takes no
        // visibility policy, so a bad one does not stop it.
        let vars = with(&[
            ("CPIS_SNS_TOPIC_ARN_PREFIX", "arn:aws:sns:eu-west-2:1:"),
            ("CPIS_VIEW_URL", "https://v"),
            ("CPIS_VISIBILITY_TAIL_DAYS", "a year"),
        ]);
        assert!(DispatchSettings::from_env_with(&env(&vars)).is_ok());
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let err = ApiSettings::from_env_with(&env(&with(&[
            SECRET,
            ("CPIS_VISIBILITY_TAIL_DAYS", "a year"),
        ])))
        .unwrap_err();
        assert_eq!(err.variable(), "CPIS_VISIBILITY_TAIL_DAYS");
        let err =
            ApiSettings::from_env_with(&env(&with(&[("CPIS_PSEUDONYM_KEY", "abcd")]))).unwrap_err();
        assert_eq!(err.variable(), "CPIS_PSEUDONYM_KEY");
        assert!(!err.to_string().contains("abcd"), "never the value: {err}");
        let err = RelaySettings::from_env_with(&env(&with(&[
            ("CPIS_ASN_QUEUE_URL", "q"),
            ("CPIS_FEED_STALE_AFTER_HOURS", "0"),
        ])))
        .unwrap_err();
        assert_eq!(err.variable(), "CPIS_FEED_STALE_AFTER_HOURS");
    }

    #[test]
    fn an_inline_key_wins_and_never_prints() {
        let key = "11".repeat(32);
        let vars = with(&[SECRET, ("CPIS_VISIBILITY_TAIL_DAYS", "30")]);
        let mut vars: Vec<(&str, &str)> = vars;
        vars.push(("CPIS_PSEUDONYM_KEY", &key));
        let settings = ApiSettings::from_env_with(&env(&vars)).unwrap();
        assert_eq!(settings.visibility.tail_days, 30);
        assert_eq!(
            settings.pseudonym_key,
            PseudonymKeySource::Inline(vec![0x11; 32])
        );
        assert!(!format!("{settings:?}").contains(&key[..8]));
    }
}
