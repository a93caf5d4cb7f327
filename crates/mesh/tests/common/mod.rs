//! Shared by the exchange's and the ASN leg's tests: an in-memory MESH with
//! the CP-IS mailbox and three others, a store with two linked councils, the
//! synthetic upload files, and the checks every test ends with (every
//! emitted file validates against the official schema; no NHS number, name
//! or date of birth in the logs).
#![allow(dead_code)]

use cpis_domain::ports::{AuthorityDirectory, MailboxMap};
use cpis_domain::{Authority, MailboxId, ManualClock, OdsCode, VisibilityPolicy};
use cpis_mesh::exchange::{poll, ExchangeConfig, PollReport};
use cpis_mesh::fake::{FakeMailbox, FakeMesh, Sent};
use cpis_store_memory::MemoryStore;
use cpis_telemetry::capture::Lines;
use time::macros::datetime;
use time::OffsetDateTime;

/// The CP-IS mailbox (cpis's own).
pub const CPIS: &str = "X26ABC2";
/// Council A's mailbox, linked to [`COUNCIL_A`].
pub const MAILBOX_A: &str = "X26ABC1";
/// Council B's mailbox, linked to [`COUNCIL_B`].
pub const MAILBOX_B: &str = "X26ABC3";
/// A mailbox no council is linked to.
pub const STRANGER: &str = "X27ZZZ9";
pub const COUNCIL_A: &str = "E09000033";
pub const COUNCIL_B: &str = "E06000001";
pub const UPLOAD: &str = "CPIS_LA_UPLOAD";
pub const ACK: &str = "CPIS_LA_UPLOAD_ACK";

/// After every plan start in the files below.
pub const NOW: OffsetDateTime = datetime!(2025-03-01 02:05:12 UTC);

/// The personal data the files carry on purpose (tests/privacy_fixtures.json):
/// it must reach the council's acknowledgement and nothing else.
pub const FIXTURE_NAME: &str = "Fixturington";
pub const FIXTURE_DOB: &str = "20171123";

pub fn la(code: &str) -> OdsCode {
    OdsCode::parse(code).unwrap()
}

pub fn mailbox(id: &str) -> MailboxId {
    MailboxId::parse(id).unwrap()
}

pub struct World {
    pub mesh: FakeMesh,
    pub cpis: FakeMailbox,
    pub store: MemoryStore,
    pub clock: ManualClock,
    pub config: ExchangeConfig,
}

impl World {
    /// Councils A and B linked to their mailboxes, with directory entries;
    /// the stranger's mailbox registered but linked to nobody.
    pub async fn new() -> Self {
        // Log lines not read by `logged` go to the privacy scan's capture.
        cpis_telemetry::capture::tracing();
        let mesh = FakeMesh::new();
        let cpis = mesh.mailbox(CPIS);
        for m in [MAILBOX_A, MAILBOX_B, STRANGER] {
            mesh.mailbox(m);
        }
        let store = MemoryStore::new();
        for (council, m, name) in [
            (COUNCIL_A, MAILBOX_A, "Example Borough Council"),
            (COUNCIL_B, MAILBOX_B, "Another Example Council"),
        ] {
            store.link_mailbox(&la(council), &mailbox(m)).await.unwrap();
            store
                .put_authority(&Authority {
                    ods_code: la(council),
                    name: name.to_owned(),
                    office_hours_phone: "01632 960001".to_owned(),
                    emergency_duty_phone: "01632 960002".to_owned(),
                    notify_emails: vec![],
                    notify_sms: vec![],
                })
                .await
                .unwrap();
        }
        Self {
            mesh,
            cpis,
            store,
            clock: ManualClock::new(NOW),
            config: ExchangeConfig {
                upload_workflow: UPLOAD.to_owned(),
                ack_workflow: ACK.to_owned(),
                policy: VisibilityPolicy::default(),
            },
        }
    }

    pub async fn poll(&self) -> PollReport {
        poll(&self.cpis, &self.store, &self.config, &self.clock).await
    }

    /// A council's case system sends `file` to the CP-IS mailbox.
    pub fn send(&self, from: &str, file: &str) -> String {
        self.mesh.deliver(from, CPIS, UPLOAD, file.as_bytes())
    }

    /// The acknowledgements in `mailbox`'s inbox, in order.
    pub fn acks(&self, mailbox: &str) -> Vec<Sent> {
        self.mesh
            .sent_to(mailbox)
            .into_iter()
            .filter(|s| s.workflow_id == ACK)
            .collect()
    }

    /// Every file MESH carried from the CP-IS mailbox, validated against the
    /// official schema of its kind.
    pub fn assert_every_file_valid(&self) {
        let mut acks = Vec::new();
        let mut asns = Vec::new();
        for to in [MAILBOX_A, MAILBOX_B, STRANGER] {
            for sent in self.mesh.sent_to(to) {
                let doc = (
                    format!("{}-{}", to, sent.message_id),
                    String::from_utf8(sent.body.clone()).unwrap(),
                );
                if sent.workflow_id == ACK {
                    acks.push(doc);
                } else {
                    asns.push(doc);
                }
            }
        }
        if !acks.is_empty() {
            cpis_hl7v3::xsd::assert_valid("REPC_MT000003GB01", &acks);
        }
        if !asns.is_empty() {
            cpis_hl7v3::xsd::assert_valid("REPC_MT000004GB01", &asns);
        }
    }
}

/// A synthetic CPP record (999-range NHS number; the fixture's name and
/// date of birth, which must never leave but in the acknowledgement).
pub fn cpp_record(nhs: &str, start: &str, local: &str) -> String {
    format!(
        r#"<record><CP-ISRecord>
      <pertinentInformation>
        <npfitlc:contentId root="2.16.840.1.113883.2.1.3.2.4.18.16" extension="COCT_TP146101GB01#CPPInformation"/>
        <COCT_TP146101GB01.CPPInformation>
          <component><cPPStartDate><value value="{start}"/></cPPStartDate></component>
        </COCT_TP146101GB01.CPPInformation>
      </pertinentInformation>
      <subject>
        <npfitlc:contentId root="2.16.840.1.113883.2.1.3.2.4.18.16" extension="COCT_TP145101GB01#Child"/>
        <COCT_TP145101GB01.Child>
          <id root="2.16.840.1.113883.2.1.4.1" extension="{nhs}"/>
          <id root="2.16.840.1.113883.2.1.3.2.4.18.24" extension="{local}"/>
          <childPerson><birthTime value="{FIXTURE_DOB}"/><name><given>Philippa</given><family>{FIXTURE_NAME}</family></name></childPerson>
        </COCT_TP145101GB01.Child>
      </subject>
    </CP-ISRecord></record>"#
    )
}

/// An LA Upload from `council` with file id `file_id` and these records.
pub fn upload(council: &str, file_id: &str, records: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<File xmlns="urn:hl7-org:v3" xmlns:npfitlc="NPFIT:HL7:Localisation">
  <creationTime value="20250301020000+0000"/>
  <id extension="{file_id}"/>
  <transmissionQuantity value="{}"/>
  <communicationFunctionSnd><organisation>
    <id root="2.16.840.1.113883.2.1.3.2.4.19.1" extension="{council}"/>
    <name>Example Council</name>
    <telecom use="WP" value="tel:+441632960001"/>
    <telecom use="EC" value="tel:+441632960002"/>
  </organisation></communicationFunctionSnd>
  {}
</File>
"#,
        records.len(),
        records.join("\n")
    )
}

/// Council A's file 000457: two CPPs loaded and one rejected (a bad check
/// digit), so its acknowledgement is a CPF03.
pub fn file_457() -> String {
    upload(
        COUNCIL_A,
        "000457",
        &[
            cpp_record("9990000018", "202501150000", "CASE-0001"),
            cpp_record("9990000026", "202406010000", "CASE-0002"),
            cpp_record("9990000010", "202501150000", "CASE-0003"),
        ],
    )
}

/// Runs `work` with this thread's log lines written to a buffer (instead of
/// the capture), and returns them with its result, after checking them: no
/// NHS number (any grouping), and not the fixture's name or date of birth.
pub async fn logged<T>(work: impl std::future::Future<Output = T>) -> (T, String) {
    let lines = Lines::default();
    let subscriber = cpis_telemetry::subscriber(
        cpis_telemetry::Style::Server,
        cpis_telemetry::capped(Some("debug"), "debug"),
        lines.clone(),
    );
    let value = {
        let _guard = tracing::subscriber::set_default(subscriber);
        work.await
    };
    let text = lines.text();
    assert_private(&text);
    (value, text)
}

/// No NHS number, name or date of birth in `text`.
pub fn assert_private(text: &str) {
    assert!(
        cpis_domain::find_nhs_numbers(text).is_empty(),
        "an NHS number was logged: {text}"
    );
    for personal in [FIXTURE_NAME, "Philippa", FIXTURE_DOB] {
        assert!(!text.contains(personal), "{personal} was logged: {text}");
    }
}

pub fn text(sent: &Sent) -> String {
    String::from_utf8(sent.body.clone()).unwrap()
}
