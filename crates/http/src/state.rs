//! What every handler shares: the application state and the port bundles
//! each capability's routes need.

use std::sync::Arc;

use cpis_domain::ports::{
    AccessLog, AsnQueue, AuditTrail, AuthorityDirectory, CheckLedger, CheckReceipts,
    NotificationInbox, PlanStore, UploadLedger,
};
use cpis_domain::{Clock, FeedLog, Pseudonymiser, VisibilityPolicy, VolumeWatch};

use crate::auth::Authenticator;

/// What every handler needs: the store, the hand-off to the dispatcher, the
/// clock, the rules' configuration and the authenticator.
#[derive(Clone)]
pub struct AppState<S, Q> {
    pub store: S,
    pub queue: Q,
    pub clock: Arc<dyn Clock>,
    pub policy: VisibilityPolicy,
    pub pseudonymiser: Pseudonymiser,
    pub auth: Authenticator,
    /// The enumeration watch: logs (never refuses) a caller whose checks are unusual.
    pub volume: Arc<VolumeWatch>,
}

/// The ports the council routes use.
pub trait CouncilStore:
    PlanStore
    + UploadLedger
    + AuthorityDirectory
    + NotificationInbox
    + AuditTrail
    + FeedLog
    + Clone
    + 'static
{
}
impl<T> CouncilStore for T where
    T: PlanStore
        + UploadLedger
        + AuthorityDirectory
        + NotificationInbox
        + AuditTrail
        + FeedLog
        + Clone
        + 'static
{
}

/// The ports the check routes use.
pub trait CheckStore:
    PlanStore + AuthorityDirectory + AccessLog + CheckLedger + AuditTrail + Clone + 'static
{
}
impl<T> CheckStore for T where
    T: PlanStore + AuthorityDirectory + AccessLog + CheckLedger + AuditTrail + Clone + 'static
{
}

/// The ports the history routes use: reads, and the audit trail.
pub trait HistoryStore:
    PlanStore + AccessLog + CheckReceipts + AuditTrail + Clone + 'static
{
}
impl<T> HistoryStore for T where
    T: PlanStore + AccessLog + CheckReceipts + AuditTrail + Clone + 'static
{
}

/// The queue bound every router shares.
pub trait Queue: AsnQueue + Clone + 'static {}
impl<T> Queue for T where T: AsnQueue + Clone + 'static {}
