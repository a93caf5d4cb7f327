//! Keeps `crates/http/openapi.json` in step with the router: the same
//! (method, path) set as `routes::ROUTES`, bearer security exactly on the
//! protected routes, and real responses from the router valid against the
//! documented schemas (status, content type, body), with the requests that
//! produced them valid against the documented request bodies.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::*;
use cpis_http::routes::{Caller, ROUTES};
use serde_json::{json, Value};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let text = std::fs::read_to_string(path).expect("crates/http/openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// Every (METHOD, path) the description documents.
fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("path item") {
            if METHODS.contains(&key.as_str()) {
                out.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &spec["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

/// A JSON pointer token (RFC 6901).
fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Follows a `$ref` inside the document (`#/...`), once.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => spec
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {reference}")),
        None => value,
    }
}

/// A validator for the schema at `pointer`, with the whole document as the
/// resource so that `#/components/...` references resolve.
fn validator(spec: &Value, pointer: &str) -> jsonschema::Validator {
    let mut root = spec.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    // A JSON pointer in a URI fragment: braces (path templates) are percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = json!(format!("#{fragment}"));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema at {pointer}: {e}"))
}

fn assert_valid(spec: &Value, pointer: &str, instance: &Value, what: &str) {
    let validator = validator(spec, pointer);
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match {pointer}: {errors:#?}\n{instance:#}"
    );
}

/// Asserts that a reply is documented for its route: its status, its media
/// type, its required headers and its body.
fn assert_documented(spec: &Value, method: &str, path: &str, reply: &Reply) {
    let status = reply.status.as_u16().to_string();
    let op = operation(spec, method, path);
    let response = op["responses"].get(&status).unwrap_or_else(|| {
        panic!(
            "{method} {path}: status {status} is not documented (body {})",
            reply.text
        )
    });
    let response_pointer = match response["$ref"].as_str() {
        Some(reference) => reference.trim_start_matches('#').to_owned(),
        None => format!(
            "/paths/{}/{}/responses/{status}",
            token(path),
            method.to_lowercase()
        ),
    };
    let response = resolve(spec, response);
    for (name, header_spec) in response["headers"].as_object().into_iter().flatten() {
        if resolve(spec, header_spec)["required"] == true {
            assert!(
                reply.headers.contains_key(name.as_str()),
                "{method} {path} {status}: header {name} is required"
            );
        }
    }
    let media_type = reply.content_type().split(';').next().unwrap_or("").trim();
    assert!(
        response["content"].get(media_type).is_some(),
        "{method} {path} {status}: {media_type} is not documented"
    );
    assert_valid(
        spec,
        &format!("{response_pointer}/content/{}/schema", token(media_type)),
        &reply.json,
        &format!("{method} {path} {status}"),
    );
}

fn request_pointer(method: &str, path: &str) -> String {
    format!(
        "/paths/{}/{}/requestBody/content/application~1json/schema",
        token(path),
        method.to_lowercase()
    )
}

fn request_is_valid(spec: &Value, method: &str, path: &str, body: &Value) -> bool {
    validator(spec, &request_pointer(method, path)).is_valid(body)
}

#[test]
fn the_description_has_exactly_the_routes_of_the_router() {
    let spec = spec();
    assert_eq!(spec["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented(&spec), routes);
}

#[test]
fn bearer_security_is_on_every_protected_route_and_not_on_health() {
    let spec = spec();
    let scheme = &spec["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    for route in ROUTES {
        let op = operation(&spec, route.method, route.path);
        let security = op.get("security").unwrap_or(&spec["security"]);
        let schemes: Vec<&str> = security
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|requirement| requirement.as_object().into_iter().flatten())
            .map(|(name, _)| name.as_str())
            .collect();
        let responses = &op["responses"];
        if route.caller == Caller::Anyone {
            assert!(
                schemes.is_empty(),
                "{} {} is public",
                route.method,
                route.path
            );
            assert!(responses.get("401").is_none());
        } else {
            assert_eq!(schemes, ["bearerAuth"], "{} {}", route.method, route.path);
            assert!(
                responses.get("401").is_some(),
                "{} {}: 401",
                route.method,
                route.path
            );
        }
        // A 403 is documented exactly where a role can be refused.
        let refusable = matches!(route.caller, Caller::Council | Caller::CareSetting);
        assert_eq!(
            responses.get("403").is_some(),
            refusable,
            "{} {}: 403",
            route.method,
            route.path
        );
        for (status, response) in responses.as_object().expect("responses") {
            assert!(
                resolve(&spec, response)["content"].is_object(),
                "{} {} {status}: no content",
                route.method,
                route.path
            );
        }
    }
}

#[test]
fn every_response_documents_the_request_id_header() {
    let spec = spec();
    for route in ROUTES {
        let op = operation(&spec, route.method, route.path);
        for (status, response) in op["responses"].as_object().expect("responses") {
            let header = &resolve(&spec, response)["headers"]["x-request-id"];
            assert_eq!(
                resolve(&spec, header)["required"],
                true,
                "{} {} {status}",
                route.method,
                route.path
            );
        }
    }
}

/// Every operation by its operationId.
fn operations_by_id(spec: &Value) -> Vec<(&str, &Value)> {
    ROUTES
        .iter()
        .map(|r| operation(spec, r.method, r.path))
        .map(|op| (op["operationId"].as_str().expect("operationId"), op))
        .collect()
}

/// Evaluates a link parameter such as `$response.body#/notifications/0/id`.
fn link_value<'a>(expression: &str, body: &'a Value) -> Option<&'a Value> {
    body.pointer(expression.strip_prefix("$response.body#")?)
}

#[test]
fn links_name_real_operations_and_their_parameters() {
    let spec = spec();
    let operations = operations_by_id(&spec);
    let mut ids: Vec<&str> = operations.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), ROUTES.len(), "operationIds are unique");
    let mut links = 0;
    for (_, op) in &operations {
        for response in op["responses"].as_object().unwrap().values() {
            for (name, link) in resolve(&spec, response)["links"]
                .as_object()
                .into_iter()
                .flatten()
            {
                links += 1;
                let target = operations
                    .iter()
                    .find(|(id, _)| Some(*id) == link["operationId"].as_str())
                    .unwrap_or_else(|| panic!("link {name}: unknown operation"))
                    .1;
                for (parameter, expression) in link["parameters"].as_object().unwrap() {
                    assert!(
                        target["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["name"] == parameter.as_str()),
                        "link {name}: no parameter {parameter}"
                    );
                    // From the response body, or a query parameter of this request.
                    let expression = expression.as_str().unwrap();
                    let from_query = expression.strip_prefix("$request.query.").is_some_and(|q| {
                        op["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["name"] == q)
                    });
                    assert!(
                        expression.starts_with("$response.body#/") || from_query,
                        "link {name}: {expression}"
                    );
                }
            }
        }
    }
    assert!(links > 0);
}

#[test]
fn every_schema_reference_resolves_and_every_schema_compiles() {
    let spec = spec();
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(&spec, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        assert!(
            spec.pointer(reference.trim_start_matches('#')).is_some(),
            "dangling {reference}"
        );
    }
    for name in spec["components"]["schemas"].as_object().unwrap().keys() {
        validator(&spec, &format!("/components/schemas/{name}"));
    }
}

#[test]
fn request_schemas_accept_what_the_server_accepts_and_refuse_what_it_refuses() {
    let spec = spec();
    let upload = |body: Value| request_is_valid(&spec, "POST", "/v1/uploads", &body);
    assert!(upload(json!({
        "sequence": 1, "mode": "delta",
        "records": [{ "nhs_number": "9990000018", "plan_type": "CPP",
                      "start_date": "2025-09-01", "local_id": "CASE-42" }]
    })));
    assert!(upload(json!({
        "sequence": 2, "mode": "delta",
        "withdrawals": [{ "nhs_number": CHILD_1, "plan_type": "CPP", "start_date": "2025-09-01" }]
    })));
    assert!(upload(
        json!({ "sequence": 3, "mode": "full", "records": [plan(CHILD_1, "LAC", "2025-01-01")] })
    ));
    // A record the server rejects on its own line is still a valid batch.
    assert!(upload(
        json!({ "sequence": 4, "mode": "delta", "records": [{ "nhs_number": "9990000010" }, 7] })
    ));
    // What the server refuses as a whole (CPF01) the description refuses too.
    for refused in [
        json!({ "mode": "delta", "records": [plan(CHILD_1, "CPP", "2025-01-01")] }),
        json!({ "sequence": 0, "mode": "delta", "records": [plan(CHILD_1, "CPP", "2025-01-01")] }),
        json!({ "sequence": 1, "mode": "sometimes", "records": [plan(CHILD_1, "CPP", "2025-01-01")] }),
        json!({ "sequence": 1, "mode": "full", "records": [] }),
        json!({ "sequence": 1, "mode": "full" }),
        json!({ "sequence": 1, "mode": "full", "records": [plan(CHILD_1, "CPP", "2025-01-01")], "withdrawals": [] }),
        json!({ "sequence": 1, "mode": "delta", "records": [] }),
        json!({ "sequence": 1, "mode": "delta", "records": {} }),
        json!({ "sequence": 1, "mode": "delta", "records": [plan(CHILD_1, "CPP", "2025-01-01")], "ods_code": COUNCIL_A }),
        json!([1, 2]),
    ] {
        assert!(!upload(refused.clone()), "{refused}");
    }

    let check = |body: Value| request_is_valid(&spec, "POST", "/v1/checks", &body);
    assert!(check(json!({ "nhs_number": CHILD_1, "unscheduled": true })));
    assert!(check(
        json!({ "nhs_number": "999 000 0018", "unscheduled": false })
    ));
    for refused in [
        json!({ "nhs_number": CHILD_1 }),
        json!({ "unscheduled": true }),
        json!({ "nhs_number": CHILD_1, "unscheduled": true, "name": "x" }),
        json!({ "nhs_number": "99900000181", "unscheduled": true }),
        json!({ "nhs_number": 9990000018u64, "unscheduled": true }),
        json!({ "nhs_number": CHILD_1, "unscheduled": "true" }),
        json!([CHILD_1, true]),
    ] {
        assert!(!check(refused.clone()), "{refused}");
    }
    let history = |body: Value| request_is_valid(&spec, "POST", "/v1/history", &body);
    assert!(history(json!({ "nhs_number": CHILD_1 })));
    assert!(!history(json!({ "nhs_number": CHILD_1, "extra": 1 })));
    assert!(!history(json!({})));

    let authority = |body: Value| request_is_valid(&spec, "PUT", "/v1/authority", &body);
    assert!(authority(authority_body(COUNCIL_A)));
    assert!(authority(json!({
        "name": " Example ", "office_hours_phone": "+44 20 7946 0000",
        "emergency_duty_phone": "02079460999"
    })));
    let mut bad_sms = authority_body(COUNCIL_A);
    bad_sms["notify_sms"] = json!(["07700900123"]);
    let mut bad_email = authority_body(COUNCIL_A);
    bad_email["notify_emails"] = json!(["duty@example."]);
    let mut bad_phone = authority_body(COUNCIL_A);
    bad_phone["office_hours_phone"] = json!("call us");
    let mut too_many = authority_body(COUNCIL_A);
    too_many["notify_sms"] = json!(vec!["+447700900123"; 11]);
    let mut blank_name = authority_body(COUNCIL_A);
    blank_name["name"] = json!("   ");
    let mut unknown = authority_body(COUNCIL_A);
    unknown["nhs_number"] = json!(CHILD_1);
    for refused in [bad_sms, bad_email, bad_phone, too_many, blank_name, unknown] {
        assert!(!authority(refused.clone()), "{refused}");
    }
}

#[test]
fn fhir_parameters_describe_what_the_server_accepts() {
    let spec = spec();
    let params = spec["paths"]["/FHIR/R4/CareTeam"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let pointer = |name: &str| {
        let index = params.iter().position(|p| p["name"] == name).unwrap();
        format!("/paths/~1FHIR~1R4~1CareTeam/get/parameters/{index}/schema")
    };
    let patient = validator(&spec, &pointer("patient:identifier"));
    assert!(patient.is_valid(&json!(format!("{NHS_SYSTEM}|{CHILD_1}"))));
    assert!(patient.is_valid(&json!(format!("{NHS_SYSTEM}|999 000 0018"))));
    assert!(!patient.is_valid(&json!(CHILD_1)));
    assert!(!patient.is_valid(&json!(format!("https://example.org|{CHILD_1}"))));
    let header = validator(&spec, &pointer("IsUnscheduledAccessEvent"));
    for ok in ["true", "false", "TRUE", "False"] {
        assert!(header.is_valid(&json!(ok)), "{ok}");
    }
    for refused in ["", "yes", "1", "true,false"] {
        assert!(!header.is_valid(&json!(refused)), "{refused}");
    }
    let required: Vec<&str> = params
        .iter()
        .filter(|p| p["required"] == true)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(required, ["patient:identifier", "IsUnscheduledAccessEvent"]);
}

/// Drives every route through the router and checks each reply against the
/// description: successes and every error the test can provoke.
#[tokio::test]
async fn real_responses_match_the_documented_schemas() {
    let spec = spec();
    let app = TestApp::new();
    let a = council(COUNCIL_A);
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    let mut seen: BTreeSet<(String, String, u16)> = BTreeSet::new();
    let mut check = |method: &str, path: &str, reply: &Reply| {
        assert_documented(&spec, method, path, reply);
        seen.insert((method.to_owned(), path.to_owned(), reply.status.as_u16()));
    };

    check(
        "GET",
        "/health",
        &app.call(Method::GET, "/health", None, None).await,
    );

    // Council: directory entry (404 before it exists), uploads, plans.
    check(
        "GET",
        "/v1/authority",
        &app.call(Method::GET, "/v1/authority", Some(&a), None).await,
    );
    let mut bad_entry = authority_body(COUNCIL_A);
    bad_entry["notify_sms"] = json!(["07700900123"]);
    let reply = app
        .call(Method::PUT, "/v1/authority", Some(&a), Some(bad_entry))
        .await;
    assert_eq!(reply.code(), "INVALID_DIRECTORY_ENTRY");
    check("PUT", "/v1/authority", &reply);
    let body = authority_body(COUNCIL_A);
    assert!(request_is_valid(&spec, "PUT", "/v1/authority", &body));
    check(
        "PUT",
        "/v1/authority",
        &app.call(Method::PUT, "/v1/authority", Some(&a), Some(body))
            .await,
    );
    check(
        "GET",
        "/v1/authority",
        &app.call(Method::GET, "/v1/authority", Some(&a), None).await,
    );

    let batch = json!({ "sequence": 1, "mode": "delta", "records": [
        plan(CHILD_1, "CPP", "2025-06-01"),
        { "nhs_number": CHILD_1, "plan_type": "UCPP", "start_date": "2025-06-01", "due_date": "2026-05-01" },
        { "nhs_number": "9990000010", "plan_type": "LAC", "start_date": "2025-06-01" },
    ]});
    assert!(request_is_valid(&spec, "POST", "/v1/uploads", &batch));
    let first = app
        .call(Method::POST, "/v1/uploads", Some(&a), Some(batch.clone()))
        .await;
    assert_eq!(first.json["file_outcome"], "CPF03");
    check("POST", "/v1/uploads", &first);
    let replay = app
        .call(Method::POST, "/v1/uploads", Some(&a), Some(batch))
        .await;
    assert!(replay.headers.contains_key("x-cpis-replayed"));
    check("POST", "/v1/uploads", &replay);
    let conflict =
        json!({ "sequence": 1, "mode": "delta", "records": [plan(CHILD_2, "CPP", "2025-06-01")] });
    check(
        "POST",
        "/v1/uploads",
        &app.call(Method::POST, "/v1/uploads", Some(&a), Some(conflict))
            .await,
    );
    // A full snapshot that withdraws CHILD_2's plan from an earlier delta.
    let delta =
        json!({ "sequence": 2, "mode": "delta", "records": [plan(CHILD_2, "LAC", "2025-06-01")] });
    check(
        "POST",
        "/v1/uploads",
        &app.call(Method::POST, "/v1/uploads", Some(&a), Some(delta))
            .await,
    );
    let full = json!({ "sequence": 3, "mode": "full", "records": [
        plan(CHILD_1, "CPP", "2025-06-01"),
        { "nhs_number": CHILD_1, "plan_type": "UCPP", "start_date": "2025-06-01", "due_date": "2026-05-01" },
    ]});
    let reply = app
        .call(Method::POST, "/v1/uploads", Some(&a), Some(full))
        .await;
    assert_eq!(reply.json["withdrawn"], 1, "{}", reply.text);
    check("POST", "/v1/uploads", &reply);
    let malformed = json!({ "sequence": 4, "mode": "full", "records": [] });
    assert!(!request_is_valid(&spec, "POST", "/v1/uploads", &malformed));
    check(
        "POST",
        "/v1/uploads",
        &app.call(Method::POST, "/v1/uploads", Some(&a), Some(malformed))
            .await,
    );
    let token = app.token(&a);
    check(
        "POST",
        "/v1/uploads",
        &app.send(raw_request(
            Method::POST,
            "/v1/uploads",
            Some(&token),
            Some("text/plain"),
            "{}",
        ))
        .await,
    );
    let records: Vec<Value> = (0..10_001)
        .map(|_| plan(CHILD_1, "CPP", "2025-06-01"))
        .collect();
    let reply = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&a),
            Some(json!({ "sequence": 9, "mode": "delta", "records": records })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    check("POST", "/v1/uploads", &reply);

    // The rewind: a success, each refusal, and a request the spec refuses too.
    for (body, status) in [
        (json!({ "sequence": 99 }), StatusCode::CONFLICT),
        (
            json!({ "sequence": 9_007_199_254_740_992u64 }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "sequence": 1 }), StatusCode::OK),
    ] {
        let reply = app
            .call(Method::POST, "/v1/uploads/rewind", Some(&a), Some(body))
            .await;
        assert_eq!(reply.status, status, "{}", reply.text);
        check("POST", "/v1/uploads/rewind", &reply);
    }
    assert!(!request_is_valid(
        &spec,
        "POST",
        "/v1/uploads/rewind",
        &json!({ "sequence": -1 })
    ));
    check(
        "POST",
        "/v1/uploads/rewind",
        &app.call(
            Method::POST,
            "/v1/uploads/rewind",
            Some(&doctor),
            Some(json!({ "sequence": 0 })),
        )
        .await,
    );

    let page = app
        .call(Method::GET, "/v1/plans?limit=1", Some(&a), None)
        .await;
    assert!(page.json["next_cursor"].is_string());
    check("GET", "/v1/plans", &page);
    check(
        "GET",
        "/v1/plans",
        &app.call(Method::GET, "/v1/plans?cursor=bm9wZQ", Some(&a), None)
            .await,
    );

    // Care settings: checks, history, FHIR.
    let reply = app.check(&doctor, CHILD_1, true).await;
    assert_eq!(reply.json["plans"].as_array().unwrap().len(), 2);
    assert_eq!(reply.json["plans"][1]["due_date"], "2026-05-01");
    check("POST", "/v1/checks", &reply);
    check(
        "POST",
        "/v1/checks",
        &app.check(&doctor, CHILD_UNKNOWN, false).await,
    );
    check(
        "POST",
        "/v1/checks",
        &app.check(&doctor, "9990000010", true).await,
    );
    check("POST", "/v1/checks", &app.check(&a, CHILD_1, true).await);
    check(
        "POST",
        "/v1/checks",
        &app.call(
            Method::POST,
            "/v1/checks",
            None,
            Some(json!({ "nhs_number": CHILD_1, "unscheduled": true })),
        )
        .await,
    );
    let doctor_token = app.token(&doctor);
    let big = format!(
        r#"{{"nhs_number":"{CHILD_1}","pad":"{}"}}"#,
        "x".repeat(17 * 1024)
    );
    check(
        "POST",
        "/v1/checks",
        &app.send(raw_request(
            Method::POST,
            "/v1/checks",
            Some(&doctor_token),
            Some("application/json"),
            big,
        ))
        .await,
    );
    check(
        "POST",
        "/v1/checks",
        &app.send(raw_request(
            Method::POST,
            "/v1/checks",
            Some(&doctor_token),
            None,
            "{}",
        ))
        .await,
    );

    let reply = app.history(&a, CHILD_1).await;
    assert_eq!(reply.json["access_history"].as_array().unwrap().len(), 1);
    check("POST", "/v1/history", &reply);
    check("POST", "/v1/history", &app.history(&doctor, CHILD_1).await);
    check("POST", "/v1/history", &app.history(&doctor, "12345").await);

    for (route, header) in [
        ("CareTeam", Some("true")),
        ("Flag", None),
        ("AuditEvent", None),
    ] {
        let path = format!("/FHIR/R4/{route}");
        let found = app
            .fhir(
                &format!("{path}{}", patient_query(NHS_SYSTEM, CHILD_1)),
                Some(&doctor),
                header,
            )
            .await;
        assert_eq!(
            found.json["total"],
            if route == "AuditEvent" { 1 } else { 2 },
            "{route}"
        );
        check("GET", &path, &found);
        let none = app
            .fhir(
                &format!("{path}{}", patient_query(NHS_SYSTEM, CHILD_UNKNOWN)),
                Some(&doctor),
                header,
            )
            .await;
        check("GET", &path, &none);
        let bad = app
            .fhir(
                &format!("{path}{}", patient_query(NHS_SYSTEM, "9990000010")),
                Some(&doctor),
                header,
            )
            .await;
        check("GET", &path, &bad);
        check("GET", &path, &app.fhir(&path, None, header).await);
        check(
            "GET",
            &path,
            &app.fhir(
                &format!("{path}{}", patient_query(NHS_SYSTEM, CHILD_1)),
                Some(&a),
                header,
            )
            .await,
        );
    }
    let missing_header = app
        .fhir(
            &format!("/FHIR/R4/CareTeam{}", patient_query(NHS_SYSTEM, CHILD_1)),
            Some(&doctor),
            None,
        )
        .await;
    check("GET", "/FHIR/R4/CareTeam", &missing_header);
    check(
        "GET",
        "/FHIR/R4/metadata",
        &app.fhir("/FHIR/R4/metadata", Some(&doctor), None).await,
    );
    check(
        "GET",
        "/FHIR/R4/metadata",
        &app.fhir("/FHIR/R4/metadata", Some(&a), None).await,
    );

    // The ASN inbox.
    let list = app
        .call(Method::GET, "/v1/notifications?limit=1", Some(&a), None)
        .await;
    check("GET", "/v1/notifications", &list);
    check(
        "GET",
        "/v1/notifications",
        &app.call(Method::GET, "/v1/notifications?since=1", Some(&a), None)
            .await,
    );
    // The documented link from the inbox to one ASN yields a real id.
    let link = &operation(&spec, "GET", "/v1/notifications")["responses"]["200"]["links"]
        ["ReadNotification"]["parameters"]["id"];
    let id = link_value(link.as_str().unwrap(), &list.json)
        .and_then(Value::as_str)
        .expect("the link resolves")
        .to_owned();
    let one = format!("/v1/notifications/{id}");
    check(
        "GET",
        "/v1/notifications/{id}",
        &app.call(Method::GET, &one, Some(&a), None).await,
    );
    check(
        "GET",
        "/v1/notifications/{id}",
        &app.call(Method::GET, &one, Some(&council(COUNCIL_B)), None)
            .await,
    );
    check(
        "GET",
        "/v1/notifications/{id}",
        &app.call(Method::GET, &one, Some(&doctor), None).await,
    );
    let ack = format!("{one}/ack");
    let reply = app.call(Method::POST, &ack, Some(&a), None).await;
    assert_eq!(reply.json["acknowledged"], true);
    check("POST", "/v1/notifications/{id}/ack", &reply);
    check(
        "POST",
        "/v1/notifications/{id}/ack",
        &app.call(Method::POST, &ack, Some(&council(COUNCIL_B)), None)
            .await,
    );

    // Every route was exercised, each with a success and at least one error.
    for route in ROUTES {
        let statuses: Vec<u16> = seen
            .iter()
            .filter(|(m, p, _)| m == route.method && p == route.path)
            .map(|(_, _, s)| *s)
            .collect();
        assert!(
            statuses.contains(&200),
            "{} {}: {statuses:?}",
            route.method,
            route.path
        );
        if route.caller != Caller::Anyone {
            assert!(
                statuses.iter().any(|s| *s >= 400),
                "{} {}",
                route.method,
                route.path
            );
        }
    }
}

#[tokio::test]
async fn an_undocumented_method_is_405_and_an_undocumented_path_404() {
    let app = TestApp::new();
    let request = Request::builder()
        .method(Method::DELETE)
        .uri("/v1/checks")
        .body(Body::empty())
        .unwrap();
    let reply = app.send(request).await;
    reply.assert_problem(405, "METHOD_NOT_ALLOWED");
    let reply = app
        .send(
            Request::builder()
                .uri("/v1/children")
                .header(header::ACCEPT, "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(documented(&spec()).iter().all(|(_, p)| p != "/v1/children"));
}
