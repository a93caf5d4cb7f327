//! The strict JSON reader every body goes through (`cpis_domain::json`):
//! on any bytes it never panics, agrees with serde_json on what is JSON and
//! on the value when no member name repeats, and reports a repeat with a
//! pointer that leads to it and never carries an NHS number.
#![no_main]

use cpis_domain::find_nhs_numbers;
use cpis_domain::json::{parse, parse_noting_repeats, JsonError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let plain = serde_json::from_slice::<Value>(body);
    let strict = parse(body);
    let lenient = parse_noting_repeats(body);
    match (&plain, &strict) {
        // Not JSON to either; strict gives a position and no content.
        (Err(_), Err(error @ JsonError::Syntax { .. })) => {
            assert!(find_nhs_numbers(&error.to_string()).is_empty());
            assert!(lenient.is_err());
            return;
        }
        (Err(e), other) => {
            panic!("serde_json refused ({e}) what the strict reader read: {other:?}")
        }
        (Ok(_), Err(JsonError::Syntax { .. })) => {
            panic!("the strict reader refused JSON that serde_json read")
        }
        _ => {}
    }
    let plain = plain.expect("checked above");
    let lenient = lenient.expect("JSON to serde_json is JSON to the lenient reader");
    match strict {
        Ok(value) => {
            // No repeat: exactly serde_json's value.
            assert_eq!(value, plain);
            assert!(lenient.repeated.is_empty());
            assert_eq!(lenient.value, plain);
        }
        Err(JsonError::RepeatedMember { pointer }) => {
            assert!(!lenient.repeated.is_empty());
            assert_eq!(lenient.repeated[0].pointer(), pointer);
            for repeat in &lenient.repeated {
                let pointer = repeat.pointer();
                assert!(pointer.starts_with('/'));
                assert!(find_nhs_numbers(&pointer).is_empty(), "{pointer}");
                assert!(pointer.bytes().filter(u8::is_ascii_digit).count() < 10);
                assert!(pointer
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_".contains(&b)));
                // The first value is kept, so the repeated member is there to
                // be found (when no segment was masked as `_`, and it is not
                // inside a repeat's own value, which is dropped whole).
                let plain_path = !pointer.split('/').any(|s| s == "_");
                let inside_a_dropped_value = lenient.repeated.iter().any(|other| {
                    let other = other.pointer();
                    pointer.starts_with(&format!("{other}/"))
                });
                if plain_path && !inside_a_dropped_value {
                    assert!(lenient.value.pointer(&pointer).is_some(), "{pointer}");
                }
            }
            // What is kept has no repeats left: read again, it is what
            // serde_json reads. (Not compared with `lenient.value` itself:
            // serde_json's default float parsing does not round-trip every
            // double, e.g. 1.1844674407370955e20 reads back one ulp away.)
            let again = serde_json::to_vec(&lenient.value).expect("a Value serialises");
            let reread = serde_json::from_slice::<Value>(&again).expect("serde_json wrote it");
            assert_eq!(parse(&again), Ok(reread));
            // serde_json keeps the last value; the strict reader kept the
            // first: their documents differ only where a member repeats.
        }
        Err(JsonError::Syntax { .. }) => unreachable!("matched above"),
    }
});
