//! The request's trace id.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;

/// The request's trace id: from `x-request-id` or `x-amzn-trace-id` when it
/// is [`strict_request_id`], otherwise a new UUID. Returned as
/// `x-request-id`, written in every log line of the request and stored as
/// the audit event's `trace_id`. Handlers take it as an extractor; the
/// outermost layer ([`crate::middleware::observe`]) sets it on every request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub(crate) const REQUEST_ID: &str = "x-request-id";
/// Longest client-chosen id kept.
const MAX_REQUEST_ID: usize = 64;
/// A kept id holds fewer ASCII digits than this in all.
const MAX_ID_DIGITS: usize = 9;

/// Whether a client's id may be kept: 1 to 64 of `A-Z a-z 0-9 - _ . :`,
/// with at most 9 digits in all. The id is echoed, logged and stored beside
/// the child's pseudonym, so it must be unable to carry an NHS number in
/// any grouping or separator (`999-000-0018` once went into the audit
/// trail): ten digits cannot fit, whatever separates them. Anything else is
/// replaced, never echoed (a client UUID too: it can hold ten digits).
pub fn strict_request_id(value: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        && value.bytes().filter(u8::is_ascii_digit).count() <= MAX_ID_DIGITS
}

/// The client's id, if it may be kept.
pub(crate) fn incoming_id(request: &Request) -> Option<String> {
    [REQUEST_ID, "x-amzn-trace-id"].iter().find_map(|name| {
        let value = request.headers().get(*name)?.to_str().ok()?;
        strict_request_id(value).then(|| value.to_owned())
    })
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    /// The id [`crate::middleware::observe`] set; a router served without
    /// that layer (never in this crate's routers) gets a fresh one.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().to_string())))
    }
}
