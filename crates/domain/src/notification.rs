//! Access to Service Notifications (ASNs) and the text that leaves the service.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time};

use crate::{Accessor, NhsNumber, OdsCode, PlanType};

/// One ASN: a council is told that a child on its plan was accessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asn {
    pub id: String,
    pub authority: OdsCode,
    pub nhs_number: NhsNumber,
    /// Every visible plan the council holds for the child, first the one
    /// the ASN is about (CPP before LAC before UCPP); never empty. Stored
    /// ASNs written before the first plan's fields were derived still read:
    /// their `plan_type` and `local_id` members are ignored.
    pub plans: Vec<AsnPlan>,
    #[serde(with = "time::serde::rfc3339")]
    pub accessed_at: OffsetDateTime,
    pub accessor: Accessor,
    pub access_id: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    /// The duty team's note given with the acknowledgement, if any
    /// ([`AckNote`]); the first note given is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgement_note: Option<String>,
}

/// A duty team's note on acknowledging an ASN (the portal's optional note,
/// and the API's `note`): what was done, for the council's own record. It
/// may name people, so it is kept with the ASN (which holds the child's NHS
/// number anyway), never in the audit trail, a log or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckNote(String);

/// Why a note was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckNoteError {
    #[error("a note is at most 1,000 characters")]
    TooLong,
    #[error("a note holds only printable characters and line breaks")]
    Unprintable,
}

impl AckNote {
    /// The longest note, in characters.
    pub const MAX_CHARS: usize = 1000;

    /// `raw` trimmed, with `\r\n` as `\n`; `None` for a blank note.
    pub fn parse(raw: &str) -> Result<Option<Self>, AckNoteError> {
        let text = raw.replace("\r\n", "\n");
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(AckNoteError::TooLong);
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(AckNoteError::Unprintable);
        }
        Ok(Some(Self(text.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnPlan {
    pub plan_type: PlanType,
    pub local_id: Option<String>,
    /// The plan's [`crate::Plan::upload_sequence`] when the access was made
    /// (the ASN file's `referredToLAUploadFile`). Absent in ASNs stored
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_sequence: Option<u64>,
}

/// The plain text that leaves the service by SMS and email. Only an opaque
/// reference, the time and how to view it: no NHS number, name, date of birth,
/// local id, setting or plan type (plain text leaves AWS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeText {
    pub reference: String,
    pub sms: String,
    pub email_subject: String,
    pub email_body: String,
}

impl Asn {
    /// The plan the ASN is about: the first of the council's plans for the
    /// child. `None` only for an ASN built without plans, which
    /// [`crate::check::notifications_for`] never makes.
    pub fn first_plan(&self) -> Option<&AsnPlan> {
        self.plans.first()
    }

    /// The SMS and email for this ASN. `view_url` is where the council's
    /// ASN pages are (the portal's `/portal/notifications`); the link is
    /// that ASN's own page, `<view_url>/<id>`, which the duty team reaches
    /// through sign-in. The id is the opaque reference the text carries
    /// anyway, so the link says nothing more about the child.
    pub fn notice(&self, view_url: &str) -> NoticeText {
        let reference = self.id.clone();
        let view_url = format!("{}/{reference}", view_url.trim_end_matches('/'));
        let at = self
            .accessed_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "an unknown time".to_owned());
        let sms = format!(
            "CP-IS: a child on one of your plans attended unscheduled NHS care at {at}. Ref {reference}. Sign in to view: {view_url}"
        );
        let email_subject = format!("CP-IS access notification {reference}");
        let email_body = format!(
            "A child on one of your council's plans attended an unscheduled NHS care setting at {at} (UTC).\n\n\
             Reference: {reference}\n\n\
             For the child's details and who accessed the record, sign in to the CP-IS council service: {view_url}\n\n\
             This message deliberately carries no personal information."
        );
        NoticeText {
            reference,
            sms,
            email_subject,
            email_body,
        }
    }
}

/// How long an ASN outlives its child's last plan (our decision: README
/// decisions table; hazard log H3 and H13). While the child holds any plan
/// the ASN stays. Once not, a delivered ASN stays in its council's inbox:
/// - if acknowledged, until [`ACKNOWLEDGED_ASN_RETENTION`] after the access
///   (the duty team has had it; a month covers the follow-up);
/// - if never acknowledged, until [`UNACKNOWLEDGED_ASN_RETENTION`] after the
///   access (the 12-month tail plans have too).
///
/// An undelivered ASN is never purged: a notification is never lost.
pub const ACKNOWLEDGED_ASN_RETENTION: Duration = Duration::days(30);
/// See [`ACKNOWLEDGED_ASN_RETENTION`].
pub const UNACKNOWLEDGED_ASN_RETENTION: Duration = Duration::days(365);

/// The purge's cut-offs for ASNs of children with no plan left, on `today`:
/// a delivered ASN accessed before `acknowledged_before` goes if it was
/// acknowledged; one accessed before `any_before` goes either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsnCutoffs {
    pub acknowledged_before: OffsetDateTime,
    pub any_before: OffsetDateTime,
}

impl AsnCutoffs {
    /// Cut-offs at 00:00 UTC of `today` less each retention period.
    pub fn on(today: Date) -> Self {
        let midnight = today.with_time(Time::MIDNIGHT).assume_utc();
        Self {
            acknowledged_before: midnight - ACKNOWLEDGED_ASN_RETENTION,
            any_before: midnight - UNACKNOWLEDGED_ASN_RETENTION,
        }
    }

    /// Whether a delivered ASN of a child with no plan left may be purged.
    pub fn purges(&self, accessed_at: OffsetDateTime, acknowledged: bool) -> bool {
        accessed_at < self.any_before || (acknowledged && accessed_at < self.acknowledged_before)
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn a_note_is_trimmed_bounded_and_printable() {
        assert_eq!(AckNote::parse("  \r\n "), Ok(None));
        let note = AckNote::parse(" Rang the ward.\r\nVisiting at 09:00. ")
            .unwrap()
            .unwrap();
        assert_eq!(note.as_str(), "Rang the ward.\nVisiting at 09:00.");
        let longest = "é".repeat(AckNote::MAX_CHARS);
        assert!(
            AckNote::parse(&longest).unwrap().is_some(),
            "characters, not bytes"
        );
        assert_eq!(
            AckNote::parse(&format!("{longest}x")),
            Err(AckNoteError::TooLong)
        );
        assert_eq!(AckNote::parse("a\u{7}b"), Err(AckNoteError::Unprintable));
        assert_eq!(
            AckNote::parse("a\u{1b}[31mb"),
            Err(AckNoteError::Unprintable)
        );
        assert!(AckNote::parse("tabs\tare fine").unwrap().is_some());
    }

    #[test]
    fn the_link_is_the_asns_own_page_whatever_the_trailing_slash() {
        let asn = Asn {
            id: "0f9d6a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6".into(),
            authority: crate::OdsCode::parse("E09000033").unwrap(),
            nhs_number: crate::NhsNumber::parse("9990000018").unwrap(),
            plans: vec![AsnPlan {
                plan_type: crate::PlanType::ChildProtection,
                local_id: None,
                upload_sequence: None,
            }],
            accessed_at: datetime!(2026-07-01 02:00 UTC),
            accessor: crate::Accessor {
                kind: crate::AccessorKind::User,
                user_id: "u1".into(),
                rbac: crate::Rbac::B0107,
                organisation_ods: crate::OdsCode::parse("RJ1").unwrap(),
                organisation_name: "St Example's".into(),
                setting: "emergency-department".into(),
                job_role: None,
            },
            access_id: "a1".into(),
            acknowledged_at: None,
            acknowledgement_note: None,
        };
        let link = "https://cpis.example/portal/notifications/0f9d6a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6";
        for base in [
            "https://cpis.example/portal/notifications",
            "https://cpis.example/portal/notifications/",
        ] {
            let notice = asn.notice(base);
            assert!(notice.sms.ends_with(&format!("Sign in to view: {link}")));
            assert!(notice.email_body.contains(&format!("service: {link}\n")));
        }
    }

    #[test]
    fn an_asn_is_kept_a_month_once_acknowledged_and_a_year_if_never() {
        let cut = AsnCutoffs::on(date!(2026 - 07 - 31));
        let accessed = datetime!(2026-07-01 00:00 UTC);
        assert!(!cut.purges(accessed, true), "day 30 after the access");
        assert!(cut.purges(accessed - Duration::nanoseconds(1), true));
        // 2025-07-31 00:00 is the year's cut-off: an access at it stays.
        assert!(!cut.purges(accessed - Duration::days(335), false));
        assert!(cut.purges(accessed - Duration::days(336), false));
    }
}
