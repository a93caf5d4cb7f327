//! Synthetic councils, children, plans and clinicians for a run.

use cpis_domain::nhs_number::check_digit;
use cpis_domain::ports::{PlanStore, UploadLedger};
use cpis_domain::{
    process_upload, AccessorKind, Authority, Clinician, NhsNumber, OdsCode, Rbac, VisibilityPolicy,
};
use rand::rngs::StdRng;
use rand::Rng;
use time::macros::datetime;
use time::OffsetDateTime;

/// A council for the harness: one duty-team email and one SMS number, so
/// every delivery is one email and one SMS.
pub fn council(ods: &OdsCode, index: usize) -> Authority {
    Authority {
        ods_code: ods.clone(),
        name: format!("Fault Harness Council {index}"),
        office_hours_phone: "020 7946 0000".to_owned(),
        emergency_duty_phone: "020 7946 0999".to_owned(),
        notify_emails: vec![format!("duty{index}@council.example")],
        notify_sms: vec![format!("+4477009{index:05}")],
    }
}

/// The `n`th synthetic NHS number of the harness (999 range, valid check digit).
pub(super) fn synthetic_child(mut n: usize) -> NhsNumber {
    loop {
        let body = format!("999{:06}", n % 1_000_000);
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        if let Some(check) = check_digit(&digits) {
            if let Ok(number) = NhsNumber::parse(&format!("{body}{check}")) {
                return number;
            }
        }
        n += 1_000_000 / 3 + 1;
    }
}

pub(super) const START: OffsetDateTime = datetime!(2025-03-01 08:00 UTC);

/// Plans for the children, uploaded by each council through the domain's
/// upload: most children have one council, a quarter two (two ASNs per
/// access), and a tenth none (their checks store nothing).
pub(super) async fn upload_plans<S>(
    store: &S,
    councils: &[OdsCode],
    children: &[NhsNumber],
    rng: &mut StdRng,
) -> Result<(), String>
where
    S: PlanStore + UploadLedger,
{
    let mut records: Vec<Vec<serde_json::Value>> = vec![Vec::new(); councils.len()];
    for (index, child) in children.iter().enumerate() {
        if rng.gen_bool(0.1) {
            continue;
        }
        let first = rng.gen_range(0..councils.len());
        let mut holders = vec![first];
        if councils.len() > 1 && rng.gen_bool(0.25) {
            holders.push((first + rng.gen_range(1..councils.len())) % councils.len());
        }
        for holder in holders {
            let plan_type = if rng.gen_bool(0.6) { "LAC" } else { "CPP" };
            records[holder].push(serde_json::json!({
                "nhs_number": child.expose(),
                "plan_type": plan_type,
                "start_date": "2024-06-01",
                "local_id": format!("FH-{index}"),
            }));
        }
    }
    for (council, records) in councils.iter().zip(records) {
        if records.is_empty() {
            continue;
        }
        let body = serde_json::json!({"sequence": 1, "mode": "delta", "records": records});
        let result = process_upload(
            store,
            council,
            body.to_string().as_bytes(),
            START,
            &VisibilityPolicy::default(),
        )
        .await
        .map_err(|e| format!("upload for {council}: {e}"))?;
        if result.acknowledgement.rejected != 0 {
            return Err(format!("upload for {council} rejected records"));
        }
    }
    Ok(())
}

pub(super) fn clinician(rng: &mut StdRng) -> Clinician {
    let hospital = rng.gen_range(0..40);
    Clinician {
        job_role: None,
        kind: if rng.gen_bool(0.1) {
            AccessorKind::System
        } else {
            AccessorKind::User
        },
        user_id: format!("fh-user-{hospital}-{}", rng.gen_range(0..5)),
        // A few scheduled-care callers: a silent read, no ASN.
        rbac: if rng.gen_bool(0.05) {
            Rbac::B0170
        } else {
            Rbac::B0107
        },
        organisation_ods: OdsCode::parse(&format!("RF{hospital:02}"))
            .expect("a valid harness ODS code"),
        organisation_name: format!("Harness Hospital {hospital}"),
        setting: "Emergency department".to_owned(),
    }
}
