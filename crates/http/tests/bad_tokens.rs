//! Bad credentials (issue 7, suite 4): a generated corpus of well over a
//! thousand bad tokens sent to the protected routes. Every one must get 401 in
//! the route's error dialect, and no handler may run: the store behind the
//! router counts every call, and only the audit trail's anonymous denials may
//! reach it. The figures are printed so that they can be quoted:
//!
//! `cargo test -p cpis-http --test bad_tokens -- --nocapture`
//!
//! By default (CI) each token goes to one protected route in turn, so every
//! route gets a share of every class (and classes smaller than the route table
//! go to every route). With `CPIS_ASSURANCE_FULL=1` every token goes to every
//! protected route. Signature checks dominate the time: an unoptimised
//! Ed25519 verification takes tens of milliseconds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use cpis_domain::ports::{
    AccessLog, AccessWrite, AuditReader, AuditTrail, AuthorityDirectory, CheckLedger,
    CheckReceipts, CheckWrite, NotificationInbox, Page, PlanStore, StoreError, StoredPlan,
    UploadLedger, UploadReceipt,
};
use cpis_domain::LedgerHead;
use cpis_domain::{
    AccessRecord, Asn, AuditEvent, AuditOutcome, Authority, ManualClock, NhsNumber, OdsCode, Plan,
    PlanKey, VisibilityPolicy,
};
use cpis_http::routes::{Caller, Dialect, RouteSpec, ROUTES};
use cpis_http::{AppState, Authenticator, CallerClaims, LocalKeys, LOCAL_AUDIENCE, LOCAL_ISSUER};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use time::OffsetDateTime;

// ------------------------------------------------------------------ a store that counts

/// The memory store, counting every call but the audit trail's appends: a
/// handler that ran would read or write through one of these.
#[derive(Clone, Default)]
struct Counting {
    inner: MemoryStore,
    calls: Arc<AtomicUsize>,
}

impl Counting {
    fn touched(&self) -> &MemoryStore {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.inner
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl PlanStore for Counting {
    async fn plans_for_child(&self, nhs_number: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        self.touched().plans_for_child(nhs_number).await
    }
    async fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        self.touched()
            .plans_for_authority(authority, cursor, limit)
            .await
    }
    async fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> Result<Vec<PlanKey>, StoreError> {
        self.touched().plan_keys_for_authority(authority).await
    }
    async fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        self.touched()
            .apply_changes(authority, upserts, withdrawals)
            .await
    }
}

impl UploadLedger for Counting {
    async fn receipt(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<Option<UploadReceipt>, StoreError> {
        self.touched().receipt(authority, sequence).await
    }
    async fn ledger_head(&self, authority: &OdsCode) -> Result<Option<LedgerHead>, StoreError> {
        self.touched().ledger_head(authority).await
    }
    async fn swap_ledger_head(
        &self,
        authority: &OdsCode,
        expected: Option<&LedgerHead>,
        new: &LedgerHead,
    ) -> Result<bool, StoreError> {
        self.touched()
            .swap_ledger_head(authority, expected, new)
            .await
    }
    async fn retire_receipts_above(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<usize, StoreError> {
        self.touched()
            .retire_receipts_above(authority, sequence)
            .await
    }
    async fn record_receipt(
        &self,
        authority: &OdsCode,
        receipt: &UploadReceipt,
    ) -> Result<UploadReceipt, StoreError> {
        self.touched().record_receipt(authority, receipt).await
    }
}

impl cpis_domain::FeedLog for Counting {
    fn tracks_feeds(&self) -> bool {
        self.inner.tracks_feeds()
    }
    async fn record_full_snapshot(
        &self,
        authority: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.touched().record_full_snapshot(authority, at).await
    }
    async fn last_full_snapshot(
        &self,
        authority: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        self.touched().last_full_snapshot(authority).await
    }
    async fn last_full_snapshots(&self) -> Result<Vec<(OdsCode, OffsetDateTime)>, StoreError> {
        self.touched().last_full_snapshots().await
    }
}

impl AuthorityDirectory for Counting {
    async fn authority(&self, ods_code: &OdsCode) -> Result<Option<Authority>, StoreError> {
        self.touched().authority(ods_code).await
    }
    async fn put_authority(&self, authority: &Authority) -> Result<(), StoreError> {
        self.touched().put_authority(authority).await
    }
}

impl AccessLog for Counting {
    async fn record_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> Result<AccessWrite, StoreError> {
        self.touched()
            .record_access(access, asns, collapse_since)
            .await
    }
    async fn recent_accesses(
        &self,
        nhs_number: &NhsNumber,
        limit: usize,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        self.touched().recent_accesses(nhs_number, limit).await
    }
}

impl CheckLedger for Counting {
    async fn record_check(
        &self,
        write: &CheckWrite<'_>,
    ) -> Result<Option<AccessWrite>, StoreError> {
        self.touched().record_check(write).await
    }
}

impl CheckReceipts for Counting {
    async fn note_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.touched()
            .note_check(nhs_number, organisation, at)
            .await
    }
    async fn last_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        self.touched().last_check(nhs_number, organisation).await
    }
}

impl NotificationInbox for Counting {
    async fn notifications(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asn>, StoreError> {
        self.touched().notifications(authority, cursor, limit).await
    }
    async fn notification(&self, authority: &OdsCode, id: &str) -> Result<Option<Asn>, StoreError> {
        self.touched().notification(authority, id).await
    }
    async fn acknowledge(
        &self,
        authority: &OdsCode,
        id: &str,
        at: OffsetDateTime,
        note: Option<&cpis_domain::AckNote>,
    ) -> Result<Option<Asn>, StoreError> {
        self.touched().acknowledge(authority, id, at, note).await
    }
}

impl AuditTrail for Counting {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.inner.append(event).await
    }
}

// ------------------------------------------------------------------ token building

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature`, Ed25519-signed over exactly these bytes.
fn ed_signed(key: &SigningKey, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(payload.to_string()));
    let signature = key.sign(input.as_bytes()).to_bytes();
    format!("{input}.{}", b64(signature))
}

fn hmac_signed(alg: Algorithm, secret: &[u8], payload: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        payload,
        &EncodingKey::from_secret(secret),
    )
    .expect("HMAC signing")
}

fn ed_header() -> Value {
    json!({ "alg": "EdDSA", "typ": "JWT" })
}

/// A complete, valid claim set for `caller`, valid from now for an hour.
fn valid_claims(caller: &CallerClaims, now: i64) -> Value {
    let mut claims = serde_json::to_value(caller).expect("claims");
    let object = claims.as_object_mut().expect("an object");
    for (name, value) in [
        ("iss", json!(LOCAL_ISSUER)),
        ("aud", json!(LOCAL_AUDIENCE)),
        ("iat", json!(now)),
        ("nbf", json!(now)),
        ("exp", json!(now + 3600)),
    ] {
        object.insert(name.into(), value);
    }
    claims
}

fn with(claims: &Value, name: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[name] = value;
    claims
}

fn without(claims: &Value, name: &str) -> Value {
    let mut claims = claims.clone();
    claims.as_object_mut().expect("an object").remove(name);
    claims
}

/// The three kinds of caller the corpus impersonates.
fn callers() -> [CallerClaims; 3] {
    [
        council(COUNCIL_A),
        clinician("dr-1", TRUST_X, "B0107"),
        system("pas-1", TRUST_Y, "B0170"),
    ]
}

/// A deterministic generator (SplitMix64): the corpus is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn from(&mut self, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

/// One bad credential: its class, and the whole `Authorization` header value
/// (`None`: no header at all).
struct Bad {
    class: &'static str,
    authorization: Option<Vec<u8>>,
}

/// The corpus, without repeats (short truncations of different tokens agree).
#[derive(Default)]
struct Corpus(Vec<Bad>, BTreeSet<Option<Vec<u8>>>);

impl Corpus {
    fn bearer(&mut self, class: &'static str, token: impl AsRef<[u8]>) {
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(token.as_ref());
        self.header(class, Some(value));
    }

    fn header(&mut self, class: &'static str, authorization: Option<Vec<u8>>) {
        if !self.1.insert(authorization.clone()) {
            return;
        }
        self.0.push(Bad {
            class,
            authorization,
        });
    }
}

/// Every bad credential, by class. `real` is the service's own signing key,
/// `public_pem` its verification key.
fn corpus(real: &SigningKey, private_pem: &str, public_pem: &str) -> Corpus {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut c = Corpus::default();
    let mut rng = Rng(0x00C0_FFEE);
    let valid: Vec<Value> = callers().iter().map(|k| valid_claims(k, now)).collect();
    let valid_tokens: Vec<String> = valid
        .iter()
        .map(|claims| ed_signed(real, &ed_header(), claims))
        .collect();

    // 1. Unsigned tokens, however `none` is spelt and whatever trails them.
    for alg in ["none", "None", "NONE", "nOnE"] {
        for typ in [Some("JWT"), None] {
            let mut header = json!({ "alg": alg });
            if let Some(typ) = typ {
                header["typ"] = json!(typ);
            }
            for claims in &valid {
                let signed = ed_signed(real, &header, claims);
                let (unsigned, real_signature) = signed.rsplit_once('.').expect("three parts");
                for signature in ["", real_signature, "AAAA"] {
                    c.bearer("alg none", format!("{unsigned}.{signature}"));
                }
            }
        }
    }

    // 2. The algorithm swap: HMAC keyed with the public verification key, in
    //    every form a verifier might hold it.
    let pem_body: String = public_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(&pem_body).expect("SPKI DER");
    let raw_public = der[der.len() - 32..].to_vec();
    let public_forms: [&[u8]; 5] = [
        public_pem.as_bytes(),
        public_pem.trim().as_bytes(),
        pem_body.as_bytes(),
        &der,
        &raw_public,
    ];
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for secret in public_forms {
            for claims in &valid {
                c.bearer(
                    "HS/EdDSA swap (public key as HMAC secret)",
                    hmac_signed(alg, secret, claims),
                );
            }
        }
        for secret in [
            &b""[..],
            b"secret",
            b"cpis",
            b"cpis-local",
            private_pem.as_bytes(),
        ] {
            for claims in &valid {
                c.bearer(
                    "HMAC with a guessable secret",
                    hmac_signed(alg, secret, claims),
                );
            }
        }
    }

    // 3. A genuine signature by the service's key under another algorithm's name.
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256", "HS384",
        "HS512", "eddsa", "EDDSA", "Ed25519", "EdDSA ", "",
    ] {
        for claims in &valid {
            c.bearer(
                "real signature, other alg name",
                ed_signed(real, &json!({ "alg": alg, "typ": "JWT" }), claims),
            );
        }
    }

    // 4. Other keys, including keys the token itself points at.
    let attackers: Vec<SigningKey> = (1u8..=12)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    for key in &attackers {
        for claims in &valid {
            c.bearer("another key", ed_signed(key, &ed_header(), claims));
        }
    }
    let attacker = &attackers[0];
    let attacker_x = b64(attacker.verifying_key().to_bytes());
    for header in [
        json!({ "alg": "EdDSA", "jwk": { "kty": "OKP", "crv": "Ed25519", "x": attacker_x } }),
        json!({ "alg": "EdDSA", "kid": "signing-key" }),
        json!({ "alg": "EdDSA", "kid": "../../keys/signing-key.pem" }),
        json!({ "alg": "EdDSA", "jku": "https://evil.example/jwks.json" }),
        json!({ "alg": "EdDSA", "x5u": "https://evil.example/cert.pem" }),
    ] {
        for claims in &valid {
            c.bearer(
                "attacker key named in the header",
                ed_signed(attacker, &header, claims),
            );
        }
    }

    // 5. Audience and issuer: anything but the exact expected value.
    for aud in [
        json!(""),
        json!("CPIS"),
        json!("cpis "),
        json!(" cpis"),
        json!("cpis-local"),
        json!("https://cpis"),
        json!("api://cpis"),
        json!("cpis\u{0}"),
        json!(["other"]),
        json!([]),
        json!(1),
        json!(true),
        json!({ "aud": "cpis" }),
        Value::Null,
    ] {
        for claims in &valid {
            c.bearer(
                "wrong aud",
                ed_signed(real, &ed_header(), &with(claims, "aud", aud.clone())),
            );
        }
    }
    for iss in [
        json!(""),
        json!("CPIS-LOCAL"),
        json!("cpis-local "),
        json!(" cpis-local"),
        json!("cpis"),
        json!("cpis-loca"),
        json!("https://evil.example"),
        json!("cpis-local\u{0}"),
        json!(1),
        json!(["evil"]),
        json!({}),
        Value::Null,
    ] {
        for claims in &valid {
            c.bearer(
                "wrong iss",
                ed_signed(real, &ed_header(), &with(claims, "iss", iss.clone())),
            );
        }
    }

    // 6. Time: expired beyond the 30 s leeway, or not yet valid.
    for exp in [
        now - 60,
        now - 120,
        now - 600,
        now - 3600,
        now - 86_400,
        now - 365 * 86_400,
        0,
        1,
        -1,
        i64::MIN,
    ] {
        for claims in &valid {
            let claims = with(
                &with(claims, "exp", json!(exp)),
                "nbf",
                json!(exp.saturating_sub(3600)),
            );
            c.bearer("expired", ed_signed(real, &ed_header(), &claims));
        }
    }
    // Far enough ahead that the token is still early when the last request is sent.
    for ahead in [900, 3600, 7200, 86_400, 30 * 86_400, 10 * 365 * 86_400] {
        for claims in &valid {
            let claims = with(
                &with(claims, "nbf", json!(now + ahead)),
                "exp",
                json!(now + ahead + 3600),
            );
            c.bearer("nbf in the future", ed_signed(real, &ed_header(), &claims));
        }
    }

    // 7. Truncated anywhere.
    for token in &valid_tokens {
        for len in (0..token.len()).step_by(5).chain([token.len() - 1]) {
            c.bearer("truncated", &token[..len]);
        }
    }

    // 8. Oversized: genuinely signed and otherwise valid, but over 8 KiB.
    for size in [
        8 * 1024 + 1usize,
        9 * 1024,
        16 * 1024,
        64 * 1024,
        256 * 1024,
        1024 * 1024,
    ] {
        for claims in &valid[..2] {
            let base = ed_signed(real, &ed_header(), claims).len();
            // base64 grows 4/3; the padding claim makes up the difference.
            let pad = (size.saturating_sub(base) * 3).div_ceil(4) + 8;
            let token = ed_signed(
                real,
                &ed_header(),
                &with(claims, "pad", json!("x".repeat(pad))),
            );
            assert!(token.len() > 8 * 1024);
            c.bearer("oversized (valid signature, > 8 KiB)", token);
        }
    }

    // 9. Garbage: random visible text, random JWT-shaped text, random bytes
    //    that are not text, and tokens broken by whitespace.
    let visible: Vec<u8> = (0x21..=0x7e).collect();
    let b64url = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for _ in 0..150 {
        let len = 1 + rng.below(600);
        c.bearer("garbage", rng.from(&visible, len));
    }
    for _ in 0..60 {
        let parts: Vec<String> = (0..3)
            .map(|_| {
                let len = rng.below(120);
                String::from_utf8(rng.from(b64url, len)).expect("ascii")
            })
            .collect();
        c.bearer("garbage", parts.join("."));
    }
    let high: Vec<u8> = (0x80..=0xff).collect();
    for _ in 0..20 {
        let len = 1 + rng.below(200);
        c.bearer("garbage", rng.from(&high, len));
    }
    for token in &valid_tokens {
        for cut in [10, token.len() / 2, token.len() - 5] {
            for space in [" ", "\t"] {
                c.bearer(
                    "garbage",
                    format!("{}{space}{}", &token[..cut], &token[cut..]),
                );
            }
        }
    }

    // 10. Bad base64url: a foreign character, padding, the standard alphabet.
    for token in &valid_tokens {
        let parts: Vec<&str> = token.split('.').collect();
        for segment in 0..3 {
            for bad in ['+', '/', '=', '!', '*', '~', '%', '$'] {
                let mut broken: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                broken[segment].replace_range(1..2, &bad.to_string());
                c.bearer("bad base64", broken.join("."));
            }
            for padding in ["=", "=="] {
                let mut padded: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                padded[segment].push_str(padding);
                c.bearer("bad base64", padded.join("."));
            }
            let bytes = URL_SAFE_NO_PAD.decode(parts[segment]).expect("base64url");
            let standard = STANDARD.encode(bytes);
            if standard != parts[segment] {
                let mut other: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                other[segment] = standard;
                c.bearer("bad base64", other.join("."));
            }
        }
    }

    // 11. Not a JWT's structure.
    let header_only = b64(ed_header().to_string());
    let first = &valid_tokens[0];
    for shape in [
        header_only.clone(),
        format!("{header_only}."),
        first.rsplit_once('.').expect("parts").0.to_owned(),
        format!("{first}.e30"),
        format!("{first}.."),
        format!("{header_only}.e30.AAAA.BBBB.CCCC"),
        ".".into(),
        "..".into(),
        "...".into(),
        format!("{}.{}.AAAA", b64("not json"), b64("{}")),
        format!("{}.{}.", b64("{\"alg\":\"EdDSA\""), b64("{}")),
    ] {
        c.bearer("not a JWT", shape);
    }
    for payload in [
        json!([]),
        json!("council"),
        Value::Null,
        json!(42),
        json!({}),
    ] {
        c.bearer("not a JWT", ed_signed(real, &ed_header(), &payload));
    }
    for header in [
        json!({ "typ": "JWT" }),
        json!({ "alg": null }),
        json!({ "alg": 1 }),
        json!([]),
    ] {
        for claims in &valid {
            c.bearer("not a JWT", ed_signed(real, &header, claims));
        }
    }

    // 12. Missing claims (signed by the real key).
    for claims in &valid {
        for name in ["exp", "nbf", "iss", "aud", "sub", "role", "ods_code", "iat"] {
            c.bearer(
                "missing claim",
                ed_signed(real, &ed_header(), &without(claims, name)),
            );
        }
    }
    for claims in &valid[1..] {
        for name in ["rbac", "org_name", "setting"] {
            c.bearer(
                "missing claim",
                ed_signed(real, &ed_header(), &without(claims, name)),
            );
        }
    }

    // 13. Claims of the wrong type.
    for claims in &valid {
        for (name, value) in [
            ("exp", json!((now + 3600).to_string())),
            ("exp", json!(1.5e10)),
            ("exp", Value::Null),
            ("nbf", json!("0")),
            ("sub", json!(123)),
            ("sub", Value::Null),
            ("role", json!(1)),
            ("role", json!(["council"])),
            ("ods_code", json!([COUNCIL_A])),
            ("ods_code", json!(9)),
        ] {
            c.bearer(
                "wrong claim type",
                ed_signed(real, &ed_header(), &with(claims, name, value)),
            );
        }
    }
    for claims in &valid[1..] {
        for (name, value) in [
            ("rbac", json!(107)),
            ("org_name", json!({})),
            ("setting", json!(["ed"])),
        ] {
            c.bearer(
                "wrong claim type",
                ed_signed(real, &ed_header(), &with(claims, name, value)),
            );
        }
    }

    // 14. Genuinely signed, but the claims make no valid caller.
    let council_claims = &valid[0];
    for role in [
        "admin",
        "Council",
        "COUNCIL",
        "",
        "council ",
        "clinicians",
        "root",
        "operator",
        "Clinician",
        "SYSTEM",
        "system\n",
    ] {
        c.bearer(
            "bad role claims",
            ed_signed(
                real,
                &ed_header(),
                &with(council_claims, "role", json!(role)),
            ),
        );
    }
    for claims in &valid {
        for ods in [
            "",
            "e09000033",
            "E0",
            "E09000033X1",
            "E09 000033",
            "E09-000033",
            "E09000033\n",
            "ÉO9000033",
            "RJ1 ",
        ] {
            c.bearer(
                "bad role claims",
                ed_signed(real, &ed_header(), &with(claims, "ods_code", json!(ods))),
            );
        }
        for sub in [
            String::new(),
            "   ".into(),
            "a".repeat(129),
            "dr\u{0}1".into(),
            "dr\n1".into(),
        ] {
            c.bearer(
                "bad role claims",
                ed_signed(real, &ed_header(), &with(claims, "sub", json!(sub))),
            );
        }
    }
    for claims in &valid[1..] {
        for rbac in [
            "B0108", "b0107", "B0107 ", "", "B01070", "B0170\t", "B0000", "B0264",
        ] {
            c.bearer(
                "bad role claims",
                ed_signed(real, &ed_header(), &with(claims, "rbac", json!(rbac))),
            );
        }
        for name in [
            String::new(),
            "  ".into(),
            "x".repeat(201),
            "Trust\u{7}".into(),
        ] {
            c.bearer(
                "bad role claims",
                ed_signed(real, &ed_header(), &with(claims, "org_name", json!(name))),
            );
        }
        for setting in [String::new(), "x".repeat(65), "e\r\nd".into()] {
            c.bearer(
                "bad role claims",
                ed_signed(real, &ed_header(), &with(claims, "setting", json!(setting))),
            );
        }
    }

    // 15. Tampered after signing: claims raised, signature bits flipped.
    for (token, claims) in valid_tokens.iter().zip(&valid) {
        let parts: Vec<&str> = token.split('.').collect();
        for (name, value) in [
            ("ods_code", json!(COUNCIL_B)),
            ("role", json!("council")),
            ("exp", json!(now + 365 * 86_400)),
            ("sub", json!("someone-else")),
            ("rbac", json!("B0107")),
        ] {
            if claims[name] == value {
                continue;
            }
            let payload = b64(with(claims, name, value).to_string());
            c.bearer("tampered", format!("{}.{payload}.{}", parts[0], parts[2]));
        }
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
        for (byte, bit) in [(0, 0), (1, 3), (7, 7), (31, 1), (32, 0), (50, 5), (63, 7)] {
            let mut flipped = signature.clone();
            flipped[byte] ^= 1 << bit;
            c.bearer(
                "tampered",
                format!("{}.{}.{}", parts[0], parts[1], b64(flipped)),
            );
        }
        let header = b64(json!({ "alg": "EdDSA", "typ": "JWT", "kid": "1" }).to_string());
        c.bearer("tampered", format!("{header}.{}.{}", parts[1], parts[2]));
    }

    // 16. One token's claims with another's signature.
    let mut spliceable = valid_tokens.clone();
    spliceable.push(ed_signed(
        real,
        &ed_header(),
        &valid_claims(&council(COUNCIL_B), now),
    ));
    for (i, a) in spliceable.iter().enumerate() {
        for (j, b) in spliceable.iter().enumerate() {
            if i != j {
                let (signed, _) = a.rsplit_once('.').expect("parts");
                let (_, signature) = b.rsplit_once('.').expect("parts");
                c.bearer("spliced signature", format!("{signed}.{signature}"));
            }
        }
    }

    // 17. A valid token, but not as a bearer credential.
    let good = first.as_str();
    for value in [
        format!("Basic {good}"),
        format!("Token {good}"),
        format!("JWT {good}"),
        format!("Digest {good}"),
        good.to_owned(),
        format!("Bearer:{good}"),
        format!("Bearer={good}"),
        format!("Bearer\t{good}"),
        format!("Bearer {good} {good}"),
        "Bearer".into(),
        "Bearer ".into(),
    ] {
        c.header("not a bearer credential", Some(value.into_bytes()));
    }
    c.header("not a bearer credential", None);
    c
}

// ------------------------------------------------------------------ requests

/// A request a handler would act on, so that any that got through would show.
fn route_request(spec: &RouteSpec, authorization: Option<&[u8]>) -> Request<Body> {
    let path = spec
        .path
        .replace("{id}", "3f2b8c1e-0000-4000-8000-000000000000");
    let body = match spec.path {
        "/v1/uploads" => Some(
            json!({ "sequence": 1, "mode": "delta", "records": [plan(CHILD_1, "CPP", "2025-06-01")] }),
        ),
        "/v1/authority" => Some(authority_body(COUNCIL_A)),
        "/v1/checks" => Some(json!({ "nhs_number": CHILD_1, "unscheduled": true })),
        "/v1/history" => Some(json!({ "nhs_number": CHILD_1 })),
        _ => None,
    };
    let uri = if spec.dialect == Dialect::Fhir && spec.path != "/FHIR/R4/metadata" {
        format!("{path}?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{CHILD_1}")
    } else {
        path
    };
    let mut builder = Request::builder()
        .method(Method::from_bytes(spec.method.as_bytes()).expect("method"))
        .uri(uri)
        .header(cpis_fhir::UNSCHEDULED_HEADER, "true");
    if let Some(value) = authorization {
        builder = builder.header(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).expect("a header value HTTP can carry"),
        );
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

/// The decoded header and claims of a token, to say which one failed.
fn describe(authorization: Option<&[u8]>) -> String {
    let Some(value) = authorization else {
        return "no header".into();
    };
    let text = String::from_utf8_lossy(value);
    let token = text.strip_prefix("Bearer ").unwrap_or(&text);
    token
        .split('.')
        .take(2)
        .map(|part| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map(|b| String::from_utf8_lossy(&b).chars().take(300).collect())
                .unwrap_or_else(|_| part.chars().take(60).collect())
        })
        .collect::<Vec<String>>()
        .join(" . ")
}

struct Service {
    store: Counting,
    queue: RecordingQueue,
    router: axum::Router,
}

fn service(keys: &LocalKeys) -> Service {
    let store = Counting::default();
    let queue = RecordingQueue::default();
    let state = AppState {
        store: store.clone(),
        queue: queue.clone(),
        clock: Arc::new(ManualClock::new(start())),
        policy: VisibilityPolicy::default(),
        pseudonymiser: pseudonymiser(),
        auth: Authenticator::Local(keys.verifier()),
        volume: Default::default(),
    };
    Service {
        store,
        queue,
        router: cpis_http::service_router(state),
    }
}

#[derive(Default)]
struct Tally {
    tokens: usize,
    requests: usize,
    unauthorised: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bad_tokens_get_401_on_every_protected_route_and_reach_no_handler() {
    let private_pem = LocalKeys::generate_pem().expect("a key");
    let keys = LocalKeys::from_pem(&private_pem).expect("keys");
    let real = SigningKey::from_pkcs8_pem(&private_pem).expect("an Ed25519 key");
    let service = service(&keys);
    let corpus = corpus(&real, &private_pem, keys.public_pem());
    let protected: Vec<&RouteSpec> = ROUTES
        .iter()
        .filter(|r| r.caller != Caller::Anyone)
        .collect();

    let distinct: BTreeSet<&Option<Vec<u8>>> = corpus.0.iter().map(|b| &b.authorization).collect();
    assert_eq!(
        distinct.len(),
        corpus.0.len(),
        "every credential in the corpus is different"
    );
    assert!(
        corpus.0.len() >= 1000,
        "only {} bad credentials",
        corpus.0.len()
    );

    let mut tally: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut refusals: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut request_ids = BTreeSet::new();
    let mut coverage = BTreeSet::new();
    let mut audited_requests = 0;
    let full = std::env::var("CPIS_ASSURANCE_FULL").is_ok_and(|v| v.trim() == "1");
    let mut class_sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for bad in &corpus.0 {
        *class_sizes.entry(bad.class).or_default() += 1;
    }
    for bad in &corpus.0 {
        let entry = tally.entry(bad.class).or_default();
        let turn = entry.tokens;
        entry.tokens += 1;
        let every_route = full || class_sizes[bad.class] < protected.len();
        let routes: Vec<&RouteSpec> = if every_route {
            protected.clone()
        } else {
            vec![protected[turn % protected.len()]]
        };
        for spec in routes {
            coverage.insert((bad.class, spec.method, spec.path));
            let reply = send_to(
                &service.router,
                route_request(spec, bad.authorization.as_deref()),
            )
            .await;
            entry.requests += 1;
            let fhir = spec.dialect == Dialect::Fhir;
            let shaped = if fhir {
                reply.content_type() == "application/fhir+json"
                    && reply.json["resourceType"] == "OperationOutcome"
            } else {
                reply.content_type() == "application/problem+json"
                    && reply.code() == "UNAUTHENTICATED"
            };
            let challenged = reply
                .headers
                .get(header::WWW_AUTHENTICATE)
                .is_some_and(|v| v == "Bearer");
            if reply.status == StatusCode::UNAUTHORIZED && shaped && challenged {
                entry.unauthorised += 1;
            } else {
                failures.push(format!(
                    "{} {} [{}: {}]: {} {}",
                    spec.method,
                    spec.path,
                    bad.class,
                    describe(bad.authorization.as_deref()),
                    reply.status,
                    reply.text
                ));
            }
            // Every refusal in a dialect is the same: the reason is never told.
            refusals
                .entry(if fhir { "fhir" } else { "json" })
                .or_default()
                .insert(comparable(&reply).2.to_string());
            if spec.action.is_some() {
                audited_requests += 1;
                request_ids.insert(reply.request_id());
            }
        }
    }

    let total: Tally = tally.values().fold(Tally::default(), |sum, t| Tally {
        tokens: sum.tokens + t.tokens,
        requests: sum.requests + t.requests,
        unauthorised: sum.unauthorised + t.unauthorised,
    });
    println!(
        "bad credentials: {} protected routes, {} mode",
        protected.len(),
        if full {
            "full (every token to every route)"
        } else {
            "short (tokens take turns over the routes)"
        }
    );
    println!(
        "{:<44} {:>7} {:>9} {:>7}",
        "class", "tokens", "requests", "401s"
    );
    for (class, t) in &tally {
        println!(
            "{class:<44} {:>7} {:>9} {:>7}",
            t.tokens, t.requests, t.unauthorised
        );
    }
    println!(
        "{:<44} {:>7} {:>9} {:>7}",
        "total", total.tokens, total.requests, total.unauthorised
    );
    let handler_calls = service.store.calls();
    println!(
        "store calls other than audit appends: {handler_calls}; ASNs queued: {}",
        service.queue.sent().len()
    );

    assert!(
        failures.is_empty(),
        "{} not refused with 401:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    assert_eq!(total.unauthorised, total.requests);
    assert_eq!(
        coverage.len(),
        tally.len() * protected.len(),
        "every class reached every protected route"
    );
    for (dialect, bodies) in &refusals {
        assert_eq!(bodies.len(), 1, "{dialect} refusals differ: {bodies:?}");
    }

    // No handler ran: nothing but the audit trail was touched, nothing queued.
    assert_eq!(handler_calls, 0, "a handler read or wrote the store");
    assert!(service.queue.sent().is_empty());
    // One anonymous denial per audited request, under its request id.
    let audit = service
        .store
        .inner
        .audit_events(usize::MAX)
        .await
        .expect("audit");
    assert_eq!(audit.len(), audited_requests);
    for event in &audit {
        assert_eq!(event.outcome, AuditOutcome::Denied);
        assert_eq!(event.actor_id, "anonymous");
        assert_eq!(event.role, "none");
        assert_eq!(event.subject, None);
    }
    let audited_ids: BTreeSet<String> = audit.iter().map(|e| e.trace_id.clone()).collect();
    assert_eq!(audited_ids, request_ids);
    println!(
        "audit: {} events, all anonymous denials, {} distinct trace ids",
        audit.len(),
        audited_ids.len()
    );

    // The control: tokens made by the same code, with nothing wrong, are
    // accepted and do reach the handlers (so the counter above can count).
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for caller in callers() {
        let token = ed_signed(&real, &ed_header(), &valid_claims(&caller, now));
        let admitted = protected
            .iter()
            .find(|spec| {
                spec.action.is_some() && spec.caller.admits(&caller.principal().expect("valid"))
            })
            .expect("a route for every caller");
        let mut authorization = b"Bearer ".to_vec();
        authorization.extend_from_slice(token.as_bytes());
        let reply = send_to(
            &service.router,
            route_request(admitted, Some(&authorization)),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{} {}: {}",
            admitted.method,
            admitted.path,
            reply.text
        );
    }
    assert!(service.store.calls() > 0, "the control reached no store");
}
