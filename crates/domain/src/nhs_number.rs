//! The NHS number: exists only by parsing, never printed in full by accident.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A valid NHS number (10 digits, Modulus 11 check digit), held canonical.
///
/// `Debug` and `Display` print a redacted form (`999*****18`) so that a stray
/// `{:?}` in a log line cannot leak the number. Code that must store or send
/// the number asks for it explicitly with [`NhsNumber::expose`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct NhsNumber([u8; 10]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    #[error("an NHS number has 10 digits (spaces allowed between groups)")]
    WrongShape,
    #[error("the NHS number's check digit is wrong")]
    CheckDigit,
    /// All ten digits the same: see [`NhsNumber::parse`].
    #[error("an NHS number with all ten digits the same is a placeholder, not a person's number")]
    Placeholder,
}

impl NhsNumber {
    /// Parses `9990000018` or `999 000 0018`. Spaces are allowed only as the
    /// NHS writes them (3-3-4) or not at all; nothing else is accepted.
    ///
    /// Errors: [`NhsNumberError::WrongShape`]; [`NhsNumberError::Placeholder`]
    /// for the ten numbers whose ten digits are all the same (ten zeros up to
    /// `9999999999`); [`NhsNumberError::CheckDigit`] when Modulus 11 fails
    /// (NHS Data Dictionary, "NHS NUMBER": weights 10 to 2, 11 becomes 0,
    /// 10 is never valid).
    ///
    /// Placeholders: every one of them passes Modulus 11 (the weights sum to
    /// 54, and 54·d leaves the check digit d), so the check cannot catch
    /// them, yet systems type them in when the real number is unknown. NHS
    /// Connecting for Health's check-digit note (`tech_nn_check_digit.pdf`,
    /// as cited by other NHS number validators; the note itself is no longer
    /// published) calls such repeated-digit numbers invalid; ten zeros also
    /// lie below every allocated range. A check or an upload on one
    /// would join every child recorded under the same filler (issue 18).
    pub fn parse(input: &str) -> Result<Self, NhsNumberError> {
        let bytes = input.as_bytes();
        let digits: Vec<u8> = match bytes.len() {
            10 => bytes.to_vec(),
            12 if bytes[3] == b' ' && bytes[7] == b' ' => bytes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 7)
                .map(|(_, b)| *b)
                .collect(),
            _ => return Err(NhsNumberError::WrongShape),
        };
        let mut out = [0u8; 10];
        for (slot, byte) in out.iter_mut().zip(&digits) {
            if !byte.is_ascii_digit() {
                return Err(NhsNumberError::WrongShape);
            }
            *slot = byte - b'0';
        }
        if out.iter().all(|d| *d == out[0]) {
            return Err(NhsNumberError::Placeholder);
        }
        match check_digit(&out[..9]) {
            Some(expected) if expected == out[9] => Ok(Self(out)),
            _ => Err(NhsNumberError::CheckDigit),
        }
    }

    /// The canonical 10 digits, for storage and for API bodies that must carry it.
    pub fn expose(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    fn redacted(&self) -> String {
        let full = self.expose();
        format!("{}*****{}", &full[..3], &full[8..])
    }
}

/// Modulus 11: weights 10..2 on the first nine digits; 11 becomes 0, 10 is invalid.
pub fn check_digit(first_nine: &[u8]) -> Option<u8> {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        d => Some(d as u8),
    }
}

/// True when `candidate` is ten digits that [`NhsNumber::parse`] accepts:
/// what the privacy scans look for in logs, error bodies and messages.
pub fn looks_like_nhs_number(candidate: &str) -> bool {
    candidate.len() == 10 && NhsNumber::parse(candidate).is_ok()
}

/// Every NHS number written in `text`, in any grouping, as written there
/// (`9990000018`, `999 000 0018`, `999-000-0018`, `999.000/0018`,
/// `99900 00018`, `9-9-9-0-0-0-0-0-1-8`, ...): what the request-id filter
/// and the privacy tests look for. The same rule as `tests/privacy_scan.py`.
///
/// Digit groups (maximal runs of ASCII digits) joined by exactly one
/// character that is neither a letter nor a digit form a chain. A candidate
/// is a single group of exactly ten digits; a whole chain of ten digits; or
/// three consecutive groups of 3, 3 and 4 digits inside a longer chain (the
/// NHS's own grouping, after a time or a date). Only whole groups count, so
/// a longer number (a phone number, a timestamp's fraction) is not read as
/// one. Each candidate whose digits parse is reported, except inside a
/// hexadecimal identifier (a UUID or a long hex id): one random UUID in about
/// 400 holds digits that pass the check, and scanning ids would make every
/// privacy test flaky.
pub fn find_nhs_numbers(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let groups = digit_groups(bytes);
    let mut spans = Vec::new();
    let mut first = 0;
    while first < groups.len() {
        let mut last = first;
        while last + 1 < groups.len() && single_separator(&text[groups[last].1..groups[last + 1].0])
        {
            last += 1;
        }
        let chain = &groups[first..=last];
        let len = |g: &(usize, usize)| g.1 - g.0;
        spans.extend(chain.iter().filter(|g| len(g) == 10).copied());
        if chain.len() > 1 && chain.iter().map(len).sum::<usize>() == 10 {
            spans.push((chain[0].0, chain[chain.len() - 1].1));
        }
        for w in chain.windows(3) {
            if (len(&w[0]), len(&w[1]), len(&w[2])) == (3, 3, 4) {
                spans.push((w[0].0, w[2].1));
            }
        }
        first = last + 1;
    }
    spans.sort_unstable();
    spans.dedup();
    spans
        .into_iter()
        .filter(|&(start, end)| {
            let digits: String = text[start..end]
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            looks_like_nhs_number(&digits) && !inside_hex_identifier(bytes, start, end)
        })
        .map(|(start, end)| text[start..end].to_owned())
        .collect()
}

/// Byte ranges of the maximal runs of ASCII digits.
fn digit_groups(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((start, i));
        } else {
            i += 1;
        }
    }
    groups
}

/// Exactly one character, neither a letter nor a digit (in any script).
fn single_separator(between: &str) -> bool {
    let mut chars = between.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if !c.is_alphanumeric())
}

/// Whether the digits at `start..end` belong to a UUID or to a hex id of at
/// least 16 characters with a letter in it (so not a plain number).
fn inside_hex_identifier(bytes: &[u8], start: usize, end: usize) -> bool {
    let is_id_char = |b: u8| b.is_ascii_hexdigit() || b == b'-';
    let mut from = start;
    while from > 0 && is_id_char(bytes[from - 1]) {
        from -= 1;
    }
    let mut to = end;
    while to < bytes.len() && is_id_char(bytes[to]) {
        to += 1;
    }
    let token = &bytes[from..to];
    let has_letter = token.iter().any(u8::is_ascii_alphabetic);
    let uuid_shaped = token.len() == 36
        && token
            .iter()
            .enumerate()
            .all(|(k, &b)| (b == b'-') == matches!(k, 8 | 13 | 18 | 23));
    let hex_id = token.len() >= 16 && token.iter().all(u8::is_ascii_hexdigit);
    has_letter && (uuid_shaped || hex_id)
}

impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NhsNumber({})", self.redacted())
    }
}

impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::str::FromStr for NhsNumber {
    type Err = NhsNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for NhsNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.expose())
    }
}

/// Deserialised through [`NhsNumber::parse`] (`#[serde(try_from = "String")]`):
/// the error text never repeats the input.
impl TryFrom<String> for NhsNumber {
    type Error = NhsNumberError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_synthetic_examples() {
        for n in ["9990000018", "9990000026", "9990000034", "9999999123"] {
            assert_eq!(NhsNumber::parse(n).map(|x| x.expose()), Ok(n.to_owned()));
        }
    }

    #[test]
    fn accepts_spaced_form_and_stores_canonical() {
        let n = NhsNumber::parse("999 000 0018").unwrap();
        assert_eq!(n.expose(), "9990000018");
    }

    #[test]
    fn rejects_wrong_check_digit_and_shapes() {
        assert_eq!(
            NhsNumber::parse("9990000010"),
            Err(NhsNumberError::CheckDigit)
        );
        for bad in [
            "",
            "999000001",
            "99900000188",
            "99900 00018",
            "999-000-0018",
            "99900000a8",
            " 9990000018",
            "９９９0000018",
        ] {
            assert_eq!(
                NhsNumber::parse(bad),
                Err(NhsNumberError::WrongShape),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn placeholder_numbers_are_refused_though_they_pass_modulus_11() {
        for d in 0..10u8 {
            let digits = [d; 10];
            assert_eq!(check_digit(&digits[..9]), Some(d), "passes the check");
            let text = render(&digits);
            assert_eq!(NhsNumber::parse(&text), Err(NhsNumberError::Placeholder));
            let spaced = format!("{} {} {}", &text[..3], &text[3..6], &text[6..]);
            assert_eq!(NhsNumber::parse(&spaced), Err(NhsNumberError::Placeholder));
            assert!(find_nhs_numbers(&text).is_empty());
        }
        // A single different digit makes it a number again (if its check passes).
        assert!(NhsNumber::parse("9999999123").is_ok());
    }

    #[test]
    fn finds_nhs_numbers_in_every_grouping_and_separator() {
        for written in [
            "9990000018",
            "999 000 0018",
            "999-000-0018",
            "999.000.0018",
            "999/000/0018",
            "999_000_0018",
            "999 000-0018",
            "999.000 0018",
            "999\u{a0}000\u{2013}0018",
            "99900 00018",
            "9990 000 018",
            "99 90 00 00 18",
            "9-9-9-0-0-0-0-0-1-8",
            "999000 0018",
        ] {
            for text in [
                written.to_owned(),
                format!("id={written}&x"),
                format!("\"{written}\""),
                format!("at 10:30, {written} attended"),
                format!("nhs{written}z"),
            ] {
                assert_eq!(find_nhs_numbers(&text), [written], "{text}");
            }
        }
        // The NHS's own 3-3-4 is found even run on from a time or a date.
        for text in ["at 10:30 999 000 0018", "on 25/11/2026 999-000-0018"] {
            assert_eq!(find_nhs_numbers(text).len(), 1, "{text}");
        }
    }

    #[test]
    fn grouped_digits_that_are_not_nhs_numbers_are_not_found() {
        for text in [
            "020 7946 0999",                        // a phone number: 11 digits
            "+44 7700 900123",                      // 12
            "2026-11-25T08:31:02.123456Z",          // a timestamp
            "25/11/2026 08:31:02",                  // 14 digits
            "999 000 0010",                         // fails Modulus 11
            "999 000 00180",                        // 3-3-5
            "1999 000 0018",                        // 4-3-4
            "999  000  0018",                       // two separators: not one group
            "999a000b0018",                         // letters are not separators
            "0f6d1c2e-9990-0000-1800-aaaaaaaaaaaa", // inside a UUID
            "999 999 9999",                         // a placeholder
        ] {
            assert!(find_nhs_numbers(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let n = NhsNumber::parse("9990000018").unwrap();
        assert_eq!(format!("{n}"), "999*****18");
        assert_eq!(format!("{n:?}"), "NhsNumber(999*****18)");
        assert!(find_nhs_numbers(&format!("{n} {n:?}")).is_empty());
    }

    #[test]
    fn deserialize_error_does_not_echo_input() {
        let err = serde_json::from_str::<NhsNumber>("\"9990000010\"").unwrap_err();
        assert!(!err.to_string().contains("9990000010"));
    }

    #[test]
    fn finds_only_valid_ten_digit_runs() {
        let text = "a9990000018b 99900000180 9990000010 x9990000026";
        assert_eq!(find_nhs_numbers(text), vec!["9990000018", "9990000026"]);
    }

    #[test]
    fn ignores_ten_digit_runs_inside_uuids_and_hex_ids_only() {
        // 9990000018 is valid; inside ids it is not a leak, anywhere else it is.
        assert!(find_nhs_numbers("0f6d1c2e-0000-4000-8000-a9990000018b").is_empty());
        assert!(find_nhs_numbers("0f6d1c2e-0000-4000-8000-9990000018ab").is_empty());
        assert!(find_nhs_numbers("trace ab9990000018cdef01").is_empty());
        for leak in [
            "nhs9990000018",
            "\"9990000018\"",
            "id=9990000018&x",
            "a9990000018b",
            "9990000018-0f6d1c2e",
        ] {
            assert_eq!(find_nhs_numbers(leak), ["9990000018"], "{leak}");
        }
    }

    fn valid_number() -> impl Strategy<Value = [u8; 10]> {
        proptest::array::uniform9(0u8..10).prop_filter_map("check digit 10", |nine| {
            check_digit(&nine).map(|c| {
                let mut all = [0u8; 10];
                all[..9].copy_from_slice(&nine);
                all[9] = c;
                all
            })
        })
    }

    /// Nine digits whose check digit works out as 10: the ninth digit (weight 2)
    /// is solved for, since 2 is invertible modulo 11 (its inverse is 6).
    fn check_digit_ten_prefix() -> impl Strategy<Value = [u8; 9]> {
        proptest::array::uniform8(0u8..10).prop_filter_map("no ninth digit fits", |eight| {
            let partial: u32 = eight
                .iter()
                .zip((3..=10).rev())
                .map(|(d, w)| u32::from(*d) * w)
                .sum();
            // Need partial + 2 * ninth = 1 (mod 11), so that 11 - (sum mod 11) = 10.
            let ninth = (6 * (1 + 11 * 10 - partial % 11)) % 11;
            (ninth < 10).then(|| {
                let mut nine = [0u8; 9];
                nine[..8].copy_from_slice(&eight);
                nine[8] = ninth as u8;
                nine
            })
        })
    }

    fn render(digits: &[u8; 10]) -> String {
        digits.iter().map(|d| char::from(b'0' + d)).collect()
    }

    proptest! {
        #[test]
        fn every_valid_number_round_trips(digits in valid_number()) {
            let text = render(&digits);
            prop_assert_eq!(NhsNumber::parse(&text).unwrap().expose(), text);
        }

        #[test]
        fn every_single_digit_substitution_is_rejected(digits in valid_number(), pos in 0usize..10, delta in 1u8..10) {
            let mut changed = digits;
            changed[pos] = (changed[pos] + delta) % 10;
            prop_assert!(NhsNumber::parse(&render(&changed)).is_err());
        }

        #[test]
        fn every_adjacent_transposition_is_rejected(digits in valid_number(), pos in 0usize..9) {
            prop_assume!(digits[pos] != digits[pos + 1]);
            let mut swapped = digits;
            swapped.swap(pos, pos + 1);
            prop_assert!(NhsNumber::parse(&render(&swapped)).is_err());
        }

        #[test]
        fn check_digit_ten_is_never_valid(nine in check_digit_ten_prefix(), last in 0u8..10) {
            prop_assert_eq!(check_digit(&nine), None);
            let mut all = [0u8; 10];
            all[..9].copy_from_slice(&nine);
            all[9] = last;
            prop_assert!(NhsNumber::parse(&render(&all)).is_err());
        }
    }
}
