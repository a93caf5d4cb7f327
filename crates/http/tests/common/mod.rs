//! The harness every HTTP test uses: the whole service router over the
//! in-memory store, a manual clock, and tokens minted with keys in a temp dir.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use cpis_domain::ports::AuditReader;
use cpis_domain::{AuditEvent, ManualClock, Pseudonymiser, VisibilityPolicy};
use cpis_http::{AppState, Authenticator, CallerClaims, LocalKeys};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

/// Synthetic NHS numbers (999 range, valid Modulus 11).
pub const CHILD_1: &str = "9990000018";
pub const CHILD_2: &str = "9990000026";
pub const CHILD_3: &str = "9990000034";
pub const CHILD_4: &str = "9990000042";
pub const CHILD_UNKNOWN: &str = "9990000050";

pub const COUNCIL_A: &str = "E09000033";
pub const COUNCIL_B: &str = "E06000001";
pub const TRUST_X: &str = "RJ1";
pub const TRUST_Y: &str = "RRV";

pub type TestState = AppState<MemoryStore, RecordingQueue>;

pub struct TestApp {
    pub store: MemoryStore,
    pub queue: RecordingQueue,
    pub clock: Arc<ManualClock>,
    pub keys: LocalKeys,
    pub dir: tempfile::TempDir,
    pub router: Router,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with this status and code, and that the
    /// body holds no NHS number.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.content_type(), "application/problem+json");
        assert_eq!(self.json["status"], status);
        assert_eq!(self.code(), code, "body: {}", self.text);
        assert_eq!(
            self.json["type"].as_str().unwrap(),
            format!(
                "https://cpis.example/problems/{}",
                code.to_lowercase().replace('_', "-")
            )
        );
        assert!(self.json["title"].is_string());
        assert!(self.json["detail"].is_string());
        assert_no_nhs_number(&self.text);
    }

    pub fn request_id(&self) -> String {
        self.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

pub fn assert_no_nhs_number(text: &str) {
    let found = cpis_domain::find_nhs_numbers(text);
    assert!(found.is_empty(), "an NHS number leaked: {text}");
}

pub fn start() -> OffsetDateTime {
    datetime!(2026-03-02 10:00 UTC)
}

pub fn council(ods: &str) -> CallerClaims {
    CallerClaims {
        job_role: None,
        job_role_name: None,
        sub: format!("client-{ods}"),
        role: "council".into(),
        ods_code: ods.into(),
        rbac: None,
        org_name: None,
        setting: None,
    }
}

pub fn clinician(user: &str, ods: &str, rbac: &str) -> CallerClaims {
    CallerClaims {
        job_role: None,
        job_role_name: None,
        sub: user.into(),
        role: "clinician".into(),
        ods_code: ods.into(),
        rbac: Some(rbac.into()),
        org_name: Some(format!("Trust {ods}")),
        setting: Some("emergency-department".into()),
    }
}

pub fn system(user: &str, ods: &str, rbac: &str) -> CallerClaims {
    CallerClaims {
        role: "system".into(),
        ..clinician(user, ods, rbac)
    }
}

pub fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(&[7u8; 32]).expect("a 32-byte key")
}

impl TestApp {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Kept where `cpis serve` keeps it, for tests that sign with it.
        let pem = LocalKeys::generate_pem().expect("key");
        let keys_dir = dir.path().join("keys");
        std::fs::create_dir_all(&keys_dir).expect("keys dir");
        std::fs::write(keys_dir.join("signing-key.pem"), &pem).expect("key file");
        let keys = LocalKeys::from_pem(&pem).expect("keys");
        Self::with_authenticator(dir, keys.clone(), Authenticator::Local(keys.verifier()))
    }

    pub fn with_authenticator(
        dir: tempfile::TempDir,
        keys: LocalKeys,
        auth: Authenticator,
    ) -> Self {
        let store = MemoryStore::new();
        let queue = RecordingQueue::default();
        let clock = Arc::new(ManualClock::new(start()));
        let state = TestState {
            store: store.clone(),
            queue: queue.clone(),
            clock: clock.clone(),
            policy: VisibilityPolicy::default(),
            pseudonymiser: pseudonymiser(),
            auth,
            volume: Default::default(),
        };
        Self {
            router: cpis_http::service_router(state.clone()),
            store,
            queue,
            clock,
            keys,
            dir,
        }
    }

    pub fn state(&self) -> TestState {
        TestState {
            store: self.store.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            policy: VisibilityPolicy::default(),
            pseudonymiser: pseudonymiser(),
            auth: Authenticator::Local(self.keys.verifier()),
            volume: Default::default(),
        }
    }

    /// A token valid for an hour from the wall clock (jsonwebtoken checks
    /// `exp` against the system time, not the domain clock).
    pub fn token(&self, claims: &CallerClaims) -> String {
        self.keys
            .mint(claims, OffsetDateTime::now_utc(), time::Duration::hours(1))
            .expect("mint")
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        send_to(&self.router, request).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        claims: Option<&CallerClaims>,
        body: Option<Value>,
    ) -> Reply {
        let token = claims.map(|c| self.token(c));
        self.send(request(method, path, token.as_deref(), body))
            .await
    }

    /// The whole audit trail; also handed to the privacy scan (a trace id or
    /// any other field must never carry an NHS number).
    pub async fn audit(&self) -> Vec<AuditEvent> {
        let events = self.store.audit_events(usize::MAX).await.expect("audit");
        capture_audit(&events);
        events
    }

    pub async fn upload(&self, ods: &str, sequence: u64, records: Value) -> Reply {
        let reply = self
            .call(
                Method::POST,
                "/v1/uploads",
                Some(&council(ods)),
                Some(json!({ "sequence": sequence, "mode": "delta", "records": records })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply
    }

    pub async fn put_authority(&self, ods: &str) {
        let reply = self
            .call(
                Method::PUT,
                "/v1/authority",
                Some(&council(ods)),
                Some(authority_body(ods)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    pub async fn check(&self, claims: &CallerClaims, nhs: &str, unscheduled: bool) -> Reply {
        self.call(
            Method::POST,
            "/v1/checks",
            Some(claims),
            Some(json!({ "nhs_number": nhs, "unscheduled": unscheduled })),
        )
        .await
    }

    pub async fn history(&self, claims: &CallerClaims, nhs: &str) -> Reply {
        self.call(
            Method::POST,
            "/v1/history",
            Some(claims),
            Some(json!({ "nhs_number": nhs })),
        )
        .await
    }

    /// A council's whole inbox (the default page is far larger than any test needs).
    pub async fn notifications(&self, ods: &str) -> Vec<Value> {
        let reply = self
            .call(Method::GET, "/v1/notifications", Some(&council(ods)), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A FHIR search, with `IsUnscheduledAccessEvent` when given.
    pub async fn fhir(
        &self,
        path: &str,
        claims: Option<&CallerClaims>,
        unscheduled: Option<&str>,
    ) -> Reply {
        let mut builder = Request::builder().method(Method::GET).uri(path);
        if let Some(claims) = claims {
            builder = builder.header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token(claims)),
            );
        }
        if let Some(value) = unscheduled {
            builder = builder.header("IsUnscheduledAccessEvent", value);
        }
        self.send(builder.body(Body::empty()).expect("request"))
            .await
    }
}

/// `?patient:identifier=<system>|<nhs>`, percent-encoded as a client sends it.
pub fn patient_query(system: &str, nhs: &str) -> String {
    format!(
        "?patient:identifier={}%7C{nhs}",
        system.replace(':', "%3A").replace('/', "%2F")
    )
}

pub const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

pub fn authority_body(ods: &str) -> Value {
    json!({
        "name": format!("Council {ods}"),
        "office_hours_phone": "020 7946 0000",
        "emergency_duty_phone": "020 7946 0999",
        "notify_emails": ["duty@example.gov.uk"],
        "notify_sms": ["+447700900123"]
    })
}

pub fn plan(nhs: &str, plan_type: &str, start: &str) -> Value {
    json!({ "nhs_number": nhs, "plan_type": plan_type, "start_date": start, "local_id": "case-17" })
}

pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

pub fn raw_request(
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).expect("request")
}

pub async fn send_to(router: &Router, request: Request<Body>) -> Reply {
    let response = cpis_http::testing::respond(router, request).await;
    let json = serde_json::from_str(&response.text).unwrap_or(Value::Null);
    Reply {
        status: response.status,
        headers: response.headers,
        text: response.text,
        json,
    }
}

/// The body with the request-specific parts removed, for "indistinguishable" checks.
pub fn comparable(reply: &Reply) -> (u16, String, Value) {
    let mut json = reply.json.clone();
    if let Some(object) = json.as_object_mut() {
        object.remove("instance");
    }
    (reply.status.as_u16(), reply.content_type().to_owned(), json)
}

/// Council A (E09000033) holds a CPP and a LAC for the child, council B
/// (E06000001) a LAC; both have directory entries.
pub async fn two_councils(app: &TestApp, nhs: &str) {
    app.put_authority(COUNCIL_A).await;
    app.put_authority(COUNCIL_B).await;
    app.upload(
        COUNCIL_A,
        1,
        json!([
            plan(nhs, "CPP", "2025-06-01"),
            plan(nhs, "LAC", "2024-01-15")
        ]),
    )
    .await;
    app.upload(
        COUNCIL_B,
        1,
        json!([{ "nhs_number": nhs, "plan_type": "LAC", "start_date": "2025-09-01",
                 "end_date": "2026-01-31", "local_id": "B-99" }]),
    )
    .await;
}

/// Appends `events` to `in-process-<pid>-audit-trail.txt` in the privacy
/// capture directory, when one is set (tests/privacy_scan.py scans it).
fn capture_audit(events: &[AuditEvent]) {
    use std::io::Write;
    let Some(dir) = std::env::var_os("CPIS_PRIVACY_CAPTURE_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("capture directory");
    let path = dir.join(format!("in-process-{}-audit-trail.txt", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("audit capture file");
    for event in events {
        let line = serde_json::to_string(event).expect("an audit event serialises");
        writeln!(file, "{line}").expect("writing the audit capture");
    }
}
