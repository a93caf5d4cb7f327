//! The operator's map on AWS: direct invocations of mesh-poll against the
//! DynamoDB adapter on moto (the one `MailboxMap` the poller and the
//! dispatcher read), through the same `handle` the runtime calls. The CP-IS
//! mailbox here fails every MESH call: the map needs no MESH.

use cpis_aws::{moto, DynamoStore};
use cpis_domain::ports::{AuditReader, MailboxMap};
use cpis_domain::{MailboxId, ManualClock, OdsCode, VisibilityPolicy};
use cpis_mesh::exchange::ExchangeConfig;
use cpis_mesh::{InboxPage, Mailbox, MeshError, Message, Outgoing, Tracked};
use mesh_poll::{Handshake, Handshakes, MeshPoll};
use serde_json::{json, Value};
use time::macros::datetime;

/// MESH unreachable: any call the operator's requests made would fail them.
struct Offline;

fn offline<T>() -> Result<T, MeshError> {
    Err(MeshError::Transient("offline in this test".into()))
}

impl Mailbox for Offline {
    fn mailbox_id(&self) -> &str {
        "X26ABC2"
    }
    async fn inbox(&self, _: Option<&str>) -> Result<InboxPage, MeshError> {
        offline()
    }
    async fn download(&self, _: &str) -> Result<Option<Message>, MeshError> {
        offline()
    }
    async fn acknowledge(&self, _: &str) -> Result<(), MeshError> {
        offline()
    }
    async fn send(&self, _: &Outgoing<'_>) -> Result<String, MeshError> {
        offline()
    }
    async fn track(&self, _: &str) -> Result<Option<Tracked>, MeshError> {
        offline()
    }
}

impl Handshake for Offline {
    async fn handshake(&self) -> Result<(), MeshError> {
        offline()
    }
}

async fn poller() -> MeshPoll<Offline, DynamoStore> {
    cpis_telemetry::capture::tracing();
    MeshPoll {
        mailbox: Offline,
        store: moto::fresh_store().await,
        exchange: ExchangeConfig {
            upload_workflow: "CPIS_LA_UPLOAD".into(),
            ack_workflow: "CPIS_LA_UPLOAD_ACK".into(),
            policy: VisibilityPolicy::default(),
        },
        handshakes: Handshakes::default(),
    }
}

async fn invoke(p: &MeshPoll<Offline, DynamoStore>, event: Value) -> Value {
    let clock = ManualClock::new(datetime!(2026-06-10 10:00 UTC));
    p.handle(&event, &clock)
        .await
        .unwrap_or_else(|e| panic!("{event}: {e}"))
}

fn la(code: &str) -> OdsCode {
    OdsCode::parse(code).unwrap()
}

fn mailbox(id: &str) -> MailboxId {
    MailboxId::parse(id).unwrap()
}

#[tokio::test]
async fn link_show_replace_and_unlink_through_direct_invocations() {
    let p = poller().await;
    let link = |council: &str, m: &str| json!({"action": "link", "council": council, "mailbox": m});

    let linked = invoke(&p, link("E09000033", "X26ABC1")).await;
    // Exactly as the README's runbook shows it ("MESH on AWS").
    assert_eq!(
        linked.to_string(),
        r#"{"action":"link","council":"E09000033","mailbox":"X26ABC1","message":"linked council E09000033 to MESH mailbox X26ABC1","ok":true,"previous":null}"#
    );
    assert_eq!(
        p.store.council_of(&mailbox("X26ABC1")).await.unwrap(),
        Some(la("E09000033"))
    );
    assert_eq!(
        p.store.mailbox_of(&la("E09000033")).await.unwrap(),
        Some(mailbox("X26ABC1"))
    );
    let shown = invoke(&p, json!({"action": "show", "council": "E09000033"})).await;
    assert_eq!(
        (shown["ok"].clone(), shown["mailbox"].clone()),
        (json!(true), json!("X26ABC1"))
    );

    // The same link again changes nothing and says so.
    let again = invoke(&p, link("E09000033", "X26ABC1")).await;
    assert_eq!(
        (again["ok"].clone(), again["previous"].clone()),
        (json!(true), json!("X26ABC1"))
    );
    assert!(again["message"].as_str().unwrap().contains("already"));

    // Another council cannot take a mailbox that is held: refused, nothing changed.
    let taken = invoke(&p, link("E06000001", "X26ABC1")).await;
    assert_eq!(taken["ok"], false, "{taken}");
    assert!(taken["error"]
        .as_str()
        .unwrap()
        .contains("unlink that council first"));
    assert_eq!(
        p.store.council_of(&mailbox("X26ABC1")).await.unwrap(),
        Some(la("E09000033"))
    );
    assert_eq!(p.store.mailbox_of(&la("E06000001")).await.unwrap(), None);

    // A new mailbox replaces the old one, which is free again.
    let moved = invoke(&p, link("E09000033", "X26ABC3")).await;
    assert_eq!(
        (moved["ok"].clone(), moved["previous"].clone()),
        (json!(true), json!("X26ABC1"))
    );
    assert_eq!(p.store.council_of(&mailbox("X26ABC1")).await.unwrap(), None);
    assert_eq!(
        p.store.council_of(&mailbox("X26ABC3")).await.unwrap(),
        Some(la("E09000033"))
    );
    let other = invoke(&p, link("E06000001", "X26ABC1")).await;
    assert_eq!(
        other["ok"], true,
        "the freed mailbox can be linked: {other}"
    );

    let unlinked = invoke(&p, json!({"action": "unlink", "council": "E09000033"})).await;
    assert_eq!(
        (unlinked["ok"].clone(), unlinked["previous"].clone()),
        (json!(true), json!("X26ABC3"))
    );
    assert_eq!(p.store.mailbox_of(&la("E09000033")).await.unwrap(), None);
    assert_eq!(p.store.council_of(&mailbox("X26ABC3")).await.unwrap(), None);
    let none = invoke(&p, json!({"action": "unlink", "council": "E09000033"})).await;
    assert_eq!(
        (none["ok"].clone(), none["message"].clone()),
        (json!(true), json!("council E09000033 had no MESH mailbox"))
    );
    let shown = invoke(&p, json!({"action": "show", "council": "E09000033"})).await;
    assert_eq!(shown["mailbox"], Value::Null);
    // The map is the operator's, not an audited request of a council: the
    // audit trail is untouched.
    assert!(p.store.audit_events(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_requests_change_nothing_and_are_not_echoed() {
    let p = poller().await;
    invoke(
        &p,
        json!({"action": "link", "council": "E09000033", "mailbox": "X26ABC1"}),
    )
    .await;
    for bad in [
        json!({"action": "link", "council": "E09000033", "mailbox": "X26 ABC9"}),
        json!({"action": "link", "council": "e09000033", "mailbox": "X26ABC9"}),
        json!({"action": "link", "council": "9990000018", "mailbox": "X26ABC9"}),
        json!({"action": "link", "council": "E09000033", "mailbox": "X9990000018"}),
        json!({"action": "link", "mailbox": "X26ABC9"}),
        json!({"action": "unlink", "council": ["E09000033"]}),
        json!({"action": "relink", "council": "E09000033", "mailbox": "X26ABC9"}),
    ] {
        let answer = invoke(&p, bad.clone()).await;
        assert_eq!(answer["ok"], false, "{bad}: {answer}");
        let text = answer.to_string();
        for echoed in ["X26 ABC9", "e09000033", "9990000018", "X26ABC9", "relink"] {
            assert!(!text.contains(echoed), "{bad} echoed: {text}");
        }
    }
    assert_eq!(
        p.store.mailbox_of(&la("E09000033")).await.unwrap(),
        Some(mailbox("X26ABC1"))
    );
    assert_eq!(p.store.council_of(&mailbox("X26ABC9")).await.unwrap(), None);
}

#[tokio::test]
async fn a_poll_with_mesh_unreachable_fails_the_invocation() {
    let p = poller().await;
    let clock = ManualClock::new(datetime!(2026-06-10 10:00 UTC));
    let scheduled =
        json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event"});
    let error = p.handle(&scheduled, &clock).await.unwrap_err();
    assert!(
        error.to_string().contains("offline in this test"),
        "{error}"
    );
}
