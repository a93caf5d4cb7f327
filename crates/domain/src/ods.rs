//! ODS organisation codes (councils and care-setting organisations).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An ODS code: 3 to 10 upper-case ASCII letters and digits, never ten digits
/// in a row ([`is_identifier`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OdsCode(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an ODS code is 3 to 10 upper-case letters and digits, never ten digits in a row")]
pub struct OdsCodeError;

impl OdsCode {
    pub fn parse(input: &str) -> Result<Self, OdsCodeError> {
        if is_identifier(input, 10) {
            Ok(Self(input.to_owned()))
        } else {
            Err(OdsCodeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organisation's identifier (an ODS code, a MESH mailbox id): 3 to `max`
/// upper-case ASCII letters and digits, with no run of ten digits.
/// Identifiers are logged and named in errors, and ten digits in a row could
/// be an NHS number typed into the wrong field; no ODS code or mailbox id has
/// them.
pub(crate) fn is_identifier(input: &str, max: usize) -> bool {
    (3..=max).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && !input
            .as_bytes()
            .windows(10)
            .any(|w| w.iter().all(u8::is_ascii_digit))
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OdsCode({})", self.0)
    }
}

impl From<OdsCode> for String {
    fn from(code: OdsCode) -> Self {
        code.0
    }
}

/// Deserialised through [`OdsCode::parse`] (`#[serde(try_from = "String")]`).
impl TryFrom<String> for OdsCode {
    type Error = OdsCodeError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_council_and_trust_codes() {
        for ok in ["E09000033", "RJ1", "ABC1234567"] {
            assert!(OdsCode::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_codes() {
        for bad in [
            "",
            "AB",
            "e09000033",
            "ABCDEFGHIJK",
            "E09 00033",
            "E09-0003",
        ] {
            assert_eq!(OdsCode::parse(bad), Err(OdsCodeError), "{bad}");
        }
    }

    #[test]
    fn ten_digits_in_a_row_are_never_an_identifier() {
        // A synthetic NHS number typed into the wrong field, alone or inside
        // a longer id; nine digits in a row are still a code.
        for bad in ["9990000018", "X9990000018", "ABCDEFGHIJ9990000018"] {
            assert!(!is_identifier(bad, 20), "{bad}");
        }
        assert_eq!(OdsCode::parse("9990000018"), Err(OdsCodeError));
        for ok in ["E09000033", "A999000001", "YGM24OT001", "X26ABC2"] {
            assert!(is_identifier(ok, 10), "{ok}");
        }
        assert!(is_identifier("AB123456789CD1234567", 20));
    }
    #[test]
    fn serde_is_the_plain_code_and_reads_through_parse() {
        let code = OdsCode::parse("E09000033").unwrap();
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"E09000033\"");
        assert_eq!(
            serde_json::from_str::<OdsCode>("\"E09000033\"").unwrap(),
            code
        );
        assert!(serde_json::from_str::<OdsCode>("\"e09000033\"").is_err());
    }
}
