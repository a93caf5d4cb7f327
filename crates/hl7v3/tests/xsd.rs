//! Every acknowledgement and ASN this crate renders in its tests validates
//! against NHS Digital's published CP-IS schemas (`shared/hl7v3/CPIS`),
//! with the JDK's validator (`shared/hl7v3/validate`).
//!
//! The validator and when it is required: `cpis_hl7v3::xsd` (feature
//! `test-support`), which the MESH exchange's tests use too.

mod common;

use common::*;
use cpis_domain::{
    Accessor, AccessorKind, Asn, AsnPlan, AuthorityContact, NhsNumber, OdsCode, PlanType, Rbac,
};
use cpis_hl7v3::xsd::assert_valid;
use cpis_hl7v3::{
    parse_upload, render_acknowledgement, render_asn, render_file_rejection, AsnContext, JobRole,
};
use cpis_store_memory::MemoryStore;
use time::macros::datetime;

async fn ack_of(file: &str) -> String {
    let store = MemoryStore::new();
    let ack = through_domain(&store, file.as_bytes())
        .await
        .acknowledgement;
    render_acknowledgement(file.as_bytes(), &ack, NOW).unwrap()
}

fn directory() -> AuthorityContact {
    AuthorityContact {
        ods_code: council(),
        name: "Example Borough Council".to_owned(),
        office_hours_phone: "01632 960001".to_owned(),
        emergency_duty_phone: "+44 1632 960002".to_owned(),
    }
}

#[tokio::test]
async fn every_acknowledgement_validates_against_the_official_schema() {
    let mut documents = Vec::new();
    // CPF03: the synthetic example.
    documents.push(("cpf03-example".to_owned(), ack_of(EXAMPLE).await));
    // CPF02, with 8- and 14-digit dates and an id that needs escaping.
    let all_loaded = upload(
        "000458",
        2,
        &[
            cpp_record("9990000018", "20250115", "CASE-0001"),
            cpp_record(
                "9990000026",
                "20250115103000+0000",
                "CASE &amp; &lt;0002&gt;",
            ),
        ],
    );
    let xml = ack_of(&all_loaded).await;
    assert!(xml.contains("CPF02") && xml.contains(r#"extension="CASE &amp; &lt;0002&gt;""#));
    documents.push(("cpf02".to_owned(), xml));
    // CPF04: every record rejected, for reasons of value and of shape (one
    // record too broken to echo); a 14-digit date is echoed as 12.
    let none_loaded = upload(
        "000459",
        3,
        &[
            cpp_record("9990000010", "202501150000", "C1"),
            cpp_record("9990000026", "20260115103000+0000", "C2"),
            cpp_record("9990000034", "202501150000", "C3")
                .replace("<childPerson>", "<childPerson><childPerson/>"),
        ],
    );
    let xml = ack_of(&none_loaded).await;
    assert!(xml.contains("CPF04") && xml.contains(r#"<value value="202601151030"/>"#));
    assert_eq!(xml.matches("<invalidCP-ISRecord>").count(), 2);
    documents.push(("cpf04".to_owned(), xml));
    // A record fault next to loaded records.
    let fault = edited(r#"<birthTime value="20180704"/>"#, "");
    documents.push(("cpf03-fault".to_owned(), ack_of(&fault).await));
    // CPF01: a file not read at all (id -1, receiver from the directory)...
    let mut broken = EXAMPLE.as_bytes().to_vec();
    broken[EXAMPLE.find("Borough").unwrap()] = 0xFF;
    let error = parse_upload(&broken).unwrap_err();
    let xml = render_file_rejection(&error, &directory(), NOW).unwrap();
    assert!(xml.contains(r#"<id extension="-1"/>"#));
    assert!(xml.contains(r#"<telecom use="WP" value="tel:+441632960001"/>"#));
    documents.push(("cpf01-unread".to_owned(), xml));
    // ...and one read far enough to name its id and sender.
    let count = edited(
        r#"<transmissionQuantity value="3"/>"#,
        r#"<transmissionQuantity value="4"/>"#,
    );
    let error = parse_upload(count.as_bytes()).unwrap_err();
    let xml = render_file_rejection(&error, &directory(), NOW).unwrap();
    assert!(xml.contains(r#"<id extension="000457"/>"#));
    assert!(xml.contains("/File/transmissionQuantity/@value"));
    documents.push(("cpf01-count".to_owned(), xml));

    // Nothing personal leaves in a CPF01.
    for (name, xml) in &documents {
        if name.starts_with("cpf01") {
            assert!(!xml.contains("Childone") && !xml.contains("9990000018"));
        }
    }
    assert_valid("REPC_MT000003GB01", &documents);
}

fn asn(kind: AccessorKind, user_id: &str, local_id: Option<&str>) -> Asn {
    Asn {
        id: "5d1e8a7c-3f2b-4c9a-9e1d-0a1b2c3d4e5f".to_owned(),
        authority: council(),
        nhs_number: NhsNumber::parse("9990000018").unwrap(),
        plans: vec![AsnPlan {
            upload_sequence: None,
            plan_type: PlanType::ChildProtection,
            local_id: local_id.map(str::to_owned),
        }],
        accessed_at: datetime!(2025-03-14 09:42:10 UTC),
        accessor: Accessor {
            job_role: None,
            kind,
            user_id: user_id.to_owned(),
            rbac: Rbac::B0107,
            organisation_ods: OdsCode::parse("X99AA").unwrap(),
            organisation_name: "Example Hospital Emergency Department".to_owned(),
            setting: "emergency-department".to_owned(),
        },
        access_id: "0f6c2d41-8b7a-4e52-a1c3-5d4e3f2a1b00".to_owned(),
        acknowledged_at: None,
        acknowledgement_note: None,
    }
}

#[test]
fn every_asn_validates_against_the_official_schema() {
    let role = JobRole {
        code: "R0110".to_owned(),
        name: "Specialist Registrar".to_owned(),
    };
    let context = |role: Option<&'static JobRole>, name: Option<&'static str>| AsnContext {
        created_at: datetime!(2025-03-14 10:15:02 UTC),
        council_name: "Example Borough Council",
        upload_file_id: "000457",
        job_role: role,
        person_name: name,
    };
    let role: &'static JobRole = Box::leak(Box::new(role));
    let user = asn(AccessorKind::User, "999999999001", Some("CASE-0001"));
    let system = asn(AccessorKind::System, "999999999999", None);
    let documents = vec![
        (
            "user".to_owned(),
            render_asn(&user, &context(Some(role), Some("Dr Test Clinician"))).unwrap(),
        ),
        (
            "user-unnamed".to_owned(),
            render_asn(&user, &context(Some(role), None)).unwrap(),
        ),
        (
            "system-nominee".to_owned(),
            render_asn(&system, &context(Some(role), Some("Dr Test Nominee"))).unwrap(),
        ),
        (
            "system".to_owned(),
            render_asn(&system, &context(None, None)).unwrap(),
        ),
    ];
    let first = &documents[0].1;
    assert!(first.contains(r#"<id root="5D1E8A7C-3F2B-4C9A-9E1D-0A1B2C3D4E5F"/>"#));
    assert!(first.contains(r#"<value root="2.16.840.1.113883.2.1.4.1" extension="9990000018"/>"#));
    assert!(first.contains(r#"<referredToLAUploadFile><value extension="000457"/>"#));
    assert!(first.contains(r#"<effectiveTime value="20250314094210+0000"/>"#));
    assert_valid("REPC_MT000004GB01", &documents);

    // What the schema needs and the ASN lacks is refused, not invented.
    assert!(render_asn(&user, &context(None, None)).is_err());
    assert!(render_asn(
        &asn(AccessorKind::System, "not-an-asid", None),
        &context(None, None)
    )
    .is_err());
    let mut bad_id = user.clone();
    bad_id.id = "not-a-uuid".to_owned();
    assert!(render_asn(&bad_id, &context(Some(role), None)).is_err());
}
