//! The relay's sweep: every ASN in the outbox (gsi2) that is undelivered and
//! whose claim lapsed goes back on the queue. This is what makes a lost
//! hand-off, a crashed dispatcher or a message dead-lettered by mistake
//! delay a notification rather than lose it.

pub mod minute;

use cpis_domain::feed::stale_feeds;
use cpis_domain::ports::AuthorityDirectory;
use cpis_domain::ports::{AsnOutbox, AsnQueue, PurgeReport, QueueError, Retention, StoreError};
use cpis_domain::{FeedLog, OdsCode};
use cpis_lambda::emf::emf_line;
use time::{Date, Duration, OffsetDateTime};

/// How long a relayed ASN is left to the dispatcher before it is relayed
/// again: longer than the queue's visibility timeout plus a delivery.
pub const RELAY_LEASE: Duration = Duration::minutes(5);
/// ASNs relayed per sweep; England sees a few hundred a day.
pub const RELAY_BATCH: usize = 500;

/// What one sweep did: how many ASNs went back on the queue, and the age
/// of the oldest of them (time since the access that raised it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub relayed: usize,
    /// `None` when nothing was waiting. An undelivered ASN is claimed again
    /// each time its lease lapses, so every one of them is seen here at least
    /// once every [`RELAY_LEASE`] while the relay runs.
    pub oldest_undelivered: Option<Duration>,
}

/// Why a sweep stopped: the outbox could not be read, or the queue took
/// nothing (the claimed ASNs lapse and the next sweep offers them again).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Claims the undelivered ASNs whose lease lapsed and hands them to the
/// queue again (duplicates are absorbed by the dispatcher), keeping the
/// claimed ASNs' times for the `OldestUndeliveredAsnAge` metric.
pub async fn sweep<S: AsnOutbox, Q: AsnQueue>(
    store: &S,
    queue: &Q,
    now: OffsetDateTime,
) -> Result<SweepReport, SweepError> {
    let claimed = store
        .claim_undelivered(now, RELAY_LEASE, RELAY_BATCH)
        .await?;
    let oldest_undelivered = claimed.iter().map(|asn| now - asn.accessed_at).max();
    let ids: Vec<String> = claimed.into_iter().map(|asn| asn.id).collect();
    if !ids.is_empty() {
        queue.enqueue(&ids).await?;
    }
    Ok(SweepReport {
        relayed: ids.len(),
        oldest_undelivered,
    })
}

/// What a scheduled invocation asks for, from the event's `task` member:
/// absent or `"sweep"` every minute, `"purge"` once a day (a rule of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Sweep,
    Purge,
}

impl Task {
    /// Errors: any other `task` (a misconfigured rule must fail loudly).
    pub fn of(event: &serde_json::Value) -> Result<Self, String> {
        match event.get("task").and_then(serde_json::Value::as_str) {
            None | Some("sweep") => Ok(Task::Sweep),
            Some("purge") => Ok(Task::Purge),
            Some(_) => Err("the event's task must be \"sweep\" or \"purge\"".to_owned()),
        }
    }
}

/// The daily purge on DynamoDB: what TTL does not remove (a child's history,
/// check receipts and ASNs once no plan is left, plans TTL has not reached
/// yet). `today` is the UK civil date (`Clock::today`).
pub async fn purge<S: Retention>(store: &S, today: Date) -> Result<PurgeReport, StoreError> {
    store.purge(today).await
}

/// The councils whose feed is stale at `now` (oldest first), for the
/// `StaleFeeds` metric and a warning each.
pub async fn stale<S: FeedLog>(
    store: &S,
    now: OffsetDateTime,
    stale_after: Duration,
) -> Result<Vec<(OdsCode, Duration)>, StoreError> {
    Ok(stale_feeds(
        &store.last_full_snapshots().await?,
        now,
        stale_after,
    ))
}

/// One CloudWatch embedded-metric-format line: `StaleFeeds` (councils past
/// the threshold) in namespace `CPIS`. Printed to stdout by the function, not
/// through the log filter, so the alarm is fed whatever `LogLevel` says.
pub fn stale_feeds_metric(stale: usize, now: OffsetDateTime) -> String {
    let millis = now.unix_timestamp_nanos() / 1_000_000;
    serde_json::json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": "CPIS",
                "Dimensions": [["Service"]],
                "Metrics": [{ "Name": "StaleFeeds", "Unit": "Count" }],
            }],
        },
        "Service": "cpis",
        "StaleFeeds": stale,
    })
    .to_string()
}

/// `OldestUndeliveredAsnAge` (seconds): the oldest ASN this sweep found
/// undelivered with its claim lapsed, 0 when there was none. Printed every
/// sweep, so the metric going missing means the relay stopped.
pub fn outbox_age_metric(report: &SweepReport, now: OffsetDateTime) -> String {
    let seconds = report
        .oldest_undelivered
        .map_or(0, |age| age.whole_seconds().max(0));
    emf_line(
        now,
        &[("OldestUndeliveredAsnAge", "Seconds", seconds.into())],
    )
}

/// How many duty-team subscriptions reach a council (confirmed, not opted
/// out): `cpis_aws::ChannelStatus` on SNS.
pub trait DutyTeamChannels: Send + Sync {
    fn confirmed_channels(
        &self,
        ods: &OdsCode,
    ) -> impl std::future::Future<Output = Result<usize, StoreError>> + Send;
}

/// Councils that hold a feed (every council with an accepted full snapshot
/// on record, the councils `StaleFeeds` watches) but that a flag or an ASN
/// could not send anywhere: no directory entry (a flag without a phone
/// number, ASNs without a channel), or an entry whose topic has no
/// confirmed subscription that is not opted out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelGaps {
    pub without_directory_entry: Vec<OdsCode>,
    pub without_confirmed_channel: Vec<OdsCode>,
}

pub async fn channel_gaps<S, C>(store: &S, channels: &C) -> Result<ChannelGaps, StoreError>
where
    S: FeedLog + AuthorityDirectory,
    C: DutyTeamChannels,
{
    let mut gaps = ChannelGaps::default();
    for (council, _) in store.last_full_snapshots().await? {
        if store.authority(&council).await?.is_none() {
            gaps.without_directory_entry.push(council);
        } else if channels.confirmed_channels(&council).await? == 0 {
            gaps.without_confirmed_channel.push(council);
        }
    }
    Ok(gaps)
}

/// `CouncilsWithoutDirectoryEntry` and `CouncilsWithoutConfirmedChannel`:
/// counts only (the relay's warning lines name the ODS codes).
pub fn channel_gaps_metric(gaps: &ChannelGaps, now: OffsetDateTime) -> String {
    emf_line(
        now,
        &[
            (
                "CouncilsWithoutDirectoryEntry",
                "Count",
                gaps.without_directory_entry.len().into(),
            ),
            (
                "CouncilsWithoutConfirmedChannel",
                "Count",
                gaps.without_confirmed_channel.len().into(),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::ports::AccessLog;
    use cpis_domain::{
        AccessRecord, Accessor, AccessorKind, Asn, NhsNumber, OdsCode, PlanType, Rbac,
    };
    use cpis_store_memory::{MemoryStore, RecordingQueue};
    use time::macros::datetime;

    #[tokio::test]
    async fn undelivered_asns_are_relayed_again_once_their_claim_lapses() {
        let now = datetime!(2025-03-01 10:00 UTC);
        let store = MemoryStore::new();
        let accessor = Accessor {
            job_role: None,
            kind: AccessorKind::User,
            user_id: "u1".into(),
            rbac: Rbac::B0107,
            organisation_ods: OdsCode::parse("RJ1").unwrap(),
            organisation_name: "Hospital".into(),
            setting: "ED".into(),
        };
        let access = AccessRecord {
            id: "a1".into(),
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            accessed_at: now,
            accessor: accessor.clone(),
        };
        let asn = Asn {
            id: "asn-1".into(),
            authority: OdsCode::parse("E09000033").unwrap(),
            nhs_number: access.nhs_number,
            plans: vec![cpis_domain::AsnPlan {
                upload_sequence: None,
                plan_type: PlanType::ChildProtection,
                local_id: None,
            }],
            accessed_at: now,
            accessor,
            access_id: "a1".into(),
            acknowledged_at: None,
            acknowledgement_note: None,
        };
        store
            .record_access(&access, &[asn], now - Duration::hours(24))
            .await
            .unwrap();
        let queue = RecordingQueue::default();
        let first = sweep(&store, &queue, now).await.unwrap();
        assert_eq!(first.relayed, 1);
        assert_eq!(first.oldest_undelivered, Some(Duration::ZERO));
        let claimed = sweep(&store, &queue, now + Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(claimed, SweepReport::default(), "claimed, so not seen");
        let again = sweep(&store, &queue, now + RELAY_LEASE).await.unwrap();
        assert_eq!(again.relayed, 1);
        assert_eq!(again.oldest_undelivered, Some(RELAY_LEASE));
        assert_eq!(queue.sent(), ["asn-1", "asn-1"]);
        store.finish_delivery("asn-1", now).await.unwrap();
        let later = now + RELAY_LEASE * 3;
        assert_eq!(
            sweep(&store, &queue, later).await.unwrap(),
            SweepReport::default(),
            "delivered ASNs stay put"
        );
    }

    #[test]
    fn the_event_names_the_task_and_an_unknown_one_is_refused() {
        use serde_json::json;
        assert_eq!(Task::of(&json!({})), Ok(Task::Sweep));
        assert_eq!(Task::of(&json!({"task": "sweep"})), Ok(Task::Sweep));
        assert_eq!(Task::of(&json!({"task": "purge"})), Ok(Task::Purge));
        assert!(Task::of(&json!({"task": "Purge"})).is_err());
    }

    #[tokio::test]
    async fn a_feed_past_the_threshold_is_counted_in_the_metric() {
        use cpis_domain::FeedLog;
        let now = datetime!(2026-06-10 10:00 UTC);
        let store = MemoryStore::new();
        let fresh = OdsCode::parse("E09000033").unwrap();
        let late = OdsCode::parse("E06000001").unwrap();
        store
            .record_full_snapshot(&fresh, now - Duration::hours(47))
            .await
            .unwrap();
        store
            .record_full_snapshot(&late, now - Duration::hours(49))
            .await
            .unwrap();
        let found = stale(&store, now, Duration::hours(48)).await.unwrap();
        assert_eq!(found, vec![(late, Duration::hours(49))]);
        let line: serde_json::Value =
            serde_json::from_str(&stale_feeds_metric(found.len(), now)).unwrap();
        assert_eq!(line["StaleFeeds"], 1);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "CPIS");
        assert_eq!(line["_aws"]["Timestamp"], 1_781_085_600_000_i64);
    }
    fn metric_line(line: &str) -> serde_json::Value {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CPIS");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Service"]]));
        assert_eq!(value["Service"], "cpis");
        value
    }

    #[test]
    fn the_outbox_age_line_gives_the_oldest_undelivered_asn_in_seconds_and_zero_when_none() {
        let now = datetime!(2026-06-10 10:00 UTC);
        let report = SweepReport {
            relayed: 2,
            oldest_undelivered: Some(Duration::minutes(20)),
        };
        let line = metric_line(&outbox_age_metric(&report, now));
        assert_eq!(line["OldestUndeliveredAsnAge"], 1200);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            serde_json::json!([{ "Name": "OldestUndeliveredAsnAge", "Unit": "Seconds" }])
        );
        assert_eq!(line["_aws"]["Timestamp"], 1_781_085_600_000_i64);
        let idle = metric_line(&outbox_age_metric(&SweepReport::default(), now));
        assert_eq!(idle["OldestUndeliveredAsnAge"], 0);
    }

    struct FakeChannels(Vec<(OdsCode, usize)>);

    impl DutyTeamChannels for FakeChannels {
        async fn confirmed_channels(&self, ods: &OdsCode) -> Result<usize, StoreError> {
            Ok(self.0.iter().find(|(c, _)| c == ods).map_or(0, |(_, n)| *n))
        }
    }

    #[tokio::test]
    async fn councils_with_a_feed_but_no_entry_or_no_confirmed_channel_are_counted() {
        use cpis_domain::ports::AuthorityDirectory;
        use cpis_domain::{Authority, FeedLog};
        let now = datetime!(2026-06-10 10:00 UTC);
        let store = MemoryStore::new();
        let reached = OdsCode::parse("E09000033").unwrap();
        let unconfirmed = OdsCode::parse("E06000001").unwrap();
        let unlisted = OdsCode::parse("E08000025").unwrap();
        // Has an entry but never uploaded: not a council holding plans.
        let no_feed = OdsCode::parse("E10000002").unwrap();
        for council in [&reached, &unconfirmed, &unlisted] {
            store.record_full_snapshot(council, now).await.unwrap();
        }
        for council in [&reached, &unconfirmed, &no_feed] {
            store
                .put_authority(&Authority {
                    ods_code: council.clone(),
                    name: "Example Council".into(),
                    office_hours_phone: "020 7946 0000".into(),
                    emergency_duty_phone: "020 7946 0999".into(),
                    notify_emails: vec!["duty.team@example.gov.uk".into()],
                    notify_sms: vec![],
                })
                .await
                .unwrap();
        }
        let channels = FakeChannels(vec![(reached.clone(), 1), (unconfirmed.clone(), 0)]);
        let gaps = channel_gaps(&store, &channels).await.unwrap();
        assert_eq!(gaps.without_directory_entry, vec![unlisted]);
        assert_eq!(gaps.without_confirmed_channel, vec![unconfirmed]);
        let line = metric_line(&channel_gaps_metric(&gaps, now));
        assert_eq!(line["CouncilsWithoutDirectoryEntry"], 1);
        assert_eq!(line["CouncilsWithoutConfirmedChannel"], 1);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            serde_json::json!([
                { "Name": "CouncilsWithoutDirectoryEntry", "Unit": "Count" },
                { "Name": "CouncilsWithoutConfirmedChannel", "Unit": "Count" },
            ])
        );
        let none = metric_line(&channel_gaps_metric(&ChannelGaps::default(), now));
        assert_eq!(none["CouncilsWithoutDirectoryEntry"], 0);
        assert_eq!(none["CouncilsWithoutConfirmedChannel"], 0);
    }
}
