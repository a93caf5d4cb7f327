//! `PortalSessions`: the portal's sessions, redeemed sign-in tickets and
//! check results (ids and handles as SHA-256 digests only).

use cpis_domain::ports::StoreError;
use cpis_domain::session::{PortalPurge, PortalSessions};
use cpis_domain::{PortalSession, SecretDigest, SignInAttempt, StoredCheckResult};
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;

use crate::codec::{from_json, from_nanos, nanos, nanos_clamped, to_json};
use crate::{failed, SqliteStore};

impl PortalSessions for SqliteStore {
    async fn create_session(&self, session: &PortalSession) -> Result<(), StoreError> {
        let id = session.id.as_str().to_owned();
        let body = to_json(session, "a portal session")?;
        let expires_at = nanos(session.expires_at())?;
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO portal_sessions (id, session, expires_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut q| q.execute(params![id, body, expires_at]))
            .map_err(failed("writing a portal session"))?;
            Ok(())
        })
        .await
    }

    async fn touch_session(
        &self,
        id: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PortalSession>, StoreError> {
        let id = id.as_str().to_owned();
        let body: Option<String> = self
            .run(move |conn| {
                let tx = conn.savepoint().map_err(failed("starting a session touch"))?;
                let body: Option<String> = tx
                    .prepare_cached("SELECT session FROM portal_sessions WHERE id = ?1")
                    .and_then(|mut q| q.query_row([&id], |r| r.get(0)).optional())
                    .map_err(failed("reading a portal session"))?;
                let Some(body) = body else {
                    return Ok(None);
                };
                let stored: PortalSession = from_json(&body, "a stored portal session")?;
                let touched = stored.touched(now);
                match &touched {
                    Some(session) => {
                        let body = to_json(session, "a portal session")?;
                        let expires_at = nanos(session.expires_at())?;
                        tx.prepare_cached(
                            "UPDATE portal_sessions SET session = ?2, expires_at = ?3 WHERE id = ?1",
                        )
                        .and_then(|mut q| q.execute(params![id, body, expires_at]))
                        .map_err(failed("touching a portal session"))?;
                    }
                    None => {
                        tx.prepare_cached("DELETE FROM portal_sessions WHERE id = ?1")
                            .and_then(|mut q| q.execute([&id]))
                            .map_err(failed("ending a portal session"))?;
                    }
                }
                tx.commit().map_err(failed("committing a session touch"))?;
                touched.map(|s| to_json(&s, "a portal session")).transpose()
            })
            .await?;
        body.map(|b| from_json(&b, "a stored portal session"))
            .transpose()
    }

    async fn destroy_session(&self, id: &SecretDigest) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            conn.prepare_cached("DELETE FROM portal_sessions WHERE id = ?1")
                .and_then(|mut q| q.execute([id]))
                .map_err(failed("ending a portal session"))?;
            Ok(())
        })
        .await
    }

    async fn redeem_ticket(
        &self,
        ticket_id: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let ticket_id = ticket_id.to_owned();
        let expires_at = nanos_clamped(expires_at);
        self.run(move |conn| {
            // The primary key makes the first insert the only one.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO portal_tickets (ticket_id, expires_at) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut q| q.execute(params![ticket_id, expires_at]))
                .map_err(failed("recording a sign-in ticket"))?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn put_check_result(&self, result: &StoredCheckResult) -> Result<(), StoreError> {
        let handle = result.handle.as_str().to_owned();
        let session = result.session.as_str().to_owned();
        let payload = result.payload.clone();
        let expires_at = nanos(result.expires_at)?;
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO portal_check_results (handle, session, payload, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut q| q.execute(params![handle, session, payload, expires_at]))
            .map_err(failed("writing a check result"))?;
            Ok(())
        })
        .await
    }

    async fn check_result(
        &self,
        handle: &SecretDigest,
        session: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let handle = handle.as_str().to_owned();
        let session = session.as_str().to_owned();
        let now = nanos_clamped(now);
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT payload FROM portal_check_results
                 WHERE handle = ?1 AND session = ?2 AND expires_at > ?3",
            )
            .and_then(|mut q| {
                q.query_row(params![handle, session, now], |r| r.get(0))
                    .optional()
            })
            .map_err(failed("reading a check result"))
        })
        .await
    }

    async fn put_sign_in_attempt(&self, attempt: &SignInAttempt) -> Result<(), StoreError> {
        let a = attempt.clone();
        let expires_at = nanos(a.expires_at)?;
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO portal_sign_in_attempts
                 (state, browser, nonce, pkce_verifier, next, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut q| {
                q.execute(params![
                    a.state.as_str(),
                    a.browser.as_str(),
                    a.nonce,
                    a.pkce_verifier,
                    a.next,
                    expires_at
                ])
            })
            .map_err(failed("writing a sign-in attempt"))?;
            Ok(())
        })
        .await
    }

    async fn take_sign_in_attempt(
        &self,
        state: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<SignInAttempt>, StoreError> {
        let key = state.as_str().to_owned();
        let now = nanos_clamped(now);
        // One statement: the row is gone for whoever comes next, even if
        // this attempt has ended and is not returned.
        let row: Option<(String, String, String, Option<String>, i64)> = self
            .run(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM portal_sign_in_attempts WHERE state = ?1
                     RETURNING browser, nonce, pkce_verifier, next, expires_at",
                )
                .and_then(|mut q| {
                    q.query_row([&key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()
                })
                .map_err(failed("taking a sign-in attempt"))
            })
            .await?;
        let Some((browser, nonce, pkce_verifier, next, expires_at)) = row else {
            return Ok(None);
        };
        if expires_at <= now {
            return Ok(None);
        }
        let browser = SecretDigest::parse(&browser)
            .ok_or_else(|| StoreError::Corrupt("a sign-in attempt's browser digest".into()))?;
        Ok(Some(SignInAttempt {
            state: state.clone(),
            browser,
            nonce,
            pkce_verifier,
            next,
            expires_at: from_nanos(expires_at)?,
        }))
    }

    async fn purge_portal(&self, now: OffsetDateTime) -> Result<PortalPurge, StoreError> {
        let now = nanos_clamped(now);
        self.run(move |conn| {
            let purge = |table: &str| {
                conn.execute(
                    &format!("DELETE FROM {table} WHERE expires_at <= ?1"),
                    [now],
                )
                .map_err(failed("purging the portal's records"))
            };
            Ok(PortalPurge {
                sessions: purge("portal_sessions")?,
                tickets: purge("portal_tickets")?,
                check_results: purge("portal_check_results")?,
                sign_in_attempts: purge("portal_sign_in_attempts")?,
            })
        })
        .await
    }
}
