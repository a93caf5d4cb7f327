//! How [`crate::MeshClient`] reaches one mailbox: where, as whom, with which
//! limits. Secrets are wrapped in [`Secret`], which never prints.

use std::fmt;
use std::time::Duration;

/// A password, shared key or private key. `Debug` prints `Secret(***)`; the
/// bytes are reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The client certificate live MESH requires (mutual TLS; one per
/// environment, issued at onboarding). PEM: the certificate (chain) and its
/// private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    pub certificate_pem: Vec<u8>,
    pub private_key_pem: Secret,
}

/// Largest request body MESH takes over the internet, hence the default
/// chunk size: "100MB over HSCN connections or 20MB over the internet"
/// (MESH API specification, `mesh-api.yaml`, "Outbox workflow").
pub const INTERNET_CHUNK_BYTES: usize = 20_000_000;

/// Everything [`crate::MeshClient::new`] needs.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// e.g. `https://msg.intspineservices.nhs.uk` (integration),
    /// `https://mesh-sync.spineservices.nhs.uk` (production), or a
    /// mesh-sandbox at `http://127.0.0.1:PORT`. No trailing path.
    pub base_url: String,
    /// This mailbox's id; sent upper-case.
    pub mailbox: String,
    pub password: Secret,
    /// The environment-wide shared secret (the HMAC key of the `NHSMESH`
    /// token).
    pub shared_key: Secret,
    /// `None` for mesh-sandbox, which asks for no client certificate.
    pub client_identity: Option<ClientIdentity>,
    /// Extra trusted CA certificates (PEM bundle), added to the system's:
    /// live MESH's server certificates chain to NHS CAs.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Time to open the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for the response or its next bytes.
    pub read_timeout: Duration,
    /// Longest one request (one chunk) may take in all.
    pub request_timeout: Duration,
    /// Largest message [`crate::Mailbox::download`] accepts, in bytes, after
    /// every chunk is joined and gzip undone. Larger is an error
    /// ([`crate::MeshError::Refused`]), found before it is all in memory.
    pub max_message_bytes: u64,
    /// Bodies longer than this (uncompressed bytes) are sent in chunks of
    /// this size. Default [`INTERNET_CHUNK_BYTES`].
    pub chunk_bytes: usize,
    /// gzip every chunk sent (`Content-Encoding: gzip`). Default on.
    pub compress: bool,
    /// `max_results` of an inbox page; `None` leaves MESH's default (500).
    /// MESH (and mesh-sandbox) accept 10 to 5000.
    pub page_size: Option<u32>,
}

impl MeshConfig {
    /// A configuration with the defaults: no client certificate, no extra
    /// CA, 30 s to connect, 120 s of silence, 10 min per request, messages
    /// up to 100 MB, 20 MB chunks, gzip on, MESH's page size.
    pub fn new(
        base_url: impl Into<String>,
        mailbox: impl Into<String>,
        password: impl Into<Secret>,
        shared_key: impl Into<Secret>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            mailbox: mailbox.into(),
            password: password.into(),
            shared_key: shared_key.into(),
            client_identity: None,
            ca_bundle_pem: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(600),
            max_message_bytes: 100_000_000,
            chunk_bytes: INTERNET_CHUNK_BYTES,
            compress: true,
            page_size: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secret() {
        let mut config = MeshConfig::new(
            "http://127.0.0.1:1",
            "X26ABC1",
            "hunter2-password",
            "hunter2-sharedkey",
        );
        config.client_identity = Some(ClientIdentity {
            certificate_pem: b"-----BEGIN CERTIFICATE-----".to_vec(),
            private_key_pem: Secret::from("hunter2-privatekey"),
        });
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("X26ABC1"));
        assert_eq!(Secret::from("abc").expose(), b"abc");
    }
}
