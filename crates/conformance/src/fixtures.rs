//! Builders for synthetic test data, shared with adapters' own tests.

use cpis_domain::ports::StoredPlan;
use cpis_domain::{
    AccessRecord, Accessor, AccessorKind, Authority, NhsNumber, OdsCode, Plan, PlanType, Rbac,
    VisibilityPolicy,
};
use time::macros::datetime;
use time::{Date, OffsetDateTime};

pub const NOW: OffsetDateTime = datetime!(2026-03-02 10:00 UTC);

/// Synthetic NHS numbers (999 range, valid Modulus 11 check digits).
pub const CHILDREN: [&str; 12] = [
    "9990000018",
    "9990000026",
    "9990000034",
    "9990000042",
    "9990000050",
    "9990000069",
    "9990000077",
    "9990000085",
    "9990000093",
    "9990000107",
    "9990000115",
    "9990000123",
];

pub const COUNCIL_A: &str = "E09000033";
pub const COUNCIL_B: &str = "E06000001";

pub fn la(code: &str) -> OdsCode {
    OdsCode::parse(code).expect("a valid test ODS code")
}

pub fn child(index: usize) -> NhsNumber {
    NhsNumber::parse(CHILDREN[index]).expect("a valid synthetic NHS number")
}

pub fn plan(council: &str, nhs_number: NhsNumber, plan_type: PlanType, start: Date) -> Plan {
    Plan {
        upload_sequence: None,
        authority: la(council),
        nhs_number,
        plan_type,
        start_date: start,
        end_date: None,
        delete_date: None,
        due_date: None,
        local_id: Some(format!("case-{}-{}", plan_type.code(), start)),
    }
}

/// As `process_upload` stores it: with the domain's purge day.
pub fn stored(plan: &Plan) -> StoredPlan {
    StoredPlan {
        plan: plan.clone(),
        purge_from: plan.purge_from(&VisibilityPolicy::default()),
    }
}

pub fn accessor(organisation: &str, user_id: &str) -> Accessor {
    Accessor {
        job_role: None,
        kind: AccessorKind::User,
        user_id: user_id.to_owned(),
        rbac: Rbac::B0107,
        organisation_ods: la(organisation),
        organisation_name: format!("Trust {organisation}"),
        setting: "Emergency department".to_owned(),
    }
}

pub fn access(nhs_number: NhsNumber, at: OffsetDateTime, accessor: Accessor) -> AccessRecord {
    AccessRecord {
        id: uuid::Uuid::new_v4().to_string(),
        nhs_number,
        accessed_at: at,
        accessor,
    }
}

pub fn authority(code: &str, name: &str) -> Authority {
    Authority {
        ods_code: la(code),
        name: name.to_owned(),
        office_hours_phone: "020 7946 0000".to_owned(),
        emergency_duty_phone: "020 7946 0999".to_owned(),
        notify_emails: vec!["duty@example.gov.uk".to_owned()],
        notify_sms: vec!["+447700900123".to_owned()],
    }
}
