//! MESH on AWS (issue 13): where the CP-IS mailbox is (`CPIS_MESH_URL`),
//! where its credentials are (`CPIS_MESH_SECRET_ARN`, a Secrets Manager
//! secret), and the workflow ids. The secret's text is read by
//! [`crate::Clients::mesh_client`] and turned into a [`MeshConfig`] here
//! ([`mesh_config`]), so that its shape is checked without AWS.
//!
//! The secret is one JSON object (README, "MESH on AWS"):
//!
//! ```json
//! {"mailbox": "X26ABC2", "password": "…", "shared_key": "…",
//!  "client_certificate_pem": "-----BEGIN CERTIFICATE-----…",
//!  "client_key_pem": "-----BEGIN PRIVATE KEY-----…",
//!  "ca_bundle_pem": "-----BEGIN CERTIFICATE-----…"}
//! ```
//!
//! `mailbox`, `password` and `shared_key` are required; the client
//! certificate and its key (live MESH's mutual TLS) go together or not at
//! all; the CA bundle is optional. An error names the member at fault,
//! never a value.

use std::time::Duration;

use cpis_mesh::exchange::ExchangeConfig;
use cpis_mesh::{ClientIdentity, MeshConfig, Secret};

use super::{ConfigError, Env, FromEnv, Tables};

pub const MESH_URL: &str = "CPIS_MESH_URL";
pub const MESH_SECRET_ARN: &str = "CPIS_MESH_SECRET_ARN";
pub const MESH_WORKFLOW_UPLOAD: &str = "CPIS_MESH_WORKFLOW_UPLOAD";
pub const MESH_WORKFLOW_ACK: &str = "CPIS_MESH_WORKFLOW_ACK";
pub const MESH_WORKFLOW_ASN: &str = "CPIS_MESH_WORKFLOW_ASN";

/// The workflow ids' defaults (issue 13; the real ones are not public), the
/// same as `cpis serve --mesh-workflow-*`.
pub const DEFAULT_UPLOAD_WORKFLOW: &str = "CPIS_LA_UPLOAD";
pub const DEFAULT_ACK_WORKFLOW: &str = "CPIS_LA_UPLOAD_ACK";
pub const DEFAULT_ASN_WORKFLOW: &str = "CPIS_ASN";

/// How long one MESH request may take, by what the function has to finish
/// within: the poller's 5 minutes, the dispatcher's 30 seconds for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshTimeouts {
    pub connect: Duration,
    pub read: Duration,
    pub request: Duration,
}

impl MeshTimeouts {
    /// mesh-poll: a chunk of up to 20 MB per request.
    pub const POLL: Self = Self {
        connect: Duration::from_secs(10),
        read: Duration::from_secs(60),
        request: Duration::from_secs(120),
    };
    /// notification-dispatch: one small ASN file per request.
    pub const DISPATCH: Self = Self {
        connect: Duration::from_secs(5),
        read: Duration::from_secs(10),
        request: Duration::from_secs(10),
    };
}

/// Where the CP-IS mailbox is and where its credentials are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshSettings {
    /// `CPIS_MESH_URL`: the MESH API's base URL, `https://…` (or `http://`
    /// for a local mesh-sandbox).
    pub url: String,
    /// `CPIS_MESH_SECRET_ARN`: the secret holding the mailbox's credentials.
    pub secret_arn: String,
}

impl MeshSettings {
    /// MESH for this function: on when `CPIS_MESH_SECRET_ARN` is set (then
    /// `CPIS_MESH_URL` is required too), off when neither is.
    fn optional<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Option<Self>, ConfigError> {
        match (env.optional(MESH_SECRET_ARN), env.optional(MESH_URL)) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ConfigError::Missing(MESH_SECRET_ARN)),
            (Some(secret_arn), _) => Ok(Some(Self {
                url: mesh_url(env)?,
                secret_arn,
            })),
        }
    }
}

impl FromEnv for MeshSettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        Self::optional(env)?.ok_or(ConfigError::Missing(MESH_SECRET_ARN))
    }
}

fn mesh_url<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<String, ConfigError> {
    let url = env.required(MESH_URL)?.trim().to_owned();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(char::is_whitespace)
        && url.len() <= 2048;
    ok.then_some(url)
        .ok_or(ConfigError::Invalid(MESH_URL, "an http(s) URL"))
}

/// A workflow id: 1 to 100 letters, digits, `_`, `-` or `.` (a MESH header
/// value), or `default` when unset.
fn workflow<L: Fn(&str) -> Option<String>>(
    env: &Env<L>,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let value = env.optional(name).unwrap_or_else(|| default.to_owned());
    let ok = (1..=100).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then_some(value).ok_or(ConfigError::Invalid(
        name,
        "1 to 100 letters, digits, '_', '-' or '.'",
    ))
}

/// mesh-poll: the tables, the CP-IS mailbox, and what the exchange is
/// configured with (the upload and acknowledgement workflows, the
/// visibility rules uploads are stored under).
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub tables: Tables,
    pub mesh: MeshSettings,
    /// `CPIS_MESH_WORKFLOW_UPLOAD` (default `CPIS_LA_UPLOAD`),
    /// `CPIS_MESH_WORKFLOW_ACK` (default `CPIS_LA_UPLOAD_ACK`) and
    /// `CPIS_VISIBILITY_TAIL_DAYS` (as the API functions read it).
    pub exchange: ExchangeConfig,
}

impl FromEnv for PollSettings {
    fn from_env_with<L: Fn(&str) -> Option<String>>(env: &Env<L>) -> Result<Self, ConfigError> {
        let tables = Tables::from_env_with(env)?;
        let mesh = MeshSettings::from_env_with(env)?;
        let upload_workflow = workflow(env, MESH_WORKFLOW_UPLOAD, DEFAULT_UPLOAD_WORKFLOW)?;
        let ack_workflow = workflow(env, MESH_WORKFLOW_ACK, DEFAULT_ACK_WORKFLOW)?;
        if upload_workflow == ack_workflow {
            return Err(ConfigError::Invalid(
                MESH_WORKFLOW_ACK,
                "must differ from the upload workflow (the poller would read its own acknowledgements)",
            ));
        }
        Ok(Self {
            tables,
            mesh,
            exchange: ExchangeConfig {
                upload_workflow,
                ack_workflow,
                policy: super::visibility(env)?,
            },
        })
    }
}

/// The dispatcher's MESH leg, when the deployment has MESH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnFileSettings {
    pub mesh: MeshSettings,
    /// `CPIS_MESH_WORKFLOW_ASN` (default `CPIS_ASN`).
    pub workflow: String,
}

impl AsnFileSettings {
    /// `None` when MESH is off (no `CPIS_MESH_SECRET_ARN`, no `CPIS_MESH_URL`).
    pub(super) fn optional<L: Fn(&str) -> Option<String>>(
        env: &Env<L>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(mesh) = MeshSettings::optional(env)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            mesh,
            workflow: workflow(env, MESH_WORKFLOW_ASN, DEFAULT_ASN_WORKFLOW)?,
        }))
    }
}

/// Whether the MESH secret is unusable: why, naming members, never values.
fn secret_error(why: impl Into<String>) -> ConfigError {
    ConfigError::MeshSecret(why.into())
}

/// The client configuration from the secret's text (the JSON object of the
/// module documentation) and `CPIS_MESH_URL`. Errors name the member that
/// is missing or malformed ([`ConfigError::MeshSecret`]), never its value.
pub fn mesh_config(
    url: &str,
    secret_text: &str,
    timeouts: MeshTimeouts,
) -> Result<MeshConfig, ConfigError> {
    // Parsed as a Value, not into a struct: serde's messages would quote
    // the offending value, and here every value is a secret.
    let value: serde_json::Value = serde_json::from_str(secret_text)
        .map_err(|_| secret_error("the secret is not JSON (a JSON object is expected)"))?;
    let object = value
        .as_object()
        .ok_or_else(|| secret_error("the secret is not a JSON object"))?;
    let member = |name: &'static str| -> Result<Option<&str>, ConfigError> {
        match object.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.as_str())),
            Some(_) => Err(secret_error(format!(
                "the secret's member \"{name}\" must be a non-empty string"
            ))),
        }
    };
    let required = |name: &'static str| {
        member(name)?.ok_or_else(|| secret_error(format!("the secret has no member \"{name}\"")))
    };
    let mailbox = required("mailbox")?.trim().to_ascii_uppercase();
    if cpis_domain::MailboxId::parse(&mailbox).is_err() {
        return Err(secret_error(
            "the secret's member \"mailbox\" is not a MESH mailbox id",
        ));
    }
    let mut config = MeshConfig::new(url, mailbox, required("password")?, required("shared_key")?);
    config.client_identity = match (member("client_certificate_pem")?, member("client_key_pem")?) {
        (None, None) => None,
        (Some(certificate), Some(key)) => Some(ClientIdentity {
            certificate_pem: certificate.as_bytes().to_vec(),
            private_key_pem: Secret::from(key),
        }),
        _ => {
            return Err(secret_error(
                "the secret's \"client_certificate_pem\" and \"client_key_pem\" go together",
            ))
        }
    };
    config.ca_bundle_pem = member("ca_bundle_pem")?.map(|pem| pem.as_bytes().to_vec());
    config.connect_timeout = timeouts.connect;
    config.read_timeout = timeouts.read;
    config.request_timeout = timeouts.request;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_tables;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::from_lookup(move |name: &str| map.get(name).cloned())
    }

    const SECRET: (&str, &str) = (
        "CPIS_MESH_SECRET_ARN",
        "arn:aws:secretsmanager:eu-west-2:1:secret:mesh",
    );
    const URL: (&str, &str) = ("CPIS_MESH_URL", "https://mesh.example.nhs.uk");

    #[test]
    fn the_poller_needs_the_secret_and_the_url_and_takes_the_issues_workflow_defaults() {
        let err = PollSettings::from_env_with(&env(&with_tables(&[URL]))).unwrap_err();
        assert_eq!(err.variable(), "CPIS_MESH_SECRET_ARN");
        let err = PollSettings::from_env_with(&env(&with_tables(&[SECRET]))).unwrap_err();
        assert_eq!(err.variable(), "CPIS_MESH_URL");
        let settings = PollSettings::from_env_with(&env(&with_tables(&[SECRET, URL]))).unwrap();
        assert_eq!(settings.exchange.upload_workflow, "CPIS_LA_UPLOAD");
        assert_eq!(settings.exchange.ack_workflow, "CPIS_LA_UPLOAD_ACK");
        assert_eq!(
            settings.exchange.policy,
            cpis_domain::VisibilityPolicy::default()
        );
        assert_eq!(settings.mesh.url, URL.1);
        assert_eq!(settings.mesh.secret_arn, SECRET.1);
    }

    #[test]
    fn bad_mesh_values_are_refused_by_name() {
        let too_long: &'static str = Box::leak("A".repeat(101).into_boxed_str());
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[SECRET, ("CPIS_MESH_URL", "ftp://mesh")], "CPIS_MESH_URL"),
            (
                &[SECRET, URL, ("CPIS_MESH_WORKFLOW_UPLOAD", "has space")],
                "CPIS_MESH_WORKFLOW_UPLOAD",
            ),
            (
                &[SECRET, URL, ("CPIS_MESH_WORKFLOW_ACK", "CPIS_LA_UPLOAD")],
                "CPIS_MESH_WORKFLOW_ACK",
            ),
            (
                &[SECRET, URL, ("CPIS_MESH_WORKFLOW_ACK", too_long)],
                "CPIS_MESH_WORKFLOW_ACK",
            ),
            (
                &[SECRET, URL, ("CPIS_VISIBILITY_TAIL_DAYS", "-1")],
                "CPIS_VISIBILITY_TAIL_DAYS",
            ),
        ];
        for (vars, variable) in cases {
            let err = PollSettings::from_env_with(&env(&with_tables(vars))).unwrap_err();
            assert_eq!(err.variable(), variable, "{vars:?}");
        }
    }

    #[test]
    fn the_dispatchers_mesh_leg_is_off_without_a_secret_and_needs_both_otherwise() {
        assert_eq!(AsnFileSettings::optional(&env(&[])).unwrap(), None);
        let err = AsnFileSettings::optional(&env(&[URL])).unwrap_err();
        assert_eq!(err.variable(), "CPIS_MESH_SECRET_ARN", "both or neither");
        let err = AsnFileSettings::optional(&env(&[SECRET])).unwrap_err();
        assert_eq!(err.variable(), "CPIS_MESH_URL");
        let on = AsnFileSettings::optional(&env(&[SECRET, URL]))
            .unwrap()
            .unwrap();
        assert_eq!(on.workflow, "CPIS_ASN");
        let own = AsnFileSettings::optional(&env(&[
            SECRET,
            URL,
            ("CPIS_MESH_WORKFLOW_ASN", "SPINE_CPIS_ASN"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(own.workflow, "SPINE_CPIS_ASN");
    }

    const PASSWORD: &str = "pa55-s3cret-value";
    const KEY: &str = "sh4red-s3cret-key";

    fn secret(extra: &str) -> String {
        format!(r#"{{"mailbox":"x26abc2","password":"{PASSWORD}","shared_key":"{KEY}"{extra}}}"#)
    }

    #[test]
    fn a_good_secret_gives_the_client_configuration() {
        let config = mesh_config(URL.1, &secret(""), MeshTimeouts::POLL).unwrap();
        assert_eq!(config.mailbox, "X26ABC2");
        assert_eq!(config.password.expose(), PASSWORD.as_bytes());
        assert_eq!(config.shared_key.expose(), KEY.as_bytes());
        assert!(config.client_identity.is_none() && config.ca_bundle_pem.is_none());
        assert_eq!(config.request_timeout, MeshTimeouts::POLL.request);
        let tls = secret(
            r#","client_certificate_pem":"CERT","client_key_pem":"PRIVATE","ca_bundle_pem":"CA""#,
        );
        let config = mesh_config(URL.1, &tls, MeshTimeouts::DISPATCH).unwrap();
        let identity = config.client_identity.unwrap();
        assert_eq!(identity.certificate_pem, b"CERT");
        assert_eq!(identity.private_key_pem.expose(), b"PRIVATE");
        assert_eq!(config.ca_bundle_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(config.connect_timeout, MeshTimeouts::DISPATCH.connect);
    }

    #[test]
    fn a_bad_secret_names_the_member_and_never_a_value() {
        let cases = [
            (format!("not json {PASSWORD}"), "not JSON"),
            (format!("[\"{PASSWORD}\"]"), "not a JSON object"),
            (
                format!(r#"{{"password":"{PASSWORD}","shared_key":"{KEY}"}}"#),
                "\"mailbox\"",
            ),
            (
                format!(r#"{{"mailbox":"X26ABC2","password":"{PASSWORD}"}}"#),
                "\"shared_key\"",
            ),
            (
                format!(r#"{{"mailbox":"X26ABC2","password":1,"shared_key":"{KEY}"}}"#),
                "\"password\"",
            ),
            (
                format!(
                    r#"{{"mailbox":"{PASSWORD}!","password":"{PASSWORD}","shared_key":"{KEY}"}}"#
                ),
                "\"mailbox\"",
            ),
            (secret(r#","client_certificate_pem":"CERT""#), "go together"),
        ];
        for (text, expected) in cases {
            let err = mesh_config(URL.1, &text, MeshTimeouts::POLL).unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.variable(), "CPIS_MESH_SECRET_ARN", "{shown}");
            assert!(shown.contains(expected), "{shown}");
            assert!(!shown.contains(PASSWORD) && !shown.contains(KEY), "{shown}");
        }
    }
}
