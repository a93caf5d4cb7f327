#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what it needs
# (Python test tools from PyPI, npm packages for infra/), starts moto server and
# NHS England's MESH sandbox on 127.0.0.1, runs the Rust workspace tests and the
# infrastructure tests.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# A fresh machine builds once: incremental caches would only double the disk
# the build uses. Developers who rebuild often can set CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

step "Python test tools (moto server, cfn-lint)"
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

step "moto server on 127.0.0.1"
moto_log=$(mktemp)
moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
python3 tests/moto_server.py -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
moto_pid=$!
# Ends moto and the MESH sandbox (started below), whatever happens.
trap 'kill $moto_pid 2>/dev/null || true; bash tests/mesh_sandbox.sh stop >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_port/moto-api/')" 2>/dev/null; then break; fi
  sleep 0.2
done
export CPIS_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"

# Tests that run the service write what it put out (logs, error bodies, SMS,
# email) here; tests/suites/90-privacy-scan.sh scans it afterwards. Made before
# the MESH sandbox starts: its log goes here too.
CPIS_PRIVACY_CAPTURE_DIR=$(mktemp -d)
export CPIS_PRIVACY_CAPTURE_DIR

step "MESH sandbox (NHS England's mesh-sandbox, own venv under target/) on 127.0.0.1"
CPIS_MESH_SANDBOX_URL=$(bash tests/mesh_sandbox.sh start)
export CPIS_MESH_SANDBOX_URL
# Tests that need the sandbox fail, rather than skip, without it.
export CPIS_REQUIRE_MESH_SANDBOX=1

step "The HL7 v3 schema validator (../shared/hl7v3: the official CP-IS XSDs, run by a JDK)"
if ! command -v java >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq default-jdk-headless \
    || echo "WARNING: could not install a JDK; the HL7 v3 messages are not validated against the XSDs" >&2
fi
if [ -x ../shared/hl7v3/validate ] && command -v java >/dev/null 2>&1; then
  # crates/hl7v3/tests/xsd.rs fails, rather than skips, without its validator.
  export CPIS_REQUIRE_XSD=1
else
  echo "WARNING: ../shared/hl7v3/validate or java is missing: the HL7 v3 XSD test skips" >&2
fi

step "Rust workspace tests"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

if [ -f infra/package.json ]; then
  step "Infrastructure (CDK) tests"
  (cd infra && npm ci --no-audit --no-fund && npm test && npm run lint:cfn)
fi

# Further suites (assurance, FHIR validation, fuzzing...), one script each, run
# in name order with moto still up. Each script installs what it needs.
for suite in tests/suites/*.sh; do
  [ -e "$suite" ] || continue
  step "Suite $(basename "$suite" .sh)"
  bash "$suite"
done

step "All test suites passed"
