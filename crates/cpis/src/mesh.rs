//! MESH in the embedded service (issue 13): the settings `cpis serve` reads,
//! the inbox poll loop, and the operator's `cpis mesh link` / `unlink`.
//!
//! The map of councils to mailboxes lives in the SQLite file and is read at
//! every poll and every dispatch, never cached: `cpis mesh link` run beside
//! a running `cpis serve` takes effect at its next message.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use cpis_domain::ports::{LinkError, MailboxMap, StoreError};
use cpis_domain::{Clock, MailboxId, OdsCode};
use cpis_mesh::exchange::{poll, ExchangeConfig, ExchangeStore, PollReport};
use cpis_mesh::Mailbox;
use tokio::sync::watch;

/// What `cpis serve --mesh-*` configures.
pub struct MeshSettings {
    /// The MESH API's base URL.
    pub url: String,
    /// The CP-IS mailbox.
    pub mailbox: MailboxId,
    pub password: String,
    pub shared_key: String,
    pub poll_every: StdDuration,
    pub exchange: ExchangeConfig,
    /// `Mex-WorkflowID` of ASN files.
    pub asn_workflow: String,
}

impl std::fmt::Debug for MeshSettings {
    /// The password and the shared key are never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshSettings")
            .field("url", &self.url)
            .field("mailbox", &self.mailbox)
            .field("poll_every", &self.poll_every)
            .finish_non_exhaustive()
    }
}

/// Reads a secret from `path` (one line; a trailing newline is dropped). An
/// error names the file, never its content.
pub fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the {what} file {}: {}",
            path.display(),
            e.kind()
        )
    })?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() || secret.contains(['\n', '\r']) {
        return Err(format!(
            "the {what} file {} must hold one non-empty line",
            path.display()
        ));
    }
    Ok(secret.to_owned())
}

/// Polls the CP-IS mailbox every `every` until shutdown, starting at once.
/// A poll under way when shutdown comes is finished (the exchange is
/// crash-safe either way, but a finished poll leaves nothing to redo).
pub async fn run_poller<M, S>(
    mailbox: M,
    store: S,
    config: ExchangeConfig,
    clock: Arc<dyn Clock>,
    every: StdDuration,
    mut shutdown: watch::Receiver<bool>,
) where
    M: Mailbox,
    S: ExchangeStore,
{
    loop {
        let report = poll(&mailbox, &store, &config, clock.as_ref()).await;
        log_poll(mailbox.mailbox_id(), &report);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One line per poll that found anything (counts only), and an error line
/// when it stopped early.
pub fn log_poll(mailbox: &str, report: &PollReport) {
    if report.listed > 0 {
        tracing::info!(
            mailbox,
            listed = report.listed,
            applied = report.applied,
            replayed = report.replayed,
            refused = report.refused,
            reports = report.reports,
            left = report.left,
            deferred = report.deferred,
            gone = report.gone,
            "MESH inbox polled"
        );
    }
    if let Some(error) = &report.stopped {
        tracing::error!(mailbox, %error, "the MESH poll stopped early; it is tried again at the next poll");
    }
}

/// `cpis mesh link`: what to print.
pub async fn link<S: MailboxMap>(
    store: &S,
    council: &OdsCode,
    mailbox: &MailboxId,
) -> Result<String, LinkError> {
    Ok(match store.link_mailbox(council, mailbox).await? {
        None => format!("linked council {council} to MESH mailbox {mailbox}"),
        Some(same) if &same == mailbox => {
            format!("council {council} was linked to MESH mailbox {mailbox} already")
        }
        Some(old) => format!(
            "linked council {council} to MESH mailbox {mailbox} (it was linked to {old}, which is now free)"
        ),
    })
}

/// `cpis mesh unlink`: what to print.
pub async fn unlink<S: MailboxMap>(store: &S, council: &OdsCode) -> Result<String, StoreError> {
    Ok(match store.unlink_mailbox(council).await? {
        Some(old) => format!("unlinked council {council} from MESH mailbox {old}"),
        None => format!("council {council} had no MESH mailbox"),
    })
}
