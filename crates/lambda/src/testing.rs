//! Test support (feature `test-support`): API Gateway HTTP API (payload v2)
//! event fixtures through the same conversion and answer as a real
//! invocation (`cpis_http::lambda::respond`); the start-up check of a
//! function's binary; MESH sandbox support (`mesh`). Tests only: these
//! helpers panic on a malformed fixture.

use std::sync::Arc;

pub mod mesh;

use axum::Router;
use cpis_domain::{ManualClock, Pseudonymiser, VisibilityPolicy};
use cpis_http::AppState;
use lambda_http::request::LambdaRequest;
use time::macros::datetime;
use time::OffsetDateTime;

/// The time the `events/apigw` fixtures were "sent" (their `timeEpoch`).
pub const FIXTURE_TIME: OffsetDateTime = datetime!(2025-03-01 10:00 UTC);

/// A function's state as `main` builds it, with the clock held at `now`.
pub fn state_at<S, Q>(now: OffsetDateTime, store: S, queue: Q) -> AppState<S, Q> {
    AppState {
        clock: Arc::new(ManualClock::new(now)),
        ..crate::gateway_state(VisibilityPolicy::default(), pseudonymiser(), store, queue)
    }
}

/// The event of a fixture, which must be an HTTP API payload v2 event.
pub fn gateway_event(event_json: &str) -> LambdaRequest {
    let event: LambdaRequest = serde_json::from_str(event_json)
        .unwrap_or_else(|e| panic!("not an API Gateway event: {e}"));
    assert!(
        matches!(event, LambdaRequest::ApiGatewayV2(_)),
        "the fixture must be an HTTP API payload v2 event"
    );
    event
}

/// The fixture with one authorizer claim replaced (for instance the council's
/// ODS code, so that tests sharing one moto server never share a topic).
pub fn with_claim(event_json: &str, claim: &str, value: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(event_json).unwrap_or_else(|e| panic!("fixture: {e}"));
    let claims = event
        .pointer_mut("/requestContext/authorizer/jwt/claims")
        .and_then(serde_json::Value::as_object_mut)
        .unwrap_or_else(|| panic!("the fixture has no authorizer claims"));
    claims.insert(claim.to_owned(), value.into());
    event.to_string()
}

/// The fixture with its body replaced.
pub fn with_body(event_json: &str, body: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(event_json).unwrap_or_else(|e| panic!("fixture: {e}"));
    event["body"] = body.into();
    event["isBase64Encoded"] = false.into();
    event.to_string()
}

/// The fixture with its raw path replaced (and the route key's path with it).
pub fn with_path(event_json: &str, path: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(event_json).unwrap_or_else(|e| panic!("fixture: {e}"));
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event.to_string()
}

/// A response, read whole (error bodies go to the privacy scan).
pub use cpis_http::testing::Response as Answer;

/// Runs one event through a function's router as its runtime does
/// ([`cpis_http::lambda::respond`]), and reads the answer back from the
/// payload 2.0 response.
pub async fn invoke(router: &Router, event_json: &str) -> Answer {
    cpis_http::testing::invoke(router, gateway_event(event_json)).await
}

/// A fixed pseudonymisation key for tests.
pub fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(&[7u8; 32]).unwrap_or_else(|_| panic!("a 32-byte key is strong enough"))
}

/// The two tables every function needs: the base of most start-up cases.
pub const TABLES: [(&str, &str); 2] = [
    ("CPIS_TABLE_NAME", "service"),
    ("CPIS_AUDIT_TABLE_NAME", "audit"),
];

/// A pseudonymisation key in Secrets Manager (never read: start-up cases
/// fail before any AWS call).
pub const SECRET_ARN: (&str, &str) = (
    "CPIS_PSEUDONYM_SECRET_ARN",
    "arn:aws:secretsmanager:eu-west-2:1:secret:k",
);

/// [`TABLES`] and `extra`.
pub fn with_tables(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut vars = TABLES.to_vec();
    vars.extend_from_slice(extra);
    vars
}

/// What a function's binary needs to reach moto at `endpoint` as a deployed
/// function reaches AWS, for start-up cases past the settings (a secret to
/// read). [`startup_failure`] clears the rest of the environment: no HOME,
/// so no AWS profile.
pub fn moto_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "eu-west-2".into()),
    ]
}

/// A start-up case: the whole environment, and the variable its refusal names.
pub type StartupCase = (Vec<(&'static str, &'static str)>, &'static str);

/// The cases every HTTP function refuses, `own` being what its kind needs
/// beyond the API settings: an empty environment, no pseudonymisation key,
/// a key that is not hex (whose value must not reach the log: it would be
/// the key), and a malformed number.
pub fn api_startup_cases(own: &[(&'static str, &'static str)]) -> Vec<StartupCase> {
    let vars = |more: &[(&'static str, &'static str)]| {
        let mut vars = with_tables(own);
        vars.extend_from_slice(more);
        vars
    };
    let not_hex = (
        "CPIS_PSEUDONYM_KEY",
        "zz-not-a-key-but-it-could-have-been-one-zz",
    );
    let bad_days = ("CPIS_VISIBILITY_TAIL_DAYS", "a year");
    vec![
        (vec![], "CPIS_TABLE_NAME"),
        (vars(&[]), "CPIS_PSEUDONYM_SECRET_ARN"),
        (vars(&[not_hex]), "CPIS_PSEUDONYM_KEY"),
        (vars(&[SECRET_ARN, bad_days]), "CPIS_VISIBILITY_TAIL_DAYS"),
    ]
}

/// Runs every case on `binary`: each start is refused with one JSON error
/// line naming the case's variable ([`startup_failure`]).
pub fn assert_startup_refusals(binary: &str, cases: &[StartupCase]) {
    for (vars, variable) in cases {
        let line = startup_failure(binary, vars);
        let names: Vec<&str> = vars.iter().map(|(name, _)| *name).collect();
        assert_eq!(variable_named(&line), *variable, "with {names:?}: {line}");
    }
}

/// Runs a function's binary (`env!("CARGO_BIN_EXE_<name>")`) with exactly
/// `vars` as its environment, expects it to refuse to start, and answers the
/// one line it wrote: JSON, at error level, with the start-up event, naming
/// the variable at fault. Nothing on stderr (no Debug-formatted error), and
/// no value of `vars` anywhere in the output (values may be keys).
pub fn startup_failure(binary: &str, vars: &[(&str, &str)]) -> serde_json::Value {
    let output = std::process::Command::new(binary)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {binary}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{binary} started: {stdout}");
    assert_eq!(stderr, "", "nothing but the JSON line, and on stdout");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stdout}");
    for (name, value) in vars {
        assert!(
            value.len() < 4 || !stdout.contains(value),
            "the value of {name} is in the output: {stdout}"
        );
    }
    let line: serde_json::Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {stdout}"));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(
        line["fields"]["event"],
        cpis_telemetry::event::STARTUP_CONFIG_INVALID,
        "{line}"
    );
    line
}

/// The variable a refused start named.
pub fn variable_named(line: &serde_json::Value) -> &str {
    line["fields"]["variable"].as_str().unwrap_or_default()
}
