//! Issue 18: a path outside the route table is 404 in its dialect for every
//! method and caller, reaches no handler and writes no audit event.

mod common;

use axum::http::Method;
use common::*;

#[tokio::test]
async fn unknown_paths_are_404_in_their_dialect_for_every_method_and_caller() {
    let app = TestApp::new();
    let callers = [
        None,
        Some(council(COUNCIL_A)),
        Some(clinician("dr-1", TRUST_X, "B0107")),
    ];
    let mut cells = 0;
    for path in [
        "/",
        "/v1/nowhere",
        "/v1/plans/extra",
        "/FHIR/R4/Patient",
        "/FHIR/R4/CareTeam/1",
    ] {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            for claims in &callers {
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let reply = app.call(method.clone(), path, claims.as_ref(), None).await;
                let at = format!("{method} {path} as {claims:?}");
                assert_eq!(reply.status.as_u16(), 404, "{at}: {}", reply.text);
                let fhir = path.starts_with("/FHIR/");
                let expected_type = if fhir {
                    "application/fhir+json"
                } else {
                    "application/problem+json"
                };
                assert!(
                    reply.content_type().starts_with(expected_type),
                    "{at}: {}",
                    reply.content_type()
                );
                if method != Method::HEAD {
                    if fhir {
                        assert_eq!(reply.json["resourceType"], "OperationOutcome", "{at}");
                    } else {
                        assert_eq!(reply.json["code"], "NOT_FOUND", "{at}");
                    }
                }
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 5 * 7 * 3);
    assert!(app.audit().await.is_empty(), "an unknown path was audited");
}
