//! The portal's ports (issue 14): `PortalSessions` (sessions with idle
//! expiry, one-time sign-in tickets, check results behind a handle) and
//! `UploadHistory` (a council's receipts read back). Run by
//! [`crate::portal_conformance_suite!`] for every store that serves the
//! portal.

use cpis_domain::ports::UploadHistory;
use cpis_domain::session::{PortalSessions, IDLE_TIMEOUT, MAX_SESSION_AGE};
use cpis_domain::{PortalSession, Principal, SecretDigest, SignInAttempt, StoredCheckResult};
use time::Duration;

use crate::fixtures::*;
use crate::support::*;
use crate::Store;

/// Every port the portal needs, as one bound.
pub trait PortalStore: Store + PortalSessions + UploadHistory {}
impl<T> PortalStore for T where T: Store + PortalSessions + UploadHistory {}

fn session(secret: &str, council: &str) -> PortalSession {
    PortalSession::new(
        SecretDigest::of(secret),
        Principal::Council {
            authority: la(council),
            client_id: format!("duty-{council}"),
        },
        format!("csrf-{secret}"),
        NOW,
    )
}

pub async fn sessions_live_while_used_and_end_when_idle<S: PortalStore>(store: &S) {
    let a = session("session a", COUNCIL_A);
    store.create_session(&a).await.expect("create");
    let unknown = SecretDigest::of("never issued");
    assert_eq!(
        store.touch_session(&unknown, NOW).await.expect("read"),
        None
    );
    // Used just before its idle end, it lives on from that use.
    let almost = NOW + IDLE_TIMEOUT - Duration::SECOND;
    let touched = store
        .touch_session(&a.id, almost)
        .await
        .expect("touch")
        .expect("live");
    assert_eq!(touched.principal, a.principal);
    assert_eq!(touched.csrf_token, a.csrf_token);
    assert_eq!(touched.last_seen_at, almost);
    let later = almost + IDLE_TIMEOUT - Duration::SECOND;
    assert!(store
        .touch_session(&a.id, later)
        .await
        .expect("touch")
        .is_some());
    // Idle for the whole timeout: gone, and gone for good.
    let idle = later + IDLE_TIMEOUT;
    assert_eq!(store.touch_session(&a.id, idle).await.expect("touch"), None);
    assert_eq!(
        store.touch_session(&a.id, later).await.expect("touch"),
        None,
        "an ended session is removed, not kept for a clock stepped back"
    );
}

pub async fn a_session_ends_at_its_whole_age_and_at_sign_out<S: PortalStore>(store: &S) {
    let a = session("session a", COUNCIL_A);
    let b = session("session b", COUNCIL_B);
    store.create_session(&a).await.expect("create");
    store.create_session(&b).await.expect("create");
    let mut at = NOW;
    while at < NOW + MAX_SESSION_AGE - Duration::minutes(20) {
        at += Duration::minutes(20);
        assert!(store
            .touch_session(&a.id, at)
            .await
            .expect("touch")
            .is_some());
    }
    assert_eq!(
        store
            .touch_session(&a.id, NOW + MAX_SESSION_AGE)
            .await
            .expect("touch"),
        None
    );
    // Signing out ends that session only; twice is not an error.
    store.destroy_session(&b.id).await.expect("destroy");
    store.destroy_session(&b.id).await.expect("destroy again");
    assert_eq!(store.touch_session(&b.id, NOW).await.expect("touch"), None);
}

pub async fn a_sign_in_ticket_is_redeemed_once<S: PortalStore>(store: &S) {
    let expires = NOW + Duration::minutes(10);
    assert!(store
        .redeem_ticket("ticket-1", expires)
        .await
        .expect("redeem"));
    assert!(!store
        .redeem_ticket("ticket-1", expires)
        .await
        .expect("redeem"));
    assert!(store
        .redeem_ticket("ticket-2", expires)
        .await
        .expect("redeem"));
    // Four at once (the store's calls in flight together): exactly one wins.
    let redeem = || store.redeem_ticket("ticket-3", expires);
    let (w, x, y, z) = tokio::join!(redeem(), redeem(), redeem(), redeem());
    let won = [w, x, y, z].map(|r| r.expect("redeem"));
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    // Until its expiry the purge keeps the record, so a reuse still fails.
    store
        .purge_portal(expires - Duration::SECOND)
        .await
        .expect("purge");
    assert!(!store
        .redeem_ticket("ticket-1", expires)
        .await
        .expect("redeem"));
}

fn attempt(state: &str, expires_at: time::OffsetDateTime) -> SignInAttempt {
    SignInAttempt {
        state: SecretDigest::of(state),
        browser: SecretDigest::of(&format!("browser of {state}")),
        nonce: format!("nonce-{state}"),
        pkce_verifier: "v".repeat(43),
        next: Some("/portal/notifications/abc".to_owned()),
        expires_at,
    }
}

pub async fn a_sign_in_attempt_is_taken_once<S: PortalStore>(store: &S) {
    let ends = NOW + Duration::minutes(10);
    let a = attempt("state a", ends);
    let mut b = attempt("state b", ends);
    b.next = None;
    store.put_sign_in_attempt(&a).await.expect("put");
    store.put_sign_in_attempt(&b).await.expect("put");
    let unknown = SecretDigest::of("never sent");
    assert_eq!(
        store
            .take_sign_in_attempt(&unknown, NOW)
            .await
            .expect("take"),
        None
    );
    // Whole, the first time; nothing ever after (a replayed callback).
    assert_eq!(
        store
            .take_sign_in_attempt(&a.state, NOW)
            .await
            .expect("take"),
        Some(a.clone())
    );
    assert_eq!(
        store
            .take_sign_in_attempt(&a.state, NOW)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .take_sign_in_attempt(&b.state, NOW)
            .await
            .expect("take"),
        Some(b),
        "one without a next"
    );
    // Four callbacks at once: exactly one gets it.
    let c = attempt("state c", ends);
    store.put_sign_in_attempt(&c).await.expect("put");
    let take = || store.take_sign_in_attempt(&c.state, NOW);
    let (w, x, y, z) = tokio::join!(take(), take(), take(), take());
    let got = [w, x, y, z].map(|r| r.expect("take"));
    assert_eq!(got.iter().filter(|g| g.is_some()).count(), 1, "{got:?}");
    // At its end itself it is refused, and gone.
    let d = attempt("state d", ends);
    store.put_sign_in_attempt(&d).await.expect("put");
    assert_eq!(
        store
            .take_sign_in_attempt(&d.state, ends)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .take_sign_in_attempt(&d.state, NOW)
            .await
            .expect("take"),
        None,
        "an ended attempt is removed, not kept for a clock stepped back"
    );
}

pub async fn a_check_result_opens_only_for_its_session_until_it_expires<S: PortalStore>(store: &S) {
    let (mine, theirs) = (SecretDigest::of("mine"), SecretDigest::of("theirs"));
    let handle = SecretDigest::of("handle");
    let result = StoredCheckResult {
        handle: handle.clone(),
        session: mine.clone(),
        payload: r#"{"plans":[]}"#.to_owned(),
        expires_at: NOW + Duration::minutes(10),
    };
    store.put_check_result(&result).await.expect("put");
    assert_eq!(
        store.check_result(&handle, &mine, NOW).await.expect("read"),
        Some(result.payload.clone())
    );
    assert_eq!(
        store
            .check_result(&handle, &theirs, NOW)
            .await
            .expect("read"),
        None
    );
    let other = SecretDigest::of("another handle");
    assert_eq!(
        store.check_result(&other, &mine, NOW).await.expect("read"),
        None
    );
    assert_eq!(
        store
            .check_result(&handle, &mine, result.expires_at)
            .await
            .expect("read"),
        None,
        "at its expiry itself it is gone"
    );
}

pub async fn the_portal_purge_takes_only_what_has_ended<S: PortalStore>(store: &S) {
    let a = session("session a", COUNCIL_A);
    let mut b = session("session b", COUNCIL_B);
    b.created_at = NOW + Duration::hours(1);
    b.last_seen_at = b.created_at;
    store.create_session(&a).await.expect("create");
    store.create_session(&b).await.expect("create");
    store
        .redeem_ticket("old", NOW + Duration::minutes(10))
        .await
        .expect("redeem");
    store
        .redeem_ticket("new", NOW + Duration::hours(2))
        .await
        .expect("redeem");
    let (h1, h2) = (SecretDigest::of("h1"), SecretDigest::of("h2"));
    for (handle, expires_at) in [
        (&h1, NOW + Duration::minutes(10)),
        (&h2, NOW + Duration::hours(2)),
    ] {
        store
            .put_check_result(&StoredCheckResult {
                handle: handle.clone(),
                session: a.id.clone(),
                payload: "{}".to_owned(),
                expires_at,
            })
            .await
            .expect("put");
    }
    store
        .put_sign_in_attempt(&attempt("old", NOW + Duration::minutes(10)))
        .await
        .expect("put");
    let new_attempt = attempt("new", NOW + Duration::hours(2));
    store.put_sign_in_attempt(&new_attempt).await.expect("put");
    let at = NOW + IDLE_TIMEOUT;
    let purged = store.purge_portal(at).await.expect("purge");
    let counts = (
        purged.sessions,
        purged.tickets,
        purged.check_results,
        purged.sign_in_attempts,
    );
    // What lives stays, and nothing ended is served, purged or not.
    assert!(store
        .touch_session(&b.id, at)
        .await
        .expect("touch")
        .is_some());
    assert_eq!(store.touch_session(&a.id, at).await.expect("touch"), None);
    assert!(!store
        .redeem_ticket("new", NOW + Duration::hours(2))
        .await
        .expect("redeem"));
    assert_eq!(
        store.check_result(&h1, &a.id, at).await.expect("read"),
        None
    );
    let h2_payload = store.check_result(&h2, &a.id, at).await.expect("read");
    assert_eq!(h2_payload.as_deref(), Some("{}"));
    let old_state = SecretDigest::of("old");
    assert_eq!(
        store
            .take_sign_in_attempt(&old_state, at)
            .await
            .expect("take"),
        None
    );
    let taken = store.take_sign_in_attempt(&new_attempt.state, at).await;
    assert_eq!(taken.expect("take"), Some(new_attempt));
    if store.expires_by_itself() {
        assert_eq!(counts, (0, 0, 0, 0), "TTL is the purge");
        return;
    }
    assert_eq!(counts, (1, 1, 1, 1));
    let old_again = store.redeem_ticket("old", at + Duration::minutes(10));
    assert!(old_again.await.expect("redeem"), "purged");
    let again = store.purge_portal(at).await.expect("purge");
    assert_eq!(
        (
            again.sessions,
            again.tickets,
            again.check_results,
            again.sign_in_attempts
        ),
        (0, 0, 0, 0)
    );
}

pub async fn upload_history_is_the_councils_own_newest_first<S: PortalStore>(store: &S) {
    assert!(store
        .recent_receipts(&la(COUNCIL_A), 10)
        .await
        .expect("read")
        .is_empty());
    for sequence in 1..=3u64 {
        let body = serde_json::json!({
            "sequence": sequence, "mode": "delta",
            "records": [record(sequence as usize, "CPP", "2025-01-10")]
        });
        upload(store, COUNCIL_A, body).await.expect("upload");
    }
    let body = serde_json::json!({ "sequence": 7, "mode": "delta", "records": [record(0, "LAC", "2025-01-10")]});
    upload(store, COUNCIL_B, body).await.expect("upload");
    let ours = store
        .recent_receipts(&la(COUNCIL_A), 10)
        .await
        .expect("read");
    assert_eq!(
        ours.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    for receipt in &ours {
        assert_eq!(receipt.received_at, Some(NOW), "the time it was processed");
        assert_eq!(
            Some(receipt),
            store
                .receipt(&la(COUNCIL_A), receipt.sequence)
                .await
                .expect("read")
                .as_ref()
        );
    }
    let two = store
        .recent_receipts(&la(COUNCIL_A), 2)
        .await
        .expect("read");
    assert_eq!(two.iter().map(|r| r.sequence).collect::<Vec<_>>(), [3, 2]);
    let theirs = store
        .recent_receipts(&la(COUNCIL_B), 10)
        .await
        .expect("read");
    assert_eq!(theirs.iter().map(|r| r.sequence).collect::<Vec<_>>(), [7]);
    // Numeric order across widths, not text order.
    let mut big = ours[0].clone();
    big.sequence = 10;
    big.acknowledgement.sequence = 10;
    store
        .record_receipt(&la(COUNCIL_A), &big)
        .await
        .expect("record");
    let ours = store
        .recent_receipts(&la(COUNCIL_A), 1)
        .await
        .expect("read");
    assert_eq!(ours[0].sequence, 10);
}

/// Instantiates the portal's behaviours for one adapter, as
/// [`crate::conformance_suite!`] does for the rest.
#[macro_export]
macro_rules! portal_conformance_suite {
    ($adapter:ident, $factory:expr $(,)?) => {
        $crate::__conformance_tests!(
            $adapter,
            $factory,
            [
                sessions_live_while_used_and_end_when_idle,
                a_session_ends_at_its_whole_age_and_at_sign_out,
                a_sign_in_ticket_is_redeemed_once,
                a_sign_in_attempt_is_taken_once,
                a_check_result_opens_only_for_its_session_until_it_expires,
                the_portal_purge_takes_only_what_has_ended,
                upload_history_is_the_councils_own_newest_first,
            ]
        );
    };
}
