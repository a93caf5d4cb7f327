//! The one upload use case every entry point runs: the council's JSON route
//! (`POST /v1/uploads`) and its HL7 v3 files over MESH. What makes an upload
//! an upload, beyond [`process_upload`]: feed freshness and the one audit
//! event, in that order, from the typed result.

use time::OffsetDateTime;

use crate::feed::{is_accepted_full_snapshot, FeedLog};
use crate::ports::{AuditTrail, PlanStore, StoreError, UploadLedger};
use crate::upload::{process_upload, UploadError, UploadResult};
use crate::{AuditAction, AuditEvent, AuditOutcome, Audited, OdsCode, Principal, VisibilityPolicy};

/// What [`receive_upload`] did: the upload's answer, and the two records
/// kept beside it that failed without failing it (the plans are on disk
/// by then; the caller logs each at error level, and the store's readiness
/// shows the failed write).
#[derive(Debug)]
pub struct Received {
    pub result: Result<UploadResult, UploadError>,
    /// Recording the council's accepted full snapshot failed: its feed may
    /// be reported stale until the next one.
    pub feed_error: Option<StoreError>,
    /// The upload's audit event could not be written.
    pub audit_error: Option<StoreError>,
}

/// Runs one council's upload: [`process_upload`] on `body` (the JSON
/// route's batch: the request body, or the batch an HL7 v3 file becomes),
/// then records an accepted full snapshot as the council's feed
/// ([`is_accepted_full_snapshot`]), then appends one `Upload` audit event
/// naming `principal` (the council's credential, or its MESH mailbox), with
/// the outcome the result's type gives ([`Audited`]) and `trace_id` (the
/// request id, or the MESH message id). The council is `authority`, which the
/// caller took from the credential or the mailbox map, never from the body.
pub async fn receive_upload<S>(
    store: &S,
    principal: &Principal,
    authority: &OdsCode,
    body: &[u8],
    now: OffsetDateTime,
    policy: &VisibilityPolicy,
    trace_id: &str,
) -> Received
where
    S: PlanStore + UploadLedger + FeedLog + AuditTrail,
{
    let result = process_upload(store, authority, body, now, policy).await;
    let feed_error = match &result {
        Ok(done) if is_accepted_full_snapshot(&done.acknowledgement, done.replayed) => {
            store.record_full_snapshot(authority, now).await.err()
        }
        _ => None,
    };
    let outcome = match &result {
        Ok(_) => AuditOutcome::Allowed,
        Err(error) => error.audit_outcome(),
    };
    let event = AuditEvent::new(
        Some(principal),
        AuditAction::Upload,
        None,
        outcome,
        now,
        trace_id,
    );
    let audit_error = store.append(&event).await.err();
    Received {
        result,
        feed_error,
        audit_error,
    }
}
