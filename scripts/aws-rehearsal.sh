#!/usr/bin/env bash
# The AWS path rehearsed locally, with no AWS account (issue 15): moto on
# 127.0.0.1, the resources of the synthesized CloudFormation template (MESH on)
# created on it, NHS England's mesh-sandbox, each function under `cargo lambda
# watch`, and the README's invokes replayed with events dated today and their
# answers checked.
#
# Prints one `ok STEP: ...` / `FAIL STEP: ...` line per step and exits
# non-zero on any FAIL. No response body is printed (they carry NHS numbers).
# The functions' logs stay in a temporary directory, removed on success and
# kept (its path printed) on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every function of the stack with MESH on (the README's tables).
functions=(plan-upload attendance-check history-query notification-dispatch outbox-relay mesh-poll)

work=$(mktemp -d)
pids=()
status=1
mesh_dir=""
stop() {
    # Our own MESH sandbox, by the pid its script wrote.
    [[ -n $mesh_dir ]] && bash tests/mesh_sandbox.sh stop-at "$mesh_dir" >/dev/null 2>&1 || true
    # Our own children only, by pid: watches (and the functions they run, in
    # their process groups) and moto.
    for pid in "${pids[@]}"; do
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    # The functions' logs, for the privacy scan (suite 90) when CI asks.
    if [[ -n ${CPIS_PRIVACY_CAPTURE_DIR:-} ]]; then
        mkdir -p "$CPIS_PRIVACY_CAPTURE_DIR"
        for log in "$work"/watch-*.log; do
            [[ -e $log ]] || continue
            name=$(basename "$log" .log)
            cp "$log" "$CPIS_PRIVACY_CAPTURE_DIR/aws-rehearsal-${name#watch-}-logs.txt"
        done
    fi
    if [[ $status -eq 0 ]]; then
        rm -rf "$work"
    else
        echo "logs and events kept in $work (the events hold synthetic NHS numbers: do not paste them)" >&2
    fi
}
trap stop EXIT
# A signal ends the script through its EXIT trap, so nothing is left running.
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "FAIL $1: $2"; exit 1; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
started=$(date +%s)

# ---- Tools ----------------------------------------------------------------------------------
python3 -c 'import boto3, moto.server' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
cargo lambda --version >/dev/null 2>&1 \
    || python3 -m pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2'
[[ -d infra/node_modules ]] || (cd infra && npm ci --no-audit --no-fund --silent)

# ---- moto -----------------------------------------------------------------------------------
moto_port=$(free_port)
endpoint="http://127.0.0.1:$moto_port"
# setsid: each child leads its own process group, so stop() ends it and its children.
setsid python3 tests/moto_server.py -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl --silent --fail --output /dev/null "$endpoint/moto-api/" && break
    sleep 0.2
done
curl --silent --fail --output /dev/null "$endpoint/moto-api/" || fail moto "no answer on $endpoint"
echo "ok moto: listening on 127.0.0.1:$moto_port"

# ---- MESH sandbox ---------------------------------------------------------------------------
# Its own, as moto is (NHS England's mesh-sandbox, tests/mesh_sandbox.sh): the
# councils' files reach the CP-IS mailbox X26ABC2 there, and X26ABC1 is the council's.
mesh_dir="$work/mesh-sandbox"
mesh_url=$(bash tests/mesh_sandbox.sh start-at "$mesh_dir" 2>"$work/mesh-sandbox-start.log") \
    || fail mesh-sandbox "tests/mesh_sandbox.sh start-at failed (log in $work/mesh-sandbox-start.log)"
echo "ok mesh-sandbox: listening on ${mesh_url#http://}"
# The operator's MESH secret (README, "MESH on AWS"): imported by the stack by
# its ARN, so given to the synth as context and created on moto below.
mesh_secret_arn="arn:aws:secretsmanager:eu-west-2:123456789012:secret:cpis-rehearsal-mesh-AbCdEf"
printf '{"mailbox": "X26ABC2", "password": "password", "shared_key": "TestKey"}' >"$work/mesh-secret.json"

# ---- Resources, from the template -----------------------------------------------------------
# Placeholder code: the template is what a deploy would create, without
# building release bundles (infra/package.json, synth:nobundle).
(cd infra && npx cdk synth --quiet -c cpis:placeholderCode=true --output "$work/cdk.out" \
    -c cpis:meshSecretArn="$mesh_secret_arn" -c cpis:meshUrl="$mesh_url" >"$work/synth.log" 2>&1) \
    || fail synth "cdk synth failed (log in $work/synth.log)"
templates=("$work"/cdk.out/*.template.json)
# One stack today; a second one would hold resources this rehearsal would miss.
[[ ${#templates[@]} -eq 1 && -e ${templates[0]} ]] \
    || fail synth "expected one template in cdk.out, found: ${templates[*]##*/}"
template=${templates[0]}
echo "ok synth: $(basename "$template")"
# ViewUrl: where a duty team signs in (by default the portal's pages, whose API
# Gateway URL a rehearsal has not). The portal function needs an issuer and
# API Gateway, neither of which is here: it is not run, so its environment is
# not written (its own tests: functions/portal/tests; tests/suites/66-portal-oidc.sh).
# shellcheck disable=SC2046 # one -f per function
python3 scripts/rehearsal_resources.py "$template" "$endpoint" "$work/env" \
    -p ViewUrl=https://cpis.example.org/notifications \
    --imported-secret "$mesh_secret_arn=$work/mesh-secret.json" \
    $(printf -- '-f %s ' "${functions[@]}")

# ---- Functions ------------------------------------------------------------------------------
# Built first, one at a time and exactly as `cargo lambda watch` runs them
# (`cargo run --package F --bin F`), so that the watches start at once and a
# first invoke never waits on a compiler.
for fn in "${functions[@]}"; do
    t0=$(date +%s)
    cargo build --locked --quiet --package "$fn" --bin "$fn" >"$work/build-$fn.log" 2>&1 \
        || fail "build $fn" "cargo build failed (log in $work/build-$fn.log)"
    echo "ok build $fn: $(($(date +%s) - t0)) s"
done

export AWS_ENDPOINT_URL="$endpoint" AWS_REGION=eu-west-2 AWS_DEFAULT_REGION=eu-west-2 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN
# One watch per function: each has its own CPIS_* environment (--env-file),
# as each Lambda function has. 127.0.0.1 only: the functions trust whatever
# claims an event carries.
ports=()
for fn in "${functions[@]}"; do
    port=$(free_port)
    setsid cargo lambda watch --package "$fn" --bin "$fn" --ignore-changes \
        --invoke-address 127.0.0.1 --invoke-port "$port" --env-file "$work/env/$fn.env" \
        >"$work/watch-$fn.log" 2>&1 &
    pids+=($!)
    ports+=("$fn=$port")
done
for entry in "${ports[@]}"; do
    fn=${entry%%=*} port=${entry#*=}
    for _ in $(seq 1 150); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
        sleep 0.2
    done
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null \
        || fail "watch $fn" "cargo lambda watch is not listening on 127.0.0.1:$port"
done
echo "ok watch: ${ports[*]}"

# ---- The README's invokes -------------------------------------------------------------------
rc=0
python3 scripts/rehearsal_replay.py "$endpoint" "$work/env" "$work" "${ports[@]}" || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "FAIL rehearsal: $(($(date +%s) - started)) s"
    exit 1
fi
status=0
echo "ok rehearsal: every step as expected in $(($(date +%s) - started)) s"
