//! mesh-poll: the CP-IS MESH mailbox on AWS (issue 13).
//!
//! EventBridge invokes it every 5 minutes (reserved concurrency 1, so two
//! polls never overlap; the exchange is idempotent anyway): one
//! [`cpis_mesh::exchange::poll`] of the inbox on the DynamoDB store, the
//! councils' LA Upload files through the one upload use case, each
//! acknowledged once to its sending mailbox. A poll that stopped early (MESH
//! unavailable, the store failing) fails the invocation, so the errors alarm
//! sees it; what it did not finish is still in the inbox for the next one.
//! Every poll prints its counts as one embedded-metric-format line
//! ([`poll_metrics`]); the stack's "no successful poll" alarm reads
//! `MeshPollSucceeded` from it.
//!
//! The operator also invokes it directly ([`operator`]): `{"action":
//! "link", "council": "E09000033", "mailbox": "X26ABC1"}`, `unlink`, `show`
//! and `poll`. Only IAM principals allowed `lambda:InvokeFunction` on it can:
//! a council's API call never reaches this map.
//!
//! Logs carry mailbox and message ids, file ids, ODS codes and counts;
//! never a file's content (the exchange's rule).

pub mod operator;

use std::future::Future;
use std::sync::Mutex;

use cpis_domain::{Clock, MailboxId, OdsCode};
use cpis_lambda::emf::emf_line;
use cpis_lambda::ConfigError;
use cpis_mesh::exchange::{poll, ExchangeConfig, ExchangeStore, PollReport};
use cpis_mesh::{Mailbox, MeshClient, MeshError};
use time::{Duration, OffsetDateTime};

/// Live MESH asks each client to handshake once a day.
pub const HANDSHAKE_EVERY: Duration = Duration::hours(24);

/// MESH's mailbox validation (`MeshClient::handshake`), behind a trait so
/// the tests can count it.
pub trait Handshake: Send + Sync {
    fn handshake(&self) -> impl Future<Output = Result<(), MeshError>> + Send;
}

impl Handshake for MeshClient {
    async fn handshake(&self) -> Result<(), MeshError> {
        MeshClient::handshake(self).await
    }
}

/// When this instance last handshook: at most once per [`HANDSHAKE_EVERY`],
/// and again at the next poll after one that failed.
#[derive(Debug, Default)]
pub struct Handshakes {
    last: Mutex<Option<OffsetDateTime>>,
}

impl Handshakes {
    fn last(&self) -> Option<OffsetDateTime> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handshakes unless one succeeded within [`HANDSHAKE_EVERY`] of `now`;
    /// `Ok(true)` when it did one now.
    pub async fn ensure<H: Handshake>(
        &self,
        client: &H,
        now: OffsetDateTime,
    ) -> Result<bool, MeshError> {
        if self.last().is_some_and(|last| now - last < HANDSHAKE_EVERY) {
            return Ok(false);
        }
        client.handshake().await?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        Ok(true)
    }
}

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The schedule's event (no `action`), or `{"action": "poll"}`.
    Poll,
    Link {
        council: OdsCode,
        mailbox: MailboxId,
    },
    Unlink {
        council: OdsCode,
    },
    Show {
        council: OdsCode,
    },
}

impl Request {
    /// Reads the event. Errors say what is wrong without repeating what was
    /// sent (an operator may paste anything).
    pub fn of(event: &serde_json::Value) -> Result<Self, String> {
        let Some(action) = event.get("action") else {
            return Ok(Self::Poll);
        };
        let council = || {
            event
                .get("council")
                .and_then(serde_json::Value::as_str)
                .filter(|c| !ten_digits(c))
                .and_then(|c| OdsCode::parse(c).ok())
                .ok_or_else(|| {
                    "\"council\" must be a council's ODS code, e.g. \"E09000033\"".to_owned()
                })
        };
        match action.as_str() {
            Some("poll") => Ok(Self::Poll),
            Some("link") => {
                let mailbox = event
                    .get("mailbox")
                    .and_then(serde_json::Value::as_str)
                    .filter(|m| !ten_digits(m))
                    .and_then(|m| MailboxId::parse(m).ok())
                    .ok_or_else(|| {
                        "\"mailbox\" must be a MESH mailbox id: 3 to 20 upper-case letters and digits, never ten digits in a row, e.g. \"X26ABC1\"".to_owned()
                    })?;
                Ok(Self::Link {
                    council: council()?,
                    mailbox,
                })
            }
            Some("unlink") => Ok(Self::Unlink {
                council: council()?,
            }),
            Some("show") => Ok(Self::Show {
                council: council()?,
            }),
            _ => Err("\"action\" must be \"link\", \"unlink\", \"show\" or \"poll\"".to_owned()),
        }
    }
}

/// Ten digits in a row: what an NHS number pasted by mistake would be. The
/// domain's `OdsCode` and `MailboxId` admit it (up to 10 and 20 letters and
/// digits), and what the operator sends here is logged and answered, so it
/// is refused first. No council's ODS code or MESH mailbox id has one.
fn ten_digits(text: &str) -> bool {
    text.as_bytes()
        .split(|b| !b.is_ascii_digit())
        .any(|run| run.len() >= 10)
}

/// Why an invocation failed (so that Lambda counts it as an error).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The poll stopped early; what it did not finish stays in the inbox.
    #[error("the MESH poll stopped early (tried again at the next poll): {0}")]
    PollStopped(String),
    /// The store failed under an operator's request; nothing half-done.
    #[error("the mailbox map could not be read or written: {0}")]
    Store(#[from] cpis_domain::ports::StoreError),
}

/// The function's state, built once in `main`: the CP-IS mailbox's client,
/// the store, the exchange's configuration and the handshake clock.
pub struct MeshPoll<M, S> {
    pub mailbox: M,
    pub store: S,
    pub exchange: ExchangeConfig,
    pub handshakes: Handshakes,
}

impl<M, S> MeshPoll<M, S>
where
    M: Mailbox + Handshake,
    S: ExchangeStore,
{
    /// The handshake at cold start. Credentials or a client certificate
    /// that MESH refuses stop the start ([`ConfigError::MeshSecret`]: one
    /// JSON line naming `CPIS_MESH_SECRET_ARN`); MESH unavailable does not
    /// (the first poll tries again).
    pub async fn start(&self, now: OffsetDateTime) -> Result<(), ConfigError> {
        match self.handshakes.ensure(&self.mailbox, now).await {
            Ok(_) => Ok(()),
            Err(refused @ MeshError::Refused(_)) => Err(ConfigError::MeshSecret(format!(
                "the MESH handshake of mailbox {} was refused: {refused}",
                self.mailbox.mailbox_id()
            ))),
            Err(error) => {
                tracing::warn!(mailbox = %self.mailbox.mailbox_id(), %error, "the MESH handshake at start failed; tried again at the first poll");
                Ok(())
            }
        }
    }

    /// Handles one invocation: a poll, or an operator's request. An
    /// operator's malformed or refused request is answered
    /// `{"ok": false, "error": …}` (nothing changed), not failed.
    pub async fn handle(
        &self,
        event: &serde_json::Value,
        clock: &dyn Clock,
    ) -> Result<serde_json::Value, HandlerError> {
        match Request::of(event) {
            Err(error) => Ok(operator::refused(&error)),
            Ok(Request::Poll) => self.poll(clock).await,
            Ok(request) => Ok(operator::handle(&self.store, &request).await?),
        }
    }

    /// One poll: the daily handshake when due (a failed one is logged and
    /// tried again next time: the poll itself says whether MESH answers),
    /// the exchange, its metric line and log line. `Err` when it stopped
    /// early.
    pub async fn poll(&self, clock: &dyn Clock) -> Result<serde_json::Value, HandlerError> {
        let started = clock.now();
        if let Err(error) = self.handshakes.ensure(&self.mailbox, started).await {
            tracing::warn!(mailbox = %self.mailbox.mailbox_id(), %error, "the MESH handshake failed; tried again at the next poll");
        }
        let report = poll(&self.mailbox, &self.store, &self.exchange, clock).await;
        println!("{}", poll_metrics(&report, started));
        let counts = counts(&report);
        match &report.stopped {
            None => {
                tracing::info!(mailbox = %self.mailbox.mailbox_id(), counts = %counts, "MESH inbox polled");
                Ok(counts)
            }
            Some(error) => {
                tracing::error!(mailbox = %self.mailbox.mailbox_id(), counts = %counts, %error, "the MESH poll stopped early; what it did not finish stays in the inbox");
                Err(HandlerError::PollStopped(error.to_string()))
            }
        }
    }
}

/// Files the poll downloaded (every DATA message it read).
fn received(report: &PollReport) -> usize {
    report.applied + report.replayed + report.refused + report.left + report.deferred
}

/// Files answered with an acknowledgement and taken from the inbox.
fn acknowledged(report: &PollReport) -> usize {
    report.applied + report.replayed + report.refused
}

/// The poll's counts, as the invocation answers them.
pub fn counts(report: &PollReport) -> serde_json::Value {
    serde_json::json!({
        "ok": report.stopped.is_none(),
        "listed": report.listed,
        "received": received(report),
        "acknowledged": acknowledged(report),
        "applied": report.applied,
        "replayed": report.replayed,
        "refused": report.refused,
        "unlinked": report.unlinked,
        "left": report.left,
        "deferred": report.deferred,
        "reports": report.reports,
        "gone": report.gone,
    })
}

/// One embedded-metric-format line per poll (namespace `CPIS`, dimension
/// `Service=cpis`), whatever `LogLevel` says:
/// - `MeshPollSucceeded`: 1 when the poll went through the inbox, 0 when it
///   stopped early (the "no successful poll" alarm sums it);
/// - `MeshFilesReceived`: files downloaded;
/// - `MeshFilesAcknowledged`: files answered with an acknowledgement;
/// - `MeshFilesUnlinked`: files left in the inbox because no council is
///   linked to their mailbox (the operator's link takes them in);
/// - `MeshReports`: MESH's reports (for example an ASN file not collected).
pub fn poll_metrics(report: &PollReport, now: OffsetDateTime) -> String {
    emf_line(
        now,
        &[
            (
                "MeshPollSucceeded",
                "Count",
                u8::from(report.stopped.is_none()).into(),
            ),
            ("MeshFilesReceived", "Count", received(report).into()),
            (
                "MeshFilesAcknowledged",
                "Count",
                acknowledged(report).into(),
            ),
            ("MeshFilesUnlinked", "Count", report.unlinked.into()),
            ("MeshReports", "Count", report.reports.into()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::ports::{MailboxMap, PlanStore};
    use cpis_domain::{ManualClock, VisibilityPolicy};
    use cpis_mesh::fake::{FakeMailbox, FakeMesh, Fault, Op};
    use cpis_store_memory::MemoryStore;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-03-01 02:05:12 UTC);
    const FILE: &str = include_str!("../../../crates/hl7v3/tests/fixtures/upload-000457.xml");

    impl Handshake for FakeMailbox {
        async fn handshake(&self) -> Result<(), MeshError> {
            Ok(())
        }
    }

    /// Counts handshakes; fails them while `down`.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    impl Handshake for Counting {
        async fn handshake(&self) -> Result<(), MeshError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(MeshError::Transient("down".into()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_handshake_runs_at_most_once_a_day_and_again_after_a_failure() {
        let client = Counting::default();
        let handshakes = Handshakes::default();
        assert!(handshakes.ensure(&client, NOW).await.unwrap());
        let hour = Duration::hours(1);
        assert!(!handshakes.ensure(&client, NOW + hour).await.unwrap());
        assert!(!handshakes
            .ensure(&client, NOW + HANDSHAKE_EVERY - Duration::seconds(1))
            .await
            .unwrap());
        assert_eq!(client.calls.load(Ordering::SeqCst), 1);
        client.down.store(true, Ordering::SeqCst);
        let next_day = NOW + HANDSHAKE_EVERY;
        assert!(handshakes.ensure(&client, next_day).await.is_err());
        client.down.store(false, Ordering::SeqCst);
        // Failed, so due again at the next poll, not a day later.
        assert!(handshakes.ensure(&client, next_day + hour).await.unwrap());
        assert!(!handshakes
            .ensure(&client, next_day + hour * 2)
            .await
            .unwrap());
        assert_eq!(client.calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_event_says_what_to_do_and_a_bad_one_is_refused_without_echoing_it() {
        let scheduled = json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(Request::of(&scheduled), Ok(Request::Poll));
        assert_eq!(Request::of(&json!({})), Ok(Request::Poll));
        assert_eq!(Request::of(&json!({"action": "poll"})), Ok(Request::Poll));
        let council = OdsCode::parse("E09000033").unwrap();
        assert_eq!(
            Request::of(&json!({"action": "link", "council": "E09000033", "mailbox": "X26ABC1"})),
            Ok(Request::Link {
                council: council.clone(),
                mailbox: MailboxId::parse("X26ABC1").unwrap()
            })
        );
        assert_eq!(
            Request::of(&json!({"action": "unlink", "council": "E09000033"})),
            Ok(Request::Unlink {
                council: council.clone()
            })
        );
        assert_eq!(
            Request::of(&json!({"action": "show", "council": "E09000033"})),
            Ok(Request::Show { council })
        );
        for bad in [
            json!({"action": "link", "council": "9990000018", "mailbox": "X26ABC1"}),
            json!({"action": "link", "council": "E09000033", "mailbox": "x26abc1"}),
            json!({"action": "link", "council": "E09000033", "mailbox": "X9990000018"}),
            json!({"action": "link", "council": "E09000033"}),
            json!({"action": "unlink"}),
            json!({"action": "unlink", "council": 9990000018_u64}),
            json!({"action": "LINK", "council": "E09000033", "mailbox": "X26ABC1"}),
            json!({"action": null}),
            json!({"action": ["link"]}),
        ] {
            let error = Request::of(&bad).unwrap_err();
            assert!(
                !error.contains("9990000018") && !error.contains("x26abc1"),
                "{error}"
            );
        }
    }

    #[test]
    fn the_metric_line_counts_the_poll() {
        let report = PollReport {
            listed: 6,
            applied: 1,
            replayed: 1,
            refused: 1,
            left: 2,
            unlinked: 1,
            reports: 1,
            ..PollReport::default()
        };
        let line: serde_json::Value = serde_json::from_str(&poll_metrics(&report, NOW)).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CPIS");
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "MeshPollSucceeded",
                "MeshFilesReceived",
                "MeshFilesAcknowledged",
                "MeshFilesUnlinked",
                "MeshReports"
            ]
        );
        assert_eq!(
            [
                &line["MeshPollSucceeded"],
                &line["MeshFilesReceived"],
                &line["MeshFilesAcknowledged"],
                &line["MeshFilesUnlinked"],
                &line["MeshReports"]
            ],
            [&json!(1), &json!(5), &json!(3), &json!(1), &json!(1)]
        );
        let stopped = PollReport {
            stopped: Some(MeshError::Transient("down".into()).into()),
            ..PollReport::default()
        };
        let line: serde_json::Value = serde_json::from_str(&poll_metrics(&stopped, NOW)).unwrap();
        assert_eq!(line["MeshPollSucceeded"], 0);
    }

    fn poller(mesh: &FakeMesh, store: MemoryStore) -> MeshPoll<FakeMailbox, MemoryStore> {
        MeshPoll {
            mailbox: mesh.mailbox("X26ABC2"),
            store,
            exchange: ExchangeConfig {
                upload_workflow: "CPIS_LA_UPLOAD".into(),
                ack_workflow: "CPIS_LA_UPLOAD_ACK".into(),
                policy: VisibilityPolicy::default(),
            },
            handshakes: Handshakes::default(),
        }
    }

    #[tokio::test]
    async fn a_transient_mesh_fault_fails_the_invocation_and_the_next_one_finishes_without_repeating(
    ) {
        let mesh = FakeMesh::new();
        mesh.mailbox("X26ABC1");
        let store = MemoryStore::new();
        let council = OdsCode::parse("E09000033").unwrap();
        store
            .link_mailbox(&council, &MailboxId::parse("X26ABC1").unwrap())
            .await
            .unwrap();
        let poller = poller(&mesh, store);
        let clock = ManualClock::new(NOW);
        mesh.deliver("X26ABC1", "X26ABC2", "CPIS_LA_UPLOAD", FILE.as_bytes());
        // The acknowledgement goes out, then the process dies before it is
        // recorded; the next try, MESH is down before the inbound message is
        // acknowledged.
        mesh.fail_next("X26ABC2", Op::Send, Fault::After);
        let scheduled = json!({"source": "aws.events"});
        let error = poller.handle(&scheduled, &clock).await.unwrap_err();
        assert!(matches!(error, HandlerError::PollStopped(_)), "{error}");
        mesh.fail_next("X26ABC2", Op::Acknowledge, Fault::Before);
        assert!(poller.handle(&scheduled, &clock).await.is_err());
        assert_eq!(
            mesh.inbox_of("X26ABC2").len(),
            1,
            "nothing lost: still in the inbox"
        );
        let done = poller.handle(&scheduled, &clock).await.unwrap();
        assert_eq!(
            (
                done["ok"].clone(),
                done["replayed"].clone(),
                done["acknowledged"].clone()
            ),
            (json!(true), json!(1), json!(1))
        );
        assert!(mesh.inbox_of("X26ABC2").is_empty());
        assert_eq!(
            mesh.sent_to("X26ABC1").len(),
            1,
            "one acknowledgement, however many tries"
        );
        assert_eq!(
            poller
                .store
                .plan_keys_for_authority(&council)
                .await
                .unwrap()
                .len(),
            2,
            "applied once"
        );
        assert_eq!(mesh.pending_faults(), 0);
    }
}
