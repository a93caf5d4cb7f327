//! Who is calling, built from verified token claims, never from a request body.

use serde::{Deserialize, Serialize};

use crate::OdsCode;

/// RBAC activities of the national RBAC database that CP-IS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rbac {
    /// View CP-IS information and notify (unscheduled care settings).
    B0107,
    /// View without notifying (scheduled settings: GP in hours, school nursing, CAMHS).
    B0170,
}

impl Rbac {
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "B0107" => Some(Self::B0107),
            "B0170" => Some(Self::B0170),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::B0107 => "B0107",
            Self::B0170 => "B0170",
        }
    }

    pub fn may_notify(self) -> bool {
        matches!(self, Self::B0107)
    }
}

/// A person signed in at a care setting, or the setting's system acting for a
/// nominated responsible person (treated as an author like a user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessorKind {
    User,
    System,
}

/// An SDS job role (code system SDS JobRoleName,
/// `2.16.840.1.113883.2.1.3.2.4.17.124`), e.g. `R0110` "Specialist
/// Registrar": what an ASN file says the person who accessed the record was
/// (the schema makes it mandatory for a person). From the credential's
/// optional `job_role` and `job_role_name` claims (`docs/claims.md`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobRole {
    /// `R` and four digits.
    pub code: String,
    /// 1 to 100 characters.
    pub name: String,
}

impl JobRole {
    /// Both or nothing: a code `R` and four digits, and a name of 1 to 100
    /// characters without control characters. `None` for anything else.
    pub fn parse(code: &str, name: &str) -> Option<Self> {
        let code_ok = code.len() == 5
            && code.starts_with('R')
            && code[1..].bytes().all(|b| b.is_ascii_digit());
        let name = name.trim();
        let name_ok =
            !name.is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control);
        (code_ok && name_ok).then(|| Self {
            code: code.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// A clinician or care-setting system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clinician {
    pub kind: AccessorKind,
    pub user_id: String,
    pub rbac: Rbac,
    pub organisation_ods: OdsCode,
    pub organisation_name: String,
    pub setting: String,
    /// A person's SDS job role, when the credential carries it. Stored with
    /// the access and its ASNs (absent in those stored before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_role: Option<JobRole>,
}

/// A verified caller. Serialisable so that a portal session can keep the
/// principal its sign-in produced ([`crate::session`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    Council {
        authority: OdsCode,
        client_id: String,
    },
    Clinician(Clinician),
}

impl Principal {
    /// The subject id, for the audit trail.
    pub fn actor_id(&self) -> &str {
        match self {
            Self::Council { client_id, .. } => client_id,
            Self::Clinician(c) => &c.user_id,
        }
    }

    pub fn organisation(&self) -> &OdsCode {
        match self {
            Self::Council { authority, .. } => authority,
            Self::Clinician(c) => &c.organisation_ods,
        }
    }

    /// A role name for the audit trail: `council`, or the RBAC activity.
    pub fn role(&self) -> &'static str {
        match self {
            Self::Council { .. } => "council",
            Self::Clinician(c) => c.rbac.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JobRole;

    #[test]
    fn a_job_role_is_an_sds_code_with_its_name() {
        let role = JobRole::parse("R0110", " Specialist Registrar ").unwrap();
        assert_eq!(
            (role.code.as_str(), role.name.as_str()),
            ("R0110", "Specialist Registrar")
        );
        assert!(JobRole::parse("R0110", &"é".repeat(100)).is_some());
        for (code, name) in [
            ("R011", "n"),
            ("R01100", "n"),
            ("r0110", "n"),
            ("X0110", "n"),
            ("R01 0", "n"),
            ("R0110", ""),
            ("R0110", "  "),
            ("R0110", "a\nb"),
        ] {
            assert_eq!(JobRole::parse(code, name), None, "{code:?} {name:?}");
        }
        assert_eq!(JobRole::parse("R0110", &"n".repeat(101)), None);
    }
}
