//! Issue 18: FHIR searches as the spec says. Unknown parameters are ignored
//! by default and refused under `Prefer: handling=strict`; the searchset's
//! `self` link names only what was applied; a client that accepts only XML
//! gets 406, not JSON it did not ask for.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request};
use common::*;
use cpis_domain::{AuditAction, AuditOutcome};
use serde_json::json;

async fn seed(app: &TestApp) {
    app.put_authority(COUNCIL_A).await;
    app.upload(COUNCIL_A, 1, json!([plan(CHILD_1, "CPP", "2025-06-01")]))
        .await;
}

async fn search(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let token = app.token(&clinician("dr-1", TRUST_X, "B0107"));
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("IsUnscheduledAccessEvent", "false");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    app.send(builder.body(Body::empty()).unwrap()).await
}

fn applied(resource: &str) -> String {
    format!("/FHIR/R4/{resource}{}", patient_query(NHS_SYSTEM, CHILD_1))
}

#[tokio::test]
async fn unknown_search_parameters_are_ignored_and_the_self_link_shows_only_what_was_applied() {
    let app = TestApp::new();
    seed(&app).await;
    for resource in ["CareTeam", "Flag", "AuditEvent"] {
        let plain = search(&app, &applied(resource), &[]).await;
        let extra = format!(
            "{}&status=inactive&_count=1&_format=json",
            applied(resource)
        );
        let reply = search(&app, &extra, &[]).await;
        assert_eq!(reply.status.as_u16(), 200, "{resource}: {}", reply.text);
        assert_eq!(reply.json["resourceType"], "Bundle");
        assert_eq!(reply.json["total"], plain.json["total"], "{resource}");
        let links = reply.json["link"].as_array().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0]["relation"], "self");
        assert_eq!(links[0]["url"], applied(resource), "{resource}");
        assert_eq!(plain.json["link"], reply.json["link"]);
    }
    // The CareTeam still shows the active plan: status=inactive was not applied.
    let reply = search(
        &app,
        &format!("{}&status=inactive", applied("CareTeam")),
        &[],
    )
    .await;
    assert_eq!(reply.json["total"], 1);
}

#[tokio::test]
async fn unknown_search_parameters_under_strict_handling_are_a_400_outcome_and_nothing_happens() {
    let app = TestApp::new();
    seed(&app).await;
    for resource in ["CareTeam", "Flag", "AuditEvent"] {
        let before = app.audit().await.len();
        let path = format!("{}&status=inactive", applied(resource));
        for prefer in [
            "handling=strict",
            "return=minimal, handling=strict",
            "HANDLING=STRICT",
        ] {
            let reply = search(&app, &path, &[("prefer", prefer)]).await;
            assert_eq!(
                reply.status.as_u16(),
                400,
                "{resource} {prefer}: {}",
                reply.text
            );
            assert_eq!(reply.json["resourceType"], "OperationOutcome");
            assert_eq!(reply.json["issue"][0]["code"], "invalid");
            assert_no_nhs_number(&reply.text);
        }
        let audit = app.audit().await;
        assert_eq!(audit.len(), before + 3, "{resource}");
        assert!(audit[before..]
            .iter()
            .all(|e| e.outcome == AuditOutcome::Invalid && e.subject.is_none()));
        // Strict handling with only known parameters is answered.
        let reply = search(&app, &applied(resource), &[("prefer", "handling=strict")]).await;
        assert_eq!(reply.status.as_u16(), 200, "{resource}: {}", reply.text);
    }
    assert!(app.queue.sent().is_empty());
    assert!(app
        .audit()
        .await
        .iter()
        .all(|e| e.action != AuditAction::Upload || e.outcome == AuditOutcome::Allowed));
}

#[tokio::test]
async fn a_client_accepting_only_xml_gets_406_and_nothing_happens() {
    let app = TestApp::new();
    seed(&app).await;
    for resource in ["CareTeam", "Flag", "AuditEvent", "metadata"] {
        let path = if resource == "metadata" {
            "/FHIR/R4/metadata".to_owned()
        } else {
            applied(resource)
        };
        for accept in [
            "application/fhir+xml",
            "application/xml, text/xml",
            "application/fhir+json;q=0, application/fhir+xml",
        ] {
            let reply = search(&app, &path, &[("accept", accept)]).await;
            assert_eq!(
                reply.status.as_u16(),
                406,
                "{resource} {accept}: {}",
                reply.text
            );
            assert_eq!(reply.json["resourceType"], "OperationOutcome");
            assert!(reply.content_type().starts_with("application/fhir+json"));
        }
        let xml = search(
            &app,
            &format!(
                "{path}{}_format=xml",
                if resource == "metadata" { "?" } else { "&" }
            ),
            &[],
        )
        .await;
        assert_eq!(xml.status.as_u16(), 406, "{resource} _format=xml");
        for accept in [
            "application/fhir+json",
            "application/json",
            "*/*",
            "application/fhir+xml;q=0.9, application/fhir+json;q=0.5",
        ] {
            let reply = search(&app, &path, &[("accept", accept)]).await;
            assert_eq!(
                reply.status.as_u16(),
                200,
                "{resource} {accept}: {}",
                reply.text
            );
        }
    }
    assert!(app.queue.sent().is_empty());
}
