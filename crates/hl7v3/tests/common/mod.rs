//! Shared by the tests: the synthetic upload of council-interface.md §7.1
//! (NHS numbers in the 999 range, obviously synthetic names) and ways to
//! bend it.
#![allow(dead_code)]

use cpis_domain::{process_upload, OdsCode, UploadResult, VisibilityPolicy};
use cpis_store_memory::MemoryStore;
use time::macros::datetime;
use time::OffsetDateTime;

pub const EXAMPLE: &str = include_str!("../fixtures/upload-000457.xml");

/// When the tests upload: after every plan start of the example.
pub const NOW: OffsetDateTime = datetime!(2025-03-01 02:05:12 UTC);

pub fn council() -> OdsCode {
    OdsCode::parse("E09000033").unwrap()
}

/// The example with `from` replaced by `to` (exactly once).
pub fn edited(from: &str, to: &str) -> String {
    assert_eq!(EXAMPLE.matches(from).count(), 1, "{from:?} must occur once");
    EXAMPLE.replacen(from, to, 1)
}

/// A synthetic record: a CPP for a 999-range NHS number.
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
          <childPerson><birthTime value="20180704"/><name><given>Synthetic</given><family>Testchild</family></name></childPerson>
        </COCT_TP145101GB01.Child>
      </subject>
    </CP-ISRecord></record>"#
    )
}

/// An upload of `records` with the given file id and declared quantity.
pub fn upload(file_id: &str, quantity: usize, records: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<File xmlns="urn:hl7-org:v3" xmlns:npfitlc="NPFIT:HL7:Localisation">
  <creationTime value="20250301020000+0000"/>
  <id extension="{file_id}"/>
  <transmissionQuantity value="{quantity}"/>
  <communicationFunctionSnd><organisation>
    <id root="2.16.840.1.113883.2.1.3.2.4.19.1" extension="E09000033"/>
    <name>Example Borough Council</name>
    <telecom use="WP" value="tel:+441632960001"/>
    <telecom use="EC" value="tel:+441632960002"/>
  </organisation></communicationFunctionSnd>
  {}
</File>
"#,
        records.join("\n")
    )
}

/// Sends a file through the JSON route's domain upload.
pub async fn through_domain(store: &MemoryStore, file: &[u8]) -> UploadResult {
    let parsed = cpis_hl7v3::parse_upload(file).expect("the file reads");
    let body = parsed.batch_json(cpis_domain::UploadMode::Delta);
    process_upload(store, &council(), &body, NOW, &VisibilityPolicy::default())
        .await
        .expect("the domain takes the batch")
}
