//! Start-up (issue 15): a missing or malformed `CPIS_*` variable stops the
//! cold start with exactly one JSON error line naming it, never its value,
//! and a non-zero exit; run on the function's real binary.

use cpis_lambda::testing::{startup_failure, variable_named};

const BINARY: &str = env!("CARGO_BIN_EXE_notification-dispatch");
const TABLES: [(&str, &str); 2] = [
    ("CPIS_TABLE_NAME", "service"),
    ("CPIS_AUDIT_TABLE_NAME", "audit"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut vars = TABLES.to_vec();
    vars.extend_from_slice(extra);
    vars
}

#[test]
fn an_empty_environment_names_the_first_missing_variable() {
    let line = startup_failure(BINARY, &[]);
    assert_eq!(variable_named(&line), "CPIS_TABLE_NAME", "{line}");
}

#[test]
fn the_topics_and_the_link_are_required() {
    let line = startup_failure(
        BINARY,
        &with(&[("CPIS_VIEW_URL", "https://cpis.example.org/n")]),
    );
    assert_eq!(variable_named(&line), "CPIS_SNS_TOPIC_ARN_PREFIX", "{line}");
    let line = startup_failure(
        BINARY,
        &with(&[("CPIS_SNS_TOPIC_ARN_PREFIX", "arn:aws:sns:eu-west-2:1:")]),
    );
    assert_eq!(variable_named(&line), "CPIS_VIEW_URL", "{line}");
}
