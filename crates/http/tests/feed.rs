//! Feed freshness (issue 17, finding 7): `GET /v1/authority` tells a council
//! when its last accepted full snapshot arrived and how long ago. Deltas,
//! replays and snapshots that loaded nothing do not count; another
//! council's feed is its own.

mod common;

use axum::http::Method;
use common::*;
use cpis_domain::Clock;
use serde_json::{json, Value};
use time::Duration;

async fn send_upload(app: &TestApp, ods: &str, body: Value) -> Reply {
    app.call(Method::POST, "/v1/uploads", Some(&council(ods)), Some(body))
        .await
}

async fn feed(app: &TestApp, ods: &str) -> Value {
    let reply = app
        .call(Method::GET, "/v1/authority", Some(&council(ods)), None)
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    reply.json["feed"].clone()
}

fn full(sequence: u64, records: Value) -> Value {
    json!({ "sequence": sequence, "mode": "full", "records": records })
}

#[tokio::test]
async fn a_council_sees_how_long_ago_its_last_accepted_full_snapshot_arrived() {
    let app = TestApp::new();
    app.put_authority(COUNCIL_A).await;
    app.put_authority(COUNCIL_B).await;
    assert_eq!(
        feed(&app, COUNCIL_A).await,
        json!({ "last_full_snapshot_at": null, "seconds_since_last_full_snapshot": null })
    );

    // A delta is not the feed arriving.
    let reply = send_upload(
        &app,
        COUNCIL_A,
        json!({ "sequence": 1, "mode": "delta", "records": [plan(CHILD_1, "CPP", "2025-09-01")] }),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(
        feed(&app, COUNCIL_A).await["last_full_snapshot_at"],
        Value::Null
    );

    // An accepted full snapshot is.
    let sent_at = app.clock.now();
    let snapshot = full(2, json!([plan(CHILD_1, "CPP", "2025-09-01")]));
    let reply = send_upload(&app, COUNCIL_A, snapshot.clone()).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    app.clock.advance(Duration::hours(50));
    assert_eq!(
        feed(&app, COUNCIL_A).await,
        json!({
            "last_full_snapshot_at": sent_at.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "seconds_since_last_full_snapshot": 50 * 3600
        })
    );

    // Replayed, or loading nothing, it is not.
    let reply = send_upload(&app, COUNCIL_A, snapshot).await;
    assert_eq!(reply.headers.get("x-cpis-replayed").unwrap(), "true");
    let reply = send_upload(
        &app,
        COUNCIL_A,
        full(3, json!([plan("9990000019", "CPP", "2025-09-01")])),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(reply.json["file_outcome"], "CPF04", "{}", reply.text);
    assert_eq!(
        feed(&app, COUNCIL_A).await["seconds_since_last_full_snapshot"],
        50 * 3600
    );

    // The other council has had none.
    assert_eq!(
        feed(&app, COUNCIL_B).await["last_full_snapshot_at"],
        Value::Null
    );

    // A partly rejected snapshot still counts: the feed arrived.
    let reply = send_upload(
        &app,
        COUNCIL_A,
        full(
            4,
            json!([
                plan(CHILD_1, "CPP", "2025-09-01"),
                plan("9990000019", "CPP", "2025-09-01")
            ]),
        ),
    )
    .await;
    assert_eq!(reply.json["file_outcome"], "CPF03", "{}", reply.text);
    assert_eq!(
        feed(&app, COUNCIL_A).await["seconds_since_last_full_snapshot"],
        0
    );
}
