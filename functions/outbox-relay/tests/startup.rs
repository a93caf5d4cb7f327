//! Start-up (issue 15): a missing or malformed `CPIS_*` variable, or a
//! missing region or credential variable, stops the cold start with exactly one JSON error line naming it, never its value,
//! and a non-zero exit; run on the function's real binary.

use cpis_lambda::testing::{assert_startup_refusals, with_tables};

#[test]
fn a_missing_or_malformed_variable_is_one_json_error_line_naming_it() {
    let queue = ("CPIS_ASN_QUEUE_URL", "http://127.0.0.1:1/q");
    let topics = ("CPIS_SNS_TOPIC_ARN_PREFIX", "arn:aws:sns:eu-west-2:1:cpis-");
    let region = ("AWS_REGION", "eu-west-2");
    let key_id = ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    let cases = [
        (vec![], "CPIS_TABLE_NAME"),
        (with_tables(&[]), "CPIS_ASN_QUEUE_URL"),
        (with_tables(&[queue]), "CPIS_SNS_TOPIC_ARN_PREFIX"),
        (
            with_tables(&[queue, ("CPIS_FEED_STALE_AFTER_HOURS", "9999")]),
            "CPIS_FEED_STALE_AFTER_HOURS",
        ),
        // Every setting of its own valid: the region and the execution
        // role's credentials the Lambda runtime sets are read at init too.
        (with_tables(&[queue, topics]), "AWS_REGION"),
        (with_tables(&[queue, topics, region]), "AWS_ACCESS_KEY_ID"),
        (
            with_tables(&[queue, topics, region, key_id]),
            "AWS_SECRET_ACCESS_KEY",
        ),
    ];
    assert_startup_refusals(env!("CARGO_BIN_EXE_outbox-relay"), &cases);
}
