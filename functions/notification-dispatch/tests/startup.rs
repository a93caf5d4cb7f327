//! Start-up (issue 15): a missing or malformed `CPIS_*` variable stops the
//! cold start with exactly one JSON error line naming it, never its value,
//! and a non-zero exit; run on the function's real binary.

use cpis_lambda::testing::{
    assert_startup_refusals, moto_env, startup_failure, variable_named, with_tables,
};

#[test]
fn a_missing_or_malformed_variable_is_one_json_error_line_naming_it() {
    let topics = ("CPIS_SNS_TOPIC_ARN_PREFIX", "arn:aws:sns:eu-west-2:1:");
    let view = ("CPIS_VIEW_URL", "https://cpis.example.org/n");
    let mesh_url = ("CPIS_MESH_URL", "https://mesh.example.nhs.uk");
    let mesh_secret = (
        "CPIS_MESH_SECRET_ARN",
        "arn:aws:secretsmanager:eu-west-2:1:secret:m",
    );
    let cases = [
        (vec![], "CPIS_TABLE_NAME"),
        (with_tables(&[view]), "CPIS_SNS_TOPIC_ARN_PREFIX"),
        (with_tables(&[topics]), "CPIS_VIEW_URL"),
        // MESH: both or neither, and a workflow id that is a header value.
        (
            with_tables(&[topics, view, mesh_url]),
            "CPIS_MESH_SECRET_ARN",
        ),
        (with_tables(&[topics, view, mesh_secret]), "CPIS_MESH_URL"),
        (
            with_tables(&[
                topics,
                view,
                mesh_secret,
                mesh_url,
                ("CPIS_MESH_WORKFLOW_ASN", "CPIS ASN"),
            ]),
            "CPIS_MESH_WORKFLOW_ASN",
        ),
    ];
    assert_startup_refusals(env!("CARGO_BIN_EXE_notification-dispatch"), &cases);
}

#[test]
fn a_mesh_secret_that_cannot_be_read_stops_the_start_naming_its_variable() {
    let aws = moto_env(cpis_aws::moto::endpoint());
    let mut vars: Vec<(&str, &str)> = with_tables(&[
        (
            "CPIS_SNS_TOPIC_ARN_PREFIX",
            "arn:aws:sns:eu-west-2:123456789012:cpis-la-",
        ),
        ("CPIS_VIEW_URL", "https://cpis.example.org/n"),
        ("CPIS_MESH_URL", "http://127.0.0.1:9"),
        (
            "CPIS_MESH_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-2:123456789012:secret:cpis-no-such-mesh-secret-AbCdEf",
        ),
    ]);
    vars.extend(aws.iter().map(|(k, v)| (*k, v.as_str())));
    let line = startup_failure(env!("CARGO_BIN_EXE_notification-dispatch"), &vars);
    assert_eq!(variable_named(&line), "CPIS_MESH_SECRET_ARN", "{line}");
}
