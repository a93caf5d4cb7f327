//! Start-up (issue 15): a missing or malformed `CPIS_*` variable stops the
//! cold start with exactly one JSON error line naming it, never its value,
//! and a non-zero exit; run on the function's real binary.

use cpis_lambda::testing::{startup_failure, variable_named};

const BINARY: &str = env!("CARGO_BIN_EXE_attendance-check");
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
fn no_pseudonymisation_key_names_the_secret_variable() {
    let line = startup_failure(
        BINARY,
        &with(&[("CPIS_ASN_QUEUE_URL", "http://127.0.0.1:1/q")]),
    );
    assert_eq!(variable_named(&line), "CPIS_PSEUDONYM_SECRET_ARN", "{line}");
}

#[test]
fn a_malformed_key_is_named_and_never_printed() {
    // Not hex: the value must not reach the log (it would be the key).
    let key = "zz-not-a-key-but-it-could-have-been-one-zz";
    let line = startup_failure(
        BINARY,
        &with(&[
            ("CPIS_ASN_QUEUE_URL", "http://127.0.0.1:1/q"),
            ("CPIS_PSEUDONYM_KEY", key),
        ]),
    );
    assert_eq!(variable_named(&line), "CPIS_PSEUDONYM_KEY", "{line}");
}

#[test]
fn a_malformed_number_is_named() {
    let line = startup_failure(
        BINARY,
        &with(&[
            ("CPIS_ASN_QUEUE_URL", "http://127.0.0.1:1/q"),
            (
                "CPIS_PSEUDONYM_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-2:1:secret:k",
            ),
            ("CPIS_VISIBILITY_TAIL_DAYS", "a year"),
        ]),
    );
    assert_eq!(variable_named(&line), "CPIS_VISIBILITY_TAIL_DAYS", "{line}");
}

#[test]
fn the_queue_is_required() {
    let line = startup_failure(
        BINARY,
        &with(&[(
            "CPIS_PSEUDONYM_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-2:1:secret:k",
        )]),
    );
    assert_eq!(variable_named(&line), "CPIS_ASN_QUEUE_URL", "{line}");
}
