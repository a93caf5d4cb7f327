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

/// A clinician or care-setting system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clinician {
    pub kind: AccessorKind,
    pub user_id: String,
    pub rbac: Rbac,
    pub organisation_ods: OdsCode,
    pub organisation_name: String,
    pub setting: String,
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
