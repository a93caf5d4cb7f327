//! The exchange against an in-memory MESH: every outcome, duplicate
//! deliveries, crashes at each MESH call, and every acknowledgement checked
//! against the official schema.

mod common;

use common::*;
use cpis_domain::ports::{AuditReader, MailboxMap, PlanStore, UploadLedger};
use cpis_domain::{AuditAction, AuditOutcome};
use cpis_mesh::exchange::{ack_local_id, PollError, PollReport};
use cpis_mesh::fake::{Fault, Op};

fn counts(r: &PollReport) -> [usize; 7] {
    [
        r.applied, r.replayed, r.refused, r.reports, r.left, r.deferred, r.gone,
    ]
}

async fn plan_count(world: &World, council: &str) -> usize {
    world
        .store
        .plan_keys_for_authority(&la(council))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_file_is_applied_acknowledged_to_its_sender_and_taken_from_the_inbox() {
    let world = World::new().await;
    let id = world.send(MAILBOX_A, &file_457());
    let (report, logs) = logged(world.poll()).await;
    assert!(report.stopped.is_none(), "{:?}", report.stopped);
    assert_eq!(counts(&report), [1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(report.listed, 1);
    assert_eq!(plan_count(&world, COUNCIL_A).await, 2);

    let acks = world.acks(MAILBOX_A);
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    assert_eq!(ack.from, CPIS);
    assert_eq!(ack.local_id, ack_local_id(&id));
    assert_eq!(ack.local_id, format!("ACK_{id}"));
    assert_eq!(ack.file_name, "CPIS_ACK_E09000033_000457.xml");
    let xml = text(ack);
    assert!(xml.contains(r#"<id extension="000457"/>"#));
    assert!(xml.contains(r#"code="CPF03""#));
    assert!(xml.contains("CPR07"));
    // The schema makes the acknowledgement echo the records: the file, not the logs.
    assert!(xml.contains(FIXTURE_NAME));
    assert!(world.mesh.inbox_of(CPIS).is_empty());
    assert!(world.mesh.sent_to(MAILBOX_B).is_empty());

    // Audited like the JSON route, naming the mailbox.
    let events = world.store.audit_events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        (event.action, event.outcome),
        (AuditAction::Upload, AuditOutcome::Allowed)
    );
    assert_eq!(event.actor_id, "mesh:X26ABC1");
    assert_eq!(event.organisation, COUNCIL_A);
    assert_eq!(event.trace_id, format!("mesh:{id}"));
    assert!(logs.contains(&id) && logs.contains("000457") && logs.contains(MAILBOX_A));

    // Nothing left to do.
    assert_eq!(counts(&world.poll().await), [0; 7]);
    assert_eq!(world.acks(MAILBOX_A).len(), 1);
    world.assert_every_file_valid();
}

#[tokio::test]
async fn a_replayed_file_gets_the_same_acknowledgement_again() {
    let world = World::new().await;
    world.send(MAILBOX_A, &file_457());
    world.poll().await;
    // The council sends the same file again: a new MESH message.
    world.send(MAILBOX_A, &file_457());
    let report = world.poll().await;
    assert_eq!(counts(&report), [0, 1, 0, 0, 0, 0, 0]);
    let acks = world.acks(MAILBOX_A);
    assert_eq!(acks.len(), 2);
    assert_ne!(acks[0].local_id, acks[1].local_id);
    assert_eq!(text(&acks[0]), text(&acks[1]), "the same acknowledgement");
    assert_eq!(plan_count(&world, COUNCIL_A).await, 2);
    let receipt = world.store.receipt(&la(COUNCIL_A), 457).await.unwrap();
    assert!(receipt.is_some());
    world.assert_every_file_valid();
}

#[tokio::test]
async fn one_message_delivered_twice_is_acknowledged_once() {
    let world = World::new().await;
    world.send(MAILBOX_A, &file_457());
    let first = world.mesh.inbox_of(CPIS).remove(0);
    world.poll().await;
    // At-least-once delivery: the same message, same id, back in the inbox.
    world.mesh.deliver_again(CPIS, &first);
    let report = world.poll().await;
    assert_eq!(counts(&report), [0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(world.acks(MAILBOX_A).len(), 1, "tracking found the first");
    assert!(world.mesh.inbox_of(CPIS).is_empty());
    world.assert_every_file_valid();
}

/// The state a clean run leaves, to compare a faulted run with.
async fn clean_run() -> (Vec<String>, usize) {
    let world = World::new().await;
    world.send(MAILBOX_A, &file_457());
    world.poll().await;
    let acks = world.acks(MAILBOX_A).iter().map(text).collect();
    (acks, plan_count(&world, COUNCIL_A).await)
}

/// A crash at each MESH call, before or after MESH did it: the poll stops,
/// the next one finishes, and the end state is a clean run's: one
/// acknowledgement, the same one, the plans applied once, the inbox empty.
#[tokio::test]
async fn a_crash_at_any_mesh_call_loses_nothing_and_does_nothing_twice() {
    let (clean_acks, clean_plans) = clean_run().await;
    for op in [
        Op::Inbox,
        Op::Download,
        Op::Track,
        Op::Send,
        Op::Acknowledge,
    ] {
        for fault in [Fault::Before, Fault::After] {
            let world = World::new().await;
            world.send(MAILBOX_A, &file_457());
            world.mesh.fail_next(CPIS, op, fault);
            let (first, _) = logged(world.poll()).await;
            assert!(
                matches!(first.stopped, Some(PollError::Mesh(_))),
                "{op:?} {fault:?}: the poll stops"
            );
            assert_eq!(world.mesh.pending_faults(), 0, "{op:?} {fault:?}");
            let second = world.poll().await;
            assert!(second.stopped.is_none(), "{op:?} {fault:?}");
            assert!(world.mesh.inbox_of(CPIS).is_empty(), "{op:?} {fault:?}");
            let acks: Vec<String> = world.acks(MAILBOX_A).iter().map(text).collect();
            assert_eq!(
                acks, clean_acks,
                "{op:?} {fault:?}: one acknowledgement, the same"
            );
            assert_eq!(plan_count(&world, COUNCIL_A).await, clean_plans);
            // The upload ran once, or once and then as a replay.
            let applied = first.applied + second.applied;
            assert!(applied <= 1, "{op:?} {fault:?}");
            world.assert_every_file_valid();
        }
    }
}

#[tokio::test]
async fn a_crash_after_the_upload_and_before_the_send_answers_from_the_ledger() {
    let world = World::new().await;
    world.send(MAILBOX_A, &file_457());
    world.mesh.fail_next(CPIS, Op::Send, Fault::Before);
    let first = world.poll().await;
    assert!(first.stopped.is_some());
    assert_eq!(plan_count(&world, COUNCIL_A).await, 2, "applied");
    assert!(world.acks(MAILBOX_A).is_empty(), "nothing sent");
    assert_eq!(world.mesh.inbox_of(CPIS).len(), 1, "still in the inbox");
    let second = world.poll().await;
    assert_eq!(counts(&second), [0, 1, 0, 0, 0, 0, 0], "a replay");
    assert_eq!(world.acks(MAILBOX_A).len(), 1);
    world.assert_every_file_valid();
}

#[tokio::test]
async fn a_crash_between_the_send_and_the_acknowledge_sends_nothing_twice() {
    for (op, fault) in [(Op::Send, Fault::After), (Op::Acknowledge, Fault::Before)] {
        let world = World::new().await;
        world.send(MAILBOX_A, &file_457());
        world.mesh.fail_next(CPIS, op, fault);
        world.poll().await;
        assert_eq!(world.acks(MAILBOX_A).len(), 1, "{op:?}: sent once");
        assert_eq!(world.mesh.inbox_of(CPIS).len(), 1, "{op:?}: not yet taken");
        let (again, logs) = logged(world.poll()).await;
        assert_eq!(counts(&again), [0, 1, 0, 0, 0, 0, 0], "{op:?}");
        assert_eq!(world.acks(MAILBOX_A).len(), 1, "{op:?}: tracking decided");
        assert!(logs.contains("not sent again"), "{op:?}");
        assert!(world.mesh.inbox_of(CPIS).is_empty());
        world.assert_every_file_valid();
    }
}

#[tokio::test]
async fn a_file_from_an_unlinked_mailbox_changes_nothing_and_waits_for_a_link() {
    let world = World::new().await;
    let id = world.send(STRANGER, &file_457());
    let (report, logs) = logged(world.poll()).await;
    assert_eq!(counts(&report), [0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(report.unlinked, 1, "counted as unlinked");
    assert_eq!(plan_count(&world, COUNCIL_A).await, 0);
    assert!(world.store.audit_events(10).await.unwrap().is_empty());
    assert!(world.mesh.sent_to(STRANGER).is_empty());
    assert_eq!(world.mesh.inbox_of(CPIS).len(), 1, "left in the inbox");
    assert!(logs.contains(STRANGER) && logs.contains(&id));
    assert!(logs.contains("\"level\":\"ERROR\""));
    assert!(!logs.contains("000457"), "nothing of the file is logged");
    // Polled again: still nothing.
    assert_eq!(counts(&world.poll().await), [0, 0, 0, 0, 1, 0, 0]);

    // The operator links the mailbox (to council A, whose file it is): the
    // next poll processes it.
    world.store.unlink_mailbox(&la(COUNCIL_A)).await.unwrap();
    world
        .store
        .link_mailbox(&la(COUNCIL_A), &mailbox(STRANGER))
        .await
        .unwrap();
    assert_eq!(counts(&world.poll().await), [1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(world.mesh.sent_to(STRANGER).len(), 1);
    world.assert_every_file_valid();
}

#[tokio::test]
async fn a_file_with_another_workflow_is_not_processed_and_stays() {
    let world = World::new().await;
    world.mesh.deliver(
        MAILBOX_A,
        CPIS,
        "SOME_OTHER_WORKFLOW",
        file_457().as_bytes(),
    );
    let (report, logs) = logged(world.poll()).await;
    assert_eq!(counts(&report), [0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(report.unlinked, 0, "its mailbox is linked");
    assert_eq!(plan_count(&world, COUNCIL_A).await, 0);
    assert!(world.mesh.sent_to(MAILBOX_A).is_empty());
    assert_eq!(world.mesh.inbox_of(CPIS).len(), 1);
    assert!(logs.contains("SOME_OTHER_WORKFLOW") && logs.contains(COUNCIL_A));
}

#[tokio::test]
async fn a_file_naming_another_council_is_refused_whole() {
    let world = World::new().await;
    // Council B's mailbox sends a file that names council A.
    world.send(MAILBOX_B, &file_457());
    let (report, logs) = logged(world.poll()).await;
    assert_eq!(counts(&report), [0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(plan_count(&world, COUNCIL_A).await, 0);
    assert_eq!(plan_count(&world, COUNCIL_B).await, 0);
    assert!(
        world.acks(MAILBOX_A).is_empty(),
        "never to the council it names"
    );
    let acks = world.acks(MAILBOX_B);
    assert_eq!(acks.len(), 1);
    let xml = text(&acks[0]);
    assert!(xml.contains(r#"code="CPF01""#) && xml.contains("SENDER_MISMATCH"));
    assert!(xml.contains(r#"<id extension="000457"/>"#));
    assert!(!xml.contains(FIXTURE_NAME), "a CPF01 echoes no record");
    assert!(logs.contains("file_sender"));
    let events = world.store.audit_events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].outcome,
            events[0].organisation.as_str(),
            events[0].actor_id.as_str()
        ),
        (AuditOutcome::Invalid, COUNCIL_B, "mesh:X26ABC3")
    );
    assert!(world.mesh.inbox_of(CPIS).is_empty());
    world.assert_every_file_valid();
}

#[tokio::test]
async fn an_unreadable_file_is_acknowledged_cpf01_with_id_minus_one() {
    let world = World::new().await;
    let mut broken = file_457().into_bytes();
    let at = broken.windows(8).position(|w| w == b"Example ").unwrap();
    broken[at] = 0xFF;
    world.mesh.deliver(MAILBOX_A, CPIS, UPLOAD, &broken);
    world.mesh.deliver(
        MAILBOX_A,
        CPIS,
        UPLOAD,
        b"<!DOCTYPE File [<!ENTITY x 'y'>]><File/>",
    );
    let (report, _) = logged(world.poll()).await;
    assert_eq!(counts(&report), [0, 0, 2, 0, 0, 0, 0]);
    let acks = world.acks(MAILBOX_A);
    assert_eq!(acks.len(), 2);
    for ack in &acks {
        let xml = text(ack);
        assert!(xml.contains(r#"<id extension="-1"/>"#), "{xml}");
        assert!(xml.contains(r#"code="CPF01""#));
        // The receiver comes from the council's directory entry.
        assert!(xml.contains(r#"<telecom use="WP" value="tel:+441632960001"/>"#));
        assert_eq!(ack.file_name, "CPIS_ACK_E09000033_-1.xml");
    }
    assert_eq!(plan_count(&world, COUNCIL_A).await, 0);
    let events = world.store.audit_events(10).await.unwrap();
    assert!(events.iter().all(|e| e.outcome == AuditOutcome::Invalid));
    assert_eq!(events.len(), 2);
    world.assert_every_file_valid();
}

#[tokio::test]
async fn an_unreadable_file_of_a_council_without_a_directory_entry_waits() {
    let world = World::new().await;
    let council = la("E08000001");
    world
        .store
        .link_mailbox(&council, &mailbox("X26ABC9"))
        .await
        .unwrap();
    world.mesh.mailbox("X26ABC9");
    world.mesh.deliver("X26ABC9", CPIS, UPLOAD, b"not xml");
    let report = world.poll().await;
    assert_eq!(counts(&report), [0, 0, 0, 0, 0, 1, 0]);
    assert!(world.mesh.sent_to("X26ABC9").is_empty());
    assert!(world.store.audit_events(10).await.unwrap().is_empty());
    assert_eq!(
        world.mesh.inbox_of(CPIS).len(),
        1,
        "left until it can be answered"
    );
}

#[tokio::test]
async fn a_reused_or_stale_file_id_is_refused_whole() {
    let world = World::new().await;
    world.send(MAILBOX_A, &file_457());
    world.poll().await;
    // Another file under the same id, then an older id.
    let reused = upload(
        COUNCIL_A,
        "457",
        &[cpp_record("9990000034", "202501150000", "CASE-0009")],
    );
    let stale = upload(
        COUNCIL_A,
        "000456",
        &[cpp_record("9990000042", "202501150000", "CASE-0010")],
    );
    world.send(MAILBOX_A, &reused);
    world.send(MAILBOX_A, &stale);
    let report = world.poll().await;
    assert_eq!(counts(&report), [0, 0, 2, 0, 0, 0, 0]);
    let acks = world.acks(MAILBOX_A);
    assert_eq!(acks.len(), 3);
    assert!(
        text(&acks[1]).contains("FILE_ID_REUSED")
            && text(&acks[1]).contains(r#"<id extension="457"/>"#)
    );
    assert!(text(&acks[2]).contains("FILE_ID_STALE"));
    assert_eq!(
        plan_count(&world, COUNCIL_A).await,
        2,
        "nothing more loaded"
    );
    world.assert_every_file_valid();
}

#[tokio::test]
async fn reports_are_logged_at_error_level_and_acknowledged() {
    let world = World::new().await;
    let asn_id = "5d1e8a7c-3f2b-4c9a-9e1d-0a1b2c3d4e5f";
    world.mesh.report(
        CPIS,
        asn_id,
        "14",
        "Message not collected by recipient after 5 days",
    );
    world
        .mesh
        .report(CPIS, "ACK_20250301000000000001_000001", "14", "Undelivered");
    let (report, logs) = logged(world.poll()).await;
    assert_eq!(counts(&report), [0, 0, 0, 2, 0, 0, 0]);
    assert!(world.mesh.inbox_of(CPIS).is_empty());
    assert!(logs.contains(asn_id) && logs.contains("stays in the council's inbox"));
    assert!(logs.contains("ACK_20250301000000000001_000001"));
    assert_eq!(logs.matches("\"level\":\"ERROR\"").count(), 2);
}

#[tokio::test]
async fn a_councils_later_file_waits_while_an_earlier_one_cannot_be_finished() {
    let world = World::new().await;
    world.send(MAILBOX_A, &file_457());
    let next = upload(
        COUNCIL_A,
        "000458",
        &[cpp_record("9990000034", "202501150000", "CASE-0004")],
    );
    world.send(MAILBOX_A, &next);
    // Council B's file is not held back by council A's trouble.
    world.send(
        MAILBOX_B,
        &upload(
            COUNCIL_B,
            "1",
            &[cpp_record("9990000042", "202501150000", "B-1")],
        ),
    );
    world.mesh.fail_next(CPIS, Op::Send, Fault::Refused);
    let first = world.poll().await;
    assert_eq!(counts(&first), [1, 0, 0, 0, 0, 2, 0], "{first:?}");
    assert!(first.stopped.is_none());
    let head = world
        .store
        .ledger_head(&la(COUNCIL_A))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.sequence, 457, "file 458 was not applied out of turn");
    assert_eq!(world.acks(MAILBOX_B).len(), 1);
    let second = world.poll().await;
    assert_eq!(counts(&second), [1, 1, 0, 0, 0, 0, 0]);
    let acks = world.acks(MAILBOX_A);
    assert_eq!(acks.len(), 2);
    assert!(text(&acks[0]).contains(r#"<id extension="000457"/>"#));
    assert!(text(&acks[1]).contains(r#"<id extension="000458"/>"#));
    assert!(text(&acks[1]).contains(r#"code="CPF02""#));
    world.assert_every_file_valid();
}

#[tokio::test]
async fn every_page_of_the_inbox_is_read_in_one_poll() {
    let mut world = World::new().await;
    world.mesh = world.mesh.clone().with_page_size(2);
    for sequence in 1..=5 {
        let nhs = [
            "9990000018",
            "9990000026",
            "9990000034",
            "9990000042",
            "9990000050",
        ][sequence - 1];
        world.send(
            MAILBOX_A,
            &upload(
                COUNCIL_A,
                &sequence.to_string(),
                &[cpp_record(nhs, "202501150000", "C")],
            ),
        );
    }
    let report = world.poll().await;
    assert_eq!(report.listed, 5);
    assert_eq!(counts(&report), [5, 0, 0, 0, 0, 0, 0]);
    assert_eq!(plan_count(&world, COUNCIL_A).await, 5);
    let ids: Vec<String> = world
        .acks(MAILBOX_A)
        .iter()
        .map(|a| a.file_name.clone())
        .collect();
    assert_eq!(
        ids,
        (1..=5)
            .map(|s| format!("CPIS_ACK_E09000033_{s}.xml"))
            .collect::<Vec<_>>()
    );
    world.assert_every_file_valid();
}

#[test]
fn ack_local_ids_are_derived_and_plain() {
    assert_eq!(
        ack_local_id("20250301020000123456_ABC123"),
        "ACK_20250301020000123456_ABC123"
    );
    let odd = ack_local_id("id with spaces/and slashes");
    assert!(odd.starts_with("ACK_") && odd.len() == 4 + 64);
    assert_eq!(odd, ack_local_id("id with spaces/and slashes"));
    assert_ne!(ack_local_id("A"), ack_local_id("B"));
}
