//! ASN files over MESH through the domain's one dispatcher: exactly once
//! with crashes and duplicates injected, before SMS and email, REPORTs, and
//! every file checked against the official schema.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use cpis_domain::ports::{
    AuditReader, AuthorityDirectory, DeliveryError, MailboxMap, NotificationChannel,
    NotificationInbox,
};
use cpis_domain::{
    check, deliver_pending_with, dispatch_with, AccessEffect, Accessor, AccessorKind, AuditAction,
    AuditOutcome, Authority, Clinician, DispatchOutcome, FileDelivery, JobRole, MeshFiles,
    NhsNumber, NoticeText, Rbac,
};
use cpis_mesh::fake::{FakeMesh, Fault, Op};
use cpis_mesh::MeshAsnFiles;
use cpis_store_memory::{MemoryStore, RecordingQueue};
use time::Duration;

const ASN_WORKFLOW: &str = "CPIS_ASN";
const VIEW_URL: &str = "https://council.cpis.example/notifications";

/// Records each SMS and email delivery (by ASN reference), and whether the
/// council's ASN file was already in its mailbox when it was sent; fails
/// the next `fail` deliveries.
#[derive(Clone)]
struct Duty {
    mesh: FakeMesh,
    sent: Arc<Mutex<Vec<(String, bool)>>>,
    fail: Arc<Mutex<usize>>,
}

impl Duty {
    fn new(mesh: &FakeMesh) -> Self {
        Self {
            mesh: mesh.clone(),
            sent: Arc::default(),
            fail: Arc::default(),
        }
    }

    fn sent(&self) -> Vec<(String, bool)> {
        self.sent.lock().unwrap().clone()
    }
}

impl NotificationChannel for Duty {
    async fn deliver(
        &self,
        authority: &Authority,
        notice: &NoticeText,
    ) -> Result<(), DeliveryError> {
        {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(DeliveryError::Transient(
                    "SMS gateway down (injected)".into(),
                ));
            }
        }
        let mailbox = match authority.ods_code.as_str() {
            COUNCIL_A => MAILBOX_A,
            _ => MAILBOX_B,
        };
        let file_first = self
            .mesh
            .sent_to(mailbox)
            .iter()
            .any(|s| s.local_id == notice.reference);
        self.sent
            .lock()
            .unwrap()
            .push((notice.reference.clone(), file_first));
        Ok(())
    }
}

fn clinician(job_role: bool) -> Clinician {
    Accessor {
        kind: AccessorKind::User,
        user_id: "999999999001".to_owned(),
        rbac: Rbac::B0107,
        organisation_ods: la("RJ1"),
        organisation_name: "St Example's Hospital".to_owned(),
        setting: "emergency-department".to_owned(),
        job_role: job_role.then(|| JobRole::parse("R0110", "Specialist Registrar").unwrap()),
    }
}

fn files(world: &World) -> MeshFiles<MemoryStore, MeshAsnFiles<cpis_mesh::fake::FakeMailbox>> {
    MeshFiles {
        map: world.store.clone(),
        channel: MeshAsnFiles::new(world.cpis.clone(), ASN_WORKFLOW),
    }
}

/// Council A (with a duty team's SMS) holds plans for three children,
/// loaded from its file 000457 over MESH.
async fn with_plans(sms: bool) -> World {
    let world = World::new().await;
    let mut entry = world
        .store
        .authority(&la(COUNCIL_A))
        .await
        .unwrap()
        .unwrap();
    if sms {
        entry.notify_sms = vec!["+447700900123".to_owned()];
    }
    world.store.put_authority(&entry).await.unwrap();
    world.send(
        MAILBOX_A,
        &upload(
            COUNCIL_A,
            "000457",
            &[
                cpp_record("9990000018", "202501150000", "CASE-0001"),
                cpp_record("9990000026", "202406010000", "CASE-0002"),
                cpp_record("9990000034", "202501150000", "CASE-0003"),
            ],
        ),
    );
    assert_eq!(world.poll().await.applied, 1);
    world
}

/// An unscheduled check of `child`: the ASN's id.
async fn attend(world: &World, child: &str, who: &Clinician) -> String {
    let queue = RecordingQueue::default();
    let result = check(
        &world.store,
        &queue,
        who,
        &NhsNumber::parse(child).unwrap(),
        true,
        NOW,
        &world.config.policy,
        &cpis_domain::AuditEvent::check_allowed(who, None, NOW, "asn-test"),
    )
    .await
    .unwrap();
    assert!(matches!(
        result.effect,
        AccessEffect::Recorded {
            notifications: 1,
            ..
        }
    ));
    queue.sent().remove(0)
}

fn asn_files(world: &World, mailbox: &str) -> Vec<cpis_mesh::fake::Sent> {
    world
        .mesh
        .sent_to(mailbox)
        .into_iter()
        .filter(|s| s.workflow_id == ASN_WORKFLOW)
        .collect()
}

#[tokio::test]
async fn an_asn_reaches_a_linked_council_as_one_file_before_its_sms() {
    let world = with_plans(true).await;
    let duty = Duty::new(&world.mesh);
    let id = attend(&world, "9990000018", &clinician(true)).await;
    let (dispatched, logs) = logged(dispatch_with(
        &world.store,
        &duty,
        &files(&world),
        &id,
        NOW,
        VIEW_URL,
    ))
    .await;
    let dispatched = dispatched.unwrap();
    assert_eq!(dispatched.outcome, DispatchOutcome::Delivered);
    assert_eq!(dispatched.file, FileDelivery::Sent);
    let sent = asn_files(&world, MAILBOX_A);
    assert_eq!(sent.len(), 1);
    let file = &sent[0];
    assert_eq!(
        (file.from.as_str(), file.local_id.as_str()),
        (CPIS, id.as_str())
    );
    assert_eq!(file.file_name, format!("CPIS_ASN_{COUNCIL_A}_{id}.xml"));
    let xml = text(file);
    assert!(xml.contains(&format!(r#"<id root="{}"/>"#, id.to_uppercase())));
    assert!(xml.contains(r#"<referredToLAUploadFile><value extension="457"/>"#));
    assert!(xml.contains(r#"code="R0110""#) && xml.contains("Specialist Registrar"));
    assert!(
        xml.contains(r#"<name nullFlavor="UNK"/>"#),
        "no person name is taken"
    );
    assert!(xml.contains("Example Borough Council"));
    assert!(xml.contains("9990000018") && xml.contains("CASE-0001"));
    assert_eq!(duty.sent(), vec![(id.clone(), true)], "the file went first");
    assert!(logs.contains(&id) && logs.contains("ASN file sent"));

    // Asked again (a duplicate queue message): nothing more.
    let again = dispatch_with(&world.store, &duty, &files(&world), &id, NOW, VIEW_URL)
        .await
        .unwrap();
    assert_eq!(again.outcome, DispatchOutcome::AlreadyDelivered);
    assert_eq!(asn_files(&world, MAILBOX_A).len(), 1);
    assert_eq!(duty.sent().len(), 1);
    let events = world.store.audit_events(100).await.unwrap();
    let deliveries: Vec<_> = events
        .iter()
        .filter(|e| e.action == AuditAction::DeliverNotification)
        .collect();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].outcome, AuditOutcome::Allowed);
    world.assert_every_file_valid();
}

#[tokio::test]
async fn a_council_with_a_mailbox_and_no_duty_channels_still_gets_its_file() {
    let world = with_plans(false).await;
    let duty = Duty::new(&world.mesh);
    let id = attend(&world, "9990000026", &clinician(true)).await;
    let dispatched = dispatch_with(&world.store, &duty, &files(&world), &id, NOW, VIEW_URL)
        .await
        .unwrap();
    assert_eq!(
        (dispatched.outcome, dispatched.file),
        (DispatchOutcome::Delivered, FileDelivery::Sent)
    );
    assert_eq!(asn_files(&world, MAILBOX_A).len(), 1);
    assert!(duty.sent().is_empty());
    world.assert_every_file_valid();
}

#[tokio::test]
async fn a_council_without_a_mailbox_gets_its_sms_as_before() {
    let world = with_plans(true).await;
    world.store.unlink_mailbox(&la(COUNCIL_A)).await.unwrap();
    let duty = Duty::new(&world.mesh);
    let id = attend(&world, "9990000018", &clinician(true)).await;
    let dispatched = dispatch_with(&world.store, &duty, &files(&world), &id, NOW, VIEW_URL)
        .await
        .unwrap();
    assert_eq!(
        (dispatched.outcome, dispatched.file),
        (DispatchOutcome::Delivered, FileDelivery::NoMailbox)
    );
    assert!(asn_files(&world, MAILBOX_A).is_empty());
    assert_eq!(duty.sent(), vec![(id, false)]);
}

/// A crash at each MESH call of the leg, before or after MESH did it, and a
/// failing SMS after the file: the retries send one file and one SMS.
#[tokio::test]
async fn crashes_and_retries_send_one_file_and_one_sms() {
    let faults = [
        (Some((Op::Track, Fault::Before)), 0),
        (Some((Op::Send, Fault::Before)), 0),
        (Some((Op::Send, Fault::After)), 0),
        (None, 1),
        (Some((Op::Send, Fault::After)), 2),
    ];
    for (fault, sms_failures) in faults {
        let world = with_plans(true).await;
        let duty = Duty::new(&world.mesh);
        *duty.fail.lock().unwrap() = sms_failures;
        if let Some((op, fault)) = fault {
            world.mesh.fail_next(CPIS, op, fault);
        }
        let id = attend(&world, "9990000018", &clinician(true)).await;
        let mut now = NOW;
        let mut outcome = None;
        for _ in 0..6 {
            match dispatch_with(&world.store, &duty, &files(&world), &id, now, VIEW_URL).await {
                Ok(done) => {
                    outcome = Some(done.outcome);
                    break;
                }
                // The lease lapses before the next attempt.
                Err(_) => now += Duration::seconds(61),
            }
        }
        let case = format!("{fault:?}, {sms_failures} SMS failures");
        assert_eq!(outcome, Some(DispatchOutcome::Delivered), "{case}");
        assert_eq!(asn_files(&world, MAILBOX_A).len(), 1, "{case}: one file");
        assert_eq!(
            duty.sent(),
            vec![(id.clone(), true)],
            "{case}: one SMS, after the file"
        );
        world.assert_every_file_valid();
    }
}

/// Many ASNs, a seeded fault before or after every few MESH calls and
/// failing SMS: the embedded sweep, run until the outbox is empty, leaves
/// exactly one file and one SMS per ASN.
#[tokio::test]
async fn the_sweep_delivers_every_asn_exactly_once_under_faults() {
    let world = with_plans(true).await;
    let duty = Duty::new(&world.mesh);
    let children = ["9990000018", "9990000026", "9990000034"];
    let mut ids = Vec::new();
    for (n, child) in children.iter().cycle().take(12).enumerate() {
        let who = Clinician {
            user_id: format!("99999999{n:04}"),
            ..clinician(true)
        };
        ids.push(attend(&world, child, &who).await);
    }
    let ops = [Op::Track, Op::Send];
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut now = NOW;
    for round in 0..60 {
        let fault = if next() % 2 == 0 {
            Fault::Before
        } else {
            Fault::After
        };
        world.mesh.fail_next(CPIS, ops[next() % 2], fault);
        if next() % 3 == 0 {
            *duty.fail.lock().unwrap() = 1;
        }
        let report = deliver_pending_with(&world.store, &duty, &files(&world), now, 2, VIEW_URL)
            .await
            .unwrap();
        assert!(report.files_impossible.is_empty(), "round {round}");
        if report.claimed == 0 {
            break;
        }
        now += Duration::seconds(61);
    }
    assert!(world.mesh.faults_met() >= 5, "the faults happened");
    // The faults left unmet are dropped; the outbox drains.
    *duty.fail.lock().unwrap() = 0;
    world.mesh.clear_faults();
    for _ in 0..2 {
        deliver_pending_with(&world.store, &duty, &files(&world), now, 50, VIEW_URL)
            .await
            .unwrap();
        now += Duration::seconds(61);
    }
    let mut sms: Vec<String> = duty.sent().into_iter().map(|(id, _)| id).collect();
    let mut filed: Vec<String> = asn_files(&world, MAILBOX_A)
        .into_iter()
        .map(|f| f.local_id)
        .collect();
    sms.sort();
    filed.sort();
    ids.sort();
    assert_eq!(filed, ids, "one file per ASN");
    assert_eq!(sms, ids, "one SMS per ASN");
    assert!(duty.sent().iter().all(|(_, file_first)| *file_first));
    world.assert_every_file_valid();
}

#[tokio::test]
async fn an_asn_that_cannot_be_a_file_still_reaches_the_duty_team() {
    let world = with_plans(true).await;
    let duty = Duty::new(&world.mesh);
    // A clinician whose credential carries no SDS job role.
    let id = attend(&world, "9990000018", &clinician(false)).await;
    let report = deliver_pending_with(&world.store, &duty, &files(&world), NOW, 10, VIEW_URL)
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(report.files_sent, 0);
    assert_eq!(report.files_impossible.len(), 1);
    let (asn_id, why) = &report.files_impossible[0];
    assert_eq!(asn_id, &id);
    assert!(why.contains("job role"), "{why}");
    assert!(asn_files(&world, MAILBOX_A).is_empty());
    assert_eq!(duty.sent(), vec![(id.clone(), false)]);
    // Still in the council's inbox.
    assert!(world
        .store
        .notification(&la(COUNCIL_A), &id)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_report_on_an_asn_file_is_logged_and_the_asn_stays_in_the_inbox() {
    let world = with_plans(false).await;
    let duty = Duty::new(&world.mesh);
    let id = attend(&world, "9990000034", &clinician(true)).await;
    dispatch_with(&world.store, &duty, &files(&world), &id, NOW, VIEW_URL)
        .await
        .unwrap();
    // The council never collected it: MESH reports non-delivery.
    world.mesh.report(
        CPIS,
        &id,
        "14",
        "Message not collected by recipient after 5 days",
    );
    let (report, logs) = logged(world.poll()).await;
    assert_eq!(report.reports, 1);
    assert!(logs.contains(&id) && logs.contains("stays in the council's inbox"));
    assert!(logs.contains("\"level\":\"ERROR\""));
    let asn = world.store.notification(&la(COUNCIL_A), &id).await.unwrap();
    assert!(asn.is_some_and(|a| a.acknowledged_at.is_none()));
    assert!(world.mesh.inbox_of(CPIS).is_empty());
    world.assert_every_file_valid();
}
