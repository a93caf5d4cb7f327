//! Whether a council's duty team can be reached: the confirmed subscriptions
//! on its SNS topic (`cpis-la-<ODS>`), for the outbox relay's
//! `CouncilsWithoutConfirmedChannel` metric. Read-only: nothing here
//! subscribes or unsubscribes (that is `TopicSync`, from the directory entry).

use std::collections::BTreeSet;

use aws_sdk_sns::Client;
use cpis_domain::ports::StoreError;
use cpis_domain::OdsCode;

use crate::errors::unavailable;

/// SNS lists a subscription awaiting confirmation with this in place of an ARN.
fn is_pending(arn: &str) -> bool {
    arn.is_empty()
        || arn.eq_ignore_ascii_case("PendingConfirmation")
        || arn.eq_ignore_ascii_case("pending confirmation")
}

/// Whether one listed subscription reaches a duty team: an email or SMS
/// subscription with a real ARN (confirmed), and for SMS a number that has
/// not opted out (a `STOP` reply keeps the subscription but ends delivery).
pub fn reaches_duty_team(
    protocol: &str,
    endpoint: &str,
    arn: &str,
    opted_out: &BTreeSet<String>,
) -> bool {
    match protocol {
        "email" | "email-json" => !is_pending(arn),
        "sms" => !is_pending(arn) && !opted_out.contains(endpoint),
        _ => false,
    }
}

/// Reads each council topic's subscriptions and the account's opted-out numbers.
#[derive(Debug, Clone)]
pub struct ChannelStatus {
    client: Client,
    topic_arn_prefix: String,
}

impl ChannelStatus {
    pub fn new(client: Client, topic_arn_prefix: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn_prefix: topic_arn_prefix.into(),
        }
    }

    /// Every phone number in the account that replied `STOP` (SNS stops
    /// sending SMS to it, whatever the subscriptions say).
    pub async fn opted_out_numbers(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut numbers = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_phone_numbers_opted_out()
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| unavailable("listing opted-out phone numbers", &e))?;
            numbers.extend(out.phone_numbers().iter().cloned());
            token = out.next_token;
            if token.is_none() {
                return Ok(numbers);
            }
        }
    }

    /// How many subscriptions on the council's topic reach its duty team
    /// ([`reaches_duty_team`]); 0 when the topic does not exist.
    pub async fn confirmed_channels(
        &self,
        ods: &OdsCode,
        opted_out: &BTreeSet<String>,
    ) -> Result<usize, StoreError> {
        let topic_arn = format!("{}{ods}", self.topic_arn_prefix);
        let mut confirmed = 0;
        let mut token: Option<String> = None;
        loop {
            let out = match self
                .client
                .list_subscriptions_by_topic()
                .topic_arn(&topic_arn)
                .set_next_token(token)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_not_found_exception()) =>
                {
                    return Ok(0)
                }
                Err(e) => return Err(unavailable("listing a council's subscriptions", &e)),
            };
            confirmed += out
                .subscriptions()
                .iter()
                .filter(|sub| {
                    reaches_duty_team(
                        sub.protocol().unwrap_or_default(),
                        sub.endpoint().unwrap_or_default(),
                        sub.subscription_arn().unwrap_or_default(),
                        opted_out,
                    )
                })
                .count();
            token = out.next_token;
            if token.is_none() {
                return Ok(confirmed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_confirmed_email_and_sms_not_opted_out_reach_the_duty_team() {
        let arn = "arn:aws:sns:eu-west-2:111122223333:cpis-la-E09000033:0f1e2d3c";
        let opted_out: BTreeSet<String> = ["+447700900999".to_owned()].into();
        assert!(reaches_duty_team(
            "email",
            "duty@example.gov.uk",
            arn,
            &opted_out
        ));
        assert!(!reaches_duty_team(
            "email",
            "duty@example.gov.uk",
            "PendingConfirmation",
            &opted_out
        ));
        assert!(!reaches_duty_team(
            "email",
            "duty@example.gov.uk",
            "",
            &opted_out
        ));
        assert!(reaches_duty_team("sms", "+447700900123", arn, &opted_out));
        assert!(!reaches_duty_team("sms", "+447700900999", arn, &opted_out));
        assert!(!reaches_duty_team(
            "sqs",
            "arn:aws:sqs:eu-west-2:1:q",
            arn,
            &opted_out
        ));
    }
}
