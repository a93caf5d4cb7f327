use std::collections::HashSet;

use cpis_domain::ports::StoreError;
use cpis_domain::{NhsNumber, OdsCode, Plan, PlanCursor, PlanType};

use super::item::listing_sk_from_cursor;
use super::keys::{plan_listing_sk, plan_shard};
use super::uploads::split_utf8;

#[test]
fn large_acknowledgements_split_on_character_boundaries() {
    let text = "ab£cd£ef".repeat(10);
    let parts = split_utf8(&text, 7);
    assert!(parts.iter().all(|p| p.len() <= 7));
    assert_eq!(parts.concat(), text);
    assert_eq!(split_utf8("short", 7), ["short"]);
}

#[test]
fn listing_keys_sort_like_the_reference_order() {
    let a = NhsNumber::parse("9990000018").unwrap();
    let b = NhsNumber::parse("9990000026").unwrap();
    let d1 = time::macros::date!(2024 - 01 - 10);
    let d2 = time::macros::date!(2024 - 02 - 01);
    let ordered = [
        plan_listing_sk(&a, PlanType::ChildProtection, d2),
        plan_listing_sk(&a, PlanType::LookedAfter, d1),
        plan_listing_sk(&a, PlanType::UnbornChildProtection, d1),
        plan_listing_sk(&b, PlanType::ChildProtection, d1),
    ];
    let mut sorted = ordered.clone();
    sorted.sort();
    assert_eq!(sorted, ordered);
}

#[test]
fn plan_cursors_round_trip_and_bad_ones_are_refused() {
    let nhs = NhsNumber::parse("9990000018").unwrap();
    let plan = Plan {
        upload_sequence: None,
        authority: OdsCode::parse("E09000033").unwrap(),
        nhs_number: nhs,
        plan_type: PlanType::LookedAfter,
        start_date: time::macros::date!(2024 - 01 - 10),
        end_date: None,
        delete_date: None,
        due_date: None,
        local_id: None,
    };
    assert_eq!(
        listing_sk_from_cursor(&PlanCursor::after(&plan).to_string()).unwrap(),
        plan_listing_sk(&nhs, PlanType::LookedAfter, plan.start_date)
    );
    for bad in ["", "x.y.z", "9990000018.LAC", "9990000010.LAC.2024-01-10"] {
        assert!(matches!(
            listing_sk_from_cursor(bad),
            Err(StoreError::InvalidCursor)
        ));
    }
}

#[test]
fn shards_spread_consecutive_numbers() {
    let shards: HashSet<u64> = [
        "9990000018",
        "9990000026",
        "9990000034",
        "9990000042",
        "9990000050",
    ]
    .iter()
    .map(|n| plan_shard(&NhsNumber::parse(n).unwrap()))
    .collect();
    assert!(shards.len() >= 4);
}
