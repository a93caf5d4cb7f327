//! Start-up: a missing or malformed `CPIS_*` variable, an OpenID Connect
//! client secret that cannot be read, stops the cold start with exactly one
//! JSON error line naming the variable, never its value; run on the
//! function's real binary.

use cpis_lambda::testing::{api_startup_cases, assert_startup_refusals, with_tables, SECRET_ARN};

const QUEUE: (&str, &str) = ("CPIS_ASN_QUEUE_URL", "http://127.0.0.1:1/q");
const OIDC: [(&str, &str); 4] = [
    ("CPIS_OIDC_ISSUER", "https://idp.example.org"),
    ("CPIS_OIDC_CLIENT_ID", "cpis-portal"),
    (
        "CPIS_OIDC_CLIENT_SECRET_ARN",
        "arn:aws:secretsmanager:eu-west-2:111111111111:secret:cpis-oidc",
    ),
    ("CPIS_OIDC_REDIRECT_BASE", "https://cpis.example.org"),
];
/// An inline key, so the start gets as far as the client secret without AWS.
const INLINE_KEY: (&str, &str) = (
    "CPIS_PSEUDONYM_KEY",
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
);

#[test]
fn a_missing_or_malformed_variable_is_one_json_error_line_naming_it() {
    let mut own = vec![QUEUE];
    own.extend_from_slice(&OIDC);
    let mut cases = api_startup_cases(&own);
    cases.push((with_tables(&[SECRET_ARN]), "CPIS_ASN_QUEUE_URL"));
    for (missing, _) in OIDC {
        let mut vars = with_tables(&[SECRET_ARN, QUEUE]);
        vars.extend(OIDC.iter().copied().filter(|(n, _)| *n != missing));
        cases.push((vars, missing));
    }
    let mut vars = with_tables(&[SECRET_ARN, QUEUE]);
    vars.extend_from_slice(&OIDC);
    vars.push(("CPIS_OIDC_CLAIMS", "role=anything"));
    cases.push((vars, "CPIS_OIDC_CLAIMS"));
    // The client secret cannot be read (Secrets Manager's endpoint is a
    // closed loopback port; no request leaves the machine): named by its
    // variable.
    let mut vars = with_tables(&[
        INLINE_KEY,
        QUEUE,
        ("AWS_REGION", "eu-west-2"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ]);
    vars.extend_from_slice(&OIDC);
    cases.push((vars, "CPIS_OIDC_CLIENT_SECRET_ARN"));
    assert_startup_refusals(env!("CARGO_BIN_EXE_portal"), &cases);
}
