//! Property: whatever order accesses arrive in, the history shown is exactly
//! the 25 newest, newest first: a newer entry is never dropped for an older one.

use cpis_domain::access::most_recent;
use cpis_domain::ports::AccessLog;
use cpis_domain::{AccessRecord, Accessor, AccessorKind, NhsNumber, OdsCode, Rbac, HISTORY_LIMIT};
use cpis_store_memory::MemoryStore;
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

fn access(minute: i64, n: usize) -> AccessRecord {
    AccessRecord {
        id: format!("a{n:04}"),
        nhs_number: NhsNumber::parse("9990000018").unwrap(),
        accessed_at: OffsetDateTime::UNIX_EPOCH
            + Duration::days(20_000)
            + Duration::minutes(minute),
        accessor: Accessor {
            job_role: None,
            kind: AccessorKind::User,
            user_id: format!("user{n}"),
            rbac: Rbac::B0107,
            organisation_ods: OdsCode::parse("RJ1").unwrap(),
            organisation_name: "Hospital".into(),
            setting: "emergency-department".into(),
        },
    }
}

proptest! {
    #[test]
    fn the_history_is_always_the_newest_25(minutes in proptest::collection::vec(0i64..10_000, 0..80)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = MemoryStore::new();
        let records: Vec<AccessRecord> = minutes.iter().enumerate().map(|(n, m)| access(*m, n)).collect();
        runtime.block_on(async {
            for r in &records {
                // Distinct authors, so nothing collapses.
                store.record_access(r, &[], r.accessed_at + Duration::days(1)).await.unwrap();
            }
        });
        let shown = runtime.block_on(store.recent_accesses(&records.first().map_or(
            NhsNumber::parse("9990000018").unwrap(), |r| r.nhs_number), HISTORY_LIMIT)).unwrap();
        let shown = most_recent(shown);

        let mut expected = records.clone();
        expected.sort_by(|a, b| b.accessed_at.cmp(&a.accessed_at).then_with(|| b.id.cmp(&a.id)));
        expected.truncate(HISTORY_LIMIT);
        prop_assert_eq!(shown.len(), records.len().min(HISTORY_LIMIT));
        prop_assert_eq!(shown, expected);
    }
}

proptest! {
    /// The rule alone, on more records than it keeps (the stores may hand it
    /// a whole history), with many equal times so the id tie-break matters.
    #[test]
    fn the_rule_keeps_the_newest_25_of_any_number(minutes in proptest::collection::vec(0i64..50, 0..200)) {
        let records: Vec<AccessRecord> = minutes.iter().enumerate().map(|(n, m)| access(*m, n)).collect();
        let mut expected = records.clone();
        expected.sort_by(|a, b| b.accessed_at.cmp(&a.accessed_at).then_with(|| b.id.cmp(&a.id)));
        expected.truncate(HISTORY_LIMIT);
        prop_assert_eq!(most_recent(records), expected);
    }
}
