//! The operator's map of councils to MESH mailboxes on AWS: the same
//! `MailboxMap` adapter (`cpis_aws::DynamoStore`) that the poller and the
//! dispatcher read at every message, written only through a direct
//! invocation of this function, which only IAM principals allowed
//! `lambda:InvokeFunction` on it can make (README, "MESH on AWS"). The
//! answers mirror `cpis mesh link` / `unlink` of `cpis serve`.
//!
//! Each answer is a JSON object with `"ok"`; a request that changes nothing
//! (malformed, or a mailbox another council holds) is `"ok": false` with
//! `"error"` and is not a failed invocation. Each change is logged at info
//! level with the council's ODS code and the mailbox ids.

use cpis_domain::ports::{LinkError, MailboxMap, StoreError};
use serde_json::json;

use crate::Request;

/// A request refused before anything was read or written.
pub fn refused(error: &str) -> serde_json::Value {
    json!({ "ok": false, "error": error })
}

/// Runs a link, unlink or show request.
pub async fn handle<S: MailboxMap>(
    store: &S,
    request: &Request,
) -> Result<serde_json::Value, StoreError> {
    match request {
        Request::Link { council, mailbox } => match store.link_mailbox(council, mailbox).await {
            Ok(previous) => {
                let message = match &previous {
                    None => format!("linked council {council} to MESH mailbox {mailbox}"),
                    Some(same) if same == mailbox => {
                        format!("council {council} was linked to MESH mailbox {mailbox} already")
                    }
                    Some(old) => format!(
                        "linked council {council} to MESH mailbox {mailbox} (it was linked to {old}, which is now free)"
                    ),
                };
                tracing::info!(%council, %mailbox, previous = previous.as_ref().map(|m| m.as_str()), "operator: {message}");
                Ok(json!({
                    "ok": true,
                    "action": "link",
                    "council": council.as_str(),
                    "mailbox": mailbox.as_str(),
                    "previous": previous.as_ref().map(|m| m.as_str()),
                    "message": message,
                }))
            }
            Err(taken @ LinkError::MailboxTaken { .. }) => {
                tracing::warn!(%council, %mailbox, "operator: link refused: {taken}");
                Ok(refused(&taken.to_string()))
            }
            Err(LinkError::Store(error)) => Err(error),
        },
        Request::Unlink { council } => {
            let old = store.unlink_mailbox(council).await?;
            let message = match &old {
                Some(old) => format!("unlinked council {council} from MESH mailbox {old}"),
                None => format!("council {council} had no MESH mailbox"),
            };
            tracing::info!(%council, previous = old.as_ref().map(|m| m.as_str()), "operator: {message}");
            Ok(json!({
                "ok": true,
                "action": "unlink",
                "council": council.as_str(),
                "previous": old.as_ref().map(|m| m.as_str()),
                "message": message,
            }))
        }
        Request::Show { council } => {
            let mailbox = store.mailbox_of(council).await?;
            Ok(json!({
                "ok": true,
                "action": "show",
                "council": council.as_str(),
                "mailbox": mailbox.as_ref().map(|m| m.as_str()),
            }))
        }
        Request::Poll => Ok(refused("a poll is not an operator's map request")),
    }
}
