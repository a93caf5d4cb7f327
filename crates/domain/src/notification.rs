//! Access to Service Notifications (ASNs) and the text that leaves the service.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Accessor, NhsNumber, OdsCode, PlanType};

/// One ASN: a council is told that a child on its plan was accessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asn {
    pub id: String,
    pub authority: OdsCode,
    pub nhs_number: NhsNumber,
    /// The first of the council's plans for the child (CPP before LAC before UCPP).
    pub plan_type: PlanType,
    pub local_id: Option<String>,
    /// Every visible plan the council holds for the child.
    pub plans: Vec<AsnPlan>,
    #[serde(with = "time::serde::rfc3339")]
    pub accessed_at: OffsetDateTime,
    pub accessor: Accessor,
    pub access_id: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnPlan {
    pub plan_type: PlanType,
    pub local_id: Option<String>,
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
    pub fn notice(&self, view_url: &str) -> NoticeText {
        let reference = self.id.clone();
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
