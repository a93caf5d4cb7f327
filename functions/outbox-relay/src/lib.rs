//! The relay's sweep: every ASN in the outbox (gsi2) that is undelivered and
//! whose claim lapsed goes back on the queue. This is what makes a lost
//! hand-off, a crashed dispatcher or a message dead-lettered by mistake
//! delay a notification rather than lose it.

use cpis_domain::ports::{AsnOutbox, AsnQueue, StoreError};
use cpis_domain::relay_pending;
use time::{Duration, OffsetDateTime};

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
}
