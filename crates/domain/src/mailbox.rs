//! MESH mailbox ids: the councils' existing interface (HL7 v3 files over
//! MESH, issue 13) takes its tenancy from the mailbox a file came from,
//! which the operator maps to one council ([`crate::ports::MailboxMap`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest mailbox id accepted. MESH ids are short (`X26ABC1`,
/// `YGM24OT001`: an ODS code, `OT` and digits); the bound keeps anything else
/// out of keys, logs and file names.
pub const MAX_MAILBOX_ID: usize = 20;

/// A MESH mailbox id: 3 to [`MAX_MAILBOX_ID`] upper-case ASCII letters and
/// digits, never ten digits in a row (`crate::ods::is_identifier`; MESH upper-cases mailbox ids, and its `NHSMESH` authorization
/// signs the upper-case form; shared/domain/council-interface.md §9.1).
/// Nothing else is ever stored, looked up or logged as a mailbox.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MailboxId(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a MESH mailbox id is 3 to 20 upper-case letters and digits, never ten digits in a row")]
pub struct MailboxIdError;

impl MailboxId {
    /// Exactly as given: lower case is refused, not folded, so an operator's
    /// typo is seen rather than silently matched.
    pub fn parse(input: &str) -> Result<Self, MailboxIdError> {
        if crate::ods::is_identifier(input, MAX_MAILBOX_ID) {
            Ok(Self(input.to_owned()))
        } else {
            Err(MailboxIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MailboxId({})", self.0)
    }
}

impl From<MailboxId> for String {
    fn from(id: MailboxId) -> Self {
        id.0
    }
}

impl TryFrom<String> for MailboxId {
    type Error = MailboxIdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_ids_are_upper_case_letters_and_digits_of_bounded_length() {
        for ok in ["X26ABC1", "YGM24OT001", "ABC", "AB12CD34EF56GH78IJ90"] {
            assert_eq!(MailboxId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "AB",
            "x26abc1",
            "X26ABC1 ",
            " X26ABC1",
            "X26-ABC1",
            "X26ABC1\n",
            "AB12CD34EF56GH78IJ90K",
            "X26ÄBC1",
            "../X26",
            // An NHS number in the wrong field (crate::ods::is_identifier).
            "9990000018",
            "X269990000018",
        ] {
            assert_eq!(MailboxId::parse(bad), Err(MailboxIdError), "{bad:?}");
        }
    }

    #[test]
    fn stored_forms_are_checked_when_read() {
        let id: MailboxId = serde_json::from_str("\"X26ABC1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"X26ABC1\"");
        assert!(serde_json::from_str::<MailboxId>("\"x26abc1\"").is_err());
    }
}
