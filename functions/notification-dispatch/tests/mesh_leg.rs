//! The dispatcher's MESH leg as it runs on AWS: the ASN queue, the outbox
//! and the operator's mailbox map on moto (DynamoDB, SQS, SNS with a probe
//! on the council's topic), the MESH client built from a secret on moto as
//! `main` builds it, and NHS England's mesh-sandbox, where the council's own
//! client (`tests/mesh_council.py`) collects its files. Each ASN file
//! validates against the official schema. Without `CPIS_MESH_SANDBOX_URL`
//! these tests print SKIPPED, unless `CI=true` or
//! `CPIS_REQUIRE_MESH_SANDBOX=1` (then they fail).

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::Message;
use cpis_aws::{moto, DynamoStore, SnsChannel, SqsQueue};
use cpis_domain::dispatch::DELIVERY_LEASE;
use cpis_domain::ports::{AsnOutbox, AsnQueue, AuthorityDirectory, DeliveryStart, MailboxMap};
use cpis_domain::{
    check, find_nhs_numbers, process_upload, AccessEffect, AccessorKind, Authority, Clinician,
    FileDelivery, FileLeg, JobRole, MailboxId, MeshFiles, NhsNumber, OdsCode, Rbac,
    VisibilityPolicy,
};
use cpis_lambda::settings::{MeshSettings, MeshTimeouts};
use cpis_lambda::testing::mesh::{
    council_receive, put_secret, sandbox_url, secret_json, unique_workflow, Received,
    COUNCIL_MAILBOX, CPIS_MAILBOX, PASSWORD,
};
use cpis_lambda::Clients;
use cpis_mesh::{MeshAsnFiles, MeshClient};
use notification_dispatch::handle_batch_with;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2025-03-01 10:00 UTC);
const VIEW_URL: &str = "https://council.cpis.example/notifications";
const CHILD: &str = "9990000018";

type Files = MeshFiles<DynamoStore, MeshAsnFiles<MeshClient>>;

struct World {
    url: String,
    store: DynamoStore,
    sqs: aws_sdk_sqs::Client,
    queue: SqsQueue,
    queue_url: String,
    channel: SnsChannel,
    probe_url: String,
    ods: OdsCode,
    files: Files,
    workflow: String,
}

impl World {
    /// A council with a directory entry (one email address, one SMS number),
    /// a probe on its topic, a plan uploaded, and the CP-IS mailbox's ASN
    /// leg with a workflow of this test's own; `linked`: the operator linked
    /// the council to its MESH mailbox.
    async fn new(url: &str, linked: bool) -> Self {
        cpis_telemetry::capture::tracing();
        let topics = moto::TopicWorld::new().await;
        let ods = moto::unique_ods();
        let probe_url = topics
            .list_with_probe(&Authority {
                ods_code: ods.clone(),
                name: "Example Council".into(),
                office_hours_phone: "020 7946 0000".into(),
                emergency_duty_phone: "020 7946 0999".into(),
                notify_emails: vec!["duty@example.gov.uk".into()],
                notify_sms: vec!["+447700900123".into()],
            })
            .await;
        let channel = topics.channel();
        let moto::TopicWorld { store, sqs, .. } = topics;
        if linked {
            let mailbox = MailboxId::parse(COUNCIL_MAILBOX).unwrap();
            store.link_mailbox(&ods, &mailbox).await.unwrap();
        }
        let (queue_url, _) = moto::create_queue(&sqs, &moto::unique("asn")).await;
        let body = format!(
            r#"{{"sequence":1,"mode":"delta","records":[{{"nhs_number":"{CHILD}","plan_type":"CPP","start_date":"2024-01-10","local_id":"case-1"}}]}}"#
        );
        process_upload(
            &store,
            &ods,
            body.as_bytes(),
            NOW,
            &VisibilityPolicy::default(),
        )
        .await
        .unwrap();
        let sdk = moto::sdk_config().await;
        let settings = MeshSettings {
            url: url.to_owned(),
            secret_arn: put_secret(&sdk, &secret_json(CPIS_MAILBOX, PASSWORD)).await,
        };
        let client = Clients::from_sdk(sdk)
            .mesh_client(&settings, MeshTimeouts::DISPATCH)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let workflow = unique_workflow("CPIS_ASN_AWS");
        Self {
            url: url.to_owned(),
            files: MeshFiles {
                map: store.clone(),
                channel: MeshAsnFiles::new(client, workflow.clone()),
            },
            workflow,
            queue: SqsQueue::new(sqs.clone(), queue_url.clone()),
            store,
            sqs,
            queue_url,
            channel,
            probe_url,
            ods,
        }
    }

    /// An unscheduled check by a clinician (`job_role`: the SDS role an ASN
    /// file names for a person), its ASN handed to the queue.
    async fn attend(&self, job_role: Option<JobRole>) {
        let clinician = Clinician {
            job_role,
            kind: AccessorKind::User,
            user_id: "dr-1".into(),
            rbac: Rbac::B0107,
            organisation_ods: OdsCode::parse("RJ1").unwrap(),
            organisation_name: "St Example's Hospital".into(),
            setting: "Emergency department".into(),
        };
        let child = NhsNumber::parse(CHILD).unwrap();
        let effect = check(
            &self.store,
            &self.queue,
            &clinician,
            &child,
            true,
            NOW,
            &VisibilityPolicy::default(),
            &cpis_domain::AuditEvent::check_allowed(&clinician, None, NOW, "mesh-leg"),
        )
        .await
        .unwrap()
        .effect;
        assert!(
            matches!(effect, AccessEffect::Recorded { queued: true, .. }),
            "{effect:?}"
        );
    }

    /// What is on the ASN queue, as the Lambda service hands it over.
    async fn receive(&self) -> (SqsEvent, Vec<Message>) {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        let event = serde_json::from_value(moto::lambda_sqs_event(&messages)).unwrap();
        (event, messages)
    }

    /// A crashed invocation deletes nothing: the message comes back.
    async fn make_visible(&self, m: &Message) {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }

    async fn delete(&self, messages: &[Message]) {
        for m in messages {
            self.sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    async fn dispatch(&self, event: &SqsEvent, now: OffsetDateTime) -> SqsBatchResponse {
        handle_batch_with(
            &self.store,
            &self.channel,
            &self.files,
            VIEW_URL,
            event,
            now,
        )
        .await
    }

    /// What the duty team's topic published (no personal data in any).
    async fn published(&self) -> usize {
        let bodies: Vec<String> = moto::drain(&self.sqs, &self.probe_url)
            .await
            .iter()
            .map(|m| m.body().unwrap_or_default().to_owned())
            .collect();
        for body in &bodies {
            assert!(find_nhs_numbers(body).is_empty(), "an NHS number left AWS");
        }
        bodies.len()
    }

    /// The ASN files the council collected (and acknowledged).
    fn files_received(&self) -> Vec<Received> {
        council_receive(&self.url, COUNCIL_MAILBOX, &self.workflow)
    }
}

fn job_role() -> Option<JobRole> {
    JobRole::parse("R8000", "Clinical Practitioner Access Role")
}

#[tokio::test]
async fn an_asn_file_arrives_once_through_a_crash_between_send_and_record_and_a_duplicate_message()
{
    let Some(url) = sandbox_url() else { return };
    let w = World::new(&url, true).await;
    w.attend(job_role()).await;
    let (event, messages) = w.receive().await;
    assert_eq!(event.records.len(), 1);
    let id = cpis_aws::parse_message_body(event.records[0].body.as_deref().unwrap()).unwrap();

    // A dispatcher takes the lease, sends the file... and dies before it
    // records anything (before the SMS and email, which come after the file).
    let DeliveryStart::Proceed(asn) = w
        .store
        .begin_delivery(&id, NOW, DELIVERY_LEASE)
        .await
        .unwrap()
    else {
        panic!("expected the lease");
    };
    let authority = w.store.authority(&w.ods).await.unwrap();
    let sent = w
        .files
        .deliver_file(&asn, authority.as_ref(), NOW)
        .await
        .unwrap();
    assert_eq!(sent, FileDelivery::Sent);
    w.make_visible(&messages[0]).await;

    // Redelivered while the dead lease stands: retried later, nothing sent.
    let (event, messages) = w.receive().await;
    let response = w.dispatch(&event, NOW + Duration::seconds(10)).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "InProgress is retried"
    );
    w.make_visible(&messages[0]).await;
    assert_eq!(w.published().await, 0);

    // After the lease: tracking finds the file, so only the SMS and email go.
    let (event, messages) = w.receive().await;
    let response = w.dispatch(&event, NOW + DELIVERY_LEASE).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    w.delete(&messages).await;
    assert_eq!(w.published().await, 1);

    // The same ASN id queued again (an SQS duplicate, a relay's re-queue).
    w.queue.enqueue(std::slice::from_ref(&id)).await.unwrap();
    let (event, messages) = w.receive().await;
    assert_eq!(event.records.len(), 1);
    let response = w.dispatch(&event, NOW + DELIVERY_LEASE * 2).await;
    assert!(response.batch_item_failures.is_empty());
    w.delete(&messages).await;
    assert_eq!(w.published().await, 0, "delivered already: nothing again");
    assert!(matches!(
        w.store
            .begin_delivery(&id, NOW + DELIVERY_LEASE * 3, DELIVERY_LEASE)
            .await
            .unwrap(),
        DeliveryStart::AlreadyDelivered
    ));

    // The council's mailbox got the file exactly once.
    let files = w.files_received();
    assert_eq!(files.len(), 1, "one file, whatever happened");
    let file = &files[0];
    assert_eq!(
        file.header("mex-localid"),
        id,
        "the MESH local id is the ASN id"
    );
    assert_eq!(file.header("mex-from"), CPIS_MAILBOX);
    assert_eq!(
        file.header("mex-filename"),
        format!("CPIS_ASN_{}_{id}.xml", w.ods)
    );
    assert!(
        file.body.contains(CHILD),
        "the file names the child, for the council"
    );
    cpis_hl7v3::xsd::assert_valid(
        "REPC_MT000004GB01",
        &[("asn".to_owned(), file.body.clone())],
    );
}

#[tokio::test]
async fn a_council_without_a_mailbox_gets_its_sms_and_email_and_no_file() {
    let Some(url) = sandbox_url() else { return };
    let w = World::new(&url, false).await;
    w.attend(job_role()).await;
    let (event, messages) = w.receive().await;
    let response = w.dispatch(&event, NOW).await;
    assert!(response.batch_item_failures.is_empty());
    w.delete(&messages).await;
    assert_eq!(w.published().await, 1);
    assert!(w.files_received().is_empty());
}

#[tokio::test]
async fn an_asn_that_cannot_be_a_file_is_logged_and_its_sms_and_email_still_go() {
    let Some(url) = sandbox_url() else { return };
    let w = World::new(&url, true).await;
    // A person without an SDS job role: the schema's author needs one.
    w.attend(None).await;
    let (event, messages) = w.receive().await;
    let id = cpis_aws::parse_message_body(event.records[0].body.as_deref().unwrap()).unwrap();
    let lines = cpis_telemetry::capture::Lines::default();
    let subscriber = cpis_telemetry::subscriber(
        cpis_telemetry::Style::Lambda,
        cpis_telemetry::capped(Some("debug"), "debug"),
        lines.clone(),
    );
    let response = {
        let _guard = tracing::subscriber::set_default(subscriber);
        w.dispatch(&event, NOW).await
    };
    assert!(
        response.batch_item_failures.is_empty(),
        "done: a retry could not make the file"
    );
    w.delete(&messages).await;
    assert_eq!(w.published().await, 1);
    assert!(w.files_received().is_empty());
    let logs = lines.text();
    let error = logs
        .lines()
        .find(|l| l.contains("\"level\":\"ERROR\"") && l.contains(&id))
        .unwrap_or_else(|| panic!("no error line names the ASN: {logs}"));
    assert!(error.contains("could not be sent"), "{error}");
    assert!(find_nhs_numbers(&logs).is_empty(), "{logs}");
    let delivered = w
        .store
        .begin_delivery(&id, NOW + DELIVERY_LEASE, DELIVERY_LEASE)
        .await
        .unwrap();
    assert!(
        matches!(delivered, DeliveryStart::AlreadyDelivered),
        "{delivered:?}"
    );
}
