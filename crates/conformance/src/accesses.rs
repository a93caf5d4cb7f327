//! `AccessLog` (the 24-hour collapse, history), `CheckReceipts` and
//! `CheckLedger` (a check's writes in one).

use cpis_domain::access::most_recent;
use cpis_domain::check::notifications_for;
use cpis_domain::ports::{AccessWrite, CheckWrite, NewAccess};
use cpis_domain::{AccessRecord, Asn, AuditEvent};
use time::Duration;

use crate::fixtures::*;
use crate::support::*;
use crate::Store;

pub async fn record_access_writes_access_and_asns_together<S: Store>(store: &S) {
    let access = access(child(0), NOW, accessor("RJ1", "user-1"));
    let asns = accessed(store, &access, &plans_at_both_councils()).await;
    assert_eq!(asns.len(), 2);
    assert_eq!(
        store.recent_accesses(&child(0), 25).await.expect("read"),
        vec![access.clone()]
    );
    let for_a: Vec<&Asn> = asns
        .iter()
        .filter(|a| a.authority == la(COUNCIL_A))
        .collect();
    let for_b: Vec<&Asn> = asns
        .iter()
        .filter(|a| a.authority == la(COUNCIL_B))
        .collect();
    assert_eq!(
        whole_inbox(store, COUNCIL_A, 10).await,
        for_a.into_iter().cloned().collect::<Vec<_>>()
    );
    assert_eq!(
        whole_inbox(store, COUNCIL_B, 10).await,
        for_b.into_iter().cloned().collect::<Vec<_>>()
    );
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 10)
        .await
        .expect("claim");
    assert_eq!(
        sorted_ids(&claimed),
        sorted_ids(&asns),
        "both in the outbox"
    );
    assert!(store
        .recent_accesses(&child(1), 25)
        .await
        .expect("read")
        .is_empty());
}

pub async fn same_author_within_window_is_collapsed<S: Store>(store: &S) {
    let plans = plans_at_both_councils();
    let first = access(child(0), NOW, accessor("RJ1", "user-1"));
    accessed(store, &first, &plans).await;
    // (how much later, collapse since): the last starts the window exactly
    // at the first access, which still collapses (`at or after`).
    for (later, since) in [
        (Duration::ZERO, NOW - cpis_domain::COLLAPSE_WINDOW),
        (
            Duration::hours(1),
            NOW + Duration::hours(1) - cpis_domain::COLLAPSE_WINDOW,
        ),
        (Duration::hours(30), NOW),
    ] {
        let repeat = access(child(0), NOW + later, accessor("RJ1", "user-1"));
        let repeat_asns = notifications_for(&repeat, &plans);
        let written = store
            .record_access(&repeat, &repeat_asns, since)
            .await
            .expect("record");
        assert_eq!(written, AccessWrite::Collapsed, "{later}");
        for asn in &repeat_asns {
            assert_eq!(
                store
                    .notification(&asn.authority, &asn.id)
                    .await
                    .expect("read"),
                None,
                "a collapsed access writes no ASN"
            );
        }
    }
    assert_eq!(
        store.recent_accesses(&child(0), 25).await.expect("read"),
        vec![first]
    );
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2, "only the first access's ASNs");
}

pub async fn different_author_or_older_access_is_recorded<S: Store>(store: &S) {
    let plans = plans_at_both_councils();
    let first = access(child(0), NOW, accessor("RJ1", "user-1"));
    accessed(store, &first, &plans).await;
    let since = NOW + Duration::hours(1) - cpis_domain::COLLAPSE_WINDOW;
    let cases = [
        (
            "another user, same organisation",
            accessor("RJ1", "user-2"),
            child(0),
        ),
        (
            "same user id, another organisation",
            accessor("RQM", "user-1"),
            child(0),
        ),
        (
            "same author, another child",
            accessor("RJ1", "user-1"),
            child(1),
        ),
    ];
    let mut expected_asns = 2;
    for (case, who, nhs) in cases {
        let repeat = access(nhs, NOW + Duration::hours(1), who);
        let asns = notifications_for(&repeat, &plans);
        expected_asns += asns.len();
        assert_eq!(
            store
                .record_access(&repeat, &asns, since)
                .await
                .expect("record"),
            AccessWrite::Recorded,
            "{case}"
        );
    }
    // The same author again, once the earlier access is older than the window.
    let next_day = access(
        child(0),
        NOW + Duration::hours(25),
        accessor("RJ1", "user-1"),
    );
    let asns = notifications_for(&next_day, &plans);
    expected_asns += asns.len();
    assert_eq!(
        store
            .record_access(&next_day, &asns, NOW + Duration::seconds(1))
            .await
            .expect("record"),
        AccessWrite::Recorded
    );
    assert_eq!(
        store
            .recent_accesses(&child(0), 25)
            .await
            .expect("read")
            .len(),
        4
    );
    assert_eq!(
        store
            .recent_accesses(&child(1), 25)
            .await
            .expect("read")
            .len(),
        1
    );
    let claimed = store
        .claim_undelivered(NOW, Duration::minutes(5), 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), expected_asns);
}

pub async fn history_is_newest_first_and_bounded<S: Store>(store: &S) {
    let plans = plans_at_both_councils();
    let mut all: Vec<AccessRecord> = Vec::new();
    // 31 accesses by distinct authors, written out of time order, two of
    // them at the same instant (ties break by id).
    for i in 0..31i64 {
        let minutes = (i * 17) % 31;
        let at = NOW + Duration::minutes(minutes) + Duration::nanoseconds(123);
        let record = access(
            child(0),
            // The last shares an instant with the first.
            match all.first() {
                Some(first) if i == 30 => first.accessed_at,
                _ => at,
            },
            accessor("RJ1", &format!("user-{i}")),
        );
        accessed(store, &record, &plans).await;
        all.push(record);
    }
    let other = access(child(1), NOW + Duration::days(1), accessor("RJ1", "user-x"));
    accessed(store, &other, &plans).await;

    let stored = store.recent_accesses(&child(0), 25).await.expect("read");
    assert!(
        stored.iter().all(|r| r.nhs_number == child(0)),
        "only this child's accesses"
    );
    let shown = most_recent(stored);
    let expected = most_recent(all.clone());
    assert_eq!(shown.len(), cpis_domain::HISTORY_LIMIT);
    assert_eq!(shown, expected, "the 25 newest, newest first, intact");
    assert!(shown
        .windows(2)
        .all(|w| w[0].accessed_at >= w[1].accessed_at));
}

pub async fn check_receipts_keep_the_latest<S: Store>(store: &S) {
    let trust = la("RJ1");
    assert_eq!(
        store.last_check(&child(0), &trust).await.expect("read"),
        None
    );
    store
        .note_check(&child(0), &trust, NOW)
        .await
        .expect("note");
    store
        .note_check(&child(0), &trust, NOW + Duration::hours(2))
        .await
        .expect("note");
    assert_eq!(
        store.last_check(&child(0), &trust).await.expect("read"),
        Some(NOW + Duration::hours(2))
    );
    // A late-arriving older check does not move it back.
    store
        .note_check(&child(0), &trust, NOW + Duration::hours(1))
        .await
        .expect("note");
    assert_eq!(
        store.last_check(&child(0), &trust).await.expect("read"),
        Some(NOW + Duration::hours(2))
    );
    assert_eq!(
        store.last_check(&child(0), &la("RQM")).await.expect("read"),
        None
    );
    assert_eq!(
        store.last_check(&child(1), &trust).await.expect("read"),
        None
    );
}

/// What an ASN file to a council names beyond the plan and the access (issue
/// 13): the upload that last stored the plan, and the person's job role.
/// Stored with the plan, the access and the ASN, read back unchanged; absent
/// where it was not given.
pub async fn plans_accesses_and_asns_keep_what_an_asn_file_names<S: Store>(store: &S) {
    use cpis_domain::JobRole;
    let plan = cpis_domain::Plan {
        upload_sequence: Some(9_007_199_254_740_991),
        ..plan(
            COUNCIL_A,
            child(3),
            cpis_domain::PlanType::ChildProtection,
            time::macros::date!(2025 - 01 - 15),
        )
    };
    let untracked = plan_of(COUNCIL_B, child(3));
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&plan)], &[])
        .await
        .expect("apply");
    store
        .apply_changes(&la(COUNCIL_B), &[stored(&untracked)], &[])
        .await
        .expect("apply");
    let mut read = store.plans_for_child(&child(3)).await.expect("read");
    read.sort_by_key(cpis_domain::Plan::key);
    let mut expected = vec![plan.clone(), untracked];
    expected.sort_by_key(cpis_domain::Plan::key);
    assert_eq!(read, expected);
    // Stored again by a later upload: the later sequence.
    let again = cpis_domain::Plan {
        upload_sequence: Some(2),
        ..plan.clone()
    };
    store
        .apply_changes(&la(COUNCIL_A), &[stored(&again)], &[])
        .await
        .expect("apply");
    let listed = store
        .plans_for_authority(&la(COUNCIL_A), None, 10)
        .await
        .expect("list");
    assert_eq!(listed.items, vec![again.clone()]);

    let role = JobRole::parse("R0110", "Specialist Registrar").expect("a job role");
    let person = cpis_domain::Accessor {
        job_role: Some(role),
        ..accessor("RJ1", "dr-with-a-role")
    };
    let visit = access(child(3), NOW, person);
    let asns = accessed(store, &visit, &[again]).await;
    assert_eq!(asns[0].plans[0].upload_sequence, Some(2));
    assert_eq!(
        store.recent_accesses(&child(3), 25).await.expect("read"),
        vec![visit]
    );
    assert_eq!(
        store
            .notification(&la(COUNCIL_A), &asns[0].id)
            .await
            .expect("read"),
        Some(asns[0].clone())
    );
}

fn plan_of(council: &str, nhs: cpis_domain::NhsNumber) -> cpis_domain::Plan {
    plan(
        council,
        nhs,
        cpis_domain::PlanType::LookedAfter,
        time::macros::date!(2024 - 06 - 01),
    )
}

/// The check's `Allowed` audit event.
fn check_event(accessor: &cpis_domain::Accessor, at: time::OffsetDateTime) -> AuditEvent {
    AuditEvent::check_allowed(accessor, None, at, "conformance")
}

async fn audit_ids<S: Store>(store: &S) -> Vec<String> {
    let events = store.audit_events(1000).await.expect("audit read");
    events.into_iter().map(|event| event.id).collect()
}

/// A flagged check by RJ1's user-1 of child 0 at `at` (ASNs to both
/// councils) through `record_check`: what it answered, the access and the
/// audit event's id.
async fn flagged_check<S: Store>(
    store: &S,
    at: time::OffsetDateTime,
) -> (Option<AccessWrite>, AccessRecord, String) {
    let who = accessor("RJ1", "user-1");
    let access = access(child(0), at, who.clone());
    let asns = notifications_for(&access, &plans_at_both_councils());
    let event = check_event(&who, at);
    let write = CheckWrite {
        receipt: (&access.nhs_number, &who.organisation_ods, at),
        access: Some(NewAccess {
            record: &access,
            asns: &asns,
            collapse_since: at - cpis_domain::COLLAPSE_WINDOW,
        }),
        audit: Some(&event),
    };
    let written = store.record_check(&write).await.expect("record_check");
    (written, access, event.id)
}

pub async fn record_check_writes_receipt_access_asns_and_audit<S: Store>(store: &S) {
    let (written, access, event) = flagged_check(store, NOW).await;
    assert_eq!(written, Some(AccessWrite::Recorded));
    assert_eq!(
        store.recent_accesses(&child(0), 25).await.expect("read"),
        vec![access]
    );
    assert_eq!(
        store.last_check(&child(0), &la("RJ1")).await.expect("read"),
        Some(NOW)
    );
    assert_eq!(whole_inbox(store, COUNCIL_A, 10).await.len(), 1);
    assert_eq!(whole_inbox(store, COUNCIL_B, 10).await.len(), 1);
    assert_eq!(audit_ids(store).await, [event]);
}

pub async fn a_collapsed_check_still_writes_its_receipt_and_audit<S: Store>(store: &S) {
    let trust = la("RJ1");
    let mut events = Vec::new();
    for (minutes, expected) in [(0, AccessWrite::Recorded), (30, AccessWrite::Collapsed)] {
        let (written, _, event) = flagged_check(store, NOW + Duration::minutes(minutes)).await;
        assert_eq!(written, Some(expected));
        events.push(event);
    }
    assert_eq!(
        store
            .recent_accesses(&child(0), 25)
            .await
            .expect("read")
            .len(),
        1,
        "the collapsed access is not written"
    );
    assert_eq!(whole_inbox(store, COUNCIL_A, 10).await.len(), 1);
    assert_eq!(
        store.last_check(&child(0), &trust).await.expect("read"),
        Some(NOW + Duration::minutes(30)),
        "the collapsed check's receipt is"
    );
    assert_eq!(audit_ids(store).await, events, "and so is its audit event");
}

pub async fn a_check_without_access_or_audit_writes_only_its_receipt<S: Store>(store: &S) {
    let trust = la("RJ1");
    // A scheduled setting's check: the receipt and the event, no access.
    let event = check_event(&accessor("RJ1", "user-1"), NOW);
    let silent = CheckWrite {
        receipt: (&child(0), &trust, NOW),
        access: None,
        audit: Some(&event),
    };
    assert_eq!(
        store.record_check(&silent).await.expect("record_check"),
        None
    );
    // The fallback when the audit trail refused: the receipt alone.
    let later = CheckWrite {
        receipt: (&child(0), &trust, NOW + Duration::hours(1)),
        access: None,
        audit: None,
    };
    assert_eq!(
        store.record_check(&later).await.expect("record_check"),
        None
    );
    assert!(store
        .recent_accesses(&child(0), 25)
        .await
        .expect("read")
        .is_empty());
    assert!(whole_inbox(store, COUNCIL_A, 10).await.is_empty());
    assert_eq!(
        store.last_check(&child(0), &trust).await.expect("read"),
        Some(NOW + Duration::hours(1))
    );
    assert_eq!(audit_ids(store).await, [event.id]);
}
