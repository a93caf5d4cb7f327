//! Start-up (issue 15's rule, kept for mesh-poll): a missing or malformed
//! `CPIS_*` variable, a MESH secret that cannot be read or used, or
//! credentials MESH refuses at the handshake stop the cold start with
//! exactly one JSON error line naming the variable (never its value, never
//! the secret's content) and a non-zero exit; run on the function's real
//! binary, against moto's Secrets Manager and the MESH sandbox.

use cpis_lambda::testing::mesh::{put_secret, sandbox_url, secret_json, CPIS_MAILBOX};
use cpis_lambda::testing::{
    assert_startup_refusals, moto_env, startup_failure, variable_named, with_tables,
};

const BINARY: &str = env!("CARGO_BIN_EXE_mesh-poll");
const URL: (&str, &str) = ("CPIS_MESH_URL", "https://mesh.example.nhs.uk");
const SECRET: (&str, &str) = (
    "CPIS_MESH_SECRET_ARN",
    "arn:aws:secretsmanager:eu-west-2:1:secret:mesh-AbCdEf",
);

#[test]
fn a_missing_or_malformed_variable_is_one_json_error_line_naming_it() {
    let cases = [
        (vec![], "CPIS_TABLE_NAME"),
        (with_tables(&[URL]), "CPIS_MESH_SECRET_ARN"),
        (with_tables(&[SECRET]), "CPIS_MESH_URL"),
        (
            with_tables(&[SECRET, ("CPIS_MESH_URL", "mesh.example.nhs.uk")]),
            "CPIS_MESH_URL",
        ),
        (
            with_tables(&[SECRET, URL, ("CPIS_MESH_WORKFLOW_UPLOAD", "LA UPLOAD")]),
            "CPIS_MESH_WORKFLOW_UPLOAD",
        ),
        (
            with_tables(&[SECRET, URL, ("CPIS_MESH_WORKFLOW_ACK", "CPIS_LA_UPLOAD")]),
            "CPIS_MESH_WORKFLOW_ACK",
        ),
        (
            with_tables(&[SECRET, URL, ("CPIS_VISIBILITY_TAIL_DAYS", "a year")]),
            "CPIS_VISIBILITY_TAIL_DAYS",
        ),
    ];
    assert_startup_refusals(BINARY, &cases);
}

/// Runs the binary with the tables, `url` and the secret `arn`; answers the
/// refusal's line, which must name the secret's variable and hold none of
/// `never`.
fn refused_with_secret(url: &str, arn: &str, never: &[&str]) -> serde_json::Value {
    let aws = moto_env(cpis_aws::moto::endpoint());
    let mut vars: Vec<(&str, &str)> = with_tables(&[]);
    vars.extend(aws.iter().map(|(k, v)| (*k, v.as_str())));
    vars.push(("CPIS_MESH_URL", url));
    vars.push(("CPIS_MESH_SECRET_ARN", arn));
    let line = startup_failure(BINARY, &vars);
    assert_eq!(variable_named(&line), "CPIS_MESH_SECRET_ARN", "{line}");
    let text = line.to_string();
    for secret in never {
        assert!(
            !text.contains(secret),
            "the secret's content is in the line: {text}"
        );
    }
    assert!(!text.contains(arn), "not even the secret's ARN: {text}");
    line
}

#[tokio::test]
async fn a_mesh_secret_that_cannot_be_read_or_used_is_refused_naming_its_variable() {
    let sdk = cpis_aws::moto::sdk_config().await;
    let url = "http://127.0.0.1:9";
    // No such secret.
    let missing =
        "arn:aws:secretsmanager:eu-west-2:123456789012:secret:cpis-no-such-mesh-secret-AbCdEf";
    let line = refused_with_secret(url, missing, &[]);
    assert!(line.to_string().contains("could not be read"), "{line}");
    // Not JSON, and JSON without the shared key.
    let plain = "hunter2-plain-text-password";
    refused_with_secret(url, &put_secret(&sdk, plain).await, &[plain]);
    let no_key = r#"{"mailbox":"X26ABC2","password":"hunter2-in-json"}"#;
    let line = refused_with_secret(url, &put_secret(&sdk, no_key).await, &["hunter2-in-json"]);
    assert!(
        line.to_string().contains("shared_key"),
        "names the member: {line}"
    );
}

#[tokio::test]
async fn credentials_mesh_refuses_at_the_handshake_stop_the_start() {
    let Some(url) = sandbox_url() else { return };
    let sdk = cpis_aws::moto::sdk_config().await;
    let wrong = "not-the-sandbox-password-s3cr3t";
    let arn = put_secret(&sdk, &secret_json(CPIS_MAILBOX, wrong)).await;
    let line = refused_with_secret(&url, &arn, &[wrong, "TestKey"]);
    assert!(line.to_string().contains("handshake"), "{line}");
}
