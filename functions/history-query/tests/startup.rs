//! Start-up (issue 15): a missing or malformed `CPIS_*` variable stops the
//! cold start with exactly one JSON error line naming it, never its value,
//! and a non-zero exit; run on the function's real binary.

use cpis_lambda::testing::{api_startup_cases, assert_startup_refusals};

#[test]
fn a_missing_or_malformed_variable_is_one_json_error_line_naming_it() {
    assert_startup_refusals(env!("CARGO_BIN_EXE_history-query"), &api_startup_cases(&[]));
}
