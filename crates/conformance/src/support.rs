//! Helpers the behaviours share: orderings, and reading whole listings.

use cpis_domain::check::notifications_for;
use cpis_domain::ports::AccessWrite;
use cpis_domain::{AccessRecord, Asn, Plan, PlanKey, PlanType};
use time::macros::date;

use crate::fixtures::*;
use crate::Store;

pub(crate) fn sorted(mut plans: Vec<Plan>) -> Vec<Plan> {
    plans.sort_by_key(Plan::key);
    plans
}

pub(crate) fn sorted_keys(mut keys: Vec<PlanKey>) -> Vec<PlanKey> {
    keys.sort();
    keys
}

pub(crate) fn ids(asns: &[Asn]) -> Vec<String> {
    asns.iter().map(|a| a.id.clone()).collect()
}

pub(crate) fn sorted_ids(asns: &[Asn]) -> Vec<String> {
    let mut ids = ids(asns);
    ids.sort();
    ids
}

/// Records an access (not collapsible) with one ASN per council holding one of `plans`.
pub(crate) async fn accessed<S: Store>(
    store: &S,
    access: &AccessRecord,
    plans: &[Plan],
) -> Vec<Asn> {
    let asns = notifications_for(access, plans);
    let written = store
        .record_access(access, &asns, access.accessed_at)
        .await
        .expect("record_access");
    assert_eq!(written, AccessWrite::Recorded);
    asns
}

pub(crate) async fn all_plans_of<S: Store>(
    store: &S,
    council: &str,
    limit: usize,
) -> Vec<Vec<Plan>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .plans_for_authority(&la(council), cursor.as_deref(), limit)
            .await
            .expect("plans_for_authority");
        assert!(page.items.len() <= limit, "a page holds at most `limit`");
        pages.push(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
        assert!(pages.len() <= 100, "pagination does not end");
    }
}

pub(crate) async fn whole_inbox<S: Store>(store: &S, council: &str, limit: usize) -> Vec<Asn> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = store
            .notifications(&la(council), cursor.as_deref(), limit)
            .await
            .expect("notifications");
        assert!(page.items.len() <= limit, "a page holds at most `limit`");
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("inbox pagination does not end");
}

pub(crate) fn plans_at_both_councils() -> Vec<Plan> {
    vec![
        plan(
            COUNCIL_A,
            child(0),
            PlanType::ChildProtection,
            date!(2025 - 01 - 10),
        ),
        plan(
            COUNCIL_B,
            child(0),
            PlanType::LookedAfter,
            date!(2025 - 01 - 10),
        ),
    ]
}

/// An upload through the domain at [`NOW`] by `council`.
pub(crate) async fn upload<S: Store>(
    store: &S,
    council: &str,
    body: serde_json::Value,
) -> Result<cpis_domain::UploadResult, cpis_domain::UploadError> {
    cpis_domain::process_upload(
        store,
        &la(council),
        body.to_string().as_bytes(),
        NOW,
        &cpis_domain::VisibilityPolicy::default(),
    )
    .await
}

/// A record for child `index` of [`CHILDREN`].
pub(crate) fn record(index: usize, plan_type: &str, start: &str) -> serde_json::Value {
    serde_json::json!({ "nhs_number": CHILDREN[index], "plan_type": plan_type, "start_date": start })
}
