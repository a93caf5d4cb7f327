#!/usr/bin/env bash
# Benchmark 3: `cpis serve` under load, on loopback, with a fresh data
# directory. Health at a fixed rate and at saturation (the floor), then the
# service mix (90 % checks, 30 % of them flagged; 10 % history reads) the same
# two ways; then every ASN the checks wrote must be in the local outbox.
# Beside each run: the CPU seconds the server and the generator spent (they
# share the cores), and how many writes each of the store's commits carried.
# First, the fsync floor: durable commits per second of one tiny write each,
# on the disk the data directory is on.
#
#   crates/bench/load.sh            # from the repository root
#
# Knobs (environment): RATE (1000), RUN_SECONDS (20), CONNECTIONS_FIXED (64),
# CONNECTIONS_SATURATE (32), FLAGGED (20000), CLINICIANS (8); CPIS (the
# server binary, target/release/cpis: another build's, to compare two
# commits side by side).
set -euo pipefail
cd "$(dirname "$0")/../.."

RATE=${RATE:-1000}
RUN_SECONDS=${RUN_SECONDS:-20}
CONNECTIONS_FIXED=${CONNECTIONS_FIXED:-64}
CONNECTIONS_SATURATE=${CONNECTIONS_SATURATE:-32}
FLAGGED=${FLAGGED:-20000}
CLINICIANS=${CLINICIANS:-8}

cargo build --release --locked -p cpis --bin cpis -p cpis-bench --bin cpis-loadgen \
  --bin fsync-floor >&2
CPIS=${CPIS:-target/release/cpis}
LOADGEN=target/release/cpis-loadgen

DATA=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

target/release/fsync-floor --dir "$DATA" --seconds 3

# Tokens first: the key they are signed with is the one the server loads.
$CPIS token --data "$DATA" --council E09000033 > "$DATA/council.token"
for i in $(seq 1 "$CLINICIANS"); do
  $CPIS token --data "$DATA" --clinician --ods RJ1 --org-name "St Example's Hospital" \
    --rbac B0107 --setting emergency-department --user "dr-$i"
done > "$DATA/clinicians.tokens"

# Port 0: the kernel picks a free port; the server logs the one it got. The
# writer's debug line gives each commit's write count (a count, nothing else).
RUST_LOG=info,cpis_store_sqlite::writer=debug $CPIS serve --demo --addr 127.0.0.1:0 --data "$DATA" > "$DATA/serve.log" 2>&1 &
SERVER_PID=$!
ADDR=
for _ in $(seq 1 100); do
  ADDR=$(grep -o '"addr":"127\.0\.0\.1:[0-9]*"' "$DATA/serve.log" | head -n 1 | cut -d'"' -f4 || true)
  [[ -n $ADDR ]] && break
  sleep 0.1
done
[[ -n $ADDR ]] || { echo "cpis serve did not start" >&2; cat "$DATA/serve.log" >&2; exit 1; }
echo "cpis serve on $ADDR, data in $DATA" >&2

$LOADGEN setup --addr "$ADDR" --flagged "$FLAGGED" --council-token "$DATA/council.token" >&2

FLAGGED_DONE=0
server_cpu() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; } # clock ticks
TICKS=$(getconf CLK_TCK)
run() { # mix connections [rate]
  local mix=$1 connections=$2 rate=${3:-}
  local args=(run --addr "$ADDR" --flagged "$FLAGGED" --mix "$mix" --connections "$connections"
    --seconds "$RUN_SECONDS" --clinician-tokens "$DATA/clinicians.tokens"
    --flagged-before "$FLAGGED_DONE")
  [[ -n $rate ]] && args+=(--rate "$rate" --max-requests "$((rate * RUN_SECONDS))")
  local report lines_before cpu_before loadgen_cpu
  lines_before=$(wc -l < "$DATA/serve.log")
  cpu_before=$(server_cpu)
  report=$( { TIMEFORMAT='%U %S'; time $LOADGEN "${args[@]}" > "$DATA/report.json"; } 2>&1 )
  loadgen_cpu=$(awk '{printf "%.2f", $1 + $2}' <<<"$report")
  report=$(cat "$DATA/report.json")
  echo "$report"
  local ok
  ok=$(grep -o '"ok":[0-9]*' <<<"$report" | cut -d: -f2)
  # CPU per answered request (µs), and the commit batches of this run only.
  tail -n +"$((lines_before + 1))" "$DATA/serve.log" | { grep -o '"writes":[0-9]*' || true; } \
    | cut -d: -f2 | sort -n | awk -v mix="$mix" -v server="$(( $(server_cpu) - cpu_before ))" -v ticks="$TICKS" \
      -v loadgen="$loadgen_cpu" -v ok="$ok" '
      { w[NR] = $1; sum += $1 }
      END {
        s = server / ticks
        printf "{\"mix\":\"%s\",\"cpu_s\":{\"server\":%.2f,\"loadgen\":%.2f},\"cpu_us_per_request\":{\"server\":%.1f,\"loadgen\":%.1f},", mix, s, loadgen, 1e6 * s / ok, 1e6 * loadgen / ok
        if (NR) printf "\"commits\":%d,\"writes\":%d,\"writes_per_commit\":{\"mean\":%.1f,\"p50\":%d,\"p90\":%d,\"max\":%d}}\n", NR, sum, sum / NR, w[int(NR * 0.5) + 1], w[int(NR * 0.9) + 1], w[NR]
        else printf "\"commits\":0}\n"
      }'
  FLAGGED_DONE=$((FLAGGED_DONE + $(grep -o '"flagged_ok":[0-9]*' <<<"$report" | cut -d: -f2)))
}

run health "$CONNECTIONS_FIXED" "$RATE"
run service "$CONNECTIONS_FIXED" "$RATE"
run health "$CONNECTIONS_SATURATE"
run service "$CONNECTIONS_SATURATE"

$LOADGEN verify --addr "$ADDR" --flagged "$FLAGGED" --council-token "$DATA/council.token" \
  --outbox "$DATA/outbox/messages.jsonl" --expected "$FLAGGED_DONE"
