//! Paged listings (`GET /v1/plans`, `GET /v1/notifications`): the query,
//! and cursors wrapped for the wire.

use std::future::Future;

use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cpis_domain::ports::{AuditTrail, Page, StoreError};
use cpis_domain::AuditAction;
use serde::Serialize;

use crate::audit::{Audit, Failure};
use crate::caller::Council;
use crate::dialect::json_answer;
use crate::extract::query_pairs;
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::AppState;

/// One page of a council's own listing, audited as `action`: reads
/// `?cursor=..&limit=..`, fetches with `fetch(store cursor, limit)`, and
/// answers `body(items in their view, wrapped next cursor)`.
pub(crate) async fn council_listing<S, Q, T, V, B, Fut>(
    state: &AppState<S, Q>,
    caller: &Council,
    request_id: &RequestId,
    action: AuditAction,
    query: Option<&str>,
    fetch: impl FnOnce(Option<String>, usize) -> Fut,
    body: impl FnOnce(Vec<V>, Option<String>) -> B,
) -> Response
where
    S: AuditTrail,
    Fut: Future<Output = Result<Page<T>, StoreError>>,
    V: From<T>,
    B: Serialize,
{
    let result = async {
        let page = page_query(query).map_err(Failure::invalid)?;
        let page = fetch(page.cursor, page.limit).await.map_err(Failure::of)?;
        let (items, next_cursor) = listing(page);
        Ok(body(items, next_cursor))
    }
    .await;
    let audit = Audit::new(&caller.principal, action, request_id);
    json_answer(audit.record(state, None, result).await)
}

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// `?cursor=..&limit=..`, read: the store's cursor (unwrapped) and the page size.
pub(crate) struct PageQuery {
    pub cursor: Option<String>,
    pub limit: usize,
}

/// Reads `?cursor=..&limit=..`; anything else is refused. An empty cursor
/// is the first page; `limit` is 1 to 500 (default 100).
pub(crate) fn page_query(raw: Option<&str>) -> Result<PageQuery, Problem> {
    let invalid = |detail: &'static str| Problem::bad_request("INVALID_QUERY", detail);
    let pairs = query_pairs(raw).ok_or_else(|| invalid("the query string is not valid"))?;
    let mut cursor = None;
    let mut limit = DEFAULT_PAGE;
    for (key, value) in pairs {
        match key.as_str() {
            "cursor" => cursor = Some(value).filter(|v| !v.is_empty()),
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| invalid("limit must be a whole number from 1 to 500"))?
            }
            _ => return Err(invalid("only the cursor and limit parameters are accepted")),
        }
    }
    Ok(PageQuery {
        cursor: unwrap_cursor(cursor)?,
        limit,
    })
}

/// A store's page for the wire: its items in their view, and the next
/// cursor wrapped (base64url). A store's cursor may carry an NHS number
/// (the memory store's does), and a cursor travels back in a query string,
/// which proxies and gateways may log.
pub(crate) fn listing<T, V: From<T>>(page: Page<T>) -> (Vec<V>, Option<String>) {
    let next = page.next_cursor.map(|c| URL_SAFE_NO_PAD.encode(c));
    (page.items.into_iter().map(V::from).collect(), next)
}

fn unwrap_cursor(cursor: Option<String>) -> Result<Option<String>, Problem> {
    cursor
        .map(|wrapped| {
            URL_SAFE_NO_PAD
                .decode(wrapped.as_bytes())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(Problem::invalid_cursor)
        })
        .transpose()
}
