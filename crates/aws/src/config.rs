//! Configuration from the environment, parsed once at a function's init:
//! a missing or malformed variable stops the cold start with its name.

use cpis_domain::audit::Pseudonymiser;
use cpis_domain::VisibilityPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {0} is not valid: {1}")]
    Invalid(&'static str, &'static str),
    #[error("the pseudonymisation key could not be read: {0}")]
    Secret(String),
}

/// Where the pseudonymisation key comes from.
#[derive(Clone)]
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

/// Every setting the functions read. Each function uses the `require_*`
/// accessors for what it needs, so a missing variable fails that function's
/// init and no other.
#[derive(Debug, Clone)]
pub struct Settings {
    pub table_name: String,
    pub audit_table_name: String,
    pub asn_queue_url: Option<String>,
    pub sns_topic_arn_prefix: Option<String>,
    pub sns_kms_key_id: Option<String>,
    pub sns_dlq_arn: Option<String>,
    pub view_url: Option<String>,
    pub visibility: VisibilityPolicy,
    pub pseudonym_key: Option<PseudonymKeySource>,
    /// `CPIS_FEED_STALE_AFTER_HOURS` (1 to 720, default 48): a council past
    /// it without an accepted full snapshot counts in `StaleFeeds`.
    pub feed_stale_after: time::Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `lookup` answers a variable's value; empty counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let tail_days = match get("CPIS_VISIBILITY_TAIL_DAYS") {
            None => VisibilityPolicy::default().tail_days,
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|d| (0..=3650).contains(d))
                .ok_or(ConfigError::Invalid(
                    "CPIS_VISIBILITY_TAIL_DAYS",
                    "a whole number of days from 0 to 3650",
                ))?,
        };
        let feed_stale_after = match get("CPIS_FEED_STALE_AFTER_HOURS") {
            None => cpis_domain::feed::DEFAULT_STALE_AFTER,
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|h| (1..=720).contains(h))
                .map(time::Duration::hours)
                .ok_or(ConfigError::Invalid(
                    "CPIS_FEED_STALE_AFTER_HOURS",
                    "a whole number of hours from 1 to 720",
                ))?,
        };
        let pseudonym_key = match (get("CPIS_PSEUDONYM_KEY"), get("CPIS_PSEUDONYM_SECRET_ARN")) {
            (Some(hex_key), _) => Some(PseudonymKeySource::Inline(decode_key(
                &hex_key,
                "CPIS_PSEUDONYM_KEY",
            )?)),
            (None, Some(arn)) => Some(PseudonymKeySource::Secret(arn)),
            (None, None) => None,
        };
        Ok(Self {
            table_name: required("CPIS_TABLE_NAME")?,
            audit_table_name: required("CPIS_AUDIT_TABLE_NAME")?,
            asn_queue_url: get("CPIS_ASN_QUEUE_URL"),
            sns_topic_arn_prefix: get("CPIS_SNS_TOPIC_ARN_PREFIX"),
            sns_kms_key_id: get("CPIS_SNS_KMS_KEY_ID"),
            sns_dlq_arn: get("CPIS_SNS_DLQ_ARN"),
            view_url: get("CPIS_VIEW_URL"),
            visibility: VisibilityPolicy {
                tail_days,
                ..VisibilityPolicy::default()
            },
            pseudonym_key,
            feed_stale_after,
        })
    }

    pub fn require_queue_url(&self) -> Result<&str, ConfigError> {
        self.asn_queue_url
            .as_deref()
            .ok_or(ConfigError::Missing("CPIS_ASN_QUEUE_URL"))
    }

    pub fn require_topic_arn_prefix(&self) -> Result<&str, ConfigError> {
        self.sns_topic_arn_prefix
            .as_deref()
            .ok_or(ConfigError::Missing("CPIS_SNS_TOPIC_ARN_PREFIX"))
    }

    pub fn require_view_url(&self) -> Result<&str, ConfigError> {
        self.view_url
            .as_deref()
            .ok_or(ConfigError::Missing("CPIS_VIEW_URL"))
    }

    /// The pseudonymiser, reading the secret once if the key lives in Secrets Manager.
    pub async fn pseudonymiser(
        &self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Pseudonymiser, ConfigError> {
        let key = match &self.pseudonym_key {
            None => return Err(ConfigError::Missing("CPIS_PSEUDONYM_SECRET_ARN")),
            Some(PseudonymKeySource::Inline(key)) => key.clone(),
            Some(PseudonymKeySource::Secret(arn)) => {
                let out = aws_sdk_secretsmanager::Client::new(sdk)
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .map_err(|e| {
                        use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
                        ConfigError::Secret(e.code().unwrap_or("no response").to_owned())
                    })?;
                let text = out
                    .secret_string()
                    .ok_or_else(|| ConfigError::Secret("the secret has no string".to_owned()))?;
                decode_key(text, "CPIS_PSEUDONYM_SECRET_ARN")?
            }
        };
        Pseudonymiser::new(&key).map_err(|_| {
            ConfigError::Invalid("CPIS_PSEUDONYM_KEY", "the key must be at least 32 bytes")
        })
    }
}

fn decode_key(text: &str, name: &'static str) -> Result<Vec<u8>, ConfigError> {
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

/// The one `SdkConfig` of a function: region, credentials and (in tests)
/// `AWS_ENDPOINT_URL` all come from the environment.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const TABLES: [(&str, &str); 2] = [
        ("CPIS_TABLE_NAME", "service"),
        ("CPIS_AUDIT_TABLE_NAME", "audit"),
    ];

    #[test]
    fn tables_are_required_and_named_when_missing() {
        let err = Settings::from_lookup(lookup(&[("CPIS_TABLE_NAME", "t")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable CPIS_AUDIT_TABLE_NAME is required"
        );
    }

    #[test]
    fn defaults_and_optional_settings() {
        let settings = Settings::from_lookup(lookup(&TABLES)).unwrap();
        assert_eq!(settings.visibility, VisibilityPolicy::default());
        assert!(settings.require_queue_url().is_err());
        assert!(settings.pseudonym_key.is_none());
    }

    #[test]
    fn bad_values_are_refused() {
        let mut vars = TABLES.to_vec();
        vars.push(("CPIS_VISIBILITY_TAIL_DAYS", "a year"));
        assert!(Settings::from_lookup(lookup(&vars)).is_err());
        let mut vars = TABLES.to_vec();
        vars.push(("CPIS_PSEUDONYM_KEY", "abcd"));
        assert!(Settings::from_lookup(lookup(&vars)).is_err());
    }

    #[test]
    fn an_inline_key_gives_a_pseudonymiser_without_aws() {
        let mut vars = TABLES.to_vec();
        let key = "11".repeat(32);
        vars.push(("CPIS_PSEUDONYM_KEY", &key));
        vars.push(("CPIS_VISIBILITY_TAIL_DAYS", "30"));
        let settings = Settings::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(settings.visibility.tail_days, 30);
        let sdk = aws_config::SdkConfig::builder().build();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(settings.pseudonymiser(&sdk)).is_ok());
    }
}
