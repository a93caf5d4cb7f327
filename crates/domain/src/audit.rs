//! The audit trail: every read and write, allowed or denied, with the child
//! pseudonymised.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::{NhsNumber, Principal};

/// A keyed hash of an NHS number: the same child gives the same pseudonym
/// under one key, and the number cannot be recovered without the key.
#[derive(Clone)]
pub struct Pseudonymiser {
    /// The HMAC already keyed: each pseudonym clones it, so the key's two
    /// pad blocks are hashed once, not once per request.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the pseudonymisation key must be at least 32 bytes")]
pub struct WeakKey;

impl Pseudonymiser {
    pub fn new(key: &[u8]) -> Result<Self, WeakKey> {
        if key.len() < 32 {
            return Err(WeakKey);
        }
        // HMAC accepts keys of any length, so this cannot fail past the check above.
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| WeakKey)?;
        Ok(Self { mac })
    }

    pub fn pseudonym(&self, nhs_number: &NhsNumber) -> String {
        let mut mac = self.mac.clone();
        mac.update(nhs_number.expose().as_bytes());
        // Letters only (a..p per nibble), so a pseudonym can never look like an
        // NHS number to the privacy scans.
        let mut pseudonym = String::with_capacity(3 + 32);
        pseudonym.push_str("p1-");
        for byte in &mac.finalize().into_bytes()[..16] {
            for nibble in [byte >> 4, byte & 0x0f] {
                pseudonym.push(char::from(b'a' + nibble));
            }
        }
        pseudonym
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Allowed,
    Denied,
    Invalid,
    Failed,
}

/// How a use case's result is recorded in the audit trail: written once per
/// outcome type, here beside [`AuditOutcome`], and read by every entry point
/// (JSON, FHIR, later HL7 and the portal), never derived from a status code.
pub trait Audited {
    fn audit_outcome(&self) -> AuditOutcome;
}

/// A store that could not answer: the request failed, whoever asked. A page
/// cursor the store cannot read is the caller's mistake.
impl Audited for crate::ports::StoreError {
    fn audit_outcome(&self) -> AuditOutcome {
        match self {
            Self::InvalidCursor => AuditOutcome::Invalid,
            Self::Unavailable(_) | Self::Corrupt(_) => AuditOutcome::Failed,
        }
    }
}

/// An upload refused for its content or its sequence is `Invalid`; one the
/// store could not take is `Failed`.
impl Audited for crate::UploadError {
    fn audit_outcome(&self) -> AuditOutcome {
        match self {
            Self::Store(_) => AuditOutcome::Failed,
            Self::Malformed { .. }
            | Self::TooManyRecords
            | Self::SequenceReused { .. }
            | Self::StaleSequence { .. }
            | Self::InProgress { .. } => AuditOutcome::Invalid,
        }
    }
}

impl Audited for crate::RewindError {
    fn audit_outcome(&self) -> AuditOutcome {
        match self {
            Self::Store(_) => AuditOutcome::Failed,
            Self::AboveLatest { .. } | Self::InProgress { .. } => AuditOutcome::Invalid,
        }
    }
}

/// A history the caller may not see is answered as an empty one (never
/// saying whether the child has a plan) and audited as the denial it is.
impl Audited for crate::HistoryAnswer {
    fn audit_outcome(&self) -> AuditOutcome {
        match self {
            Self::Permitted(_) => AuditOutcome::Allowed,
            Self::NotPermitted => AuditOutcome::Denied,
        }
    }
}

/// What was done. Names are stable: they are what auditors search for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Upload,
    /// A council rewound its upload sequence.
    RewindSequence,
    ListPlans,
    ReadAuthority,
    UpdateAuthority,
    Check,
    ReadHistory,
    ListNotifications,
    ReadNotification,
    AcknowledgeNotification,
    DeliverNotification,
    Purge,
    /// A council read its upload history (the portal's uploads page).
    ListUploads,
    /// A sign-in to the portal (a one-time link redeemed, or OpenID
    /// Connect): `denied` for a link reused, expired or not ours.
    SignIn,
    /// A portal session ended by its user.
    SignOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor_id: String,
    pub organisation: String,
    pub role: String,
    pub action: AuditAction,
    /// The pseudonymised child, when the action names one.
    pub subject: Option<String>,
    pub outcome: AuditOutcome,
    pub trace_id: String,
}

impl AuditEvent {
    pub fn new(
        principal: Option<&Principal>,
        action: AuditAction,
        subject: Option<String>,
        outcome: AuditOutcome,
        at: OffsetDateTime,
        trace_id: &str,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            at,
            actor_id: principal.map_or("anonymous", |p| p.actor_id()).to_owned(),
            organisation: principal.map_or(String::new(), |p| p.organisation().to_string()),
            role: principal.map_or("none", |p| p.role()).to_owned(),
            action,
            subject,
            outcome,
            trace_id: trace_id.to_owned(),
        }
    }

    /// The `Allowed` event of a clinician's check at `at` (`subject`: the
    /// pseudonymised child), as [`crate::check`] writes it.
    pub fn check_allowed(
        clinician: &crate::Clinician,
        subject: Option<String>,
        at: OffsetDateTime,
        trace_id: &str,
    ) -> Self {
        Self::new(
            Some(&Principal::Clinician(clinician.clone())),
            AuditAction::Check,
            subject,
            AuditOutcome::Allowed,
            at,
            trace_id,
        )
    }
}

impl AuditEvent {
    /// An event done by the service itself on an organisation's behalf (a
    /// delivery to a council's duty team), not by a caller.
    pub fn system(
        actor_id: &str,
        organisation: &crate::OdsCode,
        action: AuditAction,
        outcome: AuditOutcome,
        at: OffsetDateTime,
        trace_id: &str,
    ) -> Self {
        Self {
            actor_id: actor_id.to_owned(),
            organisation: organisation.to_string(),
            role: "system".to_owned(),
            ..Self::new(None, action, None, outcome, at, trace_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_per_key_and_hide_the_number() {
        let n = NhsNumber::parse("9990000018").unwrap();
        let a = Pseudonymiser::new(&[1u8; 32]).unwrap();
        let b = Pseudonymiser::new(&[2u8; 32]).unwrap();
        assert_eq!(a.pseudonym(&n), a.pseudonym(&n));
        assert_ne!(a.pseudonym(&n), b.pseudonym(&n));
        assert!(!a.pseudonym(&n).contains("9990000018"));
        assert!(crate::find_nhs_numbers(&a.pseudonym(&n)).is_empty());
    }

    #[test]
    fn refusals_are_invalid_and_store_faults_failed() {
        use crate::ports::StoreError;
        let store = || StoreError::Unavailable("disk".into());
        assert_eq!(store().audit_outcome(), AuditOutcome::Failed);
        let upload = crate::UploadError::StaleSequence {
            sequence: 1,
            latest: 2,
        };
        assert_eq!(upload.audit_outcome(), AuditOutcome::Invalid);
        assert_eq!(
            crate::UploadError::Store(store()).audit_outcome(),
            AuditOutcome::Failed
        );
        let rewind = crate::RewindError::AboveLatest { to: 3, latest: 2 };
        assert_eq!(rewind.audit_outcome(), AuditOutcome::Invalid);
        assert_eq!(
            crate::RewindError::Store(store()).audit_outcome(),
            AuditOutcome::Failed
        );
        assert_eq!(
            crate::HistoryAnswer::NotPermitted.audit_outcome(),
            AuditOutcome::Denied
        );
        assert_eq!(
            crate::HistoryAnswer::Permitted(Vec::new()).audit_outcome(),
            AuditOutcome::Allowed
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Pseudonymiser::new(&[0u8; 31]).is_err());
    }
}
