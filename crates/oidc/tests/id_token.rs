//! The relying party against an issuer made here, on 127.0.0.1, whose
//! tokens each test shapes: every rule of the ID token's validation fails
//! closed, the code is single use and bound to its PKCE verifier, and the
//! keys rotate. (The whole flow against a real OpenID provider, in a real
//! browser, is tests/suites/66-portal-oidc.sh.)

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cpis_oidc::{pkce_challenge, IdTokenError, OidcError, Provider, Settings};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use time::OffsetDateTime;

const CLIENT: &str = "cpis-portal";
const SECRET: &str = "a client secret";
const NONCE: &str = "the-nonce-sent";

fn keys_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(keys_dir().join(name)).unwrap()
}

fn jwks(names: &[&str]) -> Value {
    let keys: Vec<Value> = names
        .iter()
        .map(|n| {
            serde_json::from_str::<Value>(&read(&format!("{n}.jwks.json"))).unwrap()["keys"][0]
                .clone()
        })
        .collect();
    json!({ "keys": keys })
}

/// The issuer's state, as each test sets it.
#[derive(Default)]
struct Issuer {
    base: String,
    jwks: Value,
    jwks_reads: usize,
    /// The code the token endpoint accepts, its PKCE challenge and the ID
    /// token it answers with; the code is used up by its first exchange.
    code: Option<(String, String, String)>,
    /// What the last token request's Authorization header was.
    authorization: Option<String>,
}

type Shared = Arc<Mutex<Issuer>>;

async fn discovery(State(issuer): State<Shared>) -> Json<Value> {
    let base = issuer.lock().unwrap().base.clone();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

async fn keys(State(issuer): State<Shared>) -> Json<Value> {
    let mut issuer = issuer.lock().unwrap();
    issuer.jwks_reads += 1;
    Json(issuer.jwks.clone())
}

async fn token(
    State(issuer): State<Shared>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut issuer = issuer.lock().unwrap();
    issuer.authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let refused = (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant"})),
    )
        .into_response();
    let Some((code, challenge, id_token)) = issuer.code.take() else {
        return refused;
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if form.get("code") != Some(&code)
        || pkce_challenge(&verifier) != challenge
        || form.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return refused;
    }
    Json(json!({"token_type": "Bearer", "access_token": "at", "id_token": id_token}))
        .into_response()
}

async fn start(jwks_names: &[&str]) -> (Shared, Provider) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = Arc::new(Mutex::new(Issuer {
        base: base.clone(),
        jwks: jwks(jwks_names),
        ..Default::default()
    }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(keys))
        .route("/token", post(token))
        .with_state(issuer.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let provider = Provider::discover(settings(&base)).await.expect("discover");
    (issuer, provider)
}

fn settings(issuer: &str) -> Settings {
    Settings {
        issuer: issuer.to_owned(),
        client_id: CLIENT.to_owned(),
        client_secret: SECRET.to_owned(),
        redirect_uri: "http://127.0.0.1:8080/portal/sign-in/callback".to_owned(),
        scopes: vec!["profile".to_owned()],
        userinfo: false,
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Good claims from `issuer`, as the test then spoils them.
fn claims(issuer: &Shared) -> Value {
    let now = now().unix_timestamp();
    json!({
        "iss": issuer.lock().unwrap().base,
        "aud": CLIENT,
        "sub": "duty-1",
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
        "role": "council",
        "ods_code": "E09000033",
    })
}

fn sign(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(read(&format!("{kid}.pem")).as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn verify(provider: &Provider, token: &str) -> Result<cpis_oidc::Claims, OidcError> {
    provider.verify_id_token(token, NONCE, now()).await
}

fn refused_for(result: Result<cpis_oidc::Claims, OidcError>) -> IdTokenError {
    match result {
        Err(OidcError::IdToken(why)) => why,
        other => panic!("not refused as an ID token: {other:?}"),
    }
}

#[tokio::test]
async fn the_code_flow_with_pkce_gives_the_tokens_claims() {
    let (issuer, provider) = start(&["one"]).await;
    let url = provider.authorization_url("st", NONCE, "v".repeat(43).as_str());
    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["scope"], "openid profile");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"], pkce_challenge(&"v".repeat(43)));
    assert_eq!(
        query["redirect_uri"],
        "http://127.0.0.1:8080/portal/sign-in/callback"
    );
    let verifier = "w".repeat(64);
    let token = sign(&claims(&issuer), "one");
    issuer.lock().unwrap().code = Some(("c1".into(), pkce_challenge(&verifier), token));
    let got = provider
        .sign_in("c1", &verifier, NONCE, now())
        .await
        .unwrap();
    assert_eq!(got["sub"], "duty-1");
    assert_eq!(got["ods_code"], "E09000033");
    // client_secret_basic, form-encoded then base64'd (RFC 6749 §2.3.1).
    let basic = issuer.lock().unwrap().authorization.clone().unwrap();
    let decoded = URL_SAFE_NO_PAD
        .decode(basic.trim_start_matches("Basic ").trim_end_matches('='))
        .or_else(|_| {
            base64::engine::general_purpose::STANDARD.decode(basic.trim_start_matches("Basic "))
        })
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "cpis-portal:a+client+secret"
    );
}

#[tokio::test]
async fn a_code_is_used_once_and_only_with_its_verifier() {
    let (issuer, provider) = start(&["one"]).await;
    let verifier = "w".repeat(64);
    let token = sign(&claims(&issuer), "one");
    issuer.lock().unwrap().code = Some(("c1".into(), pkce_challenge(&verifier), token.clone()));
    let wrong = provider.sign_in("c1", &"x".repeat(64), NONCE, now()).await;
    assert!(
        matches!(wrong, Err(OidcError::Refused(ref e)) if e == "invalid_grant"),
        "{wrong:?}"
    );
    issuer.lock().unwrap().code = Some(("c1".into(), pkce_challenge(&verifier), token));
    assert!(provider
        .sign_in("c1", &verifier, NONCE, now())
        .await
        .is_ok());
    let replayed = provider.sign_in("c1", &verifier, NONCE, now()).await;
    assert!(
        matches!(replayed, Err(OidcError::Refused(ref e)) if e == "invalid_grant"),
        "{replayed:?}"
    );
}

#[tokio::test]
async fn every_claim_rule_fails_closed() {
    let (issuer, provider) = start(&["one"]).await;
    let good = claims(&issuer);
    assert!(verify(&provider, &sign(&good, "one")).await.is_ok());
    let t = now().unix_timestamp();
    let spoiled: Vec<(&str, Value, IdTokenError)> = vec![
        (
            "iss",
            json!("http://127.0.0.1:1/other"),
            IdTokenError::Issuer,
        ),
        ("iss", Value::Null, IdTokenError::Issuer),
        ("aud", json!("another-client"), IdTokenError::Audience),
        ("aud", json!(["another-client"]), IdTokenError::Audience),
        ("aud", Value::Null, IdTokenError::Audience),
        // Several audiences without azp.
        (
            "aud",
            json!([CLIENT, "another-client"]),
            IdTokenError::Audience,
        ),
        ("azp", json!("another-client"), IdTokenError::Audience),
        ("exp", json!(t - 61), IdTokenError::Expired),
        ("exp", Value::Null, IdTokenError::Malformed),
        ("iat", json!(t + 120), IdTokenError::NotYetValid),
        ("iat", json!(t - 700), IdTokenError::TooOld),
        ("nbf", json!(t + 120), IdTokenError::NotYetValid),
        ("nonce", json!("another-nonce"), IdTokenError::Nonce),
        ("nonce", Value::Null, IdTokenError::Nonce),
        ("nonce", json!(""), IdTokenError::Nonce),
        ("sub", json!(""), IdTokenError::Subject),
        ("sub", Value::Null, IdTokenError::Subject),
    ];
    for (claim, value, why) in spoiled {
        let mut bad = good.clone();
        if value.is_null() {
            bad.as_object_mut().unwrap().remove(claim);
        } else {
            bad[claim] = value.clone();
        }
        let result = verify(&provider, &sign(&bad, "one")).await;
        assert_eq!(refused_for(result), why, "{claim} = {value}");
    }
    // Within the leeway, still good.
    let mut late = good.clone();
    late["exp"] = json!(t - 30);
    assert!(verify(&provider, &sign(&late, "one")).await.is_ok());
    // Several audiences with this client as azp: good.
    let mut shared = good.clone();
    shared["aud"] = json!([CLIENT, "another-client"]);
    shared["azp"] = json!(CLIENT);
    assert!(verify(&provider, &sign(&shared, "one")).await.is_ok());
}

#[tokio::test]
async fn forged_signatures_and_algorithms_are_refused() {
    let (issuer, provider) = start(&["one"]).await;
    let good = sign(&claims(&issuer), "one");
    let parts: Vec<&str> = good.split('.').collect();
    // The payload changed (another council) under the original signature.
    let mut payload = claims(&issuer);
    payload["ods_code"] = json!("E06000001");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    assert_eq!(
        refused_for(verify(&provider, &tampered).await),
        IdTokenError::Signature
    );
    // alg none, no signature.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"one"}"#),
        parts[1]
    );
    assert_eq!(
        refused_for(verify(&provider, &none).await),
        IdTokenError::Malformed
    );
    // HS256 keyed with the issuer's public key (which anyone can read).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("one".into());
    let public = read("one.pub.pem");
    let forged = jsonwebtoken::encode(
        &header,
        &claims(&issuer),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        refused_for(verify(&provider, &forged).await),
        IdTokenError::Algorithm
    );
    // RS384 by a key the JWKS pins to RS256.
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("one".into());
    let key = EncodingKey::from_rsa_pem(read("one.pem").as_bytes()).unwrap();
    let other_alg = jsonwebtoken::encode(&header, &claims(&issuer), &key).unwrap();
    assert_eq!(
        refused_for(verify(&provider, &other_alg).await),
        IdTokenError::Algorithm
    );
    for junk in ["", "a.b", "a.b.c", "....", &good[..good.len() - 4]] {
        assert!(verify(&provider, junk).await.is_err(), "{junk}");
    }
}

#[tokio::test]
async fn keys_rotate_and_unknown_key_ids_do_not_hammer_the_issuer() {
    let (issuer, provider) = start(&["one"]).await;
    let reads = || issuer.lock().unwrap().jwks_reads;
    assert_eq!(reads(), 1, "read once at discovery");
    // Signed by a key the issuer does not publish: refused.
    let by_two = sign(&claims(&issuer), "two");
    assert_eq!(
        refused_for(verify(&provider, &by_two).await),
        IdTokenError::UnknownKey
    );
    assert_eq!(reads(), 2, "an unknown kid made one more read");
    // The issuer rotates to key two: within the minute, no further read...
    issuer.lock().unwrap().jwks = jwks(&["two"]);
    assert_eq!(
        refused_for(verify(&provider, &by_two).await),
        IdTokenError::UnknownKey
    );
    assert_eq!(reads(), 2, "made-up kids cannot force reads");
    // ... and a service started after it takes the new key at once, the old
    // one no longer.
    let base = issuer.lock().unwrap().base.clone();
    let fresh = Provider::discover(settings(&base)).await.unwrap();
    assert!(verify(&fresh, &by_two).await.is_ok());
    let by_one = sign(&claims(&issuer), "one");
    assert_eq!(
        refused_for(verify(&fresh, &by_one).await),
        IdTokenError::UnknownKey
    );
}

#[tokio::test]
async fn a_rotation_after_start_up_is_followed() {
    let (issuer, provider) = start(&["one"]).await;
    assert!(verify(&provider, &sign(&claims(&issuer), "one"))
        .await
        .is_ok());
    issuer.lock().unwrap().jwks = jwks(&["one", "two"]);
    assert!(verify(&provider, &sign(&claims(&issuer), "two"))
        .await
        .is_ok());
    assert_eq!(issuer.lock().unwrap().jwks_reads, 2);
}

#[tokio::test]
async fn discovery_refuses_a_mismatched_issuer_and_plain_http_off_loopback() {
    let (issuer, _) = start(&["one"]).await;
    let base = issuer.lock().unwrap().base.clone();
    // A trailing slash is another issuer (Discovery §4.3: exact match).
    let slash = Provider::discover(settings(&format!("{base}/"))).await;
    assert!(
        matches!(slash, Err(OidcError::Setting(_))),
        "{:?}",
        slash.err()
    );
    let plain = Provider::discover(settings("http://idp.example.org")).await;
    assert!(matches!(plain, Err(OidcError::Setting(_))));
    let mut no_secret = settings(&base);
    no_secret.client_secret.clear();
    assert!(matches!(
        Provider::discover(no_secret).await,
        Err(OidcError::Setting(_))
    ));
    let down = Provider::discover(settings("http://127.0.0.1:9")).await;
    assert!(
        matches!(down, Err(OidcError::Unreachable(_))),
        "{:?}",
        down.err()
    );
}
