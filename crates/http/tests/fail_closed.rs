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

/// A handler whose typed caller disagrees with its route's spec (here one
/// taking a council on the clinicians' check route) is never served: the
/// extractor refuses with 500 in the route's dialect.
#[tokio::test]
async fn a_handler_taking_a_caller_its_spec_does_not_admit_is_never_served() {
    let app = TestApp::new();
    let served = |_: cpis_http::caller::Council| async { "served" };
    let router = cpis_http::finish(
        axum::Router::new()
            .route(
                cpis_http::routes::CHECK.path,
                cpis_http::endpoint(&app.state(), &cpis_http::routes::CHECK, served),
            )
            .with_state(app.state()),
    );
    let token = app.token(&clinician("dr-1", "RJ1", "B0107"));
    let reply = send_to(
        &router,
        request(Method::POST, "/v1/checks", Some(&token), None),
    )
    .await;
    reply.assert_problem(500, "INTERNAL_ERROR");
    assert!(!reply.text.contains("served"));
}

/// A route added without [`cpis_http::endpoint`] (so with no spec bound and
/// no authentication) is refused by the route-table gate when its path is
/// not in the table, and by method when it is.
#[tokio::test]
async fn a_route_built_around_the_table_is_refused() {
    let open = || async { "served" };
    let router = cpis_http::finish(
        axum::Router::new()
            .route("/v1/unlisted", axum::routing::get(open))
            .route("/v1/checks", axum::routing::get(open)),
    );
    for path in ["/v1/unlisted", "/v1/checks"] {
        let reply = send_to(&router, request(Method::GET, path, None, None)).await;
        assert_eq!(reply.status, 405, "{path}");
        assert!(!reply.text.contains("served"), "{path}");
    }
}
