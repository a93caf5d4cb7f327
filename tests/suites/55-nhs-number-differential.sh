#!/usr/bin/env bash
# NHS number differential (issue 18): NhsNumber::parse against the PyPI
# package nhs-number over a generated corpus; every disagreement must be a
# kind listed with its reason in tests/fixtures/nhs_number_disagreements.json.
# nhs-number comes from tests/requirements.txt (installed by tests/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import nhs_number' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
cargo build --quiet --locked -p cpis-domain --example nhs_verdicts
python3 tests/nhs_number_differential.py target/debug/examples/nhs_verdicts
