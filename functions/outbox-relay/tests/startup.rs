//! Start-up (issue 15): a missing or malformed `CPIS_*` variable stops the
//! cold start with exactly one JSON error line naming it, never its value,
//! and a non-zero exit; run on the function's real binary.

use cpis_lambda::testing::{startup_failure, variable_named};

const BINARY: &str = env!("CARGO_BIN_EXE_outbox-relay");
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
fn the_queue_is_required_and_a_malformed_threshold_named() {
    let line = startup_failure(BINARY, &with(&[]));
    assert_eq!(variable_named(&line), "CPIS_ASN_QUEUE_URL", "{line}");
    let line = startup_failure(
        BINARY,
        &with(&[
            ("CPIS_ASN_QUEUE_URL", "http://127.0.0.1:1/q"),
            ("CPIS_FEED_STALE_AFTER_HOURS", "9999"),
        ]),
    );
    assert_eq!(
        variable_named(&line),
        "CPIS_FEED_STALE_AFTER_HOURS",
        "{line}"
    );
}
