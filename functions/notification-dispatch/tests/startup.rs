//! Start-up (issue 15): a missing or malformed `CPIS_*` variable stops the
//! cold start with exactly one JSON error line naming it, never its value,
//! and a non-zero exit; run on the function's real binary.

use cpis_lambda::testing::{assert_startup_refusals, with_tables};

#[test]
fn a_missing_or_malformed_variable_is_one_json_error_line_naming_it() {
    let topics = ("CPIS_SNS_TOPIC_ARN_PREFIX", "arn:aws:sns:eu-west-2:1:");
    let view = ("CPIS_VIEW_URL", "https://cpis.example.org/n");
    let cases = [
        (vec![], "CPIS_TABLE_NAME"),
        (with_tables(&[view]), "CPIS_SNS_TOPIC_ARN_PREFIX"),
        (with_tables(&[topics]), "CPIS_VIEW_URL"),
    ];
    assert_startup_refusals(env!("CARGO_BIN_EXE_notification-dispatch"), &cases);
}
