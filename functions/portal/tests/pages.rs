//! The portal function fed API Gateway events as `lambda_http::run` hands
//! them over, on the in-memory store: its pages answer with the portal's
//! headers and cookies for HTTPS, a JWT authorizer's claims are never a
//! session (the portal's routes are outside the authorizer: a request that
//! carried them anyway is sent to sign in), the one-time links of the
//! embedded service are off, and it serves no API route.

use cpis_http::portal::{PortalConfig, SignIn};
use cpis_lambda::testing::{invoke, state_at, with_path, FIXTURE_TIME};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use http::StatusCode;

const HEALTH: &str = include_str!("../../../events/apigw/health.json");
const COUNCIL_INBOX: &str = include_str!("../../../events/apigw/list-notifications-council.json");

fn app() -> axum::Router {
    app_on(MemoryStore::new())
}

fn app_on(store: MemoryStore) -> axum::Router {
    let state = state_at(FIXTURE_TIME, store, RecordingQueue::default());
    portal::app(
        state,
        PortalConfig {
            sign_in: SignIn::default(),
            secure_cookies: true,
            feed_stale_after: time::Duration::hours(48),
        },
    )
}

fn get(path: &str) -> String {
    with_path(HEALTH, path)
}

#[tokio::test]
async fn pages_ask_to_sign_in_and_authorizer_claims_are_no_session() {
    let app = app();
    let reply = invoke(&app, &get("/portal/notifications")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(
        reply.headers["location"],
        "/portal/sign-in?next=%2Fportal%2Fnotifications"
    );
    assert!(reply.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    // A council's verified claims, had a request carried them here.
    let claims = with_path(COUNCIL_INBOX, "/portal/notifications");
    let reply = invoke(&app, &claims).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(reply.headers["location"]
        .to_str()
        .unwrap()
        .starts_with("/portal/sign-in"));
}

#[tokio::test]
async fn the_sign_in_page_offers_no_one_time_links_and_the_api_is_not_here() {
    let app = app();
    let page = invoke(&app, &get("/portal/sign-in")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(page.text.contains("<h1>Sign in</h1>"));
    assert!(!page.text.contains("id=\"ticket\""), "no ticket form");
    let mut ticket = serde_json::from_str::<serde_json::Value>(&get("/portal/sign-in")).unwrap();
    ticket["rawQueryString"] = "ticket=abc.def.ghi".into();
    let refused = invoke(&app, &ticket.to_string()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.headers.get("set-cookie").is_none(), "no session");
    // OpenID Connect not configured (this test's config): its routes are the
    // not-found page, never a redirect anywhere.
    let start = invoke(&app, &get("/portal/sign-in/oidc")).await;
    assert_eq!(start.status, StatusCode::NOT_FOUND);
    let api = invoke(&app, &with_path(COUNCIL_INBOX, "/v1/notifications")).await;
    assert_eq!(
        api.status,
        StatusCode::NOT_FOUND,
        "the API is not served here"
    );
}

#[tokio::test]
async fn a_session_cookie_arrives_in_the_events_cookies_and_opens_the_councils_pages() {
    use cpis_domain::{OdsCode, PortalSession, PortalSessions, Principal, SecretDigest};
    let store = MemoryStore::new();
    let id = "A".repeat(43);
    let principal = Principal::Council {
        authority: OdsCode::parse("E09000033").unwrap(),
        client_id: "duty-1".into(),
    };
    let session = PortalSession::new(
        SecretDigest::of(&id),
        principal,
        "c".repeat(43),
        FIXTURE_TIME,
    );
    store.create_session(&session).await.unwrap();
    let app = app_on(store);
    // API Gateway (payload v2) hands cookies over in `cookies`, not as a header.
    let mut event: serde_json::Value = serde_json::from_str(&get("/portal/notifications")).unwrap();
    event["cookies"] = serde_json::json!([format!("__Host-cpis-session={id}")]);
    let page = invoke(&app, &event.to_string()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Notifications"));
    // The loopback name is not the HTTPS one: no session.
    event["cookies"] = serde_json::json!([format!("cpis-session={id}")]);
    let page = invoke(&app, &event.to_string()).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}
