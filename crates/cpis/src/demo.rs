//! Demonstration data: two councils' directory entries, so the README's
//! walkthrough works on an empty machine. Contact details are fictional
//! (Ofcom drama ranges and example.gov.uk).

use cpis_domain::ports::{AuthorityDirectory, StoreError};
use cpis_domain::{Authority, OdsCode};

pub const DEMO_COUNCILS: [(&str, &str); 2] = [
    ("E09000033", "Example Borough Council"),
    ("E06000001", "Sample County Council"),
];

/// Writes the demonstration councils' directory entries that are missing;
/// an existing entry (perhaps edited through `PUT /v1/authority`) is kept.
/// Returns how many were written.
pub async fn seed<S: AuthorityDirectory>(store: &S) -> Result<usize, StoreError> {
    let mut written = 0;
    for (i, (code, name)) in DEMO_COUNCILS.iter().enumerate() {
        let ods_code =
            OdsCode::parse(code).map_err(|_| StoreError::Corrupt("demo ODS code".into()))?;
        if store.authority(&ods_code).await?.is_some() {
            continue;
        }
        let entry = Authority {
            ods_code,
            name: (*name).to_owned(),
            office_hours_phone: format!("020 7946 000{i}"),
            emergency_duty_phone: format!("020 7946 099{i}"),
            notify_emails: vec![format!("duty{i}@example.gov.uk")],
            notify_sms: vec![format!("+44770090012{i}")],
        };
        store.put_authority(&entry).await?;
        written += 1;
    }
    Ok(written)
}
