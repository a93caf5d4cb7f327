//! Issue 18: the Rust NHS number detector (the request-id filter uses it)
//! finds every grouping in the fixture `tests/privacy_scan.py` also reads,
//! and none of the look-alikes.

use cpis_domain::find_nhs_numbers;
use serde_json::Value;

const FIXTURE: &str = include_str!("../../../tests/fixtures/nhs_number_groupings.json");

#[test]
fn the_detector_finds_every_grouping_the_privacy_scan_finds() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let must_find = fixture["must_find"].as_array().unwrap();
    assert!(must_find.len() >= 15);
    for case in must_find {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<&str> = case["found"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(find_nhs_numbers(text), expected, "{text:?}");
    }
    for text in fixture["must_pass"].as_array().unwrap() {
        let text = text.as_str().unwrap();
        assert!(find_nhs_numbers(text).is_empty(), "{text:?}");
    }
}
