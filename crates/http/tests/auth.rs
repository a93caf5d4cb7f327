//! Authentication and roles at the HTTP boundary: every protected route
//! refuses every bad credential with the same 401 problem, and the wrong role
//! with a 403 problem, before any handler runs.

mod common;

use axum::http::{header, Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use cpis_domain::{AuditAction, AuditOutcome};
use cpis_http::routes::{Caller, RouteSpec, ROUTES};
use cpis_http::{LocalKeys, LOCAL_AUDIENCE, LOCAL_ISSUER};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use time::OffsetDateTime;

fn concrete_path(spec: &RouteSpec) -> String {
    spec.path
        .replace("{id}", "3f2b8c1e-0000-4000-8000-000000000000")
}

fn protected_routes() -> impl Iterator<Item = &'static RouteSpec> {
    ROUTES.iter().filter(|r| r.caller != Caller::Anyone)
}

fn body_for(spec: &RouteSpec) -> Option<Value> {
    match spec.method {
        "POST" | "PUT" => Some(json!({ "nhs_number": CHILD_1, "unscheduled": true })),
        _ => None,
    }
}

fn method(spec: &RouteSpec) -> Method {
    Method::from_bytes(spec.method.as_bytes()).unwrap()
}

/// Claims signed with the service's own private key, with any iss/aud/times.
fn signed_with(app: &TestApp, claims: Value, alg: Algorithm) -> String {
    let pem = std::fs::read(app.dir.path().join("keys/signing-key.pem")).unwrap();
    let key = EncodingKey::from_ed_pem(&pem).unwrap();
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap()
}

fn full_claims(iss: &str, aud: &str, nbf: i64, exp: i64) -> Value {
    json!({
        "iss": iss, "aud": aud, "iat": nbf, "nbf": nbf, "exp": exp,
        "sub": "client-1", "role": "council", "ods_code": COUNCIL_A
    })
}

/// Every kind of bad credential, named.
fn bad_credentials(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let other_keys = LocalKeys::ephemeral().unwrap();
    let good_claims = council(COUNCIL_A);
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD
            .encode(full_claims(LOCAL_ISSUER, LOCAL_AUDIENCE, now, now + 3600).to_string());
        format!("{header}.{payload}.")
    };
    // The classic swap: HS256 with the (public) verification key as the secret.
    let hs256_swap = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &full_claims(LOCAL_ISSUER, LOCAL_AUDIENCE, now, now + 3600),
        &EncodingKey::from_secret(app.keys.public_pem().as_bytes()),
    )
    .unwrap();
    let valid = app.token(&good_claims);
    let tampered = {
        let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["ods_code"] = json!(COUNCIL_B);
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        parts.join(".")
    };
    vec![
        ("missing", None),
        ("not a jwt", Some("not-a-token".into())),
        (
            "expired",
            Some(
                app.keys
                    .mint(
                        &good_claims,
                        OffsetDateTime::now_utc() - time::Duration::hours(2),
                        time::Duration::hours(1),
                    )
                    .unwrap(),
            ),
        ),
        (
            "not yet valid",
            Some(signed_with(
                app,
                full_claims(LOCAL_ISSUER, LOCAL_AUDIENCE, now + 600, now + 3600),
                Algorithm::EdDSA,
            )),
        ),
        (
            "another data directory's key",
            Some(
                other_keys
                    .mint(
                        &good_claims,
                        OffsetDateTime::now_utc(),
                        time::Duration::hours(1),
                    )
                    .unwrap(),
            ),
        ),
        ("alg none", Some(unsigned)),
        ("HS256 with the public key", Some(hs256_swap)),
        (
            "wrong audience",
            Some(signed_with(
                app,
                full_claims(LOCAL_ISSUER, "someone-else", now, now + 3600),
                Algorithm::EdDSA,
            )),
        ),
        (
            "wrong issuer",
            Some(signed_with(
                app,
                full_claims("https://evil.example", LOCAL_AUDIENCE, now, now + 3600),
                Algorithm::EdDSA,
            )),
        ),
        ("tampered claims", Some(tampered)),
        (
            "valid signature, unknown role",
            Some(app.token(&cpis_http::CallerClaims {
                role: "admin".into(),
                ..council(COUNCIL_A)
            })),
        ),
        (
            "valid signature, invalid ODS code",
            Some(app.token(&council("not an ods code"))),
        ),
        (
            "valid signature, clinician without RBAC",
            Some(app.token(&cpis_http::CallerClaims {
                rbac: None,
                ..clinician("u1", TRUST_X, "B0107")
            })),
        ),
    ]
}

#[tokio::test]
async fn every_protected_route_refuses_every_bad_credential_with_401() {
    let app = TestApp::new();
    let credentials = bad_credentials(&app);
    let mut requests = 0;
    for spec in protected_routes() {
        for (name, token) in &credentials {
            let reply = app
                .send(request(
                    method(spec),
                    &concrete_path(spec),
                    token.as_deref(),
                    body_for(spec),
                ))
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{} {} with {name}: {}",
                spec.method,
                spec.path,
                reply.text
            );
            assert_eq!(
                reply.headers.get(header::WWW_AUTHENTICATE).unwrap(),
                "Bearer",
                "{name}"
            );
            if spec.path.starts_with("/FHIR") {
                assert_eq!(reply.json["resourceType"], "OperationOutcome");
            } else {
                reply.assert_problem(401, "UNAUTHENTICATED");
                // The reason is not disclosed: every bad credential looks alike.
                assert_eq!(
                    reply.json["detail"], "a valid bearer token is required",
                    "{name}"
                );
            }
            requests += 1;
        }
    }
    // Nothing reached a store: every refusal is audited as an anonymous denial.
    let audit = app.audit().await;
    let audited_routes = protected_routes().filter(|r| r.action.is_some()).count();
    assert_eq!(audit.len(), audited_routes * credentials.len());
    assert!(requests > 100);
    for event in &audit {
        assert_eq!(event.outcome, AuditOutcome::Denied);
        assert_eq!(event.actor_id, "anonymous");
        assert_eq!(event.subject, None);
    }
    assert!(app.queue.sent().is_empty());
}

#[tokio::test]
async fn a_well_formed_token_is_accepted_and_a_non_bearer_scheme_is_not() {
    let app = TestApp::new();
    let token = app.token(&council(COUNCIL_A));
    let reply = app
        .send(request(Method::GET, "/v1/plans", Some(&token), None))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let basic = axum::http::Request::builder()
        .uri("/v1/plans")
        .header(header::AUTHORIZATION, format!("Basic {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(basic).await.assert_problem(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn tokens_from_one_data_directory_are_refused_by_another() {
    let first = TestApp::new();
    let second = TestApp::new();
    let token = first.token(&council(COUNCIL_A));
    let ok = first
        .send(request(Method::GET, "/v1/plans", Some(&token), None))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    second
        .send(request(Method::GET, "/v1/plans", Some(&token), None))
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    // The same directory, loaded again, keeps accepting its tokens: see
    // crates/cpis/src/data_dir.rs, which keeps the key.
}

#[tokio::test]
async fn the_wrong_role_gets_403_before_any_store_read() {
    let app = TestApp::new();
    // A plan, so that a wrongly admitted check would have something to record.
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let before = app.audit().await.len();
    let care_settings = [
        clinician("dr-1", TRUST_X, "B0107"),
        clinician("dr-2", TRUST_X, "B0170"),
        system("pas-1", TRUST_X, "B0107"),
    ];
    let mut denied = 0;
    for spec in protected_routes() {
        let callers: Vec<cpis_http::CallerClaims> = match spec.caller {
            Caller::Council => care_settings.to_vec(),
            Caller::CareSetting => vec![council(COUNCIL_A), council(COUNCIL_B)],
            Caller::CouncilOrCareSetting | Caller::Anyone => continue,
        };
        for claims in &callers {
            let reply = app
                .call(
                    method(spec),
                    &concrete_path(spec),
                    Some(claims),
                    body_for(spec),
                )
                .await;
            if spec.path.starts_with("/FHIR") {
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", spec.path);
                assert_eq!(reply.json["resourceType"], "OperationOutcome");
            } else {
                reply.assert_problem(403, "ACCESS_DENIED");
            }
            if spec.action.is_some() {
                denied += 1;
            }
        }
    }
    let audit = app.audit().await;
    let new_events = &audit[before..];
    assert_eq!(new_events.len(), denied);
    for event in new_events {
        assert_eq!(event.outcome, AuditOutcome::Denied);
        assert_eq!(event.subject, None, "denied before the body was read");
    }
    // No check ran: nobody was notified and no access was recorded.
    assert!(app.queue.sent().is_empty());
    assert!(new_events.iter().all(|e| e.actor_id != "anonymous"));
    assert!(new_events
        .iter()
        .any(|e| e.action == AuditAction::Check && e.role == "council"));
    let history = app
        .call(
            Method::POST,
            "/v1/history",
            Some(&council(COUNCIL_A)),
            Some(json!({ "nhs_number": CHILD_1 })),
        )
        .await;
    assert_eq!(history.json, json!({ "access_history": [] }));
}

#[tokio::test]
async fn the_principal_comes_from_the_token_never_the_body() {
    let app = TestApp::new();
    // Council B names council A in the body: the upload still lands with B.
    let reply = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&council(COUNCIL_B)),
            Some(json!({
                "sequence": 1, "mode": "delta",
                "records": [plan(CHILD_1, "CPP", "2025-06-01")],
                "ods_code": COUNCIL_A
            })),
        )
        .await;
    // An unexpected batch field is a malformed file, not a tenancy switch.
    reply.assert_problem(400, "CPF01");
    assert_eq!(reply.json["pointer"], "/ods_code");
    let a_plans = app
        .call(Method::GET, "/v1/plans", Some(&council(COUNCIL_A)), None)
        .await;
    assert_eq!(a_plans.json["plans"], json!([]));
}
