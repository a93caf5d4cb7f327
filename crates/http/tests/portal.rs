//! The portal's rules in process (issue 14), with a clock the tests move:
//! sign-in tickets (once, ten minutes, `next` kept and never off-site),
//! sessions (idle expiry, sign-out), CSRF on every POST, denials that look
//! like not-found and are audited, fail-closed methods, the headers on every
//! answer, the check's result handle, and the stale-feed banner. The browser
//! journeys are `tests/suites/65-portal.sh`.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use common::*;
use cpis_domain::{AuditAction, AuditOutcome, Clock};
use cpis_http::portal::{PortalConfig, SignIn};
use cpis_http::testing::{respond, Response};
use cpis_http::CallerClaims;
use time::Duration;

fn portal_router(app: &TestApp) -> Router {
    let state = app.state();
    let config = PortalConfig {
        sign_in: SignIn {
            ticket: Some(app.keys.ticket_verifier()),
            oidc: None,
        },
        secure_cookies: false,
        feed_stale_after: Duration::hours(48),
    };
    cpis_http::service_router_with(state.clone(), cpis_http::portal::router(state, config))
}

/// A browser: one cookie jar (the session cookie) against the portal.
struct Browser<'a> {
    router: &'a Router,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(router: &'a Router) -> Self {
        Self {
            router,
            cookie: None,
        }
    }

    async fn send(&mut self, method: Method, uri: &str, form: Option<&str>) -> Response {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(cookie) = &self.cookie {
            builder = builder.header(header::COOKIE, cookie.as_str());
        }
        let body = match form {
            Some(form) => {
                builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form.to_owned())
            }
            None => Body::empty(),
        };
        let response = respond(self.router, builder.body(body).unwrap()).await;
        if let Some(set) = response.headers.get(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!set.contains("Max-Age=0")).then_some(pair);
        }
        response
    }

    async fn get(&mut self, uri: &str) -> Response {
        self.send(Method::GET, uri, None).await
    }

    async fn post(&mut self, uri: &str, form: &str) -> Response {
        self.send(Method::POST, uri, Some(form)).await
    }

    /// Signs in with a fresh ticket for `caller`; returns the page's CSRF token.
    async fn sign_in(&mut self, app: &TestApp, caller: &CallerClaims) -> String {
        let reply = self
            .get(&sign_in_url(app, caller, app.clock.now(), None))
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
        let home = location(&reply).to_owned();
        csrf_of(&self.get(&home).await)
    }
}

fn location(reply: &Response) -> &str {
    reply
        .headers
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
}

fn csrf_of(page: &Response) -> String {
    let at = page
        .text
        .find("name=\"csrf\" value=\"")
        .expect("a CSRF field")
        + 19;
    page.text[at..at + 43].to_owned()
}

fn ticket(app: &TestApp, caller: &CallerClaims, at: time::OffsetDateTime) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    app.keys
        .mint_ticket(caller, &id, at, Duration::minutes(10))
        .unwrap()
}

fn sign_in_url(
    app: &TestApp,
    caller: &CallerClaims,
    at: time::OffsetDateTime,
    next: Option<&str>,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("ticket", &ticket(app, caller, at));
    if let Some(next) = next {
        query.append_pair("next", next);
    }
    format!("/portal/sign-in?{}", query.finish())
}

fn assert_html(reply: &Response, status: StatusCode, heading: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.content_type(), "text/html; charset=utf-8");
    assert!(
        reply.text.contains(heading),
        "{heading} not in {}",
        reply.text
    );
}

fn b0107() -> CallerClaims {
    clinician("dr-1", TRUST_X, "B0107")
}

/// An ASN in council A's inbox, for CHILD_1; its id.
async fn an_asn(app: &TestApp) -> String {
    app.put_authority(COUNCIL_A).await;
    app.upload(
        COUNCIL_A,
        1,
        serde_json::json!([plan(CHILD_1, "CPP", "2025-09-01")]),
    )
    .await;
    assert_eq!(
        app.check(&b0107(), CHILD_1, true).await.status,
        StatusCode::OK
    );
    app.notifications(COUNCIL_A).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn audited(app: &TestApp, action: AuditAction, outcome: AuditOutcome) -> usize {
    let events = app.audit().await;
    events
        .iter()
        .filter(|e| e.action == action && e.outcome == outcome)
        .count()
}

#[tokio::test]
async fn a_ticket_signs_in_once_and_only_within_its_ten_minutes() {
    let app = TestApp::new();
    let router = portal_router(&app);
    let now = app.clock.now();
    let url = sign_in_url(&app, &council(COUNCIL_A), now, None);
    let mut browser = Browser::new(&router);
    let first = browser.get(&url).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&first), "/portal/notifications");
    let cookie = first
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cookie.starts_with("cpis-session="));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains("Secure"), "loopback config: not Secure");
    assert_eq!(
        browser.get("/portal/notifications").await.status,
        StatusCode::OK
    );

    // Used again (another browser): refused, and no session.
    let mut other = Browser::new(&router);
    let again = other.get(&url).await;
    assert_html(
        &again,
        StatusCode::FORBIDDEN,
        "expired or has already been used",
    );
    assert!(again.headers.get(header::SET_COOKIE).is_none());
    // Made eleven minutes ago; made for later; at its expiry itself; signed by another key.
    let late = sign_in_url(&app, &council(COUNCIL_A), now - Duration::minutes(11), None);
    let early = sign_in_url(&app, &council(COUNCIL_A), now + Duration::minutes(1), None);
    let edge = sign_in_url(&app, &council(COUNCIL_A), now - Duration::minutes(10), None);
    let foreign = cpis_http::LocalKeys::ephemeral()
        .unwrap()
        .mint_ticket(
            &council(COUNCIL_A),
            "fedcba98abcdef01",
            now,
            Duration::minutes(10),
        )
        .unwrap();
    let foreign = format!("/portal/sign-in?ticket={foreign}");
    // A bearer token is no ticket either.
    let token = format!("/portal/sign-in?ticket={}", app.token(&council(COUNCIL_A)));
    for refused in [late, early, edge, foreign, token] {
        let reply = other.get(&refused).await;
        assert_html(
            &reply,
            StatusCode::FORBIDDEN,
            "expired or has already been used",
        );
    }
    assert_eq!(
        other.get("/portal/notifications").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        audited(&app, AuditAction::SignIn, AuditOutcome::Allowed).await,
        1
    );
    assert_eq!(
        audited(&app, AuditAction::SignIn, AuditOutcome::Denied).await,
        6
    );
}

#[tokio::test]
async fn the_sms_link_keeps_its_target_through_sign_in_and_next_never_leaves_the_site() {
    let app = TestApp::new();
    let router = portal_router(&app);
    let id = an_asn(&app).await;
    let page = format!("/portal/notifications/{id}");
    let mut browser = Browser::new(&router);
    let asked = browser.get(&page).await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    let to_sign_in = location(&asked).to_owned();
    assert_eq!(
        to_sign_in,
        format!("/portal/sign-in?next=%2Fportal%2Fnotifications%2F{id}")
    );
    let form = browser.get(&to_sign_in).await;
    assert_html(
        &form,
        StatusCode::OK,
        &format!("name=\"next\" value=\"/portal/notifications/{id}\""),
    );
    let now = app.clock.now();
    let signed_in = browser
        .get(&sign_in_url(&app, &council(COUNCIL_A), now, Some(&page)))
        .await;
    assert_eq!(location(&signed_in), page);
    assert_html(&browser.get(&page).await, StatusCode::OK, "999 000 0018");
    // A next off the site, or not a portal page, is dropped: the start page.
    for next in [
        "https://evil.example/",
        "//evil.example/portal/x",
        "/v1/notifications",
        "/portal/sign-out",
    ] {
        let mut other = Browser::new(&router);
        let reply = other
            .get(&sign_in_url(&app, &council(COUNCIL_A), now, Some(next)))
            .await;
        assert_eq!(location(&reply), "/portal/notifications", "next {next}");
    }
}

#[tokio::test]
async fn a_session_ends_when_idle_for_thirty_minutes_and_at_sign_out() {
    let app = TestApp::new();
    let router = portal_router(&app);
    let mut browser = Browser::new(&router);
    let csrf = browser.sign_in(&app, &council(COUNCIL_A)).await;
    app.clock.advance(Duration::minutes(29));
    assert_eq!(browser.get("/portal/uploads").await.status, StatusCode::OK);
    app.clock.advance(Duration::minutes(29));
    assert_eq!(
        browser.get("/portal/authority").await.status,
        StatusCode::OK
    );
    app.clock.advance(Duration::minutes(30));
    let idle = browser.get("/portal/authority").await;
    assert_eq!(idle.status, StatusCode::SEE_OTHER, "idle for 30 minutes");
    assert_eq!(
        location(&idle),
        "/portal/sign-in?next=%2Fportal%2Fauthority"
    );

    let csrf2 = browser.sign_in(&app, &council(COUNCIL_A)).await;
    assert_ne!(csrf, csrf2, "each session its own token");
    let out = browser
        .post("/portal/sign-out", &format!("csrf={csrf2}"))
        .await;
    assert_eq!(location(&out), "/portal/sign-in?signed_out=1");
    assert!(out
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        browser.get("/portal/notifications").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        audited(&app, AuditAction::SignOut, AuditOutcome::Allowed).await,
        1
    );
}

#[tokio::test]
async fn every_post_needs_its_sessions_csrf_token() {
    let app = TestApp::new();
    let router = portal_router(&app);
    let id = an_asn(&app).await;
    let mut mine = Browser::new(&router);
    let csrf = mine.sign_in(&app, &council(COUNCIL_A)).await;
    let mut theirs = Browser::new(&router);
    let their_csrf = theirs.sign_in(&app, &council(COUNCIL_A)).await;
    let ack = format!("/portal/notifications/{id}/acknowledge");
    for form in [
        "note=x".to_owned(),
        format!("csrf={their_csrf}&note=x"),
        "csrf=&note=x".into(),
        format!("csrf={}&note=x", &csrf[..42]),
        format!("csrf={csrf}&csrf={csrf}"),
    ] {
        let reply = mine.post(&ack, &form).await;
        assert_html(&reply, StatusCode::FORBIDDEN, "this form could not be sent");
    }
    // Not a form at all.
    let json = mine.send(Method::POST, &ack, None).await;
    assert_html(
        &json,
        StatusCode::BAD_REQUEST,
        "there is a problem with this request",
    );
    let directory = mine.post("/portal/authority", "name=Anyone").await;
    assert_eq!(directory.status, StatusCode::FORBIDDEN);
    assert!(!app.notifications(COUNCIL_A).await[0]["acknowledged"]
        .as_bool()
        .unwrap());
    assert_eq!(
        audited(
            &app,
            AuditAction::AcknowledgeNotification,
            AuditOutcome::Denied
        )
        .await,
        6
    );
    // With its token: acknowledged, with the note kept.
    let done = mine
        .post(&ack, &format!("csrf={csrf}&note=Rang+the+ward"))
        .await;
    assert_eq!(
        location(&done),
        format!("/portal/notifications/{id}?acknowledged=1")
    );
    let asn = &app.notifications(COUNCIL_A).await[0];
    assert_eq!(
        (
            asn["acknowledged"].as_bool(),
            asn["acknowledgement_note"].as_str()
        ),
        (Some(true), Some("Rang the ward"))
    );
    // A note too long is shown again with the error summary; nothing changes.
    let long = "x".repeat(1001);
    let refused = mine.post(&ack, &format!("csrf={csrf}&note={long}")).await;
    assert_html(
        &refused,
        StatusCode::BAD_REQUEST,
        "Note must be 1,000 characters or fewer",
    );
    assert!(refused.text.contains("nhsuk-error-summary"));
}

#[tokio::test]
async fn a_page_the_caller_may_not_see_is_exactly_the_not_found_page_and_is_audited() {
    let app = TestApp::new();
    let router = portal_router(&app);
    let id = an_asn(&app).await;
    let mut b = Browser::new(&router);
    b.sign_in(&app, &council(COUNCIL_B)).await;
    let theirs = b.get(&format!("/portal/notifications/{id}")).await;
    let missing = b
        .get("/portal/notifications/00000000-0000-4000-8000-000000000000")
        .await;
    let odd = b.get("/portal/notifications/not%20an%20id").await;
    let check = b.get("/portal/check").await;
    let nowhere = b.get("/portal/nowhere").await;
    assert_html(&theirs, StatusCode::NOT_FOUND, "Page not found");
    for other in [&missing, &odd, &check, &nowhere] {
        assert_eq!((other.status, &other.text), (theirs.status, &theirs.text));
    }
    let ack = b
        .post(&format!("/portal/notifications/{id}/acknowledge"), "csrf=x")
        .await;
    assert_eq!(
        ack.status,
        StatusCode::FORBIDDEN,
        "the CSRF check comes first"
    );
    let mut doctor = Browser::new(&router);
    doctor.sign_in(&app, &b0107()).await;
    for page in [
        "/portal/notifications",
        "/portal/authority",
        "/portal/uploads",
    ] {
        let reply = doctor.get(page).await;
        assert_eq!(
            (reply.status, &reply.text),
            (theirs.status, &theirs.text),
            "{page}"
        );
    }
    assert_eq!(
        audited(&app, AuditAction::ReadNotification, AuditOutcome::Denied).await,
        3
    );
    assert_eq!(
        audited(&app, AuditAction::Check, AuditOutcome::Denied).await,
        1
    );
    assert_eq!(
        audited(&app, AuditAction::ListNotifications, AuditOutcome::Denied).await,
        1
    );
    assert_eq!(
        audited(&app, AuditAction::ListUploads, AuditOutcome::Denied).await,
        1
    );
    assert!(!app.notifications(COUNCIL_A).await[0]["acknowledged"]
        .as_bool()
        .unwrap());
}

#[tokio::test]
async fn every_portal_route_and_method_fails_closed_with_the_portals_headers() {
    let app = TestApp::new();
    let router = portal_router(&app);
    let mut browser = Browser::new(&router);
    browser.sign_in(&app, &council(COUNCIL_A)).await;
    for spec in cpis_http::routes::PORTAL_ROUTES {
        let path = spec
            .path
            .replace("{id}", "x")
            .replace("{handle}", "x")
            .replace("{file}", "x");
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
            let reply = browser
                .send(Method::from_bytes(method.as_bytes()).unwrap(), &path, None)
                .await;
            let listed = cpis_http::routes::lookup(method, spec.path).is_some();
            if !listed {
                assert_eq!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert_eq!(
                    reply.content_type(),
                    "text/html; charset=utf-8",
                    "{method} {path}"
                );
            }
            assert_portal_headers(&reply, &format!("{method} {path}"));
        }
    }
    let asset = browser
        .get(&cpis_http::portal::assets_url("nhsuk-frontend.css"))
        .await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(
        asset.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(asset.content_type(), "text/css; charset=utf-8");
    let unknown = browser.get("/portal/assets/nhsuk-frontend.css").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

fn assert_portal_headers(reply: &Response, what: &str) {
    let csp = reply.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{what}"
    );
    assert!(!csp.contains("unsafe-inline"), "{what}");
    assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(reply.headers["referrer-policy"], "no-referrer", "{what}");
    if reply.status != StatusCode::OK || reply.content_type().starts_with("text/html") {
        assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store", "{what}");
    }
}

#[tokio::test]
async fn the_check_result_opens_only_for_its_session_and_never_shows_the_number_in_a_url() {
    let app = TestApp::new();
    let router = portal_router(&app);
    app.put_authority(COUNCIL_A).await;
    app.upload(
        COUNCIL_A,
        1,
        serde_json::json!([plan(CHILD_1, "CPP", "2025-09-01")]),
    )
    .await;
    let mut doctor = Browser::new(&router);
    let csrf = doctor.sign_in(&app, &b0107()).await;
    let form = doctor.get("/portal/check").await;
    assert!(form.text.contains("name=\"unscheduled\""), "B0107 is asked");
    // Spaces allowed; the answer to the question is required.
    let unanswered = doctor
        .post(
            "/portal/check",
            &format!("csrf={csrf}&nhs_number=999+000+0018"),
        )
        .await;
    assert_html(
        &unanswered,
        StatusCode::BAD_REQUEST,
        "Select whether the child is here for unscheduled care",
    );
    let checked = doctor
        .post(
            "/portal/check",
            &format!("csrf={csrf}&nhs_number=999+000+0018&unscheduled=yes"),
        )
        .await;
    assert_eq!(checked.status, StatusCode::SEE_OTHER);
    let result = location(&checked).to_owned();
    assert!(
        result.starts_with("/portal/check/results/") && !result.contains("999"),
        "{result}"
    );
    let page = doctor.get(&result).await;
    assert_html(
        &page,
        StatusCode::OK,
        "This child has child protection information",
    );
    assert!(
        page.text.contains("href=\"tel:02079460000\"")
            && page.text.contains("href=\"tel:02079460999\"")
    );
    assert_eq!(
        app.notifications(COUNCIL_A).await.len(),
        1,
        "an unscheduled B0107 check notifies"
    );
    // Another session, even of the same user, and after ten minutes: not found.
    let mut again = Browser::new(&router);
    again.sign_in(&app, &b0107()).await;
    assert_eq!(again.get(&result).await.status, StatusCode::NOT_FOUND);
    app.clock.advance(Duration::minutes(10));
    assert_eq!(doctor.get(&result).await.status, StatusCode::NOT_FOUND);
    // B0170 is never asked and never notifies, whatever it sends.
    let mut gp = Browser::new(&router);
    let gp_csrf = gp.sign_in(&app, &clinician("gp-1", TRUST_Y, "B0170")).await;
    assert!(!gp
        .get("/portal/check")
        .await
        .text
        .contains("name=\"unscheduled\""));
    let viewed = gp
        .post(
            "/portal/check",
            &format!("csrf={gp_csrf}&nhs_number=9990000018&unscheduled=yes"),
        )
        .await;
    assert_html(
        &gp.get(location(&viewed)).await,
        StatusCode::OK,
        "This child has child protection information",
    );
    assert_eq!(app.notifications(COUNCIL_A).await.len(), 1);
    // No plan: an answer that looks nothing like an error.
    let none = gp
        .post(
            "/portal/check",
            &format!("csrf={gp_csrf}&nhs_number={CHILD_2}"),
        )
        .await;
    let none = gp.get(location(&none)).await;
    assert_html(&none, StatusCode::OK, "No child protection information");
    assert!(!none.text.contains("nhsuk-error"));
    assert_eq!(
        audited(&app, AuditAction::Check, AuditOutcome::Invalid).await,
        1
    );
}

#[tokio::test]
async fn values_are_escaped_on_every_page() {
    let app = TestApp::new();
    let router = portal_router(&app);
    let mut body = authority_body(COUNCIL_A);
    body["name"] = serde_json::json!("<script>alert(1)</script> Council");
    app.call(
        Method::PUT,
        "/v1/authority",
        Some(&council(COUNCIL_A)),
        Some(body),
    )
    .await;
    app.upload(
        COUNCIL_A,
        1,
        serde_json::json!([plan(CHILD_1, "CPP", "2025-09-01")]),
    )
    .await;
    let mut doctor = Browser::new(&router);
    let csrf = doctor.sign_in(&app, &b0107()).await;
    let checked = doctor
        .post(
            "/portal/check",
            &format!("csrf={csrf}&nhs_number={CHILD_1}&unscheduled=no"),
        )
        .await;
    let page = doctor.get(location(&checked)).await;
    assert!(!page.text.contains("<script>alert"), "{}", page.text);
    assert!(
        page.text
            .contains("&#60;script&#62;alert(1)&#60;/script&#62; Council"),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn the_uploads_page_warns_when_the_feed_has_stopped() {
    let app = TestApp::new();
    let router = portal_router(&app);
    let mut browser = Browser::new(&router);
    browser.sign_in(&app, &council(COUNCIL_A)).await;
    let never = browser.get("/portal/uploads").await;
    assert_html(
        &never,
        StatusCode::OK,
        "Your council has not sent a full snapshot",
    );
    let full = serde_json::json!({"sequence": 1, "mode": "full", "records": [
        plan(CHILD_1, "CPP", "2025-09-01"),
        {"nhs_number": CHILD_2, "plan_type": "XYZ", "start_date": "2025-09-01"}]});
    app.call(
        Method::POST,
        "/v1/uploads",
        Some(&council(COUNCIL_A)),
        Some(full),
    )
    .await;
    let fresh = browser.get("/portal/uploads").await;
    assert!(
        !fresh.text.contains("nhsuk-notification-banner"),
        "fresh: no banner"
    );
    assert!(
        fresh.text.contains("UNKNOWN_PLAN_TYPE") && fresh.text.contains("/records/1/plan_type")
    );
    // (Each time past the session's idle limit: signed in again.)
    app.clock.advance(Duration::hours(48));
    browser.sign_in(&app, &council(COUNCIL_A)).await;
    let at_limit = browser.get("/portal/uploads").await;
    assert_eq!(at_limit.status, StatusCode::OK);
    assert!(
        !at_limit.text.contains("nhsuk-notification-banner"),
        "at 48 hours: fresh"
    );
    app.clock.advance(Duration::minutes(1));
    browser.sign_in(&app, &council(COUNCIL_A)).await;
    let stale = browser.get("/portal/uploads").await;
    assert_html(
        &stale,
        StatusCode::OK,
        "Your council&#39;s feed has stopped",
    );
}
