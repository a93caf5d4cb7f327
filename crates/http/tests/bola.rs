//! Tenancy and roles (BOLA): every route in the route table against every kind
//! of caller, with the expected answer written out here (not derived from the
//! route table under test), and proof that another council's objects are
//! answered exactly as missing ones.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use common::*;
use cpis_domain::ports::{
    AccessLog, AuthorityDirectory, CheckReceipts, NotificationInbox, PlanStore, UploadLedger,
};
use cpis_domain::{AuditOutcome, NhsNumber, OdsCode};
use cpis_http::routes::ROUTES;
use cpis_http::CallerClaims;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The kinds of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    CouncilA,
    CouncilB,
    /// Checked child 1 in the seed, so may read its history.
    ClinicianB0107,
    /// At another trust that never checked child 1.
    ClinicianB0170,
    /// A care-setting system at that other trust.
    System,
    NoToken,
    Expired,
}

const EVERYONE: [Who; 7] = [
    Who::CouncilA,
    Who::CouncilB,
    Who::ClinicianB0107,
    Who::ClinicianB0170,
    Who::System,
    Who::NoToken,
    Who::Expired,
];

impl Who {
    fn claims(self) -> Option<CallerClaims> {
        match self {
            Who::CouncilA | Who::Expired => Some(council(COUNCIL_A)),
            Who::CouncilB => Some(council(COUNCIL_B)),
            Who::ClinicianB0107 => Some(clinician("dr-107", TRUST_X, "B0107")),
            Who::ClinicianB0170 => Some(clinician("dr-170", TRUST_Y, "B0170")),
            Who::System => Some(system("pas-1", TRUST_Y, "B0107")),
            Who::NoToken => None,
        }
    }

    fn token(self, app: &TestApp) -> Option<String> {
        let claims = self.claims()?;
        if self == Who::Expired {
            // Council A's own credential, an hour past its expiry.
            let issued = OffsetDateTime::now_utc() - time::Duration::hours(2);
            return Some(
                app.keys
                    .mint(&claims, issued, time::Duration::hours(1))
                    .expect("mint"),
            );
        }
        Some(app.token(&claims))
    }

    /// For a council: the other council's code and child, which must never
    /// appear in its answers.
    fn foreign(self) -> Option<(&'static str, &'static str)> {
        match self {
            Who::CouncilA => Some((COUNCIL_B, CHILD_2)),
            Who::CouncilB => Some((COUNCIL_A, CHILD_1)),
            _ => None,
        }
    }
}

/// The expected answer for one caller on one route: the status, and the
/// outcome of the one audit event (`None`: the route is not audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell(u16, Option<AuditOutcome>);

const OK: Cell = Cell(200, Some(AuditOutcome::Allowed));
/// 200 with the answer for a child with no history, audited as a denial.
const HIDDEN: Cell = Cell(200, Some(AuditOutcome::Denied));
const MISSING: Cell = Cell(404, Some(AuditOutcome::Denied));
const FORBIDDEN: Cell = Cell(403, Some(AuditOutcome::Denied));
const UNAUTH: Cell = Cell(401, Some(AuditOutcome::Denied));
const OPEN: Cell = Cell(200, None);
/// A method the route table does not list for the path (issue 18: `HEAD`
/// once reached the `GET` handler unauthenticated): refused before
/// authentication or any handler, for every caller, never audited.
const NOT_ALLOWED: Cell = Cell(405, None);

/// Every method a caller might send, against every path.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The documented access rules (README, domain brief sections 2, 5 and 7),
/// one row per route, columns in the order of [`EVERYONE`]:
/// council A, council B, clinician B0107, clinician B0170, system, no token, expired.
///
/// The seed: council A holds child 1's plan and an ASN for it; council B holds
/// child 2's plan and an ASN for it; the B0107 clinician's trust checked both.
/// `{id}` is council A's ASN.
#[rustfmt::skip]
const EXPECTED: &[(&str, &str, [Cell; 7])] = &[
    ("GET",  "/health",                     [OPEN, OPEN, OPEN, OPEN, OPEN, OPEN, OPEN]),
    ("POST", "/v1/uploads",                 [OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, UNAUTH, UNAUTH]),
    ("POST", "/v1/uploads/rewind",          [OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, UNAUTH, UNAUTH]),
    ("GET",  "/v1/plans",                   [OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, UNAUTH, UNAUTH]),
    ("GET",  "/v1/authority",               [OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, UNAUTH, UNAUTH]),
    ("PUT",  "/v1/authority",               [OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, UNAUTH, UNAUTH]),
    ("GET",  "/v1/notifications",           [OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, UNAUTH, UNAUTH]),
    ("GET",  "/v1/notifications/{id}",      [OK, MISSING, FORBIDDEN, FORBIDDEN, FORBIDDEN, UNAUTH, UNAUTH]),
    ("POST", "/v1/notifications/{id}/ack",  [OK, MISSING, FORBIDDEN, FORBIDDEN, FORBIDDEN, UNAUTH, UNAUTH]),
    ("POST", "/v1/checks",                  [FORBIDDEN, FORBIDDEN, OK, OK, OK, UNAUTH, UNAUTH]),
    ("POST", "/v1/history",                 [OK, HIDDEN, OK, HIDDEN, HIDDEN, UNAUTH, UNAUTH]),
    ("GET",  "/FHIR/R4/CareTeam",           [FORBIDDEN, FORBIDDEN, OK, OK, OK, UNAUTH, UNAUTH]),
    ("GET",  "/FHIR/R4/Flag",               [FORBIDDEN, FORBIDDEN, OK, OK, OK, UNAUTH, UNAUTH]),
    // Public (issue 18): FHIR clients read it before they authenticate.
    ("GET",  "/FHIR/R4/metadata",           [OPEN, OPEN, OPEN, OPEN, OPEN, OPEN, OPEN]),
    ("GET",  "/FHIR/R4/AuditEvent",         [FORBIDDEN, FORBIDDEN, OK, HIDDEN, HIDDEN, UNAUTH, UNAUTH]),
];

/// Which councils the seed gives data.
#[derive(Debug, Clone, Copy)]
struct Seed {
    council_a: bool,
    council_b: bool,
    /// Whether the B0107 clinician checks the councils' children (making ASNs).
    checks: bool,
}

const FULL: Seed = Seed {
    council_a: true,
    council_b: true,
    checks: true,
};

/// A fresh service holding the seed; returns council A's ASN id if any.
async fn seeded(seed: Seed) -> (TestApp, Option<String>) {
    let app = TestApp::new();
    if seed.council_a {
        app.put_authority(COUNCIL_A).await;
        app.upload(
            COUNCIL_A,
            1,
            json!([
                plan(CHILD_1, "CPP", "2025-06-01"),
                plan(CHILD_3, "LAC", "2025-07-01")
            ]),
        )
        .await;
    }
    if seed.council_b {
        app.put_authority(COUNCIL_B).await;
        app.upload(COUNCIL_B, 1, json!([plan(CHILD_2, "LAC", "2025-06-01")]))
            .await;
    }
    if seed.checks {
        let doctor = Who::ClinicianB0107.claims().expect("claims");
        for child in [CHILD_1, CHILD_2] {
            assert_eq!(app.check(&doctor, child, true).await.status.as_u16(), 200);
        }
    }
    let mut asn = None;
    if seed.council_a && seed.checks {
        let inbox = app
            .call(
                Method::GET,
                "/v1/notifications",
                Some(&council(COUNCIL_A)),
                None,
            )
            .await;
        asn = inbox.json["notifications"][0]["id"]
            .as_str()
            .map(str::to_owned);
        assert!(asn.is_some(), "{}", inbox.text);
    }
    (app, asn)
}

fn fhir_query(child: &str) -> String {
    format!("patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{child}")
}

/// A request that would succeed for an admitted caller, so that an allowed
/// cell does real work and a denied one proves it did none.
fn request_for(method: &str, path: &str, asn: &str, token: Option<&str>) -> Request<Body> {
    let concrete = path.replace("{id}", asn);
    let (uri, body) = match (method, path) {
        ("POST", "/v1/uploads") => (
            concrete,
            Some(
                json!({ "sequence": 2, "mode": "delta", "records": [plan(CHILD_4, "CPP", "2025-08-01")] }),
            ),
        ),
        ("POST", "/v1/uploads/rewind") => (concrete, Some(json!({ "sequence": 0 }))),
        ("PUT", "/v1/authority") => (
            concrete,
            Some(json!({
                "name": "Renamed council",
                "office_hours_phone": "020 7946 0001",
                "emergency_duty_phone": "020 7946 0998",
                "notify_emails": [],
                "notify_sms": []
            })),
        ),
        ("POST", "/v1/checks") => (
            concrete,
            Some(json!({ "nhs_number": CHILD_1, "unscheduled": true })),
        ),
        ("POST", "/v1/history") => (concrete, Some(json!({ "nhs_number": CHILD_1 }))),
        ("GET", "/FHIR/R4/CareTeam" | "/FHIR/R4/Flag" | "/FHIR/R4/AuditEvent") => {
            (format!("{concrete}?{}", fhir_query(CHILD_1)), None)
        }
        _ => (concrete, None),
    };
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = request(method, &uri, token, body);
    if path == "/FHIR/R4/CareTeam" {
        request.headers_mut().insert(
            cpis_fhir::UNSCHEDULED_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    request
}

/// Everything a request could change, read straight from the store (not
/// through the API, which would itself be audited).
async fn fingerprint(app: &TestApp) -> String {
    let mut parts = Vec::new();
    for child in [CHILD_1, CHILD_2, CHILD_3, CHILD_4] {
        let nhs = NhsNumber::parse(child).expect("synthetic");
        parts.push(format!("{:?}", app.store.plans_for_child(&nhs).await));
        parts.push(format!("{:?}", app.store.recent_accesses(&nhs, 100).await));
        for trust in [TRUST_X, TRUST_Y] {
            let trust = OdsCode::parse(trust).expect("ods");
            parts.push(format!("{:?}", app.store.last_check(&nhs, &trust).await));
        }
    }
    for ods in [COUNCIL_A, COUNCIL_B] {
        let ods = OdsCode::parse(ods).expect("ods");
        parts.push(format!("{:?}", app.store.authority(&ods).await));
        parts.push(format!(
            "{:?}",
            app.store
                .ledger_head(&ods)
                .await
                .map(|h| h.map(|h| h.sequence))
        ));
        parts.push(format!(
            "{:?}",
            app.store.notifications(&ods, None, 100).await
        ));
    }
    parts.push(format!("{:?}", app.queue.sent()));
    parts.join("\n")
}

fn is_error_body_for(method: &str, path: &str, reply: &Reply) -> bool {
    // A HEAD answer has no body (axum drops it): its type tells the dialect.
    if method == "HEAD" {
        let fhir = reply.content_type().starts_with("application/fhir+json");
        let problem = reply.content_type() == "application/problem+json";
        return reply.text.is_empty()
            && if path.starts_with("/FHIR") {
                fhir
            } else {
                problem
            };
    }
    if path.starts_with("/FHIR") {
        reply.json["resourceType"] == "OperationOutcome"
    } else {
        reply.content_type() == "application/problem+json"
            && reply.json["status"] == reply.status.as_u16()
    }
}

#[tokio::test]
async fn every_route_answers_every_method_and_kind_of_caller_as_documented() {
    // The table covers exactly the served routes: a new route needs a row.
    let served: BTreeSet<(&str, &str)> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
    let written: BTreeSet<(&str, &str)> = EXPECTED.iter().map(|(m, p, _)| (*m, *p)).collect();
    assert_eq!(
        served, written,
        "the expected table and the route table differ"
    );
    assert_eq!(EXPECTED.len(), written.len(), "a route is listed twice");

    let paths: BTreeSet<&str> = EXPECTED.iter().map(|(_, p, _)| *p).collect();
    let mut cells = 0;
    let mut denied = 0;
    // Refused cells change nothing (checked below), so they share one seed.
    let (shared, shared_asn) = seeded(FULL).await;
    for (method, path) in paths
        .iter()
        .flat_map(|p| METHODS.iter().map(move |m| (m, p)))
    {
        let listed = EXPECTED.iter().find(|(m, p, _)| m == method && p == path);
        let row = listed.map_or([NOT_ALLOWED; 7], |(_, _, row)| *row);
        for (who, expected) in EVERYONE.iter().zip(&row) {
            // A fresh seed per listed cell: no cell's write can change another's answer.
            let fresh = if listed.is_some() {
                Some(seeded(FULL).await)
            } else {
                None
            };
            let (app, asn) = match &fresh {
                Some((app, asn)) => (app, asn.clone()),
                None => (&shared, shared_asn.clone()),
            };
            let asn = asn.expect("council A has an ASN");
            let before_state = fingerprint(app).await;
            let before_audit = app.audit().await.len();
            let reply = app
                .send(request_for(method, path, &asn, who.token(app).as_deref()))
                .await;
            let at = format!("{method} {path} as {who:?}");
            assert_eq!(reply.status.as_u16(), expected.0, "{at}: {}", reply.text);

            let audit = app.audit().await;
            let new_events = &audit[before_audit..];
            let outcomes: Vec<AuditOutcome> = new_events.iter().map(|e| e.outcome).collect();
            assert_eq!(outcomes, Vec::from_iter(expected.1), "{at}: audit");
            for event in new_events {
                assert_eq!(event.trace_id, reply.request_id(), "{at}");
            }

            if *expected == NOT_ALLOWED {
                let allow = reply.headers.get("allow").and_then(|v| v.to_str().ok());
                let listed: Vec<&str> = EXPECTED
                    .iter()
                    .filter(|(_, p, _)| p == path)
                    .map(|(m, _, _)| *m)
                    .collect();
                assert_eq!(allow, Some(listed.join(", ").as_str()), "{at}: Allow");
            }
            if expected.0 >= 400 {
                denied += 1;
                assert!(
                    is_error_body_for(method, path, &reply),
                    "{at}: {}",
                    reply.text
                );
                assert_no_nhs_number(&reply.text);
                assert_eq!(
                    fingerprint(app).await,
                    before_state,
                    "{at}: a refused request changed something"
                );
            }
            // The same fingerprint does see an admitted write (so the check
            // above can fail).
            let write = matches!(
                (*method, *path),
                ("POST", "/v1/uploads")
                    | ("PUT", "/v1/authority")
                    | ("POST", "/v1/notifications/{id}/ack")
            );
            if write && expected.0 == 200 {
                assert_ne!(
                    fingerprint(app).await,
                    before_state,
                    "{at}: the write left no trace"
                );
            }
            if expected.1 == Some(AuditOutcome::Denied) && expected.0 == 200 {
                // Hidden: exactly the answer for a child with no history.
                let empty = if path.starts_with("/FHIR") {
                    reply.json["total"] == 0
                } else {
                    reply.json == json!({ "access_history": [] })
                };
                assert!(empty, "{at}: {}", reply.text);
            }
            if let Some((other_council, other_child)) = who.foreign() {
                assert!(
                    !reply.text.contains(other_council) && !reply.text.contains(other_child),
                    "{at}: another council's data leaked: {}",
                    reply.text
                );
            }
            cells += 1;
        }
    }
    assert_eq!(cells, paths.len() * METHODS.len() * EVERYONE.len());
    println!(
        "BOLA matrix: {} paths x {} methods x {} kinds of caller = {cells} cells ({} routes), {denied} refusals, 0 mismatches",
        paths.len(),
        METHODS.len(),
        EVERYONE.len(),
        ROUTES.len()
    );
}

/// Status, content type, body without `instance`, and headers without the
/// request id: everything a caller could compare.
fn observable(reply: &Reply) -> (u16, String, Value, Vec<(String, String)>) {
    let (status, content_type, body) = comparable(reply);
    let headers = reply
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != "x-request-id")
        .map(|(name, value)| {
            (
                name.to_string(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (status, content_type, body, headers)
}

fn assert_indistinguishable(what: &str, theirs: &Reply, missing: &Reply) {
    assert_eq!(
        observable(theirs),
        observable(missing),
        "{what}: council B can tell council A's object from a missing one"
    );
    for council_a_data in [COUNCIL_A, CHILD_1, CHILD_3] {
        assert!(
            !theirs.text.contains(council_a_data),
            "{what}: {}",
            theirs.text
        );
    }
}

#[tokio::test]
async fn another_councils_objects_are_answered_exactly_as_missing_ones() {
    let b = council(COUNCIL_B);
    let unknown_asn = "0b9d0c2e-1111-4222-8333-444455556666";
    let mut compared = 0;
    // B with and without data of its own; no checks, so B's inbox holds no
    // ids that would differ from world to world.
    for council_b in [true, false] {
        let with_a = Seed {
            council_a: true,
            council_b,
            checks: false,
        };
        let without_a = Seed {
            council_a: false,
            ..with_a
        };
        let (world, _) = seeded(with_a).await;
        let (empty, _) = seeded(without_a).await;

        // Council A's ASN: made by a check in A's world only.
        let doctor = Who::ClinicianB0107.claims().expect("claims");
        world.check(&doctor, CHILD_1, true).await;
        let a = council(COUNCIL_A);
        let inbox = world
            .call(Method::GET, "/v1/notifications", Some(&a), None)
            .await;
        let asn = inbox.json["notifications"][0]["id"]
            .as_str()
            .expect("A's ASN")
            .to_owned();
        // Council A's page cursor (A holds two plans).
        let page = world
            .call(Method::GET, "/v1/plans?limit=1", Some(&a), None)
            .await;
        let cursor = page.json["next_cursor"]
            .as_str()
            .expect("a cursor")
            .to_owned();

        let b_sequence = if council_b { 2 } else { 1 };
        let requests: Vec<(&str, Method, String, Option<Value>)> = vec![
            ("plans list", Method::GET, "/v1/plans".into(), None),
            (
                "plans list with council A's cursor",
                Method::GET,
                format!("/v1/plans?cursor={cursor}"),
                None,
            ),
            ("authority", Method::GET, "/v1/authority".into(), None),
            (
                "notifications list",
                Method::GET,
                "/v1/notifications".into(),
                None,
            ),
            (
                "notification read",
                Method::GET,
                format!("/v1/notifications/{asn}"),
                None,
            ),
            (
                "notification ack",
                Method::POST,
                format!("/v1/notifications/{asn}/ack"),
                None,
            ),
            (
                "history of council A's child",
                Method::POST,
                "/v1/history".into(),
                Some(json!({ "nhs_number": CHILD_1 })),
            ),
            (
                "withdrawal of council A's plan",
                Method::POST,
                "/v1/uploads".into(),
                Some(json!({
                    "sequence": b_sequence, "mode": "delta", "records": [],
                    "withdrawals": [{ "nhs_number": CHILD_1, "plan_type": "CPP", "start_date": "2025-06-01" }]
                })),
            ),
        ];
        for (what, method, path, body) in requests {
            let theirs = world
                .call(method.clone(), &path, Some(&b), body.clone())
                .await;
            let missing = empty.call(method, &path, Some(&b), body).await;
            assert_indistinguishable(what, &theirs, &missing);
            compared += 1;
        }

        // In the same world: A's ASN id against an id nobody holds, and A's
        // child against a child nobody holds.
        for suffix in ["", "/ack"] {
            let method = if suffix.is_empty() {
                Method::GET
            } else {
                Method::POST
            };
            let theirs = world
                .call(
                    method.clone(),
                    &format!("/v1/notifications/{asn}{suffix}"),
                    Some(&b),
                    None,
                )
                .await;
            let missing = world
                .call(
                    method,
                    &format!("/v1/notifications/{unknown_asn}{suffix}"),
                    Some(&b),
                    None,
                )
                .await;
            theirs.assert_problem(404, "NOT_FOUND");
            assert_indistinguishable("ASN id against an unknown id", &theirs, &missing);
            compared += 1;
        }
        // History, for council B and for care settings that never checked the child.
        let outsiders = [
            b.clone(),
            clinician("dr-170", TRUST_Y, "B0170"),
            system("pas-1", TRUST_Y, "B0107"),
        ];
        for caller in &outsiders {
            let history = |child: &str| {
                world.call(
                    Method::POST,
                    "/v1/history",
                    Some(caller),
                    Some(json!({ "nhs_number": child })),
                )
            };
            let theirs = history(CHILD_1).await;
            let missing = history(CHILD_UNKNOWN).await;
            assert_indistinguishable("history against an unknown child", &theirs, &missing);
            compared += 1;
        }

        // Council A's objects are as they were.
        let a_view = world
            .call(
                Method::GET,
                &format!("/v1/notifications/{asn}"),
                Some(&a),
                None,
            )
            .await;
        assert_eq!(a_view.json["acknowledged"], false, "B acknowledged A's ASN");
        let a_plans = world.call(Method::GET, "/v1/plans", Some(&a), None).await;
        assert_eq!(a_plans.json["plans"].as_array().map(Vec::len), Some(2));
        let a_authority = world
            .call(Method::GET, "/v1/authority", Some(&a), None)
            .await;
        assert_eq!(a_authority.json["ods_code"], COUNCIL_A);
    }
    println!("BOLA indistinguishability: {compared} comparisons, 0 differences");
}
