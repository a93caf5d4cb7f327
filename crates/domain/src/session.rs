//! Portal sessions (issue 14): who is signed in to the web portal, for how
//! long, and the short-lived things a session holds (one-time sign-in
//! tickets redeemed, check results behind a handle).
//!
//! The rules here; the storage behind [`PortalSessions`]. A session is made
//! by a sign-in (the embedded one-time link, or OpenID Connect) that yields
//! the same [`Principal`] an API token yields, so a page reached through a
//! session is subject to exactly the rules of the API route it mirrors.
//!
//! Secrets (the session id in the cookie, a result handle) are never stored:
//! only their SHA-256 digest ([`SecretDigest`]), so a copy of the store
//! cannot be turned into a signed-in browser.

use std::future::Future;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::ports::StoreError;
use crate::Principal;

/// A session unused for this long is over (NHS Digital's guidance for
/// clinical systems on shared machines: sign out after inactivity; 30
/// minutes is what NHS CIS2 sessions use). Every page view moves it on.
pub const IDLE_TIMEOUT: Duration = Duration::minutes(30);
/// However busy, a session ends this long after its sign-in (a shift).
pub const MAX_SESSION_AGE: Duration = Duration::hours(12);
/// A one-time sign-in link expires this long after it was made (issue 14).
pub const SIGN_IN_TICKET_TTL: Duration = Duration::minutes(10);
/// A check result stays behind its handle this long: long enough to read it
/// and refresh the page, short enough that a handle in a history or a log
/// of a shared machine opens nothing later. Only the session that made it
/// may open it.
pub const CHECK_RESULT_TTL: Duration = Duration::minutes(10);
/// An OpenID Connect sign-in must come back from the identity provider
/// within this long (the time to type a password and a second factor; a
/// smartcard's PIN for NHS CIS2).
pub const SIGN_IN_ATTEMPT_TTL: Duration = Duration::minutes(10);

/// The SHA-256 digest (64 lower-case hex digits) of a secret: what the
/// store keeps instead of a session id or a result handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecretDigest(String);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A digest as stored (64 lower-case hex digits), or `None`.
    pub fn parse(stored: &str) -> Option<Self> {
        (stored.len() == 64
            && stored
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(stored.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSession {
    /// The digest of the session id the browser holds in its cookie.
    pub id: SecretDigest,
    /// Who signed in: the same principal an API token for them gives.
    pub principal: Principal,
    /// The session's CSRF token, put in every form and checked on every
    /// POST (random, 256 bits, base64url; not a secret of the store's: it
    /// is in every page the session is shown).
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
}

impl PortalSession {
    /// A new session, signed in at `now`.
    pub fn new(
        id: SecretDigest,
        principal: Principal,
        csrf_token: String,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            principal,
            csrf_token,
            created_at: now,
            last_seen_at: now,
        }
    }

    /// When the session ends unless it is used again: [`IDLE_TIMEOUT`]
    /// after its last use, and never later than [`MAX_SESSION_AGE`] after
    /// its sign-in.
    pub fn expires_at(&self) -> OffsetDateTime {
        (self.last_seen_at + IDLE_TIMEOUT).min(self.created_at + MAX_SESSION_AGE)
    }

    /// The session used at `now`: its last use moved to `now`, or `None`
    /// if it had ended (at [`PortalSession::expires_at`] itself it has).
    /// Every adapter's touch applies this rule, so none decides expiry.
    pub fn touched(&self, now: OffsetDateTime) -> Option<Self> {
        (now < self.expires_at()).then(|| Self {
            last_seen_at: now.max(self.last_seen_at),
            ..self.clone()
        })
    }
}

/// A check result waiting behind its handle (`POST /portal/check` then
/// redirect: the NHS number never travels in a URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckResult {
    /// The digest of the handle in the result page's URL.
    pub handle: SecretDigest,
    /// The session that made it: no other may open it.
    pub session: SecretDigest,
    /// The result as the page renders it (JSON, the portal's own form).
    pub payload: String,
    pub expires_at: OffsetDateTime,
}

/// An OpenID Connect sign-in under way: what the portal sent the browser
/// to the identity provider with, kept here (never only in a cookie) until
/// the provider sends it back (OpenID Connect Core 1.0 §3.1.2.1, §15.5.2;
/// RFC 7636 for PKCE). Taken once: a callback replayed finds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInAttempt {
    /// The digest of the `state` parameter: the attempt's key.
    pub state: SecretDigest,
    /// The digest of the value in the browser's sign-in cookie: only the
    /// browser that started the attempt may finish it (no login CSRF).
    pub browser: SecretDigest,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE `code_verifier` (43 to 128 characters, RFC 7636 §4.1).
    pub pkce_verifier: String,
    /// The portal page to land on once signed in (a path checked before it
    /// was stored, and again when used).
    pub next: Option<String>,
    /// When the attempt ends unused ([`SIGN_IN_ATTEMPT_TTL`] after it began).
    pub expires_at: OffsetDateTime,
}

/// What [`PortalSessions::purge_portal`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortalPurge {
    pub sessions: usize,
    pub tickets: usize,
    pub check_results: usize,
    pub sign_in_attempts: usize,
}

/// The portal's storage: sessions, redeemed sign-in tickets and check
/// results. Narrow on purpose: nothing here reads or writes the service's
/// data, which the pages reach through the same ports as the API.
pub trait PortalSessions: Send + Sync {
    /// Stores a new session (its id is fresh: 256 random bits).
    fn create_session(
        &self,
        session: &PortalSession,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live session with this id, used at `now` (its last use moved
    /// on by [`PortalSession::touched`]); `None` if there is none or it has
    /// ended (an ended one is removed).
    fn touch_session(
        &self,
        id: &SecretDigest,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<PortalSession>, StoreError>> + Send;

    /// Ends the session (sign-out); ending one that is not there is not an error.
    fn destroy_session(
        &self,
        id: &SecretDigest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that the one-time sign-in ticket `ticket_id` was used:
    /// `true` the first time, `false` ever after (atomic across every
    /// process sharing the store, and across restarts). The record may go
    /// once `expires_at` (the ticket's own expiry) has passed.
    fn redeem_ticket(
        &self,
        ticket_id: &str,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a check result behind its handle.
    fn put_check_result(
        &self,
        result: &StoredCheckResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The payload behind `handle` if `session` made it and it has not
    /// expired at `now`; otherwise `None` (never says which).
    fn check_result(
        &self,
        handle: &SecretDigest,
        session: &SecretDigest,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Stores an OpenID Connect sign-in under way (its `state` is fresh:
    /// 256 random bits).
    fn put_sign_in_attempt(
        &self,
        attempt: &SignInAttempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes and returns the attempt whose `state` digest this is, if it
    /// has not ended at `now`; `None` if there is none or it has ended.
    /// At most one caller ever gets it (atomic across every process sharing
    /// the store): a callback replayed, or raced, finds nothing.
    fn take_sign_in_attempt(
        &self,
        state: &SecretDigest,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<SignInAttempt>, StoreError>> + Send;

    /// Whether the store removes ended records by itself, in the background
    /// (DynamoDB's TTL): then [`PortalSessions::purge_portal`] removes
    /// nothing, and every read still refuses what has ended.
    fn expires_by_itself(&self) -> bool {
        false
    }

    /// Removes every session, redeemed ticket, check result and sign-in
    /// attempt that has ended at `now`.
    fn purge_portal(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<PortalPurge, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OdsCode;
    use time::macros::datetime;

    fn session(now: OffsetDateTime) -> PortalSession {
        PortalSession::new(
            SecretDigest::of("a session id"),
            Principal::Council {
                authority: OdsCode::parse("E09000033").unwrap(),
                client_id: "duty-1".into(),
            },
            "csrf".into(),
            now,
        )
    }

    #[test]
    fn a_session_ends_after_its_idle_time_and_its_whole_age() {
        let start = datetime!(2026-03-04 10:00 UTC);
        let s = session(start);
        assert_eq!(s.expires_at(), start + IDLE_TIMEOUT);
        assert!(
            s.touched(start + IDLE_TIMEOUT).is_none(),
            "at the end itself"
        );
        let used = s.touched(start + IDLE_TIMEOUT - Duration::SECOND).unwrap();
        assert_eq!(used.last_seen_at, start + IDLE_TIMEOUT - Duration::SECOND);
        // Used every 20 minutes it still ends 12 hours after sign-in.
        let mut s = s;
        let mut at = start;
        while let Some(next) = s.touched(at) {
            s = next;
            at += Duration::minutes(20);
        }
        assert_eq!(at, start + MAX_SESSION_AGE);
        assert_eq!(s.expires_at(), start + MAX_SESSION_AGE);
    }

    #[test]
    fn a_clock_stepped_back_never_moves_the_last_use_back() {
        let start = datetime!(2026-03-04 10:00 UTC);
        let s = session(start)
            .touched(start + Duration::minutes(5))
            .unwrap();
        let back = s.touched(start).unwrap();
        assert_eq!(back.last_seen_at, start + Duration::minutes(5));
    }

    #[test]
    fn digests_are_sha256_hex_and_parse_only_that() {
        let d = SecretDigest::of("abc");
        assert_eq!(
            d.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(SecretDigest::parse(d.as_str()), Some(d));
        assert_eq!(SecretDigest::parse("BA78"), None);
        assert_eq!(SecretDigest::parse(&"G".repeat(64)), None);
    }

    #[test]
    fn principals_survive_the_session_record() {
        let s = session(datetime!(2026-03-04 10:00 UTC));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<PortalSession>(&json).unwrap(), s);
    }
}
