//! "Today" is the UK civil date (issue 17, finding 3): at 00:30 on the first
//! and last days of British Summer Time and on an ordinary summer night, an
//! upload accepts a plan starting today, and the JSON check and the FHIR
//! CareTeam search hide a plan on its delete date and on day 366 after its
//! end, and call a plan that ended yesterday `inactive`. With the UTC date
//! (the old rule) the BST nights below fail: from 00:00 to 01:00 BST the UTC
//! date is yesterday's.
//!
//! Each night is written as UK wall-clock time with the offset the law gives
//! it, so nothing here depends on the machine's time zone (run it with
//! `TZ=UTC`).

mod common;

use axum::http::Method;
use common::*;
use serde_json::{json, Value};
use time::macros::datetime;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// 00:30 in the UK on each night, and that night's UK date.
fn nights() -> [(OffsetDateTime, &'static str); 5] {
    [
        // First day of BST: 00:30 is still GMT (the clocks go forward at 01:00 GMT).
        (datetime!(2026-03-29 00:30 +0), "2026-03-29"),
        // The first night in BST: 23:30 UTC on the 29th.
        (datetime!(2026-03-30 00:30 +1), "2026-03-30"),
        // An ordinary summer night.
        (datetime!(2026-07-15 00:30 +1), "2026-07-15"),
        // Last day of BST: 00:30 BST is 23:30 UTC on the 24th.
        (datetime!(2026-10-25 00:30 +1), "2026-10-25"),
        // The first night back in GMT.
        (datetime!(2026-10-26 00:30 +0), "2026-10-26"),
    ]
}

fn iso(date: Date) -> String {
    date.to_string()
}

fn plan_types(plans: &Value) -> Vec<String> {
    plans
        .as_array()
        .map(|plans| {
            plans
                .iter()
                .map(|p| p["plan_type"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// CareTeam statuses by plan type code, in bundle order.
fn care_teams(bundle: &Value) -> Vec<(String, String)> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let team = &e["resource"];
                    (
                        team["category"][0]["coding"][0]["code"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                        team["status"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn today_is_the_uk_date_for_upload_check_and_fhir_at_half_past_midnight() {
    for (night, uk_today) in nights() {
        let at = night.to_offset(UtcOffset::UTC);
        let today: Date = Date::parse(
            uk_today,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .unwrap();
        let yesterday = today - Duration::days(1);
        let app = TestApp::new();
        app.put_authority(COUNCIL_A).await;

        // Two days earlier, the plans whose visibility ends around "today".
        app.clock.set(at - Duration::days(2));
        app.upload(
            COUNCIL_A,
            1,
            json!([
                // Ended yesterday: shown, but no longer active.
                {"nhs_number": CHILD_1, "plan_type": "LAC", "start_date": "2024-01-10",
                 "end_date": iso(yesterday)},
                // Deleted from today.
                {"nhs_number": CHILD_2, "plan_type": "CPP", "start_date": "2024-01-10",
                 "delete_date": uk_today},
                // Today is day 366 after its end: hidden.
                {"nhs_number": CHILD_3, "plan_type": "CPP", "start_date": "2024-01-10",
                 "end_date": iso(today - Duration::days(366))},
                // Today is day 365 after its end: the last day it is shown.
                {"nhs_number": CHILD_4, "plan_type": "CPP", "start_date": "2024-01-10",
                 "end_date": iso(today - Duration::days(365))},
            ]),
        )
        .await;

        // 00:30 in the UK: a plan starting today is accepted and stored.
        app.clock.set(at);
        let ack = app
            .upload(COUNCIL_A, 2, json!([plan(CHILD_1, "CPP", uk_today)]))
            .await;
        assert_eq!(ack.json["loaded"], 1, "{uk_today}: {}", ack.text);
        assert_eq!(ack.json["rejected"], 0, "{uk_today}: {}", ack.text);
        assert!(
            ack.json["records"][0].get("detail").is_none(),
            "{uk_today}: {}",
            ack.text
        );

        let doctor = clinician("dr-1", TRUST_X, "B0170");
        let expect = [
            (CHILD_1, vec!["CPP", "LAC"]),
            (CHILD_2, vec![]),
            (CHILD_3, vec![]),
            (CHILD_4, vec!["CPP"]),
        ];
        for (child, shown) in &expect {
            let reply = app.check(&doctor, child, false).await;
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
            let mut types = plan_types(&reply.json["plans"]);
            types.sort();
            assert_eq!(&types, shown, "{uk_today}: JSON check of a child");
        }

        let reply = app
            .fhir(
                &format!("/FHIR/R4/CareTeam{}", patient_query(NHS_SYSTEM, CHILD_1)),
                Some(&doctor),
                Some("false"),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        let mut teams = care_teams(&reply.json);
        teams.sort();
        assert_eq!(
            teams,
            vec![
                ("CPP".to_owned(), "active".to_owned()),
                ("LAC".to_owned(), "inactive".to_owned())
            ],
            "{uk_today}: FHIR CareTeam"
        );
        for child in [CHILD_2, CHILD_3] {
            let reply = app
                .fhir(
                    &format!("/FHIR/R4/CareTeam{}", patient_query(NHS_SYSTEM, child)),
                    Some(&doctor),
                    Some("false"),
                )
                .await;
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
            assert_eq!(reply.json["total"], 0, "{uk_today}: FHIR CareTeam");
        }

        // The council's own listing agrees: nothing was refused as in the future.
        let plans = app
            .call(Method::GET, "/v1/plans", Some(&council(COUNCIL_A)), None)
            .await;
        assert_eq!(plans.status.as_u16(), 200, "{}", plans.text);
    }
}

#[tokio::test]
async fn a_plan_starting_tomorrow_in_the_uk_is_still_refused() {
    // The other side of the boundary: at 23:30 BST on 24 October (22:30 UTC)
    // the 25th is tomorrow in the UK, and a plan starting then is refused.
    let app = TestApp::new();
    app.clock
        .set(datetime!(2026-10-24 23:30 +1).to_offset(UtcOffset::UTC));
    let reply = app
        .call(
            Method::POST,
            "/v1/uploads",
            Some(&council(COUNCIL_A)),
            Some(json!({ "sequence": 1, "mode": "delta",
                         "records": [plan(CHILD_1, "CPP", "2026-10-25")] })),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(reply.json["loaded"], 0, "{}", reply.text);
    assert_eq!(
        reply.json["records"][0]["detail"], "START_DATE_IN_FUTURE",
        "{}",
        reply.text
    );
}
