//! The adapters a function needs, built once at init from the one
//! `SdkConfig` (region, credentials and, in tests and the rehearsal,
//! `AWS_ENDPOINT_URL` all come from the environment) and the function's
//! typed settings.

use cpis_aws::{ChannelStatus, DynamoStore, SnsChannel, SqsQueue, TopicSync};
use cpis_domain::Pseudonymiser;

use cpis_mesh::MeshClient;

use crate::settings::{
    decode_key, mesh_config, ConfigError, MeshSettings, MeshTimeouts, PseudonymKeySource, Tables,
    TopicSyncSettings,
};

/// The one `SdkConfig` of a function, and the clients built from it.
#[derive(Debug, Clone)]
pub struct Clients {
    sdk: aws_config::SdkConfig,
}

impl Clients {
    /// Loads the `SdkConfig` from the environment, once per cold start.
    pub async fn load() -> Self {
        Self::from_sdk(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await,
        )
    }

    pub fn from_sdk(sdk: aws_config::SdkConfig) -> Self {
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

    #[tokio::test]
    async fn an_inline_key_gives_a_pseudonymiser_without_aws() {
        let clients = Clients::from_sdk(aws_config::SdkConfig::builder().build());
        let source = PseudonymKeySource::Inline(vec![0x11; 32]);
        assert!(clients.pseudonymiser(&source).await.is_ok());
    }
}
