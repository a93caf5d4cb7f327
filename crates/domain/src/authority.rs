//! The council directory: names, phone numbers and duty-team channels.

use serde::{Deserialize, Serialize};

use crate::OdsCode;

/// A council's directory entry. The council maintains its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    pub ods_code: OdsCode,
    pub name: String,
    pub office_hours_phone: String,
    pub emergency_duty_phone: String,
    pub notify_emails: Vec<String>,
    pub notify_sms: Vec<String>,
}

/// What health sees of a council: the contacts, never its channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityContact {
    pub ods_code: OdsCode,
    pub name: String,
    pub office_hours_phone: String,
    pub emergency_duty_phone: String,
}

impl Authority {
    pub fn contact(&self) -> AuthorityContact {
        AuthorityContact {
            ods_code: self.ods_code.clone(),
            name: self.name.clone(),
            office_hours_phone: self.office_hours_phone.clone(),
            emergency_duty_phone: self.emergency_duty_phone.clone(),
        }
    }

    /// The contact shown when a plan's council has no directory entry yet:
    /// health still sees the flag and which council to ring.
    pub fn unlisted_contact(ods_code: &OdsCode) -> AuthorityContact {
        AuthorityContact {
            ods_code: ods_code.clone(),
            name: format!("Local authority {ods_code} (no directory entry)"),
            office_hours_phone: String::new(),
            emergency_duty_phone: String::new(),
        }
    }
}

/// A field of a directory entry that failed validation, as a JSON pointer and a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

/// The directory entry as the council sends it (the ODS code comes from the credential).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityUpdate {
    pub name: String,
    pub office_hours_phone: String,
    pub emergency_duty_phone: String,
    #[serde(default)]
    pub notify_emails: Vec<String>,
    #[serde(default)]
    pub notify_sms: Vec<String>,
    /// Accepted so a client may send back what it read, but must match the credential.
    #[serde(default)]
    pub ods_code: Option<String>,
    /// Read-only (feed freshness, `GET /v1/authority`): accepted and ignored,
    /// so a client may send back what it read.
    #[serde(default)]
    pub feed: Option<serde::de::IgnoredAny>,
}

const MAX_CHANNELS: usize = 10;

impl AuthorityUpdate {
    /// Validates every field and returns every failure, not just the first.
    pub fn validate(self, ods_code: &OdsCode) -> Result<Authority, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |pointer: String, detail: &str| {
            errors.push(FieldError {
                pointer,
                detail: detail.to_owned(),
            })
        };
        if let Some(claimed) = &self.ods_code {
            if claimed != ods_code.as_str() {
                fail(
                    "/ods_code".into(),
                    "the ODS code is read-only and comes from your credential",
                );
            }
        }
        let name = self.name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            fail(
                "/name".into(),
                "a name of 1 to 200 printable characters is required",
            );
        }
        for (field, phone) in [
            ("office_hours_phone", &self.office_hours_phone),
            ("emergency_duty_phone", &self.emergency_duty_phone),
        ] {
            if !is_phone(phone) {
                fail(
                    format!("/{field}"),
                    "a UK phone number of digits, spaces and an optional leading + is required",
                );
            }
        }
        if self.notify_emails.len() > MAX_CHANNELS {
            fail("/notify_emails".into(), "at most 10 email addresses");
        }
        for (i, email) in self.notify_emails.iter().enumerate() {
            if !is_email(email) {
                fail(format!("/notify_emails/{i}"), "not an email address");
            }
        }
        if self.notify_sms.len() > MAX_CHANNELS {
            fail("/notify_sms".into(), "at most 10 SMS numbers");
        }
        for (i, sms) in self.notify_sms.iter().enumerate() {
            if !is_e164(sms) {
                fail(
                    format!("/notify_sms/{i}"),
                    "an SMS number in E.164 form (+447700900123) is required",
                );
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Authority {
            ods_code: ods_code.clone(),
            name: name.to_owned(),
            office_hours_phone: self.office_hours_phone.trim().to_owned(),
            emergency_duty_phone: self.emergency_duty_phone.trim().to_owned(),
            notify_emails: dedup(self.notify_emails.iter().map(|e| e.trim().to_owned())),
            notify_sms: dedup(self.notify_sms.into_iter()),
        })
    }
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn is_phone(value: &str) -> bool {
    let value = value.trim();
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    let allowed = value
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_digit() || b == b' ' || (b == b'+' && i == 0));
    allowed && (10..=15).contains(&digits)
}

fn is_e164(value: &str) -> bool {
    let rest = match value.strip_prefix('+') {
        Some(rest) => rest,
        None => return false,
    };
    (8..=15).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_digit())
        && !rest.starts_with('0')
}

fn is_email(value: &str) -> bool {
    let value = value.trim();
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update() -> AuthorityUpdate {
        AuthorityUpdate {
            name: "Example Borough Council".into(),
            office_hours_phone: "020 7946 0000".into(),
            emergency_duty_phone: "020 7946 0999".into(),
            notify_emails: vec!["duty@example.gov.uk".into()],
            notify_sms: vec!["+447700900123".into()],
            ods_code: None,
            feed: None,
        }
    }

    fn ods() -> OdsCode {
        OdsCode::parse("E09000033").unwrap()
    }

    #[test]
    fn a_good_entry_validates() {
        let a = update().validate(&ods()).unwrap();
        assert_eq!(a.ods_code, ods());
        assert_eq!(a.contact().name, "Example Borough Council");
    }

    #[test]
    fn every_bad_field_is_reported_with_its_pointer() {
        let bad = AuthorityUpdate {
            name: " ".into(),
            office_hours_phone: "call us".into(),
            emergency_duty_phone: "".into(),
            notify_emails: vec!["nobody".into()],
            notify_sms: vec!["07700900123".into()],
            ods_code: Some("E06000001".into()),
            feed: None,
        };
        let errors = bad.validate(&ods()).unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/ods_code",
                "/name",
                "/office_hours_phone",
                "/emergency_duty_phone",
                "/notify_emails/0",
                "/notify_sms/0"
            ]
        );
    }
}
