//! docs/claims.json, the claims contract written once, against the one
//! mapping from claims to a principal (`CallerClaims::principal`) and the
//! sample events under `events/apigw`. infra/test/issuer.test.ts checks the
//! Cognito issuer's client claims against the same file.

use std::collections::BTreeSet;
use std::path::Path;

use cpis_http::auth::CallerClaims;
use serde_json::{Map, Value};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}

fn contract() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/claims.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn claims_from(object: &Map<String, Value>) -> Result<CallerClaims, serde_json::Error> {
    serde_json::from_value(Value::Object(object.clone()))
}

/// Claims every JWT carries and cpis does not read (registered claims, and
/// what Cognito access tokens add).
const REGISTERED: [&str; 11] = [
    "iss",
    "aud",
    "iat",
    "exp",
    "nbf",
    "jti",
    "client_id",
    "token_use",
    "scope",
    "auth_time",
    "version",
];

#[test]
fn the_contract_names_exactly_the_claims_the_mapping_reads() {
    let contract = contract();
    let named: BTreeSet<String> = contract["claims"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    // A full set of claims, serialised by the type the mapping reads.
    let full = CallerClaims {
        sub: "s".into(),
        role: "clinician".into(),
        ods_code: "RJ1".into(),
        rbac: Some("B0107".into()),
        org_name: Some("o".into()),
        setting: Some("s".into()),
        job_role: Some("R0110".into()),
        job_role_name: Some("n".into()),
    };
    let read: BTreeSet<String> = serde_json::to_value(&full)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(named, read);
    assert_eq!(
        strings(&contract["claims"]["role"]["values"]),
        strings(&contract["roles"])
    );
}

#[test]
fn each_role_example_maps_and_each_required_claim_is_required() {
    let contract = contract();
    for role in strings(&contract["roles"]) {
        let example = contract["examples"][&role].as_object().unwrap().clone();
        assert_eq!(example["role"], role.as_str());
        let principal = claims_from(&example).unwrap().principal();
        assert!(principal.is_ok(), "{role}: {principal:?}");
        for (claim, spec) in contract["claims"].as_object().unwrap() {
            let required = strings(&spec["required_for"]).contains(&role);
            let optional = spec
                .get("optional_for")
                .is_some_and(|o| strings(o).contains(&role));
            let mut without = example.clone();
            let had = without.remove(claim).is_some();
            assert!(
                had == required || (had && optional),
                "{role}'s example carries its claims and no other"
            );
            let refused = claims_from(&without).map_or(true, |c| c.principal().is_err());
            if required {
                assert!(refused, "{role} without {claim} must be refused");
            }
            // A claim given together with another: one without the other
            // is refused, neither is accepted.
            if let (true, Some(partner)) = (had, spec["together_with"].as_str()) {
                assert!(refused, "{role}: {claim} without {partner} must be refused");
                without.remove(partner);
                let mapped = claims_from(&without).unwrap().principal();
                assert!(mapped.is_ok(), "{role} without {claim} and {partner}");
            }
        }
    }
}

#[test]
fn values_outside_the_contract_are_refused() {
    let contract = contract();
    let clinician = contract["examples"]["clinician"]
        .as_object()
        .unwrap()
        .clone();
    for rbac in strings(&contract["claims"]["rbac"]["values"]) {
        let mut claims = clinician.clone();
        claims.insert("rbac".into(), rbac.clone().into());
        assert!(claims_from(&claims).unwrap().principal().is_ok(), "{rbac}");
    }
    let pattern = contract["claims"]["ods_code"]["pattern"].as_str().unwrap();
    assert_eq!(
        pattern, "^[A-Z0-9]{3,10}$",
        "the rule OdsCode::parse applies"
    );
    assert_eq!(
        contract["claims"]["job_role"]["pattern"], "^R[0-9]{4}$",
        "the rule JobRole::parse applies"
    );
    for (claim, value) in [
        ("role", "admin"),
        ("rbac", "B0264"),
        ("ods_code", "rj1"),
        ("ods_code", "AB"),
        ("ods_code", "ABCDEFGHIJK"),
        ("job_role", "R011"),
        ("job_role", "R01100"),
        ("job_role", "X0110"),
        ("job_role", "r0110"),
        ("job_role_name", " "),
    ] {
        let mut claims = clinician.clone();
        claims.insert(claim.into(), value.into());
        assert!(
            claims_from(&claims).unwrap().principal().is_err(),
            "{claim} = {value} must be refused"
        );
    }
    for (claim, spec) in contract["claims"].as_object().unwrap() {
        let Some(max) = spec["max_length"].as_u64() else {
            continue;
        };
        let mut claims = clinician.clone();
        claims.insert(claim.clone(), "x".repeat(max as usize).into());
        assert!(
            claims_from(&claims).unwrap().principal().is_ok(),
            "{claim} at its maximum"
        );
        claims.insert(claim.clone(), "x".repeat(max as usize + 1).into());
        assert!(
            claims_from(&claims).unwrap().principal().is_err(),
            "{claim} over its maximum"
        );
    }
}

#[test]
fn every_sample_event_has_the_one_issuer_and_only_contract_claims() {
    let contract = contract();
    let issuer = contract["issuer"]["sample"].as_str().unwrap();
    let known: BTreeSet<String> = contract["claims"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .chain(REGISTERED.iter().map(|c| c.to_string()))
        .collect();
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("events/apigw")).unwrap() {
        let path = entry.unwrap().path();
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(claims) = event["requestContext"]["authorizer"]["jwt"]["claims"].as_object()
        else {
            continue; // GET /health: no authorizer
        };
        seen += 1;
        let name = path.display();
        assert_eq!(claims["iss"], issuer, "{name}");
        for claim in claims.keys() {
            assert!(
                known.contains(claim),
                "{name}: {claim} is not in the contract"
            );
        }
        let mapped = claims_from(claims).unwrap().principal();
        assert!(mapped.is_ok(), "{name}: {mapped:?}");
    }
    assert!(seen >= 19, "the events were found ({seen})");
}
