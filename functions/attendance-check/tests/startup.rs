//! Start-up (issue 15): a missing or malformed `CPIS_*` variable stops the
//! cold start with exactly one JSON error line naming it, never its value,
//! and a non-zero exit; run on the function's real binary.

use cpis_lambda::testing::{api_startup_cases, assert_startup_refusals, with_tables, SECRET_ARN};

#[test]
fn a_missing_or_malformed_variable_is_one_json_error_line_naming_it() {
    let mut cases = api_startup_cases(&[("CPIS_ASN_QUEUE_URL", "http://127.0.0.1:1/q")]);
    cases.push((with_tables(&[SECRET_ARN]), "CPIS_ASN_QUEUE_URL"));
    assert_startup_refusals(env!("CARGO_BIN_EXE_attendance-check"), &cases);
}
