//! The embedded service's background work: the ASN dispatcher (SMS, email
//! and, for councils with a MESH mailbox, ASN files), the purge sweep and the
//! feed watch. The MESH inbox's poll loop is `cpis::mesh::run_poller`.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use cpis_domain::feed::stale_feeds;
use cpis_domain::ports::{
    AsnOutbox, AuditTrail, AuthorityDirectory, NotificationChannel, PurgeReport, Retention,
};
use cpis_domain::session::PortalSessions;
use cpis_domain::{
    deliver_pending_with, AuditAction, AuditEvent, AuditOutcome, Clock, FeedLog, FileLeg, OdsCode,
    SweepReport,
};
use tokio::sync::watch;

use cpis::delivery::WakeDispatcher;

/// ASNs claimed per sweep.
const SWEEP_BATCH: usize = 50;
/// How often the dispatcher sweeps when nobody wakes it (retries, restarts).
const SWEEP_INTERVAL: StdDuration = StdDuration::from_secs(2);
/// How often expired plans and orphaned histories are purged.
const PURGE_INTERVAL: StdDuration = StdDuration::from_secs(3600);

/// Delivers undelivered ASNs until shutdown: on every wake-up from a check,
/// and every couple of seconds to pick up retries and anything left by a crash.
/// `files` is the MESH leg (`NoFiles` when MESH is off).
pub async fn run_dispatcher<S, C, F>(
    store: S,
    channel: C,
    files: F,
    clock: Arc<dyn Clock>,
    wake: WakeDispatcher,
    view_url: String,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
    F: FileLeg,
{
    loop {
        let swept = deliver_pending_with(
            &store,
            &channel,
            &files,
            clock.now(),
            SWEEP_BATCH,
            &view_url,
        )
        .await;
        match swept {
            Ok(report) => {
                log_sweep(&report);
                if report.claimed == SWEEP_BATCH {
                    continue;
                }
            }
            Err(error) => tracing::error!(%error, "the dispatcher could not read the outbox"),
        }
        tokio::select! {
            _ = wake.woken() => {}
            _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// What a sweep needs operators to see: retries coming, deliveries not
/// audited, and each ASN whose file could not be sent (its id and why; the
/// ASN is in the council's inbox, and its SMS and email went).
pub fn log_sweep(report: &SweepReport) {
    if report.failed > 0 {
        tracing::warn!(
            failed = report.failed,
            "some notifications could not be delivered; they will be retried"
        );
    }
    if report.unaudited > 0 {
        tracing::error!(
            unaudited = report.unaudited,
            "notifications were delivered but their audit events could not be written"
        );
    }
    for (asn_id, why) in &report.files_impossible {
        tracing::error!(
            asn_id = %asn_id,
            reason = %why,
            "the ASN could not be sent as a file to the council's MESH mailbox; it is in the council's inbox"
        );
    }
}

/// Purges what can no longer become visible, hourly, until shutdown.
pub async fn run_purge<S>(store: S, clock: Arc<dyn Clock>, mut shutdown: watch::Receiver<bool>)
where
    S: Retention + AuditTrail + PortalSessions,
{
    loop {
        purge_once(&store, clock.as_ref()).await;
        // The portal's ended sessions, used sign-in tickets past their
        // expiry and expired check results (nothing there is kept longer).
        match store.purge_portal(clock.now()).await {
            Ok(purged) => tracing::info!(
                sessions = purged.sessions,
                tickets = purged.tickets,
                check_results = purged.check_results,
                sign_in_attempts = purged.sign_in_attempts,
                "portal purge finished"
            ),
            Err(error) => tracing::error!(%error, "portal purge failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One purge sweep, as of the clock's UK civil date (`Clock::today`: a plan
/// is purged from the first minute of its purge day in England, not at
/// 01:00 during summer time), audited as `Purge`. Failures are logged at
/// error level and audited as failed; the report is `None` then.
pub async fn purge_once<S>(store: &S, clock: &dyn Clock) -> Option<PurgeReport>
where
    S: Retention + AuditTrail,
{
    let now = clock.now();
    let (report, outcome) = match store.purge(clock.today()).await {
        Ok(report) => {
            tracing::info!(
                plans = report.plans,
                accesses = report.accesses,
                notifications = report.notifications,
                receipts = report.receipts,
                "purge sweep finished"
            );
            (Some(report), AuditOutcome::Allowed)
        }
        Err(error) => {
            tracing::error!(%error, "purge sweep failed");
            (None, AuditOutcome::Failed)
        }
    };
    let event = AuditEvent::new(None, AuditAction::Purge, None, outcome, now, "purge-sweep");
    if let Err(error) = store.append(&event).await {
        tracing::error!(%error, "could not audit the purge sweep");
    }
    report
}

/// How often the feed watch looks at every council's last full snapshot.
const FEED_WATCH_INTERVAL: StdDuration = StdDuration::from_secs(3600);

/// Warns, hourly until shutdown, about every council whose last accepted
/// full snapshot is older than `stale_after` (hazard H2: its plans may be
/// stale both ways). Repeated each hour while it lasts, so it is seen.
pub async fn run_feed_watch<S: FeedLog>(
    store: S,
    clock: Arc<dyn Clock>,
    stale_after: time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        report_stale_feeds(&store, clock.now(), stale_after).await;
        tokio::select! {
            _ = tokio::time::sleep(FEED_WATCH_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One look: logs each stale council at warning level (its ODS code, the
/// whole hours since its last accepted full snapshot and the threshold) and
/// returns them, oldest first. A store failure is logged at error level.
pub async fn report_stale_feeds<S: FeedLog>(
    store: &S,
    now: time::OffsetDateTime,
    stale_after: time::Duration,
) -> Vec<(OdsCode, time::Duration)> {
    let feeds = match store.last_full_snapshots().await {
        Ok(feeds) => feeds,
        Err(error) => {
            tracing::error!(%error, "the feed watch could not read the councils' feeds");
            return Vec::new();
        }
    };
    let stale = stale_feeds(&feeds, now, stale_after);
    for (council, age) in &stale {
        tracing::warn!(
            %council,
            hours_since_last_full_snapshot = age.whole_hours(),
            stale_after_hours = stale_after.whole_hours(),
            "no accepted full snapshot from this council within the threshold: its plans may be out of date"
        );
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_conformance::fixtures::{child, la, plan, stored, COUNCIL_A};
    use cpis_domain::ports::PlanStore;
    use cpis_domain::{ManualClock, PlanType, VisibilityPolicy};
    use cpis_store_sqlite::SqliteStore;
    use time::macros::{date, datetime};
    use time::{Date, Duration, UtcOffset};

    /// At 00:30 in the UK on each night, the purge removes the plan whose
    /// purge day is that UK date and keeps the one purged from tomorrow. With
    /// the UTC date (the old rule) the BST nights purge nothing.
    #[tokio::test]
    async fn the_purge_sweep_uses_the_uk_date_at_half_past_midnight() {
        let nights = [
            (datetime!(2026-03-29 00:30 +0), date!(2026 - 03 - 29)),
            (datetime!(2026-03-30 00:30 +1), date!(2026 - 03 - 30)),
            (datetime!(2026-07-15 00:30 +1), date!(2026 - 07 - 15)),
            (datetime!(2026-10-25 00:30 +1), date!(2026 - 10 - 25)),
        ];
        let policy = VisibilityPolicy::default();
        for (night, today) in nights {
            let store = SqliteStore::open_in_memory().unwrap();
            // A CPP ended on E is purged from E + 366 days.
            let ended = |index: usize, purge_day: Date| cpis_domain::Plan {
                end_date: Some(purge_day - Duration::days(366)),
                ..plan(
                    COUNCIL_A,
                    child(index),
                    PlanType::ChildProtection,
                    date!(2024 - 01 - 10),
                )
            };
            let due = ended(0, today);
            let tomorrow = ended(1, today + Duration::days(1));
            assert_eq!(due.purge_from(&policy), Some(today));
            store
                .apply_changes(&la(COUNCIL_A), &[stored(&due), stored(&tomorrow)], &[])
                .await
                .unwrap();
            let clock = ManualClock::new(night.to_offset(UtcOffset::UTC));
            let report = purge_once(&store, &clock).await.expect("the purge ran");
            assert_eq!(report.plans, 1, "{today}: the plan due today is purged");
            let left = store.plan_keys_for_authority(&la(COUNCIL_A)).await.unwrap();
            assert_eq!(left.len(), 1, "{today}");
            assert_eq!(left[0].nhs_number, child(1), "{today}: tomorrow's is kept");
        }
    }

    #[tokio::test]
    async fn the_feed_watch_names_each_council_past_the_threshold() {
        let store = SqliteStore::open_in_memory().unwrap();
        let now = datetime!(2026-03-04 10:00 UTC);
        let b = la(cpis_conformance::fixtures::COUNCIL_B);
        store
            .record_full_snapshot(&la(COUNCIL_A), now - Duration::hours(47))
            .await
            .unwrap();
        store
            .record_full_snapshot(&b, now - Duration::hours(49))
            .await
            .unwrap();
        let hours = |h| Duration::hours(h);
        assert_eq!(
            report_stale_feeds(&store, now, hours(48)).await,
            vec![(b.clone(), hours(49))]
        );
        // The threshold is the operator's.
        assert_eq!(report_stale_feeds(&store, now, hours(50)).await, vec![]);
        assert_eq!(
            report_stale_feeds(&store, now, hours(24)).await,
            vec![(b, hours(49)), (la(COUNCIL_A), hours(47))]
        );
    }
}
