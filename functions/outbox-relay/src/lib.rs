//! The relay's sweep: every ASN in the outbox (gsi2) that is undelivered and
//! whose claim lapsed goes back on the queue. This is what makes a lost
//! hand-off, a crashed dispatcher or a message dead-lettered by mistake
//! delay a notification rather than lose it.

use cpis_domain::feed::stale_feeds;
use cpis_domain::ports::{AsnOutbox, AsnQueue, PurgeReport, Retention, StoreError};
use cpis_domain::{relay_pending, FeedLog, OdsCode};
use time::{Date, Duration, OffsetDateTime};

/// How long a relayed ASN is left to the dispatcher before it is relayed
/// again: longer than the queue's visibility timeout plus a delivery.
pub const RELAY_LEASE: Duration = Duration::minutes(5);
/// ASNs relayed per sweep; England sees a few hundred a day.
pub const RELAY_BATCH: usize = 500;

pub async fn sweep<S: AsnOutbox, Q: AsnQueue>(
    store: &S,
    queue: &Q,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    relay_pending(store, queue, now, RELAY_LEASE, RELAY_BATCH).await
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
            plan_type: PlanType::ChildProtection,
            local_id: None,
            plans: vec![],
            accessed_at: now,
            accessor,
            access_id: "a1".into(),
            acknowledged_at: None,
        };
        store
            .record_access(&access, &[asn], now - Duration::hours(24))
            .await
            .unwrap();
        let queue = RecordingQueue::default();
        assert_eq!(sweep(&store, &queue, now).await.unwrap(), 1);
        assert_eq!(
            sweep(&store, &queue, now + Duration::minutes(1))
                .await
                .unwrap(),
            0
        );
        assert_eq!(sweep(&store, &queue, now + RELAY_LEASE).await.unwrap(), 1);
        assert_eq!(queue.sent(), ["asn-1", "asn-1"]);
        store.finish_delivery("asn-1", now).await.unwrap();
        let later = now + RELAY_LEASE * 3;
        assert_eq!(
            sweep(&store, &queue, later).await.unwrap(),
            0,
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
}
