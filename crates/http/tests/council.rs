//! Council routes through the whole router: uploads, plans, the directory
//! entry and the ASN inbox, with every validation failure and cross-tenant
//! denial.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use cpis_domain::{AuditAction, AuditOutcome};
use serde_json::{json, Value};

// ---------- uploads ----------

#[tokio::test]
async fn an_upload_returns_its_acknowledgement_and_a_repeat_returns_the_stored_one() {
    let app = TestApp::new();
    let batch = json!({
        "sequence": 7,
        "mode": "delta",
        "records": [
            plan(CHILD_1, "CPP", "2025-06-01"),
            { "nhs_number": "9990000010", "plan_type": "LAC", "start_date": "2025-06-01" },
        ]
    });
    let a = council(COUNCIL_A);
    let first = app
        .call(Method::POST, "/v1/uploads", Some(&a), Some(batch.clone()))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json["sequence"], 7);
    assert_eq!(first.json["file_outcome"], "CPF03");
    assert_eq!(first.json["loaded"], 1);
    assert_eq!(first.json["rejected"], 1);
    assert_eq!(first.json["withdrawn"], 0);
    assert_eq!(first.json["records"][0]["outcome"], "CPR06");
    assert_eq!(first.json["records"][1]["outcome"], "CPR07");
    assert_eq!(first.json["records"][1]["detail"], "INVALID_NHS_NUMBER");
    assert_eq!(
        first.json["records"][1]["location"],
        "/records/1/nhs_number"
    );
    // An invalid number is not echoed either.
    assert!(!first.text.contains("9990000010"));

    let again = app
        .call(Method::POST, "/v1/uploads", Some(&a), Some(batch))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json, first.json);
    assert_eq!(again.headers.get("x-cpis-replayed").unwrap(), "true");
    assert!(first.headers.get("x-cpis-replayed").is_none());

    let audit = app.audit().await;
    assert_eq!(audit.len(), 2);
    assert!(audit
        .iter()
        .all(|e| e.action == AuditAction::Upload && e.outcome == AuditOutcome::Allowed));
    assert_eq!(audit[0].trace_id, first.request_id());
}

#[tokio::test]
async fn a_reused_or_stale_sequence_is_a_409_problem() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 5, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let a = council(COUNCIL_A);
    let reused = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&a),
            Some(json!({ "sequence": 5, "mode": "delta", "records": [plan(CHILD_2, "CPP", "2025-06-01")] })),
        )
        .await;
    reused.assert_problem(409, "SEQUENCE_CONFLICT");
    let stale = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&a),
            Some(json!({ "sequence": 4, "mode": "delta", "records": [plan(CHILD_2, "CPP", "2025-06-01")] })),
        )
        .await;
    stale.assert_problem(409, "SEQUENCE_CONFLICT");
    // Council B's sequences are its own.
    app.upload(COUNCIL_B, 1, json!([plan(CHILD_2, "LAC", "2025-06-01")]))
        .await;
}

#[tokio::test]
async fn a_malformed_batch_is_a_400_cpf01_problem_with_a_pointer() {
    let app = TestApp::new();
    let token = app.token(&council(COUNCIL_A));
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{\"sequence\": 1,".into(), ""),
        ("not an object", "[1, 2]".into(), ""),
        (
            "no sequence",
            json!({ "mode": "delta", "records": [] }).to_string(),
            "/sequence",
        ),
        (
            "sequence zero",
            json!({ "sequence": 0, "mode": "delta", "records": [] }).to_string(),
            "/sequence",
        ),
        (
            "unknown mode",
            json!({ "sequence": 1, "mode": "sometimes", "records": [] }).to_string(),
            "/mode",
        ),
        (
            "records not an array",
            json!({ "sequence": 1, "mode": "full", "records": {} }).to_string(),
            "/records",
        ),
        (
            // A field name that is an NHS number is never echoed back.
            "unexpected field",
            json!({ "sequence": 1, "mode": "delta", "records": [], CHILD_1: true }).to_string(),
            "/_",
        ),
    ];
    for (name, body, pointer) in cases {
        let reply = app
            .send(raw_request(
                Method::POST,
                "/v1/uploads",
                Some(&token),
                Some("application/json"),
                body,
            ))
            .await;
        reply.assert_problem(400, "CPF01");
        assert_eq!(reply.json["pointer"], pointer, "{name}");
        assert_eq!(reply.json["file_outcome"], "CPF01", "{name}");
    }
    let audit = app.audit().await;
    assert_eq!(audit.len(), 7);
    assert!(audit.iter().all(|e| e.outcome == AuditOutcome::Invalid));
    let plans = app
        .call(Method::GET, "/v1/plans", Some(&council(COUNCIL_A)), None)
        .await;
    assert_eq!(plans.json["plans"], json!([]));
}

#[tokio::test]
async fn an_upload_must_be_json() {
    let app = TestApp::new();
    let token = app.token(&council(COUNCIL_A));
    let body =
        json!({ "sequence": 1, "mode": "delta", "records": [plan(CHILD_1, "CPP", "2025-06-01")] })
            .to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        app.send(raw_request(
            Method::POST,
            "/v1/uploads",
            Some(&token),
            content_type,
            body.clone(),
        ))
        .await
        .assert_problem(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    let ok = app
        .send(raw_request(
            Method::POST,
            "/v1/uploads",
            Some(&token),
            Some("application/json; charset=utf-8"),
            body,
        ))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test]
async fn over_10000_records_is_a_413_problem_saying_how_to_split() {
    let app = TestApp::new();
    let records: Vec<Value> = (0..10_001)
        .map(|_| plan(CHILD_1, "CPP", "2025-06-01"))
        .collect();
    let reply = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&council(COUNCIL_A)),
            Some(json!({ "sequence": 1, "mode": "full", "records": records })),
        )
        .await;
    reply.assert_problem(413, "TOO_MANY_RECORDS");
    assert!(reply.json["detail"].as_str().unwrap().contains("split"));
    let audit = app.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, AuditOutcome::Invalid);
}

#[tokio::test]
async fn a_body_over_5_mb_is_a_413_problem() {
    let app = TestApp::new();
    let token = app.token(&council(COUNCIL_A));
    let padding = "x".repeat(5 * 1024 * 1024);
    let body = format!(r#"{{"sequence":1,"mode":"delta","records":[],"pad":"{padding}"}}"#);
    let reply = app
        .send(raw_request(
            Method::POST,
            "/v1/uploads",
            Some(&token),
            Some("application/json"),
            body,
        ))
        .await;
    reply.assert_problem(413, "BODY_TOO_LARGE");
    assert!(reply.json["detail"].as_str().unwrap().contains("split"));
    // Just under the limit is read (and then judged by the domain).
    let under = format!(
        r#"{{"sequence":1,"mode":"delta","records":[],"pad":"{}"}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    app.send(raw_request(
        Method::POST,
        "/v1/uploads",
        Some(&token),
        Some("application/json"),
        under,
    ))
    .await
    .assert_problem(400, "CPF01");
}

// ---------- plans ----------

#[tokio::test]
async fn a_council_lists_its_own_plans_page_by_page_and_never_another_councils() {
    let app = TestApp::new();
    app.upload(
        COUNCIL_A,
        1,
        json!([
            plan(CHILD_1, "CPP", "2025-06-01"),
            plan(CHILD_2, "LAC", "2025-07-01"),
            plan(CHILD_3, "CPP", "2025-08-01"),
        ]),
    )
    .await;
    app.upload(COUNCIL_B, 1, json!([plan(CHILD_4, "CPP", "2025-06-01")]))
        .await;
    let a = council(COUNCIL_A);

    let all = app.call(Method::GET, "/v1/plans", Some(&a), None).await;
    assert_eq!(all.status, StatusCode::OK);
    let numbers: Vec<&str> = all.json["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nhs_number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, [CHILD_1, CHILD_2, CHILD_3]);
    assert_eq!(all.json["plans"][0]["plan_type"], "CPP");
    assert_eq!(all.json["plans"][0]["start_date"], "2025-06-01");
    assert_eq!(all.json["plans"][0]["local_id"], "case-17");
    assert!(all.json.get("next_cursor").is_none());

    let mut seen = Vec::new();
    let mut path = "/v1/plans?limit=2".to_owned();
    loop {
        let page = app.call(Method::GET, &path, Some(&a), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for p in page.json["plans"].as_array().unwrap() {
            seen.push(p["nhs_number"].as_str().unwrap().to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(cursor) => {
                // Cursors travel in query strings: they never hold an NHS number.
                assert_no_nhs_number(cursor);
                path = format!("/v1/plans?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen, [CHILD_1, CHILD_2, CHILD_3]);

    let b = app
        .call(Method::GET, "/v1/plans", Some(&council(COUNCIL_B)), None)
        .await;
    let b_numbers: Vec<&str> = b.json["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nhs_number"].as_str().unwrap())
        .collect();
    assert_eq!(b_numbers, [CHILD_4]);
}

#[tokio::test]
async fn bad_plan_queries_are_400_problems() {
    let app = TestApp::new();
    let a = council(COUNCIL_A);
    for (query, code) in [
        ("?cursor=%%%", "INVALID_QUERY"),
        ("?cursor=not-a-cursor", "INVALID_CURSOR"),
        // Valid base64url, but not a cursor the store issued.
        ("?cursor=Z2FyYmFnZQ", "INVALID_CURSOR"),
        ("?limit=0", "INVALID_QUERY"),
        ("?limit=501", "INVALID_QUERY"),
        ("?limit=ten", "INVALID_QUERY"),
        ("?council=E06000001", "INVALID_QUERY"),
        ("?nhs_number=9990000018", "INVALID_QUERY"),
    ] {
        let reply = app
            .call(Method::GET, &format!("/v1/plans{query}"), Some(&a), None)
            .await;
        reply.assert_problem(400, code);
    }
    let audit = app.audit().await;
    assert_eq!(audit.len(), 8);
    assert!(audit.iter().all(|e| e.outcome == AuditOutcome::Invalid));
}

#[tokio::test]
async fn an_empty_cursor_is_the_first_page() {
    let app = TestApp::new();
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let a = council(COUNCIL_A);
    for path in ["/v1/plans", "/v1/notifications"] {
        let first = app.call(Method::GET, path, Some(&a), None).await;
        let empty = app
            .call(Method::GET, &format!("{path}?cursor="), Some(&a), None)
            .await;
        assert_eq!(empty.status, StatusCode::OK, "{path}: {}", empty.text);
        assert_eq!(empty.json, first.json, "{path}");
    }
}

// ---------- directory entry ----------

#[tokio::test]
async fn a_council_reads_and_writes_only_its_own_directory_entry() {
    let app = TestApp::new();
    let a = council(COUNCIL_A);
    let b = council(COUNCIL_B);
    app.call(Method::GET, "/v1/authority", Some(&a), None)
        .await
        .assert_problem(404, "NOT_FOUND");

    let put = app
        .call(
            Method::PUT,
            "/v1/authority",
            Some(&a),
            Some(authority_body(COUNCIL_A)),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.json["ods_code"], COUNCIL_A);
    let got = app.call(Method::GET, "/v1/authority", Some(&a), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json, put.json);
    assert_eq!(
        got.json,
        json!({
            "ods_code": COUNCIL_A,
            "name": "Council E09000033",
            "office_hours_phone": "020 7946 0000",
            "emergency_duty_phone": "020 7946 0999",
            "notify_emails": ["duty@example.gov.uk"],
            "notify_sms": ["+447700900123"]
        })
    );
    // Sending back what was read (with the read-only ODS code) is accepted.
    let echo = app
        .call(
            Method::PUT,
            "/v1/authority",
            Some(&a),
            Some(got.json.clone()),
        )
        .await;
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.text);

    // Council B sees no entry of its own, and cannot write A's by naming it.
    app.call(Method::GET, "/v1/authority", Some(&b), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    let mut hijack = authority_body(COUNCIL_B);
    hijack["ods_code"] = json!(COUNCIL_A);
    hijack["name"] = json!("Hijacked");
    let refused = app
        .call(Method::PUT, "/v1/authority", Some(&b), Some(hijack))
        .await;
    refused.assert_problem(400, "INVALID_DIRECTORY_ENTRY");
    assert_eq!(refused.json["errors"][0]["pointer"], "/ods_code");
    let still = app.call(Method::GET, "/v1/authority", Some(&a), None).await;
    assert_eq!(still.json["name"], "Council E09000033");
    app.put_authority(COUNCIL_B).await;
    let a_again = app.call(Method::GET, "/v1/authority", Some(&a), None).await;
    assert_eq!(a_again.json, got.json);
}

#[tokio::test]
async fn an_invalid_directory_entry_lists_every_bad_field() {
    let app = TestApp::new();
    let reply = app
        .call(
            Method::PUT,
            "/v1/authority",
            Some(&council(COUNCIL_A)),
            Some(json!({
                "name": " ",
                "office_hours_phone": "call us",
                "emergency_duty_phone": "",
                "notify_emails": ["nobody"],
                "notify_sms": ["07700900123"]
            })),
        )
        .await;
    reply.assert_problem(400, "INVALID_DIRECTORY_ENTRY");
    let pointers: Vec<&str> = reply.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        [
            "/name",
            "/office_hours_phone",
            "/emergency_duty_phone",
            "/notify_emails/0",
            "/notify_sms/0"
        ]
    );
    assert!(reply.json["errors"][0]["detail"].is_string());
    // Values are never echoed.
    assert!(!reply.text.contains("call us"));
    assert!(!reply.text.contains("07700900123"));
}

#[tokio::test]
async fn bad_directory_bodies_are_problems_that_never_echo_input() {
    let app = TestApp::new();
    let token = app.token(&council(COUNCIL_A));
    let mut unknown_field = authority_body(COUNCIL_A);
    unknown_field["nhs_number"] = json!(CHILD_1);
    let mut wrong_type = authority_body(COUNCIL_A);
    wrong_type["notify_emails"] = json!(CHILD_1);
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (
            Some("application/json"),
            "{\"name\": ".into(),
            400,
            "INVALID_JSON",
        ),
        (
            Some("application/json"),
            json!({ "name": "x" }).to_string(),
            400,
            "INVALID_BODY",
        ),
        (
            Some("application/json"),
            unknown_field.to_string(),
            400,
            "INVALID_BODY",
        ),
        (
            Some("application/json"),
            wrong_type.to_string(),
            400,
            "INVALID_BODY",
        ),
        (
            Some("text/plain"),
            authority_body(COUNCIL_A).to_string(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            Some("application/json"),
            format!("{{\"name\":\"{}\"}}", "x".repeat(20 * 1024)),
            413,
            "BODY_TOO_LARGE",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let reply = app
            .send(raw_request(
                Method::PUT,
                "/v1/authority",
                Some(&token),
                content_type,
                body,
            ))
            .await;
        reply.assert_problem(status, code);
    }
    app.call(
        Method::GET,
        "/v1/authority",
        Some(&council(COUNCIL_A)),
        None,
    )
    .await
    .assert_problem(404, "NOT_FOUND");
}

// ---------- notifications ----------

/// Council A holds a plan for CHILD_1; a B0107 unscheduled check notifies it.
async fn app_with_one_asn() -> (TestApp, String) {
    let app = TestApp::new();
    app.put_authority(COUNCIL_A).await;
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    let check = app
        .check(&clinician("dr-1", TRUST_X, "B0107"), CHILD_1, true)
        .await;
    assert_eq!(check.status, StatusCode::OK);
    let list = app
        .call(
            Method::GET,
            "/v1/notifications",
            Some(&council(COUNCIL_A)),
            None,
        )
        .await;
    let id = list.json["notifications"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (app, id)
}

#[tokio::test]
async fn a_council_reads_its_inbox_newest_first_and_acknowledges_an_asn() {
    let (app, first_id) = app_with_one_asn().await;
    app.clock.advance(time::Duration::hours(1));
    app.check(&clinician("dr-2", TRUST_Y, "B0107"), CHILD_1, true)
        .await;
    let a = council(COUNCIL_A);

    let list = app
        .call(Method::GET, "/v1/notifications", Some(&a), None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let items = list.json["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["id"], first_id.as_str());
    assert_eq!(items[0]["accessor"]["organisation_ods"], TRUST_Y);
    let asn = &items[1];
    assert_eq!(asn["nhs_number"], CHILD_1);
    assert_eq!(asn["local_id"], "case-17");
    assert_eq!(asn["plan_type"], "CPP");
    assert_eq!(asn["accessed_at"], "2026-03-02T10:00:00Z");
    assert_eq!(asn["acknowledged"], false);
    assert_eq!(
        asn["accessor"],
        json!({
            "kind": "user",
            "user_id": "dr-1",
            "rbac": "B0107",
            "organisation_ods": TRUST_X,
            "organisation_name": "Trust RJ1",
            "setting": "emergency-department"
        })
    );

    let page = app
        .call(Method::GET, "/v1/notifications?limit=1", Some(&a), None)
        .await;
    let cursor = page.json["next_cursor"].as_str().unwrap().to_owned();
    assert_no_nhs_number(&cursor);
    let next = app
        .call(
            Method::GET,
            &format!("/v1/notifications?limit=1&cursor={cursor}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(next.json["notifications"][0]["id"], first_id.as_str());
    assert!(next.json.get("next_cursor").is_none());

    let one = app
        .call(
            Method::GET,
            &format!("/v1/notifications/{first_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(&one.json, asn);

    let ack = app
        .call(
            Method::POST,
            &format!("/v1/notifications/{first_id}/ack"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(ack.status, StatusCode::OK, "{}", ack.text);
    assert_eq!(ack.json["acknowledged"], true);
    // Acknowledging again changes nothing.
    let again = app
        .call(
            Method::POST,
            &format!("/v1/notifications/{first_id}/ack"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(again.json, ack.json);
}

#[tokio::test]
async fn another_council_can_neither_read_nor_acknowledge_nor_detect_an_asn() {
    let (app, id) = app_with_one_asn().await;
    let b = council(COUNCIL_B);
    let random = "0b9d0c2e-1111-4222-8333-444455556666";

    let list = app
        .call(Method::GET, "/v1/notifications", Some(&b), None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json, json!({ "notifications": [] }));

    for (method, suffix) in [(Method::GET, ""), (Method::POST, "/ack")] {
        let theirs = app
            .call(
                method.clone(),
                &format!("/v1/notifications/{id}{suffix}"),
                Some(&b),
                None,
            )
            .await;
        let missing = app
            .call(
                method.clone(),
                &format!("/v1/notifications/{random}{suffix}"),
                Some(&b),
                None,
            )
            .await;
        let nonsense = app
            .call(
                method,
                &format!("/v1/notifications/..%2F{suffix}"),
                Some(&b),
                None,
            )
            .await;
        theirs.assert_problem(404, "NOT_FOUND");
        assert_eq!(comparable(&theirs), comparable(&missing));
        assert_eq!(comparable(&theirs), comparable(&nonsense));
        // Also the same headers apart from the request id.
        let mut h1 = theirs.headers.clone();
        let mut h2 = missing.headers.clone();
        h1.remove("x-request-id");
        h2.remove("x-request-id");
        assert_eq!(h1, h2);
    }
    // A's ASN is untouched.
    let a_view = app
        .call(
            Method::GET,
            &format!("/v1/notifications/{id}"),
            Some(&council(COUNCIL_A)),
            None,
        )
        .await;
    assert_eq!(a_view.json["acknowledged"], false);
    // The attempts are audited as denials under B.
    let audit = app.audit().await;
    let b_reads: Vec<_> = audit
        .iter()
        .filter(|e| e.organisation == COUNCIL_B)
        .collect();
    assert_eq!(b_reads.len(), 7);
    assert_eq!(
        b_reads
            .iter()
            .filter(|e| e.outcome == AuditOutcome::Denied)
            .count(),
        6
    );
}

#[tokio::test]
async fn bad_inbox_queries_are_400_problems() {
    let (app, _) = app_with_one_asn().await;
    let a = council(COUNCIL_A);
    for (query, code) in [
        ("?cursor=bm90LWEtY3Vyc29y", "INVALID_CURSOR"),
        ("?cursor=***", "INVALID_CURSOR"),
        ("?since=2026-01-01", "INVALID_QUERY"),
        ("?limit=-1", "INVALID_QUERY"),
    ] {
        app.call(
            Method::GET,
            &format!("/v1/notifications{query}"),
            Some(&a),
            None,
        )
        .await
        .assert_problem(400, code);
    }
}

// ---------- upload sequencing ----------

#[tokio::test]
async fn a_council_that_sent_a_wrong_sequence_rewinds_and_continues() {
    let app = TestApp::new();
    let a = council(COUNCIL_A);
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
    // The largest sequence a JSON client can send exactly, sent by mistake.
    app.upload(
        COUNCIL_A,
        9_007_199_254_740_991,
        json!([plan(CHILD_2, "CPP", "2025-06-01")]),
    )
    .await;
    let locked = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&a),
            Some(json!({"sequence": 2, "mode": "delta", "records": [plan(CHILD_3, "CPP", "2025-06-01")]})),
        )
        .await;
    locked.assert_problem(409, "SEQUENCE_CONFLICT");

    let above = app
        .call(
            Method::POST,
            "/v1/uploads/rewind",
            Some(&a),
            Some(json!({"sequence": 9_007_199_254_740_992u64})),
        )
        .await;
    above.assert_problem(400, "INVALID_SEQUENCE");
    let rewound = app
        .call(
            Method::POST,
            "/v1/uploads/rewind",
            Some(&a),
            Some(json!({"sequence": 1})),
        )
        .await;
    assert_eq!(rewound.status, StatusCode::OK, "{}", rewound.text);
    assert_eq!(
        rewound.json,
        json!({"sequence": 1, "previous": 9_007_199_254_740_991u64, "retired_receipts": 1})
    );
    app.upload(COUNCIL_A, 2, json!([plan(CHILD_3, "CPP", "2025-06-01")]))
        .await;
    let past = app
        .call(
            Method::POST,
            "/v1/uploads/rewind",
            Some(&a),
            Some(json!({"sequence": 3})),
        )
        .await;
    past.assert_problem(409, "REWIND_ABOVE_LATEST");

    // Only a council may rewind, and only its own ledger: another council's
    // rewind to 0 leaves A's sequence where it is.
    let doctor = clinician("dr-1", TRUST_X, "B0107");
    let denied = app
        .call(
            Method::POST,
            "/v1/uploads/rewind",
            Some(&doctor),
            Some(json!({"sequence": 0})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let theirs = app
        .call(
            Method::POST,
            "/v1/uploads/rewind",
            Some(&council(COUNCIL_B)),
            Some(json!({"sequence": 0})),
        )
        .await;
    assert_eq!(theirs.json["previous"], 0, "{}", theirs.text);
    let stale = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&a),
            Some(json!({"sequence": 2, "mode": "delta", "records": [plan(CHILD_4, "CPP", "2025-06-01")]})),
        )
        .await;
    stale.assert_problem(409, "SEQUENCE_CONFLICT");

    let rewinds: Vec<_> = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == AuditAction::RewindSequence)
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        rewinds,
        vec![
            AuditOutcome::Invalid,
            AuditOutcome::Allowed,
            AuditOutcome::Invalid,
            AuditOutcome::Denied,
            AuditOutcome::Allowed
        ]
    );
}

#[tokio::test]
async fn an_upload_while_another_is_applied_is_a_409_with_retry_after() {
    use cpis_domain::ports::{PlanStore, UploadLedger};
    use cpis_domain::sequencing::{HeadState, LedgerHead};
    use cpis_domain::Clock;
    let app = TestApp::new();
    let ods = cpis_domain::OdsCode::parse(COUNCIL_A).unwrap();
    // Sequence 1 claimed by a run still applying it.
    let held = LedgerHead {
        sequence: 1,
        digest: "0".repeat(64),
        state: HeadState::Pending {
            lease_until: app.clock.now() + time::Duration::seconds(90),
        },
        version: 1,
    };
    assert!(app.store.swap_ledger_head(&ods, None, &held).await.unwrap());
    let busy = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&council(COUNCIL_A)),
            Some(json!({"sequence": 2, "mode": "delta", "records": [plan(CHILD_1, "CPP", "2025-06-01")]})),
        )
        .await;
    busy.assert_problem(409, "UPLOAD_IN_PROGRESS");
    assert_eq!(busy.headers.get("retry-after").unwrap(), "90");
    let rewind = app
        .call(
            Method::POST,
            "/v1/uploads/rewind",
            Some(&council(COUNCIL_A)),
            Some(json!({"sequence": 0})),
        )
        .await;
    rewind.assert_problem(409, "UPLOAD_IN_PROGRESS");
    assert!(app
        .store
        .plans_for_child(&cpis_domain::NhsNumber::parse(CHILD_1).unwrap())
        .await
        .unwrap()
        .is_empty());
}
