//! mesh-poll as it runs on AWS, against moto (DynamoDB, Secrets Manager) and
//! NHS England's mesh-sandbox: the MESH client built from the secret as
//! `main` builds it, the council's side played by NHS England's own client
//! (`tests/mesh_council.py`). Every acknowledgement validates against the
//! official schema. Without `CPIS_MESH_SANDBOX_URL` these tests print
//! SKIPPED, unless `CI=true` or `CPIS_REQUIRE_MESH_SANDBOX=1` (then they fail).
//!
//! The tests share the sandbox's CP-IS mailbox (X26ABC2): each uses workflow
//! ids of its own, and they run one at a time ([`serial`]) because a poll's
//! counts cover the whole inbox; each compares counts with a poll made just
//! before its files are sent, so a message another test binary left behind
//! does not count.

use cpis_aws::{moto, DynamoStore};
use cpis_domain::ports::{AuditReader, PlanStore, UploadLedger};
use cpis_domain::{AuditAction, AuditOutcome, ManualClock, OdsCode, VisibilityPolicy};
use cpis_lambda::settings::{MeshSettings, MeshTimeouts};
use cpis_lambda::testing::mesh::{
    council_receive, council_send, put_secret, sandbox_url, secret_json, unique_workflow, Received,
    COUNCIL_MAILBOX, CPIS_MAILBOX, OTHER_MAILBOX, PASSWORD,
};
use cpis_lambda::Clients;
use cpis_mesh::exchange::{ack_local_id, ExchangeConfig};
use cpis_mesh::{InboxPage, Mailbox, MeshClient, MeshError, Message, Outgoing, Tracked};
use mesh_poll::{Handshake, Handshakes, MeshPoll};
use serde_json::{json, Value};
use std::sync::Mutex;
use time::macros::datetime;
use time::OffsetDateTime;

/// After every plan start in the fixture: its outcomes do not depend on the day the tests run.
const NOW: OffsetDateTime = datetime!(2025-03-01 02:05:12 UTC);
const FILE: &str = include_str!("../../../crates/hl7v3/tests/fixtures/upload-000457.xml");
const COUNCIL: &str = "E09000033";
const OTHER_COUNCIL: &str = "E06000001";

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One sandbox test at a time (see the module documentation).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A MESH call to fail once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Send,
    Acknowledge,
}

/// The real client with faults: `Before` fails the call with nothing done
/// (MESH unreachable), `After` lets MESH do it and then fails (the process
/// died before it recorded the answer).
struct Flaky {
    client: MeshClient,
    faults: Mutex<Vec<(Call, bool)>>,
}

impl Flaky {
    fn fail_next(&self, call: Call, after: bool) {
        self.faults.lock().unwrap().push((call, after));
    }

    fn take(&self, call: Call) -> Option<bool> {
        let mut faults = self.faults.lock().unwrap();
        let at = faults.iter().position(|(c, _)| *c == call)?;
        Some(faults.remove(at).1)
    }
}

fn injected<T>() -> Result<T, MeshError> {
    Err(MeshError::Transient("injected fault".into()))
}

impl Mailbox for Flaky {
    fn mailbox_id(&self) -> &str {
        self.client.mailbox_id()
    }
    async fn inbox(&self, continue_from: Option<&str>) -> Result<InboxPage, MeshError> {
        self.client.inbox(continue_from).await
    }
    async fn download(&self, id: &str) -> Result<Option<Message>, MeshError> {
        self.client.download(id).await
    }
    async fn acknowledge(&self, id: &str) -> Result<(), MeshError> {
        match self.take(Call::Acknowledge) {
            Some(false) => injected(),
            Some(true) => self.client.acknowledge(id).await.and_then(|()| injected()),
            None => self.client.acknowledge(id).await,
        }
    }
    async fn send(&self, file: &Outgoing<'_>) -> Result<String, MeshError> {
        match self.take(Call::Send) {
            Some(false) => injected(),
            Some(true) => self.client.send(file).await.and_then(|_| injected()),
            None => self.client.send(file).await,
        }
    }
    async fn track(&self, local_id: &str) -> Result<Option<Tracked>, MeshError> {
        self.client.track(local_id).await
    }
}

impl Handshake for Flaky {
    async fn handshake(&self) -> Result<(), MeshError> {
        self.client.handshake().await
    }
}

struct World {
    url: String,
    poller: MeshPoll<Flaky, DynamoStore>,
    clock: ManualClock,
}

impl World {
    /// A fresh table on moto; the CP-IS mailbox's client built from a
    /// secret on moto, as `main` builds it; workflows of this test's own;
    /// the council linked to its mailbox by the operator's invocation.
    async fn new(url: &str) -> Self {
        cpis_telemetry::capture::tracing();
        let store = moto::fresh_store().await;
        let sdk = moto::sdk_config().await;
        let settings = MeshSettings {
            url: url.to_owned(),
            secret_arn: put_secret(&sdk, &secret_json(CPIS_MAILBOX, PASSWORD)).await,
        };
        let client = Clients::from_sdk(sdk)
            .mesh_client(&settings, MeshTimeouts::POLL)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let poller = MeshPoll {
            mailbox: Flaky {
                client,
                faults: Mutex::new(Vec::new()),
            },
            store,
            exchange: ExchangeConfig {
                upload_workflow: unique_workflow("CPIS_LA_UPLOAD_AWS"),
                ack_workflow: unique_workflow("CPIS_LA_UPLOAD_ACK_AWS"),
                policy: VisibilityPolicy::default(),
            },
            handshakes: Handshakes::default(),
        };
        let world = Self {
            url: url.to_owned(),
            poller,
            clock: ManualClock::new(NOW),
        };
        let linked = world
            .invoke(&json!({"action": "link", "council": COUNCIL, "mailbox": COUNCIL_MAILBOX}))
            .await
            .unwrap();
        assert_eq!(linked["ok"], true, "{linked}");
        world
    }

    async fn invoke(&self, event: &Value) -> Result<Value, mesh_poll::HandlerError> {
        self.poller.handle(event, &self.clock).await
    }

    /// The schedule's invocation, expected to finish.
    async fn poll(&self) -> Value {
        let scheduled = json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let answer = self
            .invoke(&scheduled)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer["ok"], true, "{answer}");
        answer
    }

    /// The counts of a poll, less those of `before` (what other tests left).
    async fn poll_since(&self, before: &Value) -> Value {
        let after = self.poll().await;
        let mut delta = json!({});
        for (name, value) in after.as_object().unwrap() {
            if let (Some(a), Some(b)) = (value.as_i64(), before[name].as_i64()) {
                delta[name] = json!(a - b);
            }
        }
        delta
    }

    fn send(&self, from: &str, body: &str) -> String {
        council_send(
            &self.url,
            from,
            &self.poller.exchange.upload_workflow,
            "upload-000457.xml",
            body.as_bytes(),
        )
    }

    /// The acknowledgements `mailbox` received (and acknowledged).
    fn acks(&self, mailbox: &str) -> Vec<Received> {
        council_receive(&self.url, mailbox, &self.poller.exchange.ack_workflow)
    }

    async fn plans(&self, council: &str) -> usize {
        self.poller
            .store
            .plan_keys_for_authority(&OdsCode::parse(council).unwrap())
            .await
            .unwrap()
            .len()
    }
}

/// Runs `work` with this thread's log lines (the functions' JSON style, our
/// crates at DEBUG) kept, and answers them after checking that they hold no
/// NHS number, and none of the fixture's names and dates of birth, which
/// only the council's acknowledgement may carry.
async fn logged<T>(work: impl std::future::Future<Output = T>) -> (T, String) {
    let lines = cpis_telemetry::capture::Lines::default();
    let subscriber = cpis_telemetry::subscriber(
        cpis_telemetry::Style::Lambda,
        cpis_telemetry::capped(Some("debug"), "debug"),
        lines.clone(),
    );
    let value = {
        let _guard = tracing::subscriber::set_default(subscriber);
        work.await
    };
    let text = lines.text();
    assert!(
        cpis_domain::find_nhs_numbers(&text).is_empty(),
        "an NHS number was logged: {text}"
    );
    for personal in [
        "Childone",
        "Childtwo",
        "Motherone",
        "20180704",
        "20111120",
        "19990312",
    ] {
        assert!(FILE.contains(personal), "{personal} is the fixture's");
        assert!(!text.contains(personal), "{personal} was logged: {text}");
    }
    (value, text)
}

fn counts(delta: &Value, names: &[&str]) -> Vec<i64> {
    names
        .iter()
        .map(|n| delta[*n].as_i64().unwrap_or(-1))
        .collect()
}

fn assert_valid_acks(acks: &[Received]) {
    let documents: Vec<(String, String)> = acks
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("ack-{i}"), a.body.clone()))
        .collect();
    cpis_hl7v3::xsd::assert_valid("REPC_MT000003GB01", &documents);
}

/// The acknowledgement of the fixture: file 000457, CPF03 (record 3's
/// unborn child plan ends before it starts: CPR07), from the CP-IS mailbox.
fn assert_ack_of_457(ack: &Received, message_id: &str) {
    assert_eq!(ack.header("mex-from"), CPIS_MAILBOX);
    assert_eq!(ack.header("mex-localid"), ack_local_id(message_id));
    assert_eq!(
        ack.header("mex-filename"),
        format!("CPIS_ACK_{COUNCIL}_000457.xml")
    );
    assert!(
        ack.body.contains(r#"<id extension="000457"/>"#),
        "{}",
        ack.header("mex-filename")
    );
    assert!(ack.body.contains(r#"code="CPF03""#));
    assert_eq!(ack.body.matches("CPR07").count(), 1, "one record rejected");
}

#[tokio::test]
async fn an_upload_file_is_acknowledged_with_its_codes_and_a_replay_gets_the_same_acknowledgement()
{
    let Some(url) = sandbox_url() else { return };
    let _one = serial().await;
    let w = World::new(&url).await;
    let before = w.poll().await;
    let id = w.send(COUNCIL_MAILBOX, FILE);
    let (delta, logs) = logged(w.poll_since(&before)).await;
    assert!(
        logs.contains(&id) && logs.contains("000457") && logs.contains(COUNCIL_MAILBOX),
        "{logs}"
    );
    let names = [
        "received",
        "acknowledged",
        "applied",
        "replayed",
        "refused",
        "unlinked",
    ];
    assert_eq!(counts(&delta, &names), [1, 1, 1, 0, 0, 0], "{delta}");

    // Stored as the JSON route would store it: two plans, the ledger's
    // receipt for file 000457, one upload audited as the mailbox's council.
    assert_eq!(w.plans(COUNCIL).await, 2);
    let council = OdsCode::parse(COUNCIL).unwrap();
    assert!(w
        .poller
        .store
        .receipt(&council, 457)
        .await
        .unwrap()
        .is_some());
    let events = w.poller.store.audit_events(10).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].action, events[0].outcome),
        (AuditAction::Upload, AuditOutcome::Allowed)
    );
    assert_eq!(events[0].actor_id, format!("mesh:{COUNCIL_MAILBOX}"));

    let acks = w.acks(COUNCIL_MAILBOX);
    assert_eq!(acks.len(), 1);
    assert_ack_of_457(&acks[0], &id);

    // The council sends the same file again: a new message, the same acknowledgement.
    let replay = w.send(COUNCIL_MAILBOX, FILE);
    let delta = w.poll_since(&before).await;
    assert_eq!(counts(&delta, &names), [1, 1, 0, 1, 0, 0], "{delta}");
    let again = w.acks(COUNCIL_MAILBOX);
    assert_eq!(again.len(), 1);
    assert_ack_of_457(&again[0], &replay);
    assert_eq!(again[0].body, acks[0].body, "the same acknowledgement");
    assert_eq!(w.plans(COUNCIL).await, 2, "nothing applied twice");

    // Nothing left: a third poll sends nothing.
    let delta = w.poll_since(&before).await;
    assert_eq!(counts(&delta, &names), [0, 0, 0, 0, 0, 0], "{delta}");
    assert!(w.acks(COUNCIL_MAILBOX).is_empty());
    assert_valid_acks(&[acks[0].clone(), again[0].clone()]);
}

#[tokio::test]
async fn a_file_from_an_unlinked_mailbox_changes_nothing_until_the_operator_links_it() {
    let Some(url) = sandbox_url() else { return };
    let _one = serial().await;
    let w = World::new(&url).await;
    let before = w.poll().await;
    // Another council's file, from a mailbox nobody linked yet.
    let file = FILE.replace(COUNCIL, OTHER_COUNCIL);
    let id = w.send(OTHER_MAILBOX, &file);
    let names = ["received", "acknowledged", "applied", "unlinked", "left"];
    let delta = w.poll_since(&before).await;
    assert_eq!(counts(&delta, &names), [1, 0, 0, 1, 1], "{delta}");
    assert_eq!(w.plans(OTHER_COUNCIL).await, 0);
    assert!(w.poller.store.audit_events(10).await.unwrap().is_empty());
    assert!(w.acks(OTHER_MAILBOX).is_empty(), "no acknowledgement");
    // Polled again: still waiting, still nothing.
    let delta = w.poll_since(&before).await;
    assert_eq!(counts(&delta, &names), [1, 0, 0, 1, 1], "{delta}");
    assert_eq!(w.plans(OTHER_COUNCIL).await, 0);

    // The operator links the mailbox: the next poll takes the file in.
    let linked = w
        .invoke(&json!({"action": "link", "council": OTHER_COUNCIL, "mailbox": OTHER_MAILBOX}))
        .await
        .unwrap();
    assert_eq!(linked["ok"], true, "{linked}");
    let delta = w.poll_since(&before).await;
    assert_eq!(counts(&delta, &names), [1, 1, 1, 0, 0], "{delta}");
    assert_eq!(w.plans(OTHER_COUNCIL).await, 2);
    let acks = w.acks(OTHER_MAILBOX);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].header("mex-localid"), ack_local_id(&id));
    assert!(acks[0].body.contains(r#"code="CPF03""#));
    assert_valid_acks(&acks);
}

#[tokio::test]
async fn a_transient_fault_fails_the_invocation_and_loses_nothing_nor_sends_twice() {
    let Some(url) = sandbox_url() else { return };
    let _one = serial().await;
    let w = World::new(&url).await;
    let before = w.poll().await;
    let id = w.send(COUNCIL_MAILBOX, FILE);
    let scheduled = json!({"source": "aws.events"});

    // The acknowledgement is sent, and the process dies before it knows.
    w.poller.mailbox.fail_next(Call::Send, true);
    let error = w.invoke(&scheduled).await.unwrap_err();
    assert!(error.to_string().contains("injected fault"), "{error}");
    assert_eq!(w.plans(COUNCIL).await, 2, "applied");
    // MESH unreachable when the message is to be taken from the inbox.
    w.poller.mailbox.fail_next(Call::Acknowledge, false);
    assert!(w.invoke(&scheduled).await.is_err());
    // The process dies right after MESH took it from the inbox.
    w.poller.mailbox.fail_next(Call::Acknowledge, true);
    assert!(w.invoke(&scheduled).await.is_err());

    // Nothing left to do, nothing done twice.
    let delta = w.poll_since(&before).await;
    assert_eq!(
        counts(&delta, &["received", "acknowledged"]),
        [0, 0],
        "{delta}"
    );
    assert_eq!(w.plans(COUNCIL).await, 2);
    let acks = w.acks(COUNCIL_MAILBOX);
    assert_eq!(acks.len(), 1, "one acknowledgement, however many tries");
    assert_ack_of_457(&acks[0], &id);
    assert_valid_acks(&acks);
    // Each run that reached the upload use case audited it (applied once,
    // then answered from the ledger twice).
    let uploads: Vec<_> = w
        .poller
        .store
        .audit_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect();
    assert_eq!(uploads, [(AuditAction::Upload, AuditOutcome::Allowed); 3]);
}
