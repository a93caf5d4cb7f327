//! The LA Upload read into the JSON route's batch, through the domain's
//! `process_upload`, and acknowledged; hostile files refused with CPF01 and
//! the XPath of the fault; faults inside a record are CPR07 for it alone.

mod common;

use common::*;
use cpis_domain::{FileOutcome, RecordDetail, RecordOutcomeCode, UploadMode};
use cpis_hl7v3::{parse_upload, render_acknowledgement, FileProblem, MAX_FILE_BYTES};
use cpis_store_memory::MemoryStore;

const MOTHER_PATH: &str =
    "/File/record[3]/CP-ISRecord/subject[1]/COCT_TP145100GB01.UnbornChild/parentMotherPerson";
const CHILD1: &str = "/File/record[1]/CP-ISRecord/subject[1]/COCT_TP145101GB01.Child";

#[test]
fn the_synthetic_example_reads_into_the_json_routes_batch() {
    let file = parse_upload(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(file.file_id, "000457");
    assert_eq!(file.sequence, 457);
    assert_eq!(file.creation_time, "20250301020000+0000");
    assert_eq!(file.record_count, 3);
    assert_eq!(file.plan_count(), 3);
    assert_eq!(file.sender.ods_code.as_str(), "E09000033");
    assert_eq!(file.sender.name, "Example Borough Council");
    assert_eq!(file.sender.phone("WP"), Some("+441632960001"));
    assert_eq!(file.sender.phone("EC"), Some("+441632960002"));
    let body = String::from_utf8(file.batch_json(UploadMode::Delta)).unwrap();
    assert_eq!(
        body,
        concat!(
            r#"{"mode":"delta","records":["#,
            r#"{"local_id":"CASE-0001","nhs_number":"9990000018","plan_type":"CPP","start_date":"2025-01-15"},"#,
            r#"{"delete_date":"2026-03-01","end_date":"2025-02-28","local_id":"CASE-0002","nhs_number":"9990000026","plan_type":"LAC","start_date":"2024-06-01"},"#,
            r#"{"end_date":"2025-01-20","local_id":"CASE-0003","nhs_number":"9990000034","plan_type":"UCPP","start_date":"2025-02-01"}"#,
            r#"],"sequence":457}"#
        )
    );
    assert!(String::from_utf8(file.batch_json(UploadMode::Full))
        .unwrap()
        .contains(r#""mode":"full""#));
}

#[test]
fn names_and_dates_of_birth_are_dropped() {
    let file = parse_upload(EXAMPLE.as_bytes()).unwrap();
    let body = String::from_utf8(file.batch_json(UploadMode::Delta)).unwrap();
    let debug = format!("{file:?}");
    for personal in [
        "Childone",
        "Childtwo",
        "Motherone",
        "20180704",
        "20111120",
        "19990312",
        "Test",
    ] {
        assert!(!body.contains(personal), "{personal} in the batch");
        assert!(!debug.contains(personal), "{personal} in Debug");
    }
    for nhs in ["9990000018", "9990000026", "9990000034", "CASE-0001"] {
        assert!(!debug.contains(nhs), "{nhs} in Debug");
    }
}

#[tokio::test]
async fn one_upload_path_same_outcomes_and_a_replay_answers_the_same() {
    let store = MemoryStore::new();
    let first = through_domain(&store, EXAMPLE.as_bytes()).await;
    assert!(!first.replayed);
    let ack = &first.acknowledgement;
    assert_eq!(ack.sequence, 457);
    assert_eq!(ack.file_outcome, FileOutcome::Partial);
    assert_eq!((ack.loaded, ack.rejected), (2, 1));
    assert_eq!(ack.records[2].outcome, RecordOutcomeCode::Failure);
    assert_eq!(ack.records[2].detail, Some(RecordDetail::EndBeforeStart));

    let xml = render_acknowledgement(EXAMPLE.as_bytes(), ack, NOW).unwrap();
    assert!(xml.contains(r#"<id extension="000457"/><transmissionQuantity value="3"/>"#));
    assert!(xml.contains(r#"<code code="CPF03" displayName="Partial File Upload"/>"#));
    assert!(xml.contains("<location>/File/record[3]/CP-ISRecord/pertinentInformation[1]/COCT_TP146102GB01.UCPInformation/component1/uCPEndDate/value/@value</location>"));
    assert!(xml.contains(
        "<originalText>END_BEFORE_START: the plan end date is before its start date</originalText>"
    ));
    assert!(xml.contains(
        r#"<failedReturnedCP-ISRecords><value value="1"/></failedReturnedCP-ISRecords>"#
    ));
    assert!(xml.contains(
        r#"<successfulReturnedCP-ISRecords><value value="2"/></successfulReturnedCP-ISRecords>"#
    ));
    assert_eq!(xml.matches("<validCP-ISRecord>").count(), 2);
    assert_eq!(xml.matches("<invalidCP-ISRecord>").count(), 1);
    assert!(xml.contains(r#"<creationTime value="20250301020512+0000"/>"#));

    // The same file again: the stored acknowledgement, rendered from the
    // file in hand, identical.
    let again = through_domain(&store, EXAMPLE.as_bytes()).await;
    assert!(again.replayed);
    assert_eq!(again.acknowledgement, first.acknowledgement);
    assert_eq!(
        render_acknowledgement(EXAMPLE.as_bytes(), &again.acknowledgement, NOW).unwrap(),
        xml
    );
}

#[tokio::test]
async fn an_acknowledgement_of_another_file_is_not_rendered() {
    let store = MemoryStore::new();
    let ack = through_domain(&store, EXAMPLE.as_bytes())
        .await
        .acknowledgement;
    let other = upload(
        "000458",
        1,
        &[cpp_record("9990000018", "202501150000", "C1")],
    );
    assert!(render_acknowledgement(other.as_bytes(), &ack, NOW).is_err());
}

// ---------------------------------------------------------------------------
// CPF01: the file refused whole, with the XPath of the fault.

fn refused(file: &[u8]) -> cpis_hl7v3::FileError {
    let error = parse_upload(file).expect_err("the file is refused");
    // Never content in the error's text.
    let text = error.to_string();
    for personal in [
        "Childone",
        "Motherone",
        "20180704",
        "9990000018",
        "CASE-0001",
    ] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
    error
}

fn refused_at(file: &str, problem: FileProblem, location: &str) -> cpis_hl7v3::FileError {
    let error = refused(file.as_bytes());
    assert_eq!(
        (error.problem, error.location.as_str()),
        (problem, location)
    );
    error
}

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

#[test]
fn a_doctype_is_refused_and_no_entity_is_expanded() {
    for doctype in [
        r#"<!DOCTYPE File [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"#,
        r#"<!DOCTYPE File [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>"#,
        r#"<!DOCTYPE File SYSTEM "http://127.0.0.1/upload.dtd">"#,
        "<!DOCTYPE File>",
    ] {
        let file = edited(DECL, &format!("{DECL}\n{doctype}"));
        let error = refused_at(&file, FileProblem::Doctype, "/");
        assert_eq!(error.file_id, None, "nothing of the file was read");
    }
}

#[test]
fn an_undefined_entity_is_refused_wherever_it_is() {
    refused_at(
        &edited(
            "<name>Example Borough Council</name>",
            "<name>Example &xxe; Council</name>",
        ),
        FileProblem::UndefinedEntity,
        "/",
    );
    refused_at(
        &edited(r#"extension="CASE-0001""#, r#"extension="&xxe;""#),
        FileProblem::UndefinedEntity,
        "/",
    );
    // XML's own five and character references are read.
    let file = parse_upload(
        edited(
            "<name>Example Borough Council</name>",
            "<name>Example &amp; &#66;orough &lt;Council&gt;</name>",
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(file.sender.name, "Example & Borough <Council>");
}

#[test]
fn a_repeated_envelope_element_is_refused() {
    refused_at(
        &edited(
            r#"<id extension="000457"/>"#,
            r#"<id extension="000457"/><id extension="000458"/>"#,
        ),
        FileProblem::RepeatedElement,
        "/File/id[2]",
    );
    refused_at(
        &edited(
            r#"<telecom use="EC" value="tel:+441632960002"/>"#,
            r#"<telecom use="EC" value="tel:+441632960002"/><telecom use="EC" value="tel:+441632960003"/>"#,
        ),
        FileProblem::RepeatedElement,
        "/File/communicationFunctionSnd/organisation/telecom[3]",
    );
}

#[test]
fn a_telecom_use_outside_the_schemas_codes_is_refused() {
    refused_at(
        &edited(r#"use="WP""#, r#"use="XX""#),
        FileProblem::InvalidValue,
        "/File/communicationFunctionSnd/organisation/telecom[1]/@use",
    );
    refused_at(
        &edited(
            r#"value="tel:+441632960001""#,
            r#"value="tel:01632 960001""#,
        ),
        FileProblem::InvalidValue,
        "/File/communicationFunctionSnd/organisation/telecom[1]/@value",
    );
    assert!(parse_upload(edited(r#"use="WP""#, r#"use="WP H""#).as_bytes()).is_ok());
}

#[test]
fn a_transmission_quantity_that_disagrees_is_refused() {
    for quantity in ["2", "4", "0"] {
        let error = refused_at(
            &edited(
                r#"<transmissionQuantity value="3"/>"#,
                &format!(r#"<transmissionQuantity value="{quantity}"/>"#),
            ),
            FileProblem::CountMismatch,
            "/File/transmissionQuantity/@value",
        );
        assert_eq!(error.file_id.as_deref(), Some("000457"));
    }
    refused_at(
        &edited(
            r#"<transmissionQuantity value="3"/>"#,
            r#"<transmissionQuantity value="three"/>"#,
        ),
        FileProblem::InvalidValue,
        "/File/transmissionQuantity/@value",
    );
}

#[test]
fn an_oversize_file_is_refused_before_it_is_read() {
    let mut file = EXAMPLE.as_bytes().to_vec();
    file.resize(MAX_FILE_BYTES + 1, b' ');
    let error = refused(&file);
    assert_eq!(error.problem, FileProblem::Oversize);
    assert_eq!(error.file_id, None);
}

#[test]
fn too_many_records_are_refused() {
    let records = vec![cpp_record("9990000018", "202501150000", "C"); cpis_hl7v3::MAX_RECORDS + 1];
    let file = upload("7", records.len(), &records);
    refused_at(&file, FileProblem::TooManyRecords, "/File/record[10001]");
}

#[test]
fn broken_utf8_and_other_encodings_are_refused() {
    let mut file = EXAMPLE.as_bytes().to_vec();
    let at = EXAMPLE.find("Borough").unwrap();
    file[at] = 0xFF;
    let error = refused(&file);
    assert_eq!((error.problem, error.file_id), (FileProblem::NotUtf8, None));
    refused_at(
        &edited(DECL, r#"<?xml version="1.0" encoding="ISO-8859-1"?>"#),
        FileProblem::NotUtf8,
        "/",
    );
    // A UTF-8 byte order mark is fine.
    assert!(parse_upload(format!("\u{FEFF}{EXAMPLE}").as_bytes()).is_ok());
}

#[test]
fn missing_envelope_elements_are_refused_where_they_should_be() {
    refused_at(
        &edited(r#"<creationTime value="20250301020000+0000"/>"#, ""),
        FileProblem::MissingElement,
        "/File/creationTime",
    );
    refused_at(
        &edited(r#"<id extension="000457"/>"#, r#"<id/>"#),
        FileProblem::MissingElement,
        "/File/id/@extension",
    );
    refused_at(
        &edited("<name>Example Borough Council</name>", ""),
        FileProblem::MissingElement,
        "/File/communicationFunctionSnd/organisation/name",
    );
    refused_at(
        &upload("5", 0, &[]),
        FileProblem::MissingElement,
        "/File/record",
    );
}

#[test]
fn a_file_id_that_is_not_a_sequence_is_refused_and_acknowledged_as_minus_one() {
    for id in ["45a", "0", "", "9007199254740992", "-1"] {
        let error = refused_at(
            &edited(
                r#"<id extension="000457"/>"#,
                &format!(r#"<id extension="{id}"/>"#),
            ),
            FileProblem::InvalidValue,
            "/File/id/@extension",
        );
        assert_eq!(error.file_id, None);
    }
}

#[test]
fn other_documents_and_broken_xml_are_refused() {
    refused_at(
        &EXAMPLE.replace("urn:hl7-org:v3", "urn:example:other"),
        FileProblem::NotAnUpload,
        "/",
    );
    refused_at(
        &EXAMPLE
            .replace("<File ", "<FileResponse ")
            .replace("</File>", "</FileResponse>"),
        FileProblem::NotAnUpload,
        "/",
    );
    refused_at("", FileProblem::NotAnUpload, "/");
    // Truncated after the id: the id was read, so the acknowledgement can say it.
    let cut = &EXAMPLE[..EXAMPLE.find("<record>").unwrap() + 30];
    let error = refused(cut.as_bytes());
    assert_eq!(error.problem, FileProblem::NotWellFormed);
    assert_eq!(error.file_id.as_deref(), Some("000457"));
    // Mismatched end tags, text where only elements go, an unknown element.
    assert_eq!(
        refused(edited("</communicationFunctionSnd>", "</communicationFunction>").as_bytes())
            .problem,
        FileProblem::NotWellFormed
    );
    refused_at(
        &edited("<record><!-- 1", "loose text<record><!-- 1"),
        FileProblem::UnexpectedElement,
        "/File/text()",
    );
    refused_at(
        &edited(
            r#"<id extension="000457"/>"#,
            r#"<id extension="000457"/><note/>"#,
        ),
        FileProblem::UnexpectedElement,
        "/File/note",
    );
}

#[test]
fn deep_or_bloated_records_are_refused() {
    let deep = format!("{}{}", "<x>".repeat(40), "</x>".repeat(40));
    assert_eq!(
        refused(edited("<record><!-- 1", &format!("<record>{deep}<!-- 1")).as_bytes()).problem,
        FileProblem::TooLarge
    );
    let long = "A".repeat(2_000);
    assert_eq!(
        refused(
            edited(
                "<given>Test</given><family>Childone</family>",
                &format!("<given>{long}</given><family>Childone</family>")
            )
            .as_bytes()
        )
        .problem,
        FileProblem::TooLarge
    );
}

// ---------------------------------------------------------------------------
// CPR07: a fault inside one record fails that record alone, with its XPath.

async fn acknowledged(file: &str) -> (cpis_domain::Acknowledgement, String) {
    let store = MemoryStore::new();
    let ack = through_domain(&store, file.as_bytes())
        .await
        .acknowledgement;
    let xml = render_acknowledgement(file.as_bytes(), &ack, NOW).unwrap();
    (ack, xml)
}

fn detail(code: &str, location: &str) -> String {
    format!("<originalText>{code}: ")
        + &format!("</originalText></code><location>{location}</location>")
}

fn has_detail(xml: &str, code: &str, location: &str) -> bool {
    let (start, end) = detail(code, location)
        .split_once(": </originalText>")
        .map(|(a, b)| (format!("{a}: "), format!("</originalText>{b}")))
        .unwrap();
    xml.split("<acknowledgementRecordDetail>")
        .any(|d| d.contains(&start) && d.contains(&end))
}

#[tokio::test]
async fn record_faults_are_cpr07_with_the_xpath_of_the_element() {
    let cases: Vec<(String, &str, String)> = vec![
        (
            edited(r#"<birthTime value="20180704"/>"#, ""),
            "MISSING_ELEMENT",
            format!("{CHILD1}/childPerson/birthTime"),
        ),
        (
            edited(
                r#"<birthTime value="20180704"/>"#,
                r#"<birthTime value="2018-07-04"/>"#,
            ),
            "INVALID_VALUE",
            format!("{CHILD1}/childPerson/birthTime/@value"),
        ),
        (
            edited(
                "<name><given>Test</given><family>Childone</family></name>",
                "<name><given>Test</given><given>Again</given><family>Childone</family></name>",
            ),
            "REPEATED_ELEMENT",
            format!("{CHILD1}/childPerson/name/given[2]"),
        ),
        (
            edited(
                r#"<component><cPPStartDate><value value="202501150000"/></cPPStartDate></component>"#,
                r#"<component><cPPStartDate><value value="202501150000"/></cPPStartDate></component><component><cPPStartDate><value value="202501160000"/></cPPStartDate></component>"#,
            ),
            "REPEATED_ELEMENT",
            "/File/record[1]/CP-ISRecord/pertinentInformation[1]/COCT_TP146101GB01.CPPInformation/component[2]".to_owned(),
        ),
        (
            edited(
                r#"<component><cPPStartDate><value value="202501150000"/></cPPStartDate></component>"#,
                "",
            ),
            "MISSING_ELEMENT",
            "/File/record[1]/CP-ISRecord/pertinentInformation[1]/COCT_TP146101GB01.CPPInformation/component".to_owned(),
        ),
        (
            edited(
                r#"<id root="2.16.840.1.113883.2.1.4.1" extension="9990000018"/>"#,
                r#"<id root="2.16.840.1.113883.2.1.4.1" extension="9990000018"/><colour>red</colour>"#,
            ),
            "UNEXPECTED_ELEMENT",
            format!("{CHILD1}/colour"),
        ),
        (
            edited(
                r#"<id root="2.16.840.1.113883.2.1.4.1" extension="9990000018"/>"#,
                r#"<id root="1.2.3" extension="9990000018"/>"#,
            ),
            "INVALID_VALUE",
            format!("{CHILD1}/id[1]/@root"),
        ),
        (
            edited(
                r#"<id root="2.16.840.1.113883.2.1.4.1" extension="9990000018"/>"#,
                r#"<id root="2.16.840.1.113883.2.1.4.1" extension="9990000010"/>"#,
            ),
            "INVALID_NHS_NUMBER",
            format!("{CHILD1}/id[1]/@extension"),
        ),
        (
            edited(
                r#"<value value="202501150000"/>"#,
                r#"<value value="202502300000"/>"#,
            ),
            "INVALID_DATE",
            "/File/record[1]/CP-ISRecord/pertinentInformation[1]/COCT_TP146101GB01.CPPInformation/component/cPPStartDate/value/@value".to_owned(),
        ),
        (
            edited(
                r#"<value value="202501150000"/>"#,
                r#"<value value="202601150000"/>"#,
            ),
            "START_DATE_IN_FUTURE",
            "/File/record[1]/CP-ISRecord/pertinentInformation[1]/COCT_TP146101GB01.CPPInformation/component/cPPStartDate/value/@value".to_owned(),
        ),
        (
            edited(
                r#"<id root="2.16.840.1.113883.2.1.4.1" extension="9990000034"/>"#,
                r#"<id root="2.16.840.1.113883.2.1.4.1" extension="9990000035"/>"#,
            ),
            "INVALID_NHS_NUMBER",
            "/File/record[3]/CP-ISRecord/subject[1]/COCT_TP145100GB01.UnbornChild/parentMotherPerson/playedMother/id[1]/@extension".to_owned(),
        ),
        (
            edited(
                r#"<id root="2.16.840.1.113883.2.1.4.1" extension="9990000034"/>"#,
                "",
            ),
            "MISSING_MOTHERS_NHS_NUMBER",
            "/File/record[3]/CP-ISRecord/subject[1]/COCT_TP145100GB01.UnbornChild".to_owned(),
        ),
        (
            edited(
                r#"<name><given>Test</given><family>Motherone</family></name>"#,
                "",
            ),
            "MISSING_ELEMENT",
            format!("{MOTHER_PATH}/name"),
        ),
        (
            edited(
                r#"<component1><uCPEndDate><value value="202501200000"/></uCPEndDate></component1>"#,
                "",
            ),
            "MISSING_ELEMENT",
            "/File/record[3]/CP-ISRecord/pertinentInformation[1]/COCT_TP146102GB01.UCPInformation/component1".to_owned(),
        ),
        (
            edited(r#"extension="CASE-0001""#, &format!(r#"extension="{}""#, "C".repeat(65))),
            "INVALID_LOCAL_ID",
            format!("{CHILD1}/id[2]/@extension"),
        ),
    ];
    for (file, code, location) in cases {
        let (ack, xml) = acknowledged(&file).await;
        assert!(
            has_detail(&xml, code, &location),
            "{code} at {location} in\n{xml}"
        );
        // The other records are not affected by record 1's or 3's fault.
        assert!(ack.loaded >= 1, "{code}: {ack:?}");
        assert!(!xml.contains("CPF01"));
    }
}

#[tokio::test]
async fn the_same_plan_twice_in_a_file_rejects_both() {
    let file = upload(
        "12",
        3,
        &[
            cpp_record("9990000018", "202501150000", "C1"),
            cpp_record("9990000026", "202501150000", "C2"),
            cpp_record("9990000018", "20250115", "C3"),
        ],
    );
    let (ack, xml) = acknowledged(&file).await;
    assert_eq!(ack.file_outcome, FileOutcome::Partial);
    for n in [1, 3] {
        assert!(has_detail(
            &xml,
            "DUPLICATE_IN_BATCH",
            &format!("/File/record[{n}]/CP-ISRecord/pertinentInformation[1]/COCT_TP146101GB01.CPPInformation")
        ));
    }
}

#[tokio::test]
async fn a_record_with_several_plans_is_rejected_if_any_plan_is() {
    // Record 1 carries a CPP and an LAC; the LAC ends before it starts.
    let file = edited(
        "</COCT_TP146101GB01.CPPInformation>\n      </pertinentInformation>",
        r#"</COCT_TP146101GB01.CPPInformation>
      </pertinentInformation>
      <pertinentInformation>
        <npfitlc:contentId root="2.16.840.1.113883.2.1.3.2.4.18.16" extension="COCT_TP146100GB01#LACInformation"/>
        <COCT_TP146100GB01.LACInformation>
          <component><lACStartDate><value value="20250110"/></lACStartDate></component>
          <component1><lACEndDate><value value="20250101"/></lACEndDate></component1>
        </COCT_TP146100GB01.LACInformation>
      </pertinentInformation>"#,
    );
    let parsed = parse_upload(file.as_bytes()).unwrap();
    assert_eq!((parsed.record_count, parsed.plan_count()), (3, 4));
    let (ack, xml) = acknowledged(&file).await;
    assert_eq!((ack.loaded, ack.rejected), (2, 2));
    assert!(has_detail(
        &xml,
        "END_BEFORE_START",
        "/File/record[1]/CP-ISRecord/pertinentInformation[2]/COCT_TP146100GB01.LACInformation/component1/lACEndDate/value/@value"
    ));
    assert!(xml.contains(
        r#"<failedReturnedCP-ISRecords><value value="2"/></failedReturnedCP-ISRecords>"#
    ));
    assert!(xml.contains(
        r#"<successfulReturnedCP-ISRecords><value value="1"/></successfulReturnedCP-ISRecords>"#
    ));
}

#[tokio::test]
async fn fixed_value_attributes_comments_and_prefixes_are_ignored() {
    let file = EXAMPLE
        .replace("<CP-ISRecord>", r#"<CP-ISRecord classCode="INFO" moodCode="EVN">"#)
        .replace(
            r#"<File xmlns="urn:hl7-org:v3" xmlns:npfitlc="NPFIT:HL7:Localisation">"#,
            r#"<hl7:File xmlns:hl7="urn:hl7-org:v3" xmlns:npfitlc="NPFIT:HL7:Localisation" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:hl7-org:v3 x.xsd">"#,
        )
        .replace("</File>", "</hl7:File>")
        .replace("<", "<hl7:")
        .replace("<hl7:/", "</hl7:")
        .replace("<hl7:?", "<?")
        .replace("<hl7:!", "<!")
        .replace("hl7:hl7:", "hl7:")
        .replace("hl7:npfitlc:", "npfitlc:");
    let parsed = parse_upload(file.as_bytes()).unwrap();
    let plain = parse_upload(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(
        parsed.batch_json(UploadMode::Delta),
        plain.batch_json(UploadMode::Delta)
    );
}

#[test]
fn a_location_never_shows_an_element_name_that_could_hold_an_nhs_number() {
    refused_at(
        &edited(
            r#"<id extension="000457"/>"#,
            r#"<id extension="000457"/><n9990000018/>"#,
        ),
        FileProblem::UnexpectedElement,
        "/File/*",
    );
    refused_at(
        &edited(
            r#"<id extension="000457"/>"#,
            r#"<id extension="000457"/><Ünïcode/>"#,
        ),
        FileProblem::UnexpectedElement,
        "/File/*",
    );
}

// Mutations of the example never panic, and a refusal never names an NHS
// number, whatever bytes the file holds.
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    #[test]
    fn mutated_files_never_panic_nor_leak_into_errors(
        edits in proptest::collection::vec((0usize..4000, proptest::num::u8::ANY, 0u8..3), 1..8)
    ) {
        let mut file = EXAMPLE.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at % (file.len() + 1);
            match op {
                0 if at < file.len() => file[at] = byte,
                1 => file.insert(at, byte),
                _ if at < file.len() => { file.remove(at); }
                _ => {}
            }
        }
        match parse_upload(&file) {
            Ok(parsed) => {
                let _ = parsed.batch_json(UploadMode::Full);
            }
            Err(error) => {
                let shown = format!("{error} {error:?}");
                proptest::prop_assert!(cpis_domain::find_nhs_numbers(&shown).is_empty(), "{}", shown);
            }
        }
    }
}

async fn full(store: &MemoryStore, file: &str) -> cpis_domain::UploadResult {
    let parsed = parse_upload(file.as_bytes()).unwrap();
    cpis_domain::process_upload(
        store,
        &council(),
        &parsed.batch_json(UploadMode::Full),
        NOW,
        &cpis_domain::VisibilityPolicy::default(),
    )
    .await
    .unwrap()
}

async fn children_with_plans(store: &MemoryStore) -> Vec<String> {
    use cpis_domain::ports::PlanStore;
    let mut keys: Vec<String> = store
        .plan_keys_for_authority(&council())
        .await
        .unwrap()
        .into_iter()
        .map(|k| format!("{}/{}", k.nhs_number.expose(), k.plan_type))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_full_snapshot_keeps_the_plans_of_a_child_whose_record_is_broken() {
    let store = MemoryStore::new();
    let loaded = full(&store, EXAMPLE).await;
    assert_eq!(loaded.acknowledgement.loaded, 2);
    assert_eq!(
        children_with_plans(&store).await,
        ["9990000018/CPP", "9990000026/LAC"]
    );
    // The next nightly snapshot: child 1's record lost its name (a CPR07 of
    // shape), child 2 is gone from the council's extract.
    let broken = cpp_record("9990000018", "202501150000", "CASE-0001").replace(
        "<name><given>Synthetic</given><family>Testchild</family></name>",
        "",
    );
    let next = upload(
        "000458",
        2,
        &[
            broken,
            cpp_record("9990000034", "202502010000", "CASE-0003"),
        ],
    );
    let result = full(&store, &next).await;
    let ack = &result.acknowledgement;
    assert_eq!((ack.loaded, ack.rejected, ack.withdrawn), (1, 1, 1));
    // Child 1's plan stays (its record failed); child 2's is withdrawn.
    assert_eq!(
        children_with_plans(&store).await,
        ["9990000018/CPP", "9990000034/CPP"]
    );
}

#[tokio::test]
async fn a_different_file_with_a_used_id_is_refused_by_the_ledger() {
    let store = MemoryStore::new();
    through_domain(&store, EXAMPLE.as_bytes()).await;
    let other = edited(r#"value="202406010000""#, r#"value="202406020000""#);
    let parsed = parse_upload(other.as_bytes()).unwrap();
    let refused = cpis_domain::process_upload(
        &store,
        &council(),
        &parsed.batch_json(UploadMode::Delta),
        NOW,
        &cpis_domain::VisibilityPolicy::default(),
    )
    .await;
    assert!(matches!(
        refused,
        Err(cpis_domain::UploadError::SequenceReused { sequence: 457 })
    ));
    // A file differing only in what is dropped (a name, the creation time) is
    // the same batch: a replay.
    let renamed = edited("<family>Childone</family>", "<family>Childuno</family>")
        .replace("20250301020000+0000", "20250302020000+0000");
    assert!(through_domain(&store, renamed.as_bytes()).await.replayed);
}
