#!/usr/bin/env bash
# Privacy scan (issue 7, suite 6): every log line, error body, SMS, email and
# SQS/SNS message the test suite made the service put out is scanned for NHS
# numbers (any 10-digit string passing Modulus 11, with or without spaces),
# date-of-birth fields and the fixture names of tests/privacy_fixtures.json.
# Any hit fails the build; so does an empty capture (a scan of nothing proves
# nothing).
#
# Runs after the workspace tests, which fill CPIS_PRIVACY_CAPTURE_DIR (set by
# tests/run.sh), with moto still up at CPIS_MOTO_ENDPOINT. Standard library
# Python only: nothing to install.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CPIS_PRIVACY_CAPTURE_DIR:?set by tests/run.sh before the cargo tests: the tests write their outputs there}"
: "${CPIS_MOTO_ENDPOINT:?set by tests/run.sh: the SQS and SNS messages are read from moto}"

# The detector first: a scanner that cannot find a leak proves nothing.
python3 tests/privacy_scan.py --self-test
python3 tests/privacy_scan.py --capture-dir "$CPIS_PRIVACY_CAPTURE_DIR" --moto "$CPIS_MOTO_ENDPOINT"
