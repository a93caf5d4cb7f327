//! What the benchmarks share: synthetic children and plans, upload bodies,
//! API Gateway events, and stores seeded through the real upload path.
//! Every NHS number made here is synthetic (the 999 range, valid Modulus 11).

use std::sync::Arc;

use cpis_domain::ports::{AuthorityDirectory, PlanStore, StoreError, UploadLedger};
use cpis_domain::{Authority, Clinician, ManualClock, OdsCode, Pseudonymiser, VisibilityPolicy};
use cpis_http::{AppState, Authenticator, CallerClaims};
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

pub mod hl7v3;
pub mod loadgen;
pub mod upload;

/// The most records one upload request carries (the domain's limit).
pub const RECORDS_PER_UPLOAD: usize = cpis_domain::upload::MAX_RECORDS;

/// The benchmarks' "now": plans below start in 2025 and are visible then.
pub fn bench_now() -> OffsetDateTime {
    datetime!(2026-03-02 10:00 UTC)
}

/// Synthetic NHS numbers in order: `999` then six digits then the check
/// digit, skipping the prefixes whose check digit would be 10. About 909,000
/// exist; `skip` starts further along, so two sets can be kept apart.
pub fn synthetic_nhs_numbers(skip: usize) -> impl Iterator<Item = String> {
    (0u32..1_000_000)
        .filter_map(|n| {
            let mut digits = [9u8, 9, 9, 0, 0, 0, 0, 0, 0];
            let mut rest = n;
            for slot in digits[3..].iter_mut().rev() {
                // n < 10^6, so every digit fits.
                *slot = (rest % 10) as u8;
                rest /= 10;
            }
            let check = cpis_domain::nhs_number::check_digit(&digits)?;
            let mut text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            text.push(char::from(b'0' + check));
            Some(text)
        })
        .skip(skip)
}

/// A council's ODS code for index `i` (`E09000001`, ...).
pub fn council_code(i: usize) -> String {
    format!("E09{:06}", i + 1)
}

/// One upload record, as a council's case-management system sends it. The
/// plan type and start date vary with `i` so batches are not uniform.
pub fn record(nhs_number: &str, i: usize) -> Value {
    let plan_type = ["CPP", "LAC", "CPP", "CPP"][i % 4];
    json!({
        "nhs_number": nhs_number,
        "plan_type": plan_type,
        "start_date": format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
        "local_id": format!("CASE-{i}"),
    })
}

/// A delta upload body holding `records`.
pub fn upload_body(sequence: u64, records: &[Value]) -> Vec<u8> {
    json!({ "sequence": sequence, "mode": "delta", "records": records })
        .to_string()
        .into_bytes()
}

/// The upload bodies for `total` children from `nhs_numbers`, split into
/// requests of at most [`RECORDS_PER_UPLOAD`], with sequences from 1.
pub fn upload_bodies(nhs_numbers: &[String]) -> Vec<Vec<u8>> {
    nhs_numbers
        .chunks(RECORDS_PER_UPLOAD)
        .enumerate()
        .map(|(batch, chunk)| {
            let records: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, nhs)| record(nhs, batch * RECORDS_PER_UPLOAD + i))
                .collect();
            upload_body(batch as u64 + 1, &records)
        })
        .collect()
}

/// A council's directory entry with one email and one SMS channel.
pub fn authority(ods: &str) -> Result<Authority, StoreError> {
    Ok(Authority {
        ods_code: OdsCode::parse(ods).map_err(|_| StoreError::Corrupt("ODS code".into()))?,
        name: format!("Council {ods}"),
        office_hours_phone: "020 7946 0000".into(),
        emergency_duty_phone: "020 7946 0999".into(),
        notify_emails: vec!["duty@example.gov.uk".into()],
        notify_sms: vec!["+447700900123".into()],
    })
}

/// Loads `children` plans into `store` through the domain's upload path,
/// spread over councils of at most [`RECORDS_PER_UPLOAD`] each, and lists
/// each council in the directory. Returns the councils used.
pub async fn seed_plans<S>(store: &S, children: &[String]) -> Result<Vec<String>, StoreError>
where
    S: PlanStore + UploadLedger + AuthorityDirectory,
{
    let policy = VisibilityPolicy::default();
    let mut councils = Vec::new();
    for (i, body) in upload_bodies(children).iter().enumerate() {
        let ods = council_code(i);
        let code = OdsCode::parse(&ods).map_err(|_| StoreError::Corrupt("ODS code".into()))?;
        let result = cpis_domain::process_upload(store, &code, body, bench_now(), &policy)
            .await
            .map_err(|e| StoreError::Unavailable(format!("seeding upload failed: {e}")))?;
        if result.acknowledgement.rejected != 0 {
            return Err(StoreError::Unavailable(
                "seeding upload rejected records".into(),
            ));
        }
        store.put_authority(&authority(&ods)?).await?;
        councils.push(ods);
    }
    Ok(councils)
}

/// A clinician's claims as the API Gateway authorizer passes them.
pub fn clinician_claims(user: &str, ods: &str) -> CallerClaims {
    CallerClaims {
        job_role: None,
        job_role_name: None,
        sub: user.into(),
        role: "clinician".into(),
        ods_code: ods.into(),
        rbac: Some("B0107".into()),
        org_name: Some(format!("Trust {ods}")),
        setting: Some("emergency-department".into()),
    }
}

/// The principal those claims map to.
pub fn clinician(user: &str, ods: &str) -> Clinician {
    match clinician_claims(user, ods).principal() {
        Ok(cpis_domain::Principal::Clinician(c)) => c,
        _ => unreachable!("the bench's clinician claims are valid"),
    }
}

/// An API Gateway HTTP API (payload v2) event for `POST path` with a JSON
/// body and the authorizer's verified claims, as Lambda delivers it.
pub fn gateway_event(path: &str, body: &Value, claims: &CallerClaims) -> String {
    let mut jwt_claims = serde_json::Map::new();
    for (name, value) in [
        ("sub", Some(&claims.sub)),
        ("role", Some(&claims.role)),
        ("ods_code", Some(&claims.ods_code)),
        ("rbac", claims.rbac.as_ref()),
        ("org_name", claims.org_name.as_ref()),
        ("setting", claims.setting.as_ref()),
    ] {
        if let Some(value) = value {
            jwt_claims.insert(name.into(), Value::String(value.clone()));
        }
    }
    jwt_claims.insert("iss".into(), "https://auth.example.nhs.uk".into());
    jwt_claims.insert("aud".into(), "cpis".into());
    jwt_claims.insert("exp".into(), "1772449200".into());
    json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl",
            "content-length": body.to_string().len().to_string(),
            "content-type": "application/json",
            "host": "api.cpis.example",
            "user-agent": "ed-system/4.2",
            "x-amzn-trace-id": "Root=1-65f2a3b4-0123456789abcdef01234567",
            "x-forwarded-for": "198.51.100.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "authorizer": { "jwt": { "claims": jwt_claims, "scopes": null } },
            "domainName": "api.cpis.example",
            "domainPrefix": "api",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "ed-system/4.2"
            },
            "requestId": "Jx2abCdEfGhIjKl=",
            "routeKey": format!("POST {path}"),
            "stage": "$default",
            "time": "02/Mar/2026:10:00:00 +0000",
            "timeEpoch": 1772445600000u64
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    })
    .to_string()
}

/// A router state on a fixed clock, trusting API Gateway's claims.
pub fn gateway_state<S, Q>(store: S, queue: Q) -> AppState<S, Q> {
    AppState {
        store,
        queue,
        clock: Arc::new(ManualClock::new(bench_now())),
        policy: VisibilityPolicy::default(),
        pseudonymiser: Pseudonymiser::new(&[7u8; 32])
            .unwrap_or_else(|_| unreachable!("a 32-byte key is valid")),
        auth: Authenticator::Gateway,
        volume: Default::default(),
    }
}

/// Whether this process runs as a real benchmark (`cargo bench` passes
/// `--bench`) rather than as `cargo test --all-targets` smoke run, which
/// must stay cheap: sizes shrink there, the assertions stay.
pub fn full_size() -> bool {
    std::env::args().any(|a| a == "--bench")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_numbers_are_valid_distinct_and_in_the_999_range() {
        let numbers: Vec<String> = synthetic_nhs_numbers(0).take(2_000).collect();
        let distinct: std::collections::HashSet<&String> = numbers.iter().collect();
        assert_eq!(distinct.len(), numbers.len());
        for n in &numbers {
            assert!(n.starts_with("999"));
            assert!(cpis_domain::NhsNumber::parse(n).is_ok(), "{n}");
        }
        assert_eq!(numbers[0], "9990000018");
        assert_eq!(synthetic_nhs_numbers(1).next(), Some("9990000026".into()));
    }

    #[test]
    fn the_gateway_event_parses_as_an_http_api_request_with_claims() {
        let event = gateway_event(
            "/v1/checks",
            &json!({"nhs_number": "9990000018", "unscheduled": true}),
            &clinician_claims("dr-1", "RJ1"),
        );
        let parsed: lambda_http::request::LambdaRequest = serde_json::from_str(&event).unwrap();
        let request = lambda_http::Request::from(parsed).map(axum::body::Body::new);
        assert_eq!(request.uri().path(), "/v1/checks");
        assert_eq!(
            cpis_http::lambda::gateway_claims(&request),
            Some(clinician_claims("dr-1", "RJ1"))
        );
    }
}
