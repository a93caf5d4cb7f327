//! The `POST /v1/checks` body, through the whole service router over the
//! in-memory store with a valid clinician token: never a 5xx, errors are
//! problem+json and never hold an NHS number, and a 200 is given exactly for
//! a JSON object of a valid NHS number and an `unscheduled` boolean.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use cpis_domain::ports::{PlanStore, StoredPlan};
use cpis_domain::{
    find_nhs_numbers, ManualClock, NhsNumber, OdsCode, Plan, PlanType, Pseudonymiser,
    VisibilityPolicy,
};
use cpis_http::{AppState, Authenticator, CallerClaims, LocalKeys};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use time::macros::{date, datetime};
use tower::ServiceExt;

/// The child with a plan (synthetic, 999 range).
const CHILD: &str = "9990000018";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    keys: LocalKeys,
    token: String,
    // Holds the key files for as long as the fuzzer runs.
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let keys = LocalKeys::ephemeral().expect("local keys");
        let clinician = CallerClaims {
            sub: "dr-fuzz".into(),
            role: "clinician".into(),
            ods_code: "RJ1".into(),
            rbac: Some("B0107".into()),
            org_name: Some("St Example's Hospital".into()),
            setting: Some("emergency-department".into()),
            job_role: Some("R0110".into()),
            job_role_name: Some("Specialist Registrar".into()),
        };
        // jsonwebtoken checks `exp` against the wall clock: a week outlasts any run.
        let token = keys
            .mint(
                &clinician,
                time::OffsetDateTime::now_utc(),
                time::Duration::days(7),
            )
            .expect("a token");
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime"),
            keys,
            token,
            _dir: dir,
        }
    })
}

/// What a check request must be to be answered 200.
fn well_formed(body: &[u8]) -> bool {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    object.len() == 2
        && object.get("unscheduled").is_some_and(Value::is_boolean)
        && object
            .get("nhs_number")
            .and_then(Value::as_str)
            .is_some_and(|n| NhsNumber::parse(n).is_ok())
}

fuzz_target!(|body: &[u8]| {
    let fixture = fixture();
    fixture.runtime.block_on(async {
        // A fresh store each run: the audit trail and access log would
        // otherwise grow for as long as the fuzzer runs.
        let store = MemoryStore::new();
        let council = OdsCode::parse("E09000033").expect("a valid ODS code");
        let plan = Plan {
            authority: council.clone(),
            nhs_number: NhsNumber::parse(CHILD).expect("a synthetic NHS number"),
            plan_type: PlanType::ChildProtection,
            start_date: date!(2025 - 09 - 01),
            end_date: None,
            delete_date: None,
            due_date: None,
            local_id: Some("CASE-42".into()),
            upload_sequence: Some(1),
        };
        store
            .apply_changes(
                &council,
                &[StoredPlan {
                    plan,
                    purge_from: None,
                }],
                &[],
            )
            .await
            .expect("memory");
        let state = AppState {
            store,
            queue: RecordingQueue::default(),
            clock: std::sync::Arc::new(ManualClock::new(datetime!(2026-03-02 10:00 UTC))),
            policy: VisibilityPolicy::default(),
            pseudonymiser: Pseudonymiser::new(&[7u8; 32]).expect("a 32-byte key"),
            auth: Authenticator::Local(fixture.keys.verifier()),
            volume: Default::default(),
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/checks")
            .header(header::AUTHORIZATION, format!("Bearer {}", fixture.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_vec()))
            .expect("a request");
        let response = cpis_http::service_router(state)
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);

        assert!(!status.is_server_error(), "{status}: {text}");
        if status == StatusCode::OK {
            assert!(
                well_formed(body),
                "200 for a body that is not a valid check"
            );
            let answer: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
            assert!(answer["access_history"].is_array());
            let plans = answer["plans"].as_array().expect("plans");
            let asked = serde_json::from_slice::<Value>(body).expect("checked above");
            let child = asked["nhs_number"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default();
            assert_eq!(plans.len(), usize::from(child.replace(' ', "") == CHILD));
        } else {
            assert!(status.is_client_error(), "{status}");
            assert!(
                !well_formed(body) || refused_by_strict_parser(body),
                "{status} for a valid check: {text}"
            );
            assert_eq!(content_type, "application/problem+json");
            let problem: Value = serde_json::from_slice(&bytes).expect("a problem body");
            assert_eq!(problem["status"], status.as_u16());
            assert!(
                find_nhs_numbers(&text).is_empty(),
                "an NHS number in: {text}"
            );
        }
    });
});

/// A JSON object that names a member twice is refused by the service's
/// strict JSON reader (`cpis_domain::json`, 400 `REPEATED_MEMBER`) though a
/// `Value` keeps the last: the one case where a body that looks well formed
/// is rightly a 400. Modelled independently here with serde's derive, which
/// also refuses a repeated field.
fn refused_by_strict_parser(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only whether it parses matters
    struct Strict {
        nhs_number: String,
        unscheduled: bool,
    }
    serde_json::from_slice::<Strict>(body).is_err()
}
