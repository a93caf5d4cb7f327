//! Validation against NHS Digital's published CP-IS schemas
//! (`shared/hl7v3/CPIS`) with the JDK's validator (`shared/hl7v3/validate`),
//! for tests (feature `test-support`): this crate's and every crate that
//! emits CP-IS files (the MESH exchange and ASN leg).
//!
//! The validator is found at `$CPIS_HL7V3_VALIDATE`, or at
//! `../shared/hl7v3/validate` beside the repository. Without it (or without
//! `java`) [`assert_valid`] says so and passes, unless `CPIS_REQUIRE_XSD=1`:
//! then it fails. `tests/run.sh` sets it whenever the validator and a JDK
//! are there. These helpers panic: they are test assertions.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The validator script, when it and `java` are both there.
pub fn validator() -> Option<PathBuf> {
    let path = std::env::var_os("CPIS_HL7V3_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hl7v3/validate")
        });
    let java = Command::new("java").arg("-version").output().is_ok();
    (path.is_file() && java).then_some(path)
}

/// Whether the run must validate (`CPIS_REQUIRE_XSD=1`).
pub fn required() -> bool {
    std::env::var("CPIS_REQUIRE_XSD").is_ok_and(|v| v == "1")
}

/// Writes each `(name, document)` and validates them all against
/// `message_type` (e.g. `REPC_MT000003GB01`) in one JVM run; panics with the
/// validator's report unless every one is valid. Skips (with a line on
/// stderr) when there is no validator, unless [`required`].
pub fn assert_valid(message_type: &str, documents: &[(String, String)]) {
    assert!(!documents.is_empty(), "{message_type}: nothing to validate");
    let Some(validate) = validator() else {
        assert!(
            !required(),
            "CPIS_REQUIRE_XSD=1, but the XSD validator or java is missing \
             (set CPIS_HL7V3_VALIDATE, or put shared/ beside the repository; install a JDK)"
        );
        eprintln!("SKIPPED: no XSD validator or no java; {message_type} not validated");
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut paths = Vec::new();
    for (name, xml) in documents {
        let path = dir.path().join(format!("{name}.xml"));
        std::fs::write(&path, xml).expect("the document is written");
        paths.push(path);
    }
    let output = Command::new(&validate)
        .arg(message_type)
        .args(&paths)
        .output()
        .expect("the validator runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let valid = stdout.lines().filter(|l| l.starts_with("VALID ")).count();
    assert!(
        output.status.success() && valid == documents.len(),
        "{message_type}: {valid} of {} valid\n{stdout}\n{stderr}",
        documents.len()
    );
}
