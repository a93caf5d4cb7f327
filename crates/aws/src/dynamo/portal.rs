//! The portal's ports on DynamoDB: `PortalSessions` (sessions, redeemed
//! sign-in tickets, check results; ids and handles as SHA-256 digests) and
//! `UploadHistory` (a council's receipts, newest first).
//!
//! Each portal item is a partition of its own (`PORTAL#SESSION#<digest>`,
//! `PORTAL#TICKET#<id>`, `PORTAL#RESULT#<digest>`, `PORTAL#SIGNIN#<state
//! digest>`), with the exact end in
//! `until` (nanoseconds), which every read checks, and `expires_at` (epoch
//! seconds, rounded up) for the table's TTL, which removes it within about
//! two days of that. So `purge_portal` has nothing to do here: TTL is the
//! purge, and nothing ended is ever served while it waits.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::ReturnValue;
use cpis_domain::ports::{StoreError, UploadHistory, UploadReceipt};
use cpis_domain::session::{PortalPurge, PortalSessions};
use cpis_domain::{OdsCode, PortalSession, SecretDigest, SignInAttempt, StoredCheckResult};
use time::OffsetDateTime;

use super::item::{get_n, get_s, get_time, is_conditional_failure, n, nanos, opt_s, s};
use super::keys::{council_pk, key};
use super::{DynamoStore, Item};
use crate::errors::{corrupt, unavailable};

const SESSION_SK: &str = "SESSION";
const TICKET_SK: &str = "TICKET";
const RESULT_SK: &str = "RESULT";
const SIGN_IN_SK: &str = "SIGNIN";

fn session_key(id: &SecretDigest) -> Item {
    key(format!("PORTAL#SESSION#{}", id.as_str()), SESSION_SK)
}

fn ticket_key(ticket_id: &str) -> Item {
    key(format!("PORTAL#TICKET#{ticket_id}"), TICKET_SK)
}

fn result_key(handle: &SecretDigest) -> Item {
    key(format!("PORTAL#RESULT#{}", handle.as_str()), RESULT_SK)
}

fn sign_in_key(state: &SecretDigest) -> Item {
    key(format!("PORTAL#SIGNIN#{}", state.as_str()), SIGN_IN_SK)
}

/// `until` (exact) and `expires_at` (TTL: whole seconds, never before `until`).
fn with_end(mut item: Item, entity: &str, until: OffsetDateTime) -> Item {
    let seconds = until.unix_timestamp() + i64::from(until.nanosecond() > 0);
    item.insert("entity".into(), s(entity));
    item.insert("until".into(), nanos(until));
    item.insert("expires_at".into(), n(seconds));
    item
}

fn session_item(session: &PortalSession) -> Result<Item, StoreError> {
    let body = serde_json::to_string(session)
        .map_err(|_| StoreError::Unavailable("a portal session could not be encoded".into()))?;
    let mut item = with_end(
        session_key(&session.id),
        "PORTAL_SESSION",
        session.expires_at(),
    );
    item.insert("session".into(), s(body));
    Ok(item)
}

fn session_from(item: &Item) -> Result<PortalSession, StoreError> {
    serde_json::from_str(get_s(item, "session")?)
        .map_err(|_| corrupt("a stored portal session could not be read"))
}

impl PortalSessions for DynamoStore {
    async fn create_session(&self, session: &PortalSession) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(session_item(session)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| unavailable("a portal session write", &e))?;
        Ok(())
    }

    async fn touch_session(
        &self,
        id: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<PortalSession>, StoreError> {
        let Some(item) = self.get(session_key(id)).await? else {
            return Ok(None);
        };
        let Some(touched) = session_from(&item)?.touched(now) else {
            self.destroy_session(id).await?;
            return Ok(None);
        };
        // Only while it is still there: a touch never brings back a session
        // signed out meanwhile.
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(session_item(&touched)?))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match written {
            Ok(_) => Ok(Some(touched)),
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(unavailable("a portal session touch", &e)),
        }
    }

    async fn destroy_session(&self, id: &SecretDigest) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(session_key(id)))
            .send()
            .await
            .map_err(|e| unavailable("ending a portal session", &e))?;
        Ok(())
    }

    async fn redeem_ticket(
        &self,
        ticket_id: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // The first conditional put wins, across every Lambda instance. A
        // record whose end has passed but TTL has not yet removed counts as
        // used: its ticket has expired anyway.
        let item = with_end(ticket_key(ticket_id), "PORTAL_TICKET", expires_at);
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(unavailable("recording a sign-in ticket", &e)),
        }
    }

    async fn put_check_result(&self, result: &StoredCheckResult) -> Result<(), StoreError> {
        let mut item = with_end(
            result_key(&result.handle),
            "PORTAL_RESULT",
            result.expires_at,
        );
        item.insert("session".into(), s(result.session.as_str()));
        item.insert("payload".into(), s(result.payload.as_str()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| unavailable("a check result write", &e))?;
        Ok(())
    }

    async fn check_result(
        &self,
        handle: &SecretDigest,
        session: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let Some(item) = self.get(result_key(handle)).await? else {
            return Ok(None);
        };
        let live = get_time(&item, "until")? > now;
        let theirs = get_s(&item, "session")? == session.as_str();
        Ok((live && theirs).then(|| opt_s(&item, "payload").unwrap_or_default().to_owned()))
    }

    async fn put_sign_in_attempt(&self, attempt: &SignInAttempt) -> Result<(), StoreError> {
        let mut item = with_end(
            sign_in_key(&attempt.state),
            "PORTAL_SIGN_IN",
            attempt.expires_at,
        );
        item.insert("browser".into(), s(attempt.browser.as_str()));
        item.insert("nonce".into(), s(attempt.nonce.as_str()));
        item.insert("pkce_verifier".into(), s(attempt.pkce_verifier.as_str()));
        if let Some(next) = &attempt.next {
            item.insert("next".into(), s(next.as_str()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| unavailable("a sign-in attempt write", &e))?;
        Ok(())
    }

    async fn take_sign_in_attempt(
        &self,
        state: &SecretDigest,
        now: OffsetDateTime,
    ) -> Result<Option<SignInAttempt>, StoreError> {
        // A delete that returns what it deleted: of racing callbacks, only
        // the one whose delete found the item gets it.
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(sign_in_key(state)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable("taking a sign-in attempt", &e))?;
        let Some(item) = out.attributes else {
            return Ok(None);
        };
        if get_time(&item, "until")? <= now {
            return Ok(None);
        }
        let browser = SecretDigest::parse(get_s(&item, "browser")?)
            .ok_or_else(|| corrupt("a sign-in attempt's browser digest"))?;
        Ok(Some(SignInAttempt {
            state: state.clone(),
            browser,
            nonce: get_s(&item, "nonce")?.to_owned(),
            pkce_verifier: get_s(&item, "pkce_verifier")?.to_owned(),
            next: opt_s(&item, "next").map(str::to_owned),
            expires_at: get_time(&item, "until")?,
        }))
    }

    fn expires_by_itself(&self) -> bool {
        true
    }

    async fn purge_portal(&self, _now: OffsetDateTime) -> Result<PortalPurge, StoreError> {
        Ok(PortalPurge::default())
    }
}

/// Receipts are read a page at a time, newest first, until enough heads.
const RECEIPT_PAGE: i32 = 50;

impl UploadHistory for DynamoStore {
    async fn recent_receipts(
        &self,
        authority: &OdsCode,
        limit: usize,
    ) -> Result<Vec<UploadReceipt>, StoreError> {
        let mut heads: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        while heads.len() < limit {
            // A receipt's later parts share its prefix: only heads count.
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .filter_expression("entity = :receipt")
                .expression_attribute_values(":pk", s(council_pk(authority)))
                .expression_attribute_values(":prefix", s("RECEIPT#"))
                .expression_attribute_values(":receipt", AttributeValue::S("RECEIPT".into()))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(RECEIPT_PAGE)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("reading a council's upload receipts", &e))?;
            heads.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        heads.truncate(limit);
        let mut receipts = Vec::with_capacity(heads.len());
        for head in &heads {
            let sequence = u64::try_from(get_n(head, "sequence")?)
                .map_err(|_| corrupt("a receipt's sequence is out of range"))?;
            receipts.push(self.receipt_parts(authority, sequence, head).await?);
        }
        Ok(receipts)
    }
}
