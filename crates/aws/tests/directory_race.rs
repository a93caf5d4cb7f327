//! Racing directory updates through the store plan-upload runs (it keeps
//! each council's SNS subscriptions in step with its entry): whatever the
//! interleaving, the subscriptions end equal to the stored entry's channels,
//! so no duty-team channel the entry lists is left unsubscribed. On moto.

use std::collections::BTreeSet;

use cpis_aws::moto;
use cpis_domain::ports::AuthorityDirectory;
use cpis_domain::{Authority, OdsCode};

/// Race trials: both orders, and the interleavings between, many times.
const TRIALS: usize = 16;

fn entry(ods: &OdsCode, emails: &[&str], sms: &[&str]) -> Authority {
    Authority {
        ods_code: ods.clone(),
        name: "Example Borough Council".into(),
        office_hours_phone: "020 7946 0000".into(),
        emergency_duty_phone: "020 7946 0999".into(),
        notify_emails: emails.iter().map(|s| (*s).to_owned()).collect(),
        notify_sms: sms.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn channels(entry: &Authority) -> BTreeSet<(String, String)> {
    let email = entry
        .notify_emails
        .iter()
        .map(|e| ("email".to_owned(), e.clone()));
    let sms = entry
        .notify_sms
        .iter()
        .map(|n| ("sms".to_owned(), n.clone()));
    email.chain(sms).collect()
}

async fn subscriptions(sns: &aws_sdk_sns::Client, topic_arn: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut token = None;
    loop {
        let page = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(token)
            .send()
            .await
            .expect("listing subscriptions");
        for s in page.subscriptions() {
            found.insert((
                s.protocol().unwrap_or_default().to_owned(),
                s.endpoint().unwrap_or_default().to_owned(),
            ));
        }
        token = page.next_token;
        if token.is_none() {
            return found;
        }
    }
}

#[tokio::test]
async fn racing_directory_updates_leave_the_subscriptions_equal_to_the_entry() {
    let world = moto::TopicWorld::new().await;
    let mut winners = BTreeSet::new();
    for trial in 0..TRIALS {
        let ods = moto::unique_ods();
        let topic_arn = format!("{}{ods}", moto::topic_arn_prefix());
        world
            .list(&entry(&ods, &["duty@example.gov.uk"], &["+447700900123"]))
            .await;
        // One keeps the email and adds a second; the other swaps the SMS
        // number and adds one: each drops a channel the other keeps.
        let one = entry(
            &ods,
            &["duty@example.gov.uk", "edt@example.gov.uk"],
            &["+447700900123"],
        );
        let other = entry(
            &ods,
            &["duty@example.gov.uk"],
            &["+447700900456", "+447700900789"],
        );
        let (first, second) = if trial % 2 == 0 {
            (&one, &other)
        } else {
            (&other, &one)
        };
        let (a, b) = tokio::join!(
            world.store.put_authority(first),
            world.store.put_authority(second)
        );
        a.expect("first update");
        b.expect("second update");
        let stored = world
            .store
            .authority(&ods)
            .await
            .expect("read")
            .expect("listed");
        assert!(stored == one || stored == other, "trial {trial}: a mix");
        assert_eq!(
            subscriptions(&world.sns, &topic_arn).await,
            channels(&stored),
            "trial {trial}: the subscriptions are not the stored entry's channels"
        );
        winners.insert(stored == one);
    }
    assert_eq!(winners.len(), 2, "one entry always won: no race was run");
}
