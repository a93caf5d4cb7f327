//! The councils' CP-IS files over MESH (NHS England's Message Exchange for
//! Social Care and Health).
//!
//! - [`Mailbox`]: the port. One MESH mailbox as the exchange sees it; the
//!   real client and the test fakes implement it.
//! - [`exchange`]: the CP-IS mailbox's inbox turned into the domain's
//!   uploads, acknowledged exactly once ([`exchange::poll`]).
//! - [`MeshAsnFiles`]: the ASN leg, each ASN as a file in its council's
//!   mailbox exactly once (the domain's `AsnFileChannel` port).
//! - [`fake`] (feature `test-support`): an in-memory MESH with faults.
//! - [`MeshClient`]: the port over the MESH API (`reqwest`, rustls), with
//!   [`MeshConfig`] (where, as whom, limits; secrets as [`Secret`]).
//!
//! The calls, headers and limits are those of the MESH API specification
//! (`NHSDigital/mesh-api-specification`, `mesh-api.yaml`), summarised in
//! `shared/domain/council-interface.md` §9.

use std::future::Future;

mod asn;
pub mod exchange;
#[cfg(feature = "test-support")]
pub mod fake;
#[cfg(feature = "test-support")]
pub mod testing;

pub use asn::MeshAsnFiles;
mod auth;
mod client;
mod config;
mod wire;

pub use auth::fresh_token as nhsmesh_authorization;
pub use client::MeshClient;
pub use config::{ClientIdentity, MeshConfig, Secret, INTERNET_CHUNK_BYTES};

/// Makes rustls's `ring` provider the process default, once (a default
/// already installed stays). reqwest is built without a provider of its own
/// so that ring, which the AWS SDK's client links, is the only crypto library
/// in a function (workspace `Cargo.toml`); a reqwest client built before a
/// default exists panics, so every one is built after this.
pub fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A MESH message's kind (`Mex-MessageType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A file another mailbox sent.
    Data,
    /// MESH's own report on a message this mailbox sent (for example a
    /// non-delivery: the recipient did not collect it within 5 days).
    Report,
}

/// What MESH says about a message in the inbox (its `Mex-*` headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// `Mex-MessageID`: opaque.
    pub id: String,
    pub message_type: MessageType,
    /// `Mex-From`: the sending mailbox (for a REPORT, MESH's own).
    pub from: String,
    /// `Mex-WorkflowID`.
    pub workflow_id: Option<String>,
    /// `Mex-FileName`.
    pub file_name: Option<String>,
    /// `Mex-LocalID`: for a REPORT, the local id of the message it reports on.
    pub local_id: Option<String>,
    /// `Mex-LinkedMsgID`: for a REPORT, the message it reports on.
    pub linked_message_id: Option<String>,
    /// `Mex-StatusCode` / `Mex-StatusDescription` of a REPORT.
    pub status_code: Option<String>,
    pub status_description: Option<String>,
}

/// One downloaded message: every chunk joined, gzip undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub meta: MessageMeta,
    pub body: Vec<u8>,
}

/// A file to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// `Mex-To`: the recipient mailbox.
    pub to: &'a str,
    /// `Mex-WorkflowID`.
    pub workflow_id: &'a str,
    /// `Mex-FileName`.
    pub file_name: &'a str,
    /// `Mex-LocalID`: our id for the message, unique per sending mailbox;
    /// what [`Mailbox::track`] finds it by after a crash.
    pub local_id: &'a str,
    /// `Mex-Subject`.
    pub subject: Option<&'a str>,
    /// The file (`application/xml`).
    pub body: &'a [u8],
}

/// What tracking knows of a message this mailbox sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub message_id: String,
    /// MESH's status, e.g. `Accepted`, `Acknowledged`, `Undeliverable`.
    pub status: String,
}

/// One page of the inbox: message ids, oldest first as MESH lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxPage {
    pub ids: Vec<String>,
    /// Give it back to read the next page; `None` on the last.
    pub continue_from: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Worth retrying later (network, 5xx, 429).
    #[error("MESH is unavailable: {0}")]
    Transient(String),
    /// Will not work as configured (401/403, 417 unknown recipient, a
    /// response MESH should never give). Never carries a message's content.
    #[error("MESH refused the request: {0}")]
    Refused(String),
}

/// One MESH mailbox. Every call authenticates afresh (the `NHSMESH`
/// token is single use).
pub trait Mailbox: Send + Sync {
    /// This mailbox's id (upper case).
    fn mailbox_id(&self) -> &str;

    /// One page of the inbox.
    fn inbox(
        &self,
        continue_from: Option<&str>,
    ) -> impl Future<Output = Result<InboxPage, MeshError>> + Send;

    /// The whole message (every chunk, decompressed); `None` when MESH no
    /// longer has it (404, 410).
    fn download(&self, id: &str)
        -> impl Future<Output = Result<Option<Message>, MeshError>> + Send;

    /// Removes the message from the inbox. Acknowledging one already gone
    /// is not an error.
    fn acknowledge(&self, id: &str) -> impl Future<Output = Result<(), MeshError>> + Send;

    /// Sends a file; returns MESH's message id.
    fn send(&self, file: &Outgoing<'_>) -> impl Future<Output = Result<String, MeshError>> + Send;

    /// The message this mailbox sent with `local_id`, if MESH has it.
    fn track(
        &self,
        local_id: &str,
    ) -> impl Future<Output = Result<Option<Tracked>, MeshError>> + Send;
}
