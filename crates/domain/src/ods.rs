//! ODS organisation codes (councils and care-setting organisations).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An ODS code: 3 to 10 upper-case ASCII letters and digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OdsCode(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an ODS code is 3 to 10 upper-case letters and digits")]
pub struct OdsCodeError;

impl OdsCode {
    pub fn parse(input: &str) -> Result<Self, OdsCodeError> {
        let ok = (3..=10).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(OdsCodeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
