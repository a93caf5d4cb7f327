//! The embedded service's background work: the ASN dispatcher and the purge sweep.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use cpis_domain::ports::{
    AsnOutbox, AuditTrail, AuthorityDirectory, NotificationChannel, Retention,
};
use cpis_domain::{deliver_pending, AuditAction, AuditEvent, AuditOutcome, Clock};
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
pub async fn run_dispatcher<S, C>(
    store: S,
    channel: C,
    clock: Arc<dyn Clock>,
    wake: WakeDispatcher,
    view_url: String,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsnOutbox + AuthorityDirectory + AuditTrail,
    C: NotificationChannel,
{
    loop {
        match deliver_pending(&store, &channel, clock.now(), SWEEP_BATCH, &view_url).await {
            Ok(report) => {
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

/// Purges what can no longer become visible, hourly, until shutdown.
pub async fn run_purge<S>(store: S, clock: Arc<dyn Clock>, mut shutdown: watch::Receiver<bool>)
where
    S: Retention + AuditTrail,
{
    loop {
        let now = clock.now();
        let outcome = match store.purge(now.date()).await {
            Ok(report) => {
                tracing::info!(
                    plans = report.plans,
                    accesses = report.accesses,
                    notifications = report.notifications,
                    receipts = report.receipts,
                    "purge sweep finished"
                );
                AuditOutcome::Allowed
            }
            Err(error) => {
                tracing::error!(%error, "purge sweep failed");
                AuditOutcome::Failed
            }
        };
        let event = AuditEvent::new(None, AuditAction::Purge, None, outcome, now, "purge-sweep");
        if let Err(error) = store.append(&event).await {
            tracing::error!(%error, "could not audit the purge sweep");
        }
        tokio::select! {
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}
