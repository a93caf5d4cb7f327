#!/usr/bin/env bash
# Issue 9: every FHIR response of a running `cpis serve` validated against the
# FHIR R4B models of the `fhir.resources` package.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install --quiet --disable-pip-version-check -r tests/fhir/requirements.txt
cargo build --locked --quiet --bin cpis
python3 tests/fhir/validate_fhir.py target/debug/cpis
