//! The NHS number parser against an independent model of the rule, plus the
//! properties the rest of the service relies on: the canonical form re-parses
//! to the same value, `Display`/`Debug` never show the full number, serde
//! round-trips, and the privacy scanner only ever reports valid numbers.
#![no_main]

use cpis_domain::nhs_number::looks_like_nhs_number;
use cpis_domain::{find_nhs_numbers, NhsNumber, NhsNumberError};
use libfuzzer_sys::fuzz_target;

/// The digits the NHS accepts: ten in a row, or 3-3-4 with single spaces.
fn model_digits(input: &str) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    let digits: Vec<u8> = match bytes.len() {
        10 => bytes.to_vec(),
        12 if bytes[3] == b' ' && bytes[7] == b' ' => {
            [&bytes[..3], &bytes[4..7], &bytes[8..]].concat()
        }
        _ => return None,
    };
    digits
        .iter()
        .all(u8::is_ascii_digit)
        .then(|| digits.iter().map(|d| d - b'0').collect())
}

/// Modulus 11 stated the other way round: weights 10..1 over all ten digits
/// sum to a multiple of 11 (a check digit of 10 can never satisfy it).
fn model_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .zip((1..=10u32).rev())
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    sum.is_multiple_of(11)
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };

    // The scanner on arbitrary text: never panics, reports only valid numbers
    // that really occur in the text.
    for found in find_nhs_numbers(input) {
        let digits: String = found.chars().filter(char::is_ascii_digit).collect();
        assert!(looks_like_nhs_number(&digits));
        assert!(input.contains(&found));
    }

    let parsed = NhsNumber::parse(input);
    match (model_digits(input), &parsed) {
        (None, Err(NhsNumberError::WrongShape)) => {}
        (Some(digits), Err(NhsNumberError::Placeholder)) => {
            assert!(digits.iter().all(|d| *d == digits[0]))
        }
        (Some(digits), Err(NhsNumberError::CheckDigit)) => assert!(!model_valid(&digits)),
        (Some(digits), Ok(_)) => {
            assert!(model_valid(&digits));
            assert!(
                digits.iter().any(|d| *d != digits[0]),
                "a placeholder parsed"
            );
        }
        (model, result) => panic!("parser and model disagree: model {model:?}, parser {result:?}"),
    }

    match parsed {
        Ok(number) => {
            let canonical = number.expose();
            assert_eq!(canonical.len(), 10);
            assert!(canonical.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(canonical, input.replace(' ', ""));
            assert_eq!(NhsNumber::parse(&canonical), Ok(number));
            assert!(looks_like_nhs_number(&canonical));
            assert_eq!(find_nhs_numbers(&canonical), vec![canonical.clone()]);

            let shown = format!("{number} {number:?} {number:#?}");
            assert!(!shown.contains(&canonical), "Display/Debug show the number");
            assert!(find_nhs_numbers(&shown).is_empty());

            let json = serde_json::to_string(&number).expect("a string serialises");
            assert_eq!(json, format!("\"{canonical}\""));
            assert_eq!(serde_json::from_str::<NhsNumber>(&json).ok(), Some(number));
        }
        Err(error) => {
            // What a caller is told never repeats the input.
            let json = serde_json::to_string(input).expect("a string serialises");
            let message = serde_json::from_str::<NhsNumber>(&json)
                .expect_err("the parser refused it")
                .to_string();
            // serde adds only where it failed, nothing of the input.
            let rest = message
                .strip_prefix(&error.to_string())
                .expect("the message is the parser's own");
            assert!(
                rest.chars()
                    .all(|c| c.is_ascii_digit() || " atlinecolum".contains(c)),
                "the error says more than where: {rest:?}"
            );
            assert!(find_nhs_numbers(&message).is_empty());
        }
    }
});
