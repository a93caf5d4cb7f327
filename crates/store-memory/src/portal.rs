//! `PortalSessions` in memory.

use std::collections::HashMap;
use std::sync::MutexGuard;

use cpis_domain::ports::StoreError;
use cpis_domain::session::{PortalPurge, PortalSessions};
use cpis_domain::{PortalSession, SecretDigest, SignInAttempt, StoredCheckResult};
use time::OffsetDateTime;

use crate::MemoryStore;

#[derive(Debug, Default)]
pub(crate) struct PortalState {
    sessions: HashMap<SecretDigest, PortalSession>,
    /// Redeemed tickets, until their own expiry.
    tickets: HashMap<String, OffsetDateTime>,
    check_results: HashMap<SecretDigest, StoredCheckResult>,
    sign_in_attempts: HashMap<SecretDigest, SignInAttempt>,
}

impl MemoryStore {
    fn portal(&self) -> MutexGuard<'_, PortalState> {
        self.portal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PortalSessions for MemoryStore {
    async fn create_session(&self, session: &PortalSession) -> Result<(), StoreError> {
        self.portal()
            .sessions
            .insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn touch_session(
        &self,
        id: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PortalSession>, StoreError> {
        let mut portal = self.portal();
        let Some(stored) = portal.sessions.get(id) else {
            return Ok(None);
        };
        match stored.touched(now) {
            Some(session) => {
                portal.sessions.insert(id.clone(), session.clone());
                Ok(Some(session))
            }
            None => {
                portal.sessions.remove(id);
                Ok(None)
            }
        }
    }

    async fn destroy_session(&self, id: &SecretDigest) -> Result<(), StoreError> {
        self.portal().sessions.remove(id);
        Ok(())
    }

    async fn redeem_ticket(
        &self,
        ticket_id: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut portal = self.portal();
        if portal.tickets.contains_key(ticket_id) {
            return Ok(false);
        }
        portal.tickets.insert(ticket_id.to_owned(), expires_at);
        Ok(true)
    }

    async fn put_check_result(&self, result: &StoredCheckResult) -> Result<(), StoreError> {
        self.portal()
            .check_results
            .insert(result.handle.clone(), result.clone());
        Ok(())
    }

    async fn check_result(
        &self,
        handle: &SecretDigest,
        session: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .portal()
            .check_results
            .get(handle)
            .filter(|r| &r.session == session && r.expires_at > now)
            .map(|r| r.payload.clone()))
    }

    async fn put_sign_in_attempt(&self, attempt: &SignInAttempt) -> Result<(), StoreError> {
        self.portal()
            .sign_in_attempts
            .insert(attempt.state.clone(), attempt.clone());
        Ok(())
    }

    async fn take_sign_in_attempt(
        &self,
        state: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<SignInAttempt>, StoreError> {
        Ok(self
            .portal()
            .sign_in_attempts
            .remove(state)
            .filter(|a| a.expires_at > now))
    }

    async fn purge_portal(&self, now: OffsetDateTime) -> Result<PortalPurge, StoreError> {
        let mut portal = self.portal();
        let (sessions, tickets, results, attempts) = (
            portal.sessions.len(),
            portal.tickets.len(),
            portal.check_results.len(),
            portal.sign_in_attempts.len(),
        );
        portal.sessions.retain(|_, s| s.expires_at() > now);
        portal.tickets.retain(|_, expires_at| *expires_at > now);
        portal.check_results.retain(|_, r| r.expires_at > now);
        portal.sign_in_attempts.retain(|_, a| a.expires_at > now);
        Ok(PortalPurge {
            sessions: sessions - portal.sessions.len(),
            tickets: tickets - portal.tickets.len(),
            check_results: results - portal.check_results.len(),
            sign_in_attempts: attempts - portal.sign_in_attempts.len(),
        })
    }
}
