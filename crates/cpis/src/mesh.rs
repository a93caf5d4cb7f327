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
use cpis_mesh::{ClientIdentity, Mailbox, MeshClient, MeshConfig, MeshError, Secret};
use time::OffsetDateTime;
use tokio::sync::watch;

/// How often the mailbox's handshake is made: "Validate mailbox
/// (handshake), once per 24 h" (MESH API; `council-interface.md` §9).
pub const HANDSHAKE_EVERY: time::Duration = time::Duration::hours(24);

/// What `cpis serve --mesh-*` configures.
pub struct MeshSettings {
    /// The MESH API's base URL.
    pub url: String,
    /// The CP-IS mailbox.
    pub mailbox: MailboxId,
    pub password: String,
    pub shared_key: String,
    /// Live MESH's mutual TLS: the client certificate and key, and extra
    /// CAs for the server (each `None` for mesh-sandbox).
    pub tls: MeshTls,
    pub poll_every: StdDuration,
    pub exchange: ExchangeConfig,
    /// `Mex-WorkflowID` of ASN files.
    pub asn_workflow: String,
}

/// The PEM files of `--mesh-client-cert-file`, `--mesh-client-key-file`
/// and `--mesh-ca-file`, read, with the paths they came from (for errors).
#[derive(Default)]
pub struct MeshTls {
    pub identity: Option<ClientIdentity>,
    pub ca_bundle: Option<Vec<u8>>,
    /// `--option path` of each file given, for the start-up error.
    pub sources: Vec<String>,
}

impl MeshTls {
    /// Reads the files given: both or neither of `cert` and `key`. An error
    /// names the file, never its content.
    pub fn read(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Self, String> {
        let mut tls = Self::default();
        match (cert, key) {
            (Some(cert), Some(key)) => {
                tls.identity = Some(ClientIdentity {
                    certificate_pem: read_pem(cert, "MESH client certificate")?,
                    private_key_pem: Secret::new(read_pem(key, "MESH client key")?),
                });
                tls.sources
                    .push(format!("--mesh-client-cert-file {}", cert.display()));
                tls.sources
                    .push(format!("--mesh-client-key-file {}", key.display()));
            }
            (None, None) => {}
            _ => {
                return Err(
                    "--mesh-client-cert-file and --mesh-client-key-file go together".to_owned(),
                )
            }
        }
        if let Some(ca) = ca {
            tls.ca_bundle = Some(read_pem(ca, "MESH CA")?);
            tls.sources.push(format!("--mesh-ca-file {}", ca.display()));
        }
        Ok(tls)
    }
}

impl MeshSettings {
    /// The MESH client (not yet connected). An error says what is wrong
    /// (for PEM that does not parse, with the files it came from); never a
    /// secret.
    pub fn client(&self) -> Result<MeshClient, String> {
        let mut config = MeshConfig::new(
            self.url.clone(),
            self.mailbox.as_str(),
            self.password.clone(),
            self.shared_key.clone(),
        );
        config.client_identity = self.tls.identity.clone();
        config.ca_bundle_pem = self.tls.ca_bundle.clone();
        MeshClient::new(config).map_err(|e| {
            if self.tls.sources.is_empty() {
                format!("MESH: {e}")
            } else {
                format!("MESH: {e} (from {})", self.tls.sources.join(", "))
            }
        })
    }
}

impl std::fmt::Debug for MeshSettings {
    /// The password, the shared key and the private key are never shown.
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

/// Reads a PEM file whole. An error names the file, never its content; a
/// file with no PEM block at all is refused here (what is inside a block
/// is checked when the client is built).
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the {what} file {}: {}",
            path.display(),
            e.kind()
        )
    })?;
    if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!(
            "the {what} file {} holds no PEM block (-----BEGIN ...)",
            path.display()
        ));
    }
    Ok(pem)
}

/// The mailbox's handshake, made at start and then once a day by
/// [`run_poller`]. [`MeshClient`]'s is the real one; tests count theirs.
pub trait Handshake: Send + Sync {
    fn handshake(&self) -> impl std::future::Future<Output = Result<(), MeshError>> + Send;
}

impl Handshake for MeshClient {
    async fn handshake(&self) -> Result<(), MeshError> {
        MeshClient::handshake(self).await
    }
}

/// The daily handshake: `last` is when the last successful one was made.
pub struct DailyHandshake<H> {
    pub handshake: H,
    pub last: OffsetDateTime,
}

impl<H: Handshake> DailyHandshake<H> {
    /// Makes the handshake when [`HANDSHAKE_EVERY`] has passed since
    /// `last`, and moves `last` to `now` when it succeeds. A failure is
    /// logged at error level and tried again at the next call (the next
    /// poll): live MESH may close a mailbox that stops validating.
    pub async fn make_if_due(&mut self, mailbox: &str, now: OffsetDateTime) {
        if now - self.last < HANDSHAKE_EVERY {
            return;
        }
        match self.handshake.handshake().await {
            Ok(()) => {
                self.last = now;
                tracing::info!(mailbox, "MESH handshake made (once a day)");
            }
            Err(error) => tracing::error!(
                mailbox,
                %error,
                "the daily MESH handshake failed; it is tried again at the next poll"
            ),
        }
    }
}

/// Polls the CP-IS mailbox every `every` until shutdown, starting at once,
/// and repeats the mailbox's handshake once a day before a poll
/// (`cpis serve` makes the first before it starts). A poll under way when
/// shutdown comes is finished (the exchange is crash-safe either way, but a
/// finished poll leaves nothing to redo).
pub async fn run_poller<M, H, S>(
    mailbox: M,
    mut handshake: DailyHandshake<H>,
    store: S,
    config: ExchangeConfig,
    clock: Arc<dyn Clock>,
    every: StdDuration,
    mut shutdown: watch::Receiver<bool>,
) where
    M: Mailbox,
    H: Handshake,
    S: ExchangeStore,
{
    loop {
        handshake
            .make_if_due(mailbox.mailbox_id(), clock.now())
            .await;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use time::macros::datetime;

    use super::*;

    /// Counts handshakes; fails while `failing` is set.
    #[derive(Default)]
    struct Counted {
        made: AtomicUsize,
        failing: std::sync::atomic::AtomicBool,
    }

    impl Handshake for &Counted {
        async fn handshake(&self) -> Result<(), MeshError> {
            self.made.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                Err(MeshError::Transient("handshake: connection refused".into()))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn the_handshake_is_repeated_once_a_day_and_retried_at_each_poll_until_it_succeeds() {
        let counted = Counted::default();
        let start = datetime!(2026-01-10 09:00:00 UTC);
        let mut daily = DailyHandshake {
            handshake: &counted,
            last: start,
        };
        let made = || counted.made.load(Ordering::SeqCst);
        // Polls within the day make none, up to the last nanosecond.
        for offset in [
            time::Duration::ZERO,
            time::Duration::minutes(5),
            HANDSHAKE_EVERY - time::Duration::nanoseconds(1),
        ] {
            daily.make_if_due("X26ABC2", start + offset).await;
        }
        assert_eq!(made(), 0);
        // A day after the last: one, and the day starts again from it.
        let first = start + HANDSHAKE_EVERY;
        daily.make_if_due("X26ABC2", first).await;
        assert_eq!((made(), daily.last), (1, first));
        daily
            .make_if_due("X26ABC2", first + time::Duration::hours(23))
            .await;
        assert_eq!(made(), 1);
        // A failing one is tried at every poll until it succeeds.
        counted.failing.store(true, Ordering::SeqCst);
        let due = first + HANDSHAKE_EVERY + time::Duration::minutes(3);
        daily.make_if_due("X26ABC2", due).await;
        daily
            .make_if_due("X26ABC2", due + time::Duration::minutes(5))
            .await;
        assert_eq!((made(), daily.last), (3, first));
        counted.failing.store(false, Ordering::SeqCst);
        let later = due + time::Duration::minutes(10);
        daily.make_if_due("X26ABC2", later).await;
        assert_eq!((made(), daily.last), (4, later));
        daily
            .make_if_due("X26ABC2", later + time::Duration::minutes(5))
            .await;
        assert_eq!(made(), 4);
    }

    #[test]
    fn pem_files_are_read_whole_and_errors_name_the_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("client.pem");
        let key = dir.path().join("client.key");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(&key, "not-a-pem-s3cr3t").unwrap();
        let missing = dir.path().join("missing.pem");
        let err = MeshTls::read(Some(&cert), Some(&missing), None)
            .err()
            .unwrap();
        assert!(
            err.contains("MESH client key") && err.contains("missing.pem"),
            "{err}"
        );
        let err = MeshTls::read(Some(&cert), Some(&key), None).err().unwrap();
        assert!(
            err.contains("no PEM block") && err.contains("client.key"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = MeshTls::read(Some(&cert), None, None).err().unwrap();
        assert!(err.contains("go together"), "{err}");
        let tls = MeshTls::read(None, None, Some(&cert)).unwrap();
        assert!(tls.identity.is_none());
        assert_eq!(
            tls.ca_bundle.as_deref(),
            Some(std::fs::read(&cert).unwrap().as_slice())
        );
        assert_eq!(tls.sources, [format!("--mesh-ca-file {}", cert.display())]);
        assert!(MeshTls::read(None, None, None).unwrap().sources.is_empty());
    }
}
