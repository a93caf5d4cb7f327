//! Test support (feature `test-support`) for the tests that run on NHS
//! England's mesh-sandbox: this crate's, the AWS functions' and the `cpis`
//! binary's.

/// The sandbox's URL, or `None` (the test prints SKIPPED and passes)
/// without `CPIS_MESH_SANDBOX_URL`; with `CI=true` or
/// `CPIS_REQUIRE_MESH_SANDBOX=1` the sandbox is required and its absence
/// fails the test. Also makes ring the TLS provider, so a test's own reqwest
/// clients can be built ([`crate::use_ring_for_tls`]).
pub fn sandbox_url() -> Option<String> {
    crate::use_ring_for_tls();
    match std::env::var("CPIS_MESH_SANDBOX_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => {
            let required = std::env::var("CI").is_ok_and(|v| v == "true")
                || std::env::var("CPIS_REQUIRE_MESH_SANDBOX").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "CPIS_MESH_SANDBOX_URL is not set but the MESH sandbox is required \
                 (CI=true or CPIS_REQUIRE_MESH_SANDBOX=1). Start it with \
                 `export CPIS_MESH_SANDBOX_URL=$(tests/mesh_sandbox.sh start)`."
            );
            eprintln!("SKIPPED: CPIS_MESH_SANDBOX_URL is not set (tests/mesh_sandbox.sh start)");
            None
        }
    }
}
