//! The adapters a function needs, built once at init from the one
//! `SdkConfig` (region, credentials and, in tests and the rehearsal,
//! `AWS_ENDPOINT_URL` all come from the environment) and the function's
//! typed settings.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_types::SdkConfig;
use cpis_aws::{ChannelStatus, DynamoStore, SnsChannel, SqsQueue, TopicSync};
use cpis_domain::Pseudonymiser;

use cpis_mesh::MeshClient;

use crate::settings::{
    decode_key, mesh_config, ConfigError, MeshSettings, MeshTimeouts, PseudonymKeySource, Tables,
    TopicSyncSettings,
};

const REGION: &str = "AWS_REGION";
const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// The one `SdkConfig` of a function, and the clients built from it.
#[derive(Debug, Clone)]
pub struct Clients {
    sdk: SdkConfig,
}

impl Clients {
    /// The `SdkConfig` from the variables the Lambda runtime sets for every
    /// function, read once per cold start: `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), the execution role's `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, and
    /// `AWS_ENDPOINT_URL` where tests and the rehearsal set one; with the
    /// one HTTPS client ([`cpis_aws::https_client`]). Retries and timeouts
    /// are the SDK clients' defaults for the latest behaviour version.
    ///
    /// Not `aws_config`'s loader: its chain (profile files, SSO, STS web
    /// identity, ECS, IMDS) reads nothing a Lambda function has and was
    /// about 0.4 MB of each binary (BENCHMARKS.md, 5).
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming the region or credential variable
    /// that is absent or empty (never its value): the cold start fails then,
    /// instead of every AWS call later.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Clients::from_env`] over any source of variables (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| var(name).filter(|value| !value.is_empty());
        let region = var(REGION)
            .or_else(|| var(DEFAULT_REGION))
            .ok_or(ConfigError::Missing(REGION))?;
        let credentials = Credentials::new(
            var(ACCESS_KEY_ID).ok_or(ConfigError::Missing(ACCESS_KEY_ID))?,
            var(SECRET_ACCESS_KEY).ok_or(ConfigError::Missing(SECRET_ACCESS_KEY))?,
            var(SESSION_TOKEN),
            None,
            "environment",
        );
        let mut sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .http_client(cpis_aws::https_client());
        if let Some(endpoint) = var(ENDPOINT_URL) {
            sdk = sdk.endpoint_url(endpoint);
        }
        Ok(Self::from_sdk(sdk.build()))
    }

    pub fn from_sdk(sdk: SdkConfig) -> Self {
        Self { sdk }
    }

    /// The store over both tables.
    pub fn store(&self, tables: &Tables) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            tables.service.clone(),
            tables.audit.clone(),
        )
    }

    /// The hand-off to the dispatcher.
    pub fn queue(&self, queue_url: &str) -> SqsQueue {
        SqsQueue::new(aws_sdk_sqs::Client::new(&self.sdk), queue_url)
    }

    /// The channel that delivers ASNs through each council's topic.
    pub fn channel(&self, topic_arn_prefix: &str) -> SnsChannel {
        SnsChannel::new(aws_sdk_sns::Client::new(&self.sdk), topic_arn_prefix)
    }

    /// Reads whether each council's topic has a confirmed duty-team subscription.
    pub fn channel_status(&self, topic_arn_prefix: &str) -> ChannelStatus {
        ChannelStatus::new(aws_sdk_sns::Client::new(&self.sdk), topic_arn_prefix)
    }

    /// Keeps a council's topic subscriptions in step with its directory entry.
    pub fn topic_sync(&self, settings: &TopicSyncSettings) -> TopicSync {
        TopicSync::new(
            aws_sdk_sns::Client::new(&self.sdk),
            settings.kms_key_id.clone(),
            settings.dlq_arn.clone(),
        )
    }

    /// The CP-IS mailbox's MESH client, from the secret `settings` names
    /// (read once, at init). Every failure (the secret unreadable, not the
    /// expected JSON, PEM that does not parse) is a [`ConfigError::MeshSecret`]
    /// naming `CPIS_MESH_SECRET_ARN` and saying why, never the content.
    pub async fn mesh_client(
        &self,
        settings: &MeshSettings,
        timeouts: MeshTimeouts,
    ) -> Result<MeshClient, ConfigError> {
        let text = self
            .secret_string(&settings.secret_arn)
            .await
            .map_err(ConfigError::MeshSecret)?;
        let config = mesh_config(&settings.url, &text, timeouts)?;
        MeshClient::new(config).map_err(|e| ConfigError::MeshSecret(e.to_string()))
    }

    /// A secret's string; the error is the AWS error code or what is
    /// missing, never the secret.
    async fn secret_string(&self, arn: &str) -> Result<String, String> {
        let out = aws_sdk_secretsmanager::Client::new(&self.sdk)
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
                format!(
                    "the secret could not be read ({})",
                    e.code().unwrap_or("no response")
                )
            })?;
        out.secret_string()
            .map(str::to_owned)
            .ok_or_else(|| "the secret has no string".to_owned())
    }

    /// A secret's string for the setting `variable` names (the portal's
    /// OpenID Connect client secret), read once at init: one line, not
    /// empty. A failure names `variable` and the AWS error code, never the
    /// secret.
    pub async fn secret_setting(
        &self,
        arn: &str,
        variable: &'static str,
    ) -> Result<String, ConfigError> {
        let text = self
            .secret_string(arn)
            .await
            .map_err(|why| ConfigError::SecretOf(variable, why))?;
        Some(text.trim_end_matches(['\n', '\r']).to_owned())
            .filter(|s| !s.is_empty() && !s.contains(['\n', '\r']))
            .ok_or(ConfigError::SecretOf(
                variable,
                "the secret is not one line".to_owned(),
            ))
    }

    /// The pseudonymiser, reading the secret once if the key lives in
    /// Secrets Manager. A failure names the secret's variable and the AWS
    /// error code, never the key.
    pub async fn pseudonymiser(
        &self,
        source: &PseudonymKeySource,
    ) -> Result<Pseudonymiser, ConfigError> {
        let key = match source {
            PseudonymKeySource::Inline(key) => key.clone(),
            PseudonymKeySource::Secret(arn) => {
                let text = self.secret_string(arn).await.map_err(ConfigError::Secret)?;
                decode_key(&text, "CPIS_PSEUDONYM_SECRET_ARN")?
            }
        };
        Pseudonymiser::new(&key).map_err(|_| {
            ConfigError::Invalid("CPIS_PSEUDONYM_KEY", "the key must be at least 32 bytes")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const LAMBDA: [(&str, &str); 4] = [
        ("AWS_REGION", "eu-west-2"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret-example"),
        ("AWS_SESSION_TOKEN", "token-example"),
    ];

    #[tokio::test]
    async fn the_lambda_variables_make_the_config() {
        use aws_sdk_dynamodb::config::ProvideCredentials;
        let clients = Clients::from_vars(vars(&LAMBDA)).expect("a config");
        assert_eq!(clients.sdk.region().map(Region::as_ref), Some("eu-west-2"));
        assert_eq!(clients.sdk.endpoint_url(), None);
        assert!(clients.sdk.http_client().is_some());
        let provider = clients.sdk.credentials_provider().expect("credentials");
        let credentials = provider.provide_credentials().await.expect("static");
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token-example"));
    }

    #[test]
    fn the_default_region_and_an_endpoint_are_read_too() {
        let set = [
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ];
        let clients = Clients::from_vars(vars(&set)).expect("a config");
        assert_eq!(clients.sdk.region().map(Region::as_ref), Some("eu-west-1"));
        assert_eq!(clients.sdk.endpoint_url(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn a_missing_or_empty_region_or_credential_is_named() {
        for (drop, named) in [
            ("AWS_REGION", "AWS_REGION"),
            ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ] {
            for emptied in [false, true] {
                let set: Vec<(&str, &str)> = LAMBDA
                    .iter()
                    .map(|&(n, v)| (n, if n == drop && emptied { "" } else { v }))
                    .filter(|&(n, _)| emptied || n != drop)
                    .collect();
                match Clients::from_vars(vars(&set)) {
                    Err(error) => assert_eq!(error.variable(), named),
                    Ok(_) => panic!("started without {drop} (emptied: {emptied})"),
                }
            }
        }
    }

    #[tokio::test]
    async fn an_inline_key_gives_a_pseudonymiser_without_aws() {
        let clients = Clients::from_sdk(SdkConfig::builder().build());
        let source = PseudonymKeySource::Inline(vec![0x11; 32]);
        assert!(clients.pseudonymiser(&source).await.is_ok());
    }
}
