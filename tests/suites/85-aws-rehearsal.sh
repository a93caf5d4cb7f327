#!/usr/bin/env bash
# The operators' rehearsal of the AWS path (issue 15), scripts/aws-rehearsal.sh:
# its own moto and MESH sandbox, the synthesized template's resources (MESH on), the functions under
# `cargo lambda watch`, the README's invokes replayed and checked. It must
# pass, and take every step: a step that vanished from the script (so could
# no longer fail) fails here. The functions' logs go to
# $CPIS_PRIVACY_CAPTURE_DIR for the privacy scan (suite 90), when set.
# Here: 35 s warm, 1 to 2 minutes when the functions and their dependencies
# rebuild (each function is built on its own, as `cargo lambda watch` runs it).
set -euo pipefail
cd "$(dirname "$0")/../.."

out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
scripts/aws-rehearsal.sh | tee "$out" || rc=$?

python3 - "$out" "$rc" <<'PY'
import sys

lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
steps = [l.split(":")[0] for l in lines if l.startswith(("ok ", "FAIL "))]
want = ["ok moto", "ok mesh-sandbox", "ok synth", "ok resources",
        "ok build plan-upload", "ok build attendance-check", "ok build history-query",
        "ok build notification-dispatch", "ok build outbox-relay", "ok build mesh-poll", "ok watch",
        "ok directory", "ok topic", "ok upload", "ok plans", "ok check", "ok check-second-child",
        "ok check-forbidden", "ok history", "ok asn-queue", "ok normal-batch",
        "ok duplicate-delivery", "ok poison-message", "ok relay-sweep", "ok relay-purge",
        "ok plans-after-purge", "ok mesh-link", "ok mesh-upload", "ok mesh-asn-file", "ok rehearsal"]
problems = []
if sys.argv[2] != "0":
    problems.append(f"scripts/aws-rehearsal.sh exited {sys.argv[2]}")
if steps != want:
    problems.append(f"steps {steps}, expected {want}")
for p in problems:
    print(f"aws rehearsal suite: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
echo "aws rehearsal suite: every step as expected"
