//! The audit trail (issue 7, suite 7): a scripted session of allowed, denied
//! and invalid reads and writes by every kind of caller, each step written out
//! with the one audit event it must leave (or none, for the routes that touch
//! no data). The events are counted against the requests and checked field by
//! field: who, organisation, role, action, pseudonymised subject (never the
//! NHS number), time, outcome, and trace id = the response's request id.
//!
//! `cargo test -p cpis-http --test audit_count -- --nocapture` prints the figures.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use common::*;
use cpis_domain::{AuditAction, AuditEvent, AuditOutcome, NhsNumber};
use cpis_http::CallerClaims;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The credential a step presents.
#[derive(Clone)]
enum Cred {
    Valid(CallerClaims),
    /// The caller's own token, an hour past its expiry.
    Expired(CallerClaims),
    Garbage,
    None,
}

/// The one audit event a step must leave: action, outcome, and the child it
/// names (pseudonymised), if any.
type Expected = Option<(AuditAction, AuditOutcome, Option<&'static str>)>;

struct Step {
    cred: Cred,
    method: Method,
    /// `{asn}` is replaced by council A's ASN id once the session has one.
    path: String,
    body: Option<Value>,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    audit: Expected,
}

fn step(
    cred: Cred,
    method: Method,
    path: impl Into<String>,
    body: Option<Value>,
    status: u16,
    audit: Expected,
) -> Step {
    Step {
        cred,
        method,
        path: path.into(),
        body,
        headers: &[],
        status,
        audit,
    }
}

fn fhir_path(resource: &str, child: &str) -> String {
    format!("/FHIR/R4/{resource}?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{child}")
}

use AuditAction::*;
use AuditOutcome::{Allowed, Denied, Invalid};

/// The session. Council A owns child 1 and child 2; council B owns nothing;
/// the B0107 clinician at trust X checks child 1 (so may read its history).
fn script() -> Vec<Step> {
    let a = council(COUNCIL_A);
    let b = council(COUNCIL_B);
    let dr = clinician("dr-107", TRUST_X, "B0107");
    let silent = clinician("dr-170", TRUST_Y, "B0170");
    let pas = system("pas-1", TRUST_Y, "B0107");
    let v = Cred::Valid;
    vec![
        step(Cred::None, Method::GET, "/health", None, 200, None),
        step(
            v(a.clone()),
            Method::PUT,
            "/v1/authority",
            Some(authority_body(COUNCIL_A)),
            200,
            Some((UpdateAuthority, Allowed, None)),
        ),
        step(
            v(a.clone()),
            Method::PUT,
            "/v1/authority",
            Some(json!({ "name": "" })),
            400,
            Some((UpdateAuthority, Invalid, None)),
        ),
        step(
            v(a.clone()),
            Method::POST,
            "/v1/uploads",
            Some(
                json!({ "sequence": 1, "mode": "delta", "records": [plan(CHILD_1, "CPP", "2025-06-01"), plan(CHILD_2, "LAC", "2025-06-01")] }),
            ),
            200,
            Some((Upload, Allowed, None)),
        ),
        step(
            v(a.clone()),
            Method::POST,
            "/v1/uploads",
            Some(
                json!({ "sequence": 1, "mode": "delta", "records": [plan(CHILD_3, "CPP", "2025-06-01")] }),
            ),
            409,
            Some((Upload, Invalid, None)),
        ),
        step(
            v(dr.clone()),
            Method::POST,
            "/v1/uploads",
            Some(
                json!({ "sequence": 2, "mode": "delta", "records": [plan(CHILD_3, "CPP", "2025-06-01")] }),
            ),
            403,
            Some((Upload, Denied, None)),
        ),
        step(
            Cred::None,
            Method::POST,
            "/v1/uploads",
            Some(
                json!({ "sequence": 2, "mode": "delta", "records": [plan(CHILD_3, "CPP", "2025-06-01")] }),
            ),
            401,
            Some((Upload, Denied, None)),
        ),
        step(
            v(b.clone()),
            Method::GET,
            "/v1/plans",
            None,
            200,
            Some((ListPlans, Allowed, None)),
        ),
        step(
            v(a.clone()),
            Method::GET,
            "/v1/plans?limit=0",
            None,
            400,
            Some((ListPlans, Invalid, None)),
        ),
        step(
            Cred::Garbage,
            Method::GET,
            "/v1/plans",
            None,
            401,
            Some((ListPlans, Denied, None)),
        ),
        step(
            v(b.clone()),
            Method::GET,
            "/v1/authority",
            None,
            404,
            // Its own entry, not there yet: a permitted read that found
            // nothing, not a denial (issue 12).
            Some((ReadAuthority, Allowed, None)),
        ),
        step(
            v(a.clone()),
            Method::GET,
            "/v1/authority",
            None,
            200,
            Some((ReadAuthority, Allowed, None)),
        ),
        // Checks: allowed (notifying and silent), for a child with no plan,
        // with an invalid number, by the wrong role, with an expired token.
        step(
            v(dr.clone()),
            Method::POST,
            "/v1/checks",
            Some(json!({ "nhs_number": CHILD_1, "unscheduled": true })),
            200,
            Some((Check, Allowed, Some(CHILD_1))),
        ),
        step(
            v(silent.clone()),
            Method::POST,
            "/v1/checks",
            Some(json!({ "nhs_number": CHILD_2, "unscheduled": false })),
            200,
            Some((Check, Allowed, Some(CHILD_2))),
        ),
        step(
            v(pas.clone()),
            Method::POST,
            "/v1/checks",
            Some(json!({ "nhs_number": CHILD_UNKNOWN, "unscheduled": true })),
            200,
            Some((Check, Allowed, Some(CHILD_UNKNOWN))),
        ),
        step(
            v(dr.clone()),
            Method::POST,
            "/v1/checks",
            Some(json!({ "nhs_number": "9990000010", "unscheduled": true })),
            400,
            Some((Check, Invalid, None)),
        ),
        step(
            v(a.clone()),
            Method::POST,
            "/v1/checks",
            Some(json!({ "nhs_number": CHILD_1, "unscheduled": true })),
            403,
            Some((Check, Denied, None)),
        ),
        step(
            Cred::Expired(dr.clone()),
            Method::POST,
            "/v1/checks",
            Some(json!({ "nhs_number": CHILD_1, "unscheduled": true })),
            401,
            Some((Check, Denied, None)),
        ),
        // History: the owner, another council, a care setting that checked
        // the child, one that did not, and a body that is not JSON.
        step(
            v(a.clone()),
            Method::POST,
            "/v1/history",
            Some(json!({ "nhs_number": CHILD_1 })),
            200,
            Some((ReadHistory, Allowed, Some(CHILD_1))),
        ),
        step(
            v(b.clone()),
            Method::POST,
            "/v1/history",
            Some(json!({ "nhs_number": CHILD_1 })),
            200,
            Some((ReadHistory, Denied, Some(CHILD_1))),
        ),
        step(
            v(dr.clone()),
            Method::POST,
            "/v1/history",
            Some(json!({ "nhs_number": CHILD_1 })),
            200,
            Some((ReadHistory, Allowed, Some(CHILD_1))),
        ),
        step(
            v(pas.clone()),
            Method::POST,
            "/v1/history",
            Some(json!({ "nhs_number": CHILD_1 })),
            200,
            Some((ReadHistory, Denied, Some(CHILD_1))),
        ),
        step(
            v(a.clone()),
            Method::POST,
            "/v1/history",
            Some(json!("9990000018")),
            400,
            Some((ReadHistory, Invalid, None)),
        ),
        // The inbox.
        step(
            v(a.clone()),
            Method::GET,
            "/v1/notifications",
            None,
            200,
            Some((ListNotifications, Allowed, None)),
        ),
        step(
            v(a.clone()),
            Method::GET,
            "/v1/notifications/{asn}",
            None,
            200,
            Some((ReadNotification, Allowed, None)),
        ),
        step(
            v(b.clone()),
            Method::GET,
            "/v1/notifications/{asn}",
            None,
            404,
            Some((ReadNotification, Denied, None)),
        ),
        step(
            v(silent.clone()),
            Method::GET,
            "/v1/notifications/{asn}",
            None,
            403,
            Some((ReadNotification, Denied, None)),
        ),
        step(
            v(b.clone()),
            Method::POST,
            "/v1/notifications/{asn}/ack",
            None,
            404,
            Some((AcknowledgeNotification, Denied, None)),
        ),
        step(
            v(a.clone()),
            Method::POST,
            "/v1/notifications/{asn}/ack",
            None,
            200,
            Some((AcknowledgeNotification, Allowed, None)),
        ),
        step(
            Cred::None,
            Method::GET,
            "/v1/notifications",
            None,
            401,
            Some((ListNotifications, Denied, None)),
        ),
        // FHIR.
        Step {
            headers: &[("IsUnscheduledAccessEvent", "true")],
            ..step(
                v(dr.clone()),
                Method::GET,
                fhir_path("CareTeam", CHILD_2),
                None,
                200,
                Some((Check, Allowed, Some(CHILD_2))),
            )
        },
        step(
            v(dr.clone()),
            Method::GET,
            fhir_path("CareTeam", CHILD_2),
            None,
            400,
            Some((Check, Invalid, None)),
        ),
        step(
            v(silent.clone()),
            Method::GET,
            fhir_path("Flag", CHILD_1),
            None,
            200,
            Some((Check, Allowed, Some(CHILD_1))),
        ),
        step(
            v(b.clone()),
            Method::GET,
            fhir_path("Flag", CHILD_1),
            None,
            403,
            Some((Check, Denied, None)),
        ),
        step(
            v(dr.clone()),
            Method::GET,
            fhir_path("AuditEvent", CHILD_1),
            None,
            200,
            Some((ReadHistory, Allowed, Some(CHILD_1))),
        ),
        // Trust Y's silent Flag read above counts as a check of child 1.
        step(
            v(silent.clone()),
            Method::GET,
            fhir_path("AuditEvent", CHILD_1),
            None,
            200,
            Some((ReadHistory, Allowed, Some(CHILD_1))),
        ),
        step(
            v(silent.clone()),
            Method::GET,
            fhir_path("AuditEvent", CHILD_3),
            None,
            200,
            Some((ReadHistory, Denied, Some(CHILD_3))),
        ),
        step(
            v(dr.clone()),
            Method::GET,
            "/FHIR/R4/AuditEvent?patient:identifier=9990000018",
            None,
            400,
            Some((ReadHistory, Invalid, None)),
        ),
        step(
            v(dr.clone()),
            Method::GET,
            "/FHIR/R4/metadata",
            None,
            200,
            None,
        ),
        // Public (issue 18): FHIR clients read it before they authenticate.
        step(
            Cred::None,
            Method::GET,
            "/FHIR/R4/metadata",
            None,
            200,
            None,
        ),
        // No route, no data: nothing to audit.
        step(v(a.clone()), Method::GET, "/v1/nowhere", None, 404, None),
        step(v(a.clone()), Method::DELETE, "/v1/plans", None, 405, None),
        // A caller's trace id is kept; one that holds an NHS number is replaced.
        Step {
            headers: &[("x-request-id", "trace-abc-123")],
            ..step(
                v(a.clone()),
                Method::GET,
                "/v1/plans",
                None,
                200,
                Some((ListPlans, Allowed, None)),
            )
        },
        Step {
            headers: &[("x-request-id", "nhs-9990000018")],
            ..step(
                v(a),
                Method::GET,
                "/v1/plans",
                None,
                200,
                Some((ListPlans, Allowed, None)),
            )
        },
    ]
}

fn build(app: &TestApp, step: &Step, asn: Option<&str>) -> Request<Body> {
    let token = match &step.cred {
        Cred::Valid(claims) => Some(app.token(claims)),
        Cred::Expired(claims) => Some(
            app.keys
                .mint(
                    claims,
                    OffsetDateTime::now_utc() - time::Duration::hours(2),
                    time::Duration::hours(1),
                )
                .expect("mint"),
        ),
        Cred::Garbage => Some("not.a.token".to_owned()),
        Cred::None => None,
    };
    let path = step.path.replace("{asn}", asn.unwrap_or("no-asn-yet"));
    let mut request = request(
        step.method.clone(),
        &path,
        token.as_deref(),
        step.body.clone(),
    );
    for (name, value) in step.headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    request
}

/// Who the audit event must name: (actor, organisation, role), where a care
/// setting's role is its RBAC activity.
fn who(cred: &Cred) -> (String, String, String) {
    match cred {
        Cred::Valid(claims) => {
            let role = claims.rbac.clone().unwrap_or_else(|| claims.role.clone());
            (claims.sub.clone(), claims.ods_code.clone(), role)
        }
        Cred::Expired(_) | Cred::Garbage | Cred::None => {
            ("anonymous".into(), String::new(), "none".into())
        }
    }
}

#[tokio::test]
async fn every_audited_request_leaves_exactly_one_complete_event() {
    let app = TestApp::new();
    let script = script();
    let pseudonymiser = pseudonymiser();
    let mut asn: Option<String> = None;
    let mut audited = 0;
    let mut unaudited = 0;
    let mut seen_ids = BTreeSet::new();
    let mut figures: BTreeMap<String, usize> = BTreeMap::new();

    for (n, step) in script.iter().enumerate() {
        // A distinct time per step, so that each event's time can be checked.
        app.clock.advance(time::Duration::minutes(1));
        let at = start() + time::Duration::minutes(n as i64 + 1);
        let before = app.audit().await.len();
        let reply = app.send(build(&app, step, asn.as_deref())).await;
        let label = format!("step {n}: {} {} ", step.method, step.path);
        assert_eq!(
            reply.status.as_u16(),
            step.status,
            "{label}: {}",
            reply.text
        );
        if step.path.as_str() == "/v1/notifications"
            && reply.status.as_u16() == 200
            && asn.is_none()
        {
            asn = reply.json["notifications"][0]["id"]
                .as_str()
                .map(str::to_owned);
            assert!(
                asn.is_some(),
                "the check of child 1 made an ASN for council A"
            );
        }

        let audit = app.audit().await;
        let new: &[AuditEvent] = &audit[before..];
        let Some((action, outcome, child)) = step.audit else {
            assert!(new.is_empty(), "{label}: audited {new:?}");
            unaudited += 1;
            continue;
        };
        assert_eq!(new.len(), 1, "{label}: exactly one event, got {new:?}");
        let event = &new[0];
        let (actor, organisation, role) = who(&step.cred);
        assert_eq!(event.actor_id, actor, "{label}");
        assert_eq!(event.organisation, organisation, "{label}");
        assert_eq!(event.role, role, "{label}");
        assert_eq!(event.action, action, "{label}");
        assert_eq!(event.outcome, outcome, "{label}");
        let subject =
            child.map(|c| pseudonymiser.pseudonym(&NhsNumber::parse(c).expect("synthetic")));
        assert_eq!(event.subject, subject, "{label}");
        assert_eq!(event.at, at, "{label}: the service clock's time");
        assert!(!reply.request_id().is_empty(), "{label}: no request id");
        assert_eq!(event.trace_id, reply.request_id(), "{label}: trace id");
        assert!(
            seen_ids.insert(event.id.clone()),
            "{label}: event id reused"
        );
        audited += 1;
        *figures
            .entry(format!("{action:?}/{outcome:?}"))
            .or_default() += 1;
    }

    // The caller's trace id was kept, and the one holding an NHS number was not.
    let audit = app.audit().await;
    let last_two: Vec<&str> = audit[audit.len() - 2..]
        .iter()
        .map(|e| e.trace_id.as_str())
        .collect();
    assert_eq!(last_two[0], "trace-abc-123");
    assert_ne!(last_two[1], "nhs-9990000018");

    // Counted against the requests: one event per audited request, no more.
    assert_eq!(audit.len(), audited);
    assert_eq!(audited + unaudited, script.len());
    for outcome in [Allowed, Denied, Invalid] {
        assert!(
            audit.iter().any(|e| e.outcome == outcome),
            "{outcome:?} exercised"
        );
    }
    // The trail never holds an NHS number, valid or not, in any field.
    let text = serde_json::to_string(&audit).expect("serialise");
    assert_no_nhs_number(&text);
    for number in [CHILD_1, CHILD_2, CHILD_3, CHILD_UNKNOWN, "9990000010"] {
        assert!(!text.contains(number), "the audit trail holds {number}");
    }
    let subjects: BTreeSet<&str> = audit.iter().filter_map(|e| e.subject.as_deref()).collect();
    assert_eq!(subjects.len(), 4, "children 1, 2, 3 and the unknown child");
    for subject in &subjects {
        assert!(
            subject.starts_with("p1-") && subject[3..].bytes().all(|b| (b'a'..=b'p').contains(&b))
        );
    }

    println!(
        "audit session: {} requests, {audited} audited, {unaudited} not audited (health, metadata, no route), {} events",
        script.len(),
        audit.len()
    );
    for (kind, count) in &figures {
        println!("  {kind:<32} {count}");
    }
}
