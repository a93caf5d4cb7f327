//! Local delivery for the embedded service: SMS and email are written to
//! `<data>/outbox/messages.jsonl` instead of leaving the machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cpis_domain::ports::{AsnQueue, DeliveryError, NotificationChannel, QueueError};
use cpis_domain::{Authority, NoticeText};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, Notify};

/// One line of the local outbox file.
#[derive(Debug, Serialize)]
struct OutboxLine<'a> {
    channel: &'a str,
    recipient: &'a str,
    reference: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    text: &'a str,
}

/// Writes each message as one JSON line; a council's messages for one ASN
/// are appended and flushed to disk in a single write.
#[derive(Debug, Clone)]
pub struct FileChannel {
    path: Arc<PathBuf>,
    // Serialises appends so lines of two ASNs never interleave.
    lock: Arc<Mutex<()>>,
}

impl FileChannel {
    /// Creates `outbox_dir` if needed, owner-only (0700); the messages file
    /// is created 0600 whatever the umask: it names duty teams' addresses.
    pub fn new(outbox_dir: &Path) -> std::io::Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(outbox_dir)?;
        Ok(Self {
            path: Arc::new(outbox_dir.join("messages.jsonl")),
            lock: Arc::new(Mutex::new(())),
        })
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl NotificationChannel for FileChannel {
    async fn deliver(
        &self,
        authority: &Authority,
        notice: &NoticeText,
    ) -> Result<(), DeliveryError> {
        let mut lines = String::new();
        let emails = authority.notify_emails.iter().map(|to| OutboxLine {
            channel: "email",
            recipient: to,
            reference: &notice.reference,
            subject: Some(&notice.email_subject),
            text: &notice.email_body,
        });
        let sms = authority.notify_sms.iter().map(|to| OutboxLine {
            channel: "sms",
            recipient: to,
            reference: &notice.reference,
            subject: None,
            text: &notice.sms,
        });
        for line in emails.chain(sms) {
            let json = serde_json::to_string(&line)
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            lines.push_str(&json);
            lines.push('\n');
        }
        let _guard = self.lock.lock().await;
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(self.path.as_path()).await.map_err(|e| {
            DeliveryError::Transient(format!("cannot open the local outbox: {}", e.kind()))
        })?;
        file.write_all(lines.as_bytes()).await.map_err(|e| {
            DeliveryError::Transient(format!("cannot write the local outbox: {}", e.kind()))
        })?;
        file.sync_data().await.map_err(|e| {
            DeliveryError::Transient(format!("cannot flush the local outbox: {}", e.kind()))
        })?;
        tracing::info!(
            reference = %notice.reference,
            council = %authority.ods_code,
            emails = authority.notify_emails.len(),
            sms = authority.notify_sms.len(),
            "notification delivered to the local outbox"
        );
        Ok(())
    }
}

/// The embedded "queue": the ASNs are already in the durable outbox, so the
/// hand-off only wakes the in-process dispatcher.
#[derive(Debug, Clone, Default)]
pub struct WakeDispatcher {
    notify: Arc<Notify>,
}

impl WakeDispatcher {
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

impl AsnQueue for WakeDispatcher {
    async fn enqueue(&self, _ids: &[String]) -> Result<(), QueueError> {
        self.notify.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::OdsCode;

    #[tokio::test]
    async fn writes_one_line_per_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let channel = FileChannel::new(&dir.path().join("outbox")).unwrap();
        let authority = Authority {
            ods_code: OdsCode::parse("E09000033").unwrap(),
            name: "Example".into(),
            office_hours_phone: "020 7946 0000".into(),
            emergency_duty_phone: "020 7946 0999".into(),
            notify_emails: vec!["a@example.gov.uk".into(), "b@example.gov.uk".into()],
            notify_sms: vec!["+447700900123".into()],
        };
        let notice = NoticeText {
            reference: "ref-1".into(),
            sms: "sms text".into(),
            email_subject: "subject".into(),
            email_body: "body".into(),
        };
        channel.deliver(&authority, &notice).await.unwrap();
        let text = std::fs::read_to_string(channel.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["channel"], "email");
        assert_eq!(lines[0]["subject"], "subject");
        assert_eq!(lines[2]["channel"], "sms");
        assert_eq!(lines[2]["recipient"], "+447700900123");
        assert_eq!(lines[2]["text"], "sms text");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("outbox")), 0o700);
            assert_eq!(mode(channel.path()), 0o600);
        }
    }
}
