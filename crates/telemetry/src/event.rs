//! Stable names for the log lines an alarm, a metric filter or an operator's
//! query keys on, written as the line's `event` field
//! (`tracing::info!(event = event::CARE_SETTING_CHECK, ...)`), so that the
//! message text stays free to change. CloudWatch reads them at
//! `$.fields.event`. Names are `snake_case` and never change meaning: a new
//! meaning gets a new name.

/// One answered care-setting check, naming the caller and its organisation
/// (never the child): the enumeration watch's record (hazard H6), ranked per
/// caller by the stack's Contributor Insights rule.
pub const CARE_SETTING_CHECK: &str = "care_setting_check";

/// One caller passed the enumeration watch's threshold (hazard H6).
pub const CHECK_VOLUME_UNUSUAL: &str = "check_volume_unusual";

/// A Lambda function could not start: a `CPIS_*` variable is missing or
/// malformed, or the pseudonymisation key could not be read. The line names
/// the variable (`variable`), never its value.
pub const STARTUP_CONFIG_INVALID: &str = "startup_config_invalid";

/// The Lambda runtime stopped with an error after the function started.
pub const RUNTIME_FAILED: &str = "runtime_failed";

/// One SQS message of the dispatcher's batch handled (the span
/// `asn_message` carries its message id).
pub const ASN_MESSAGE_HANDLED: &str = "asn_message_handled";

/// A delivery finished but its audit event could not be written.
pub const DELIVERY_AUDIT_FAILED: &str = "delivery_audit_failed";

/// Every name above, for tests that check they are distinct and well formed
/// (and for the infra tests, which read this file as data).
pub const ALL: &[&str] = &[
    CARE_SETTING_CHECK,
    CHECK_VOLUME_UNUSUAL,
    STARTUP_CONFIG_INVALID,
    RUNTIME_FAILED,
    ASN_MESSAGE_HANDLED,
    DELIVERY_AUDIT_FAILED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for name in ALL {
            assert!(seen.insert(*name), "{name} twice");
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }
}
