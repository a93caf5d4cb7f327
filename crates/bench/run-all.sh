#!/usr/bin/env bash
# Every figure of BENCHMARKS.md, one command each: `crates/bench/run-all.sh
# <figure>`, or `all`. Each prints its own same-run baseline beside it and the
# commit it measured. Not run by CI (benchmarks assert nothing timed).
#
#   sizes      the seven Lambda binaries (cargo lambda, x86_64; arm64 too when
#              its rust-std is installed), against the 8,000,000-byte budget
#   check      benchmark 1 (criterion + per-call p50/p99), then callgrind
#              instruction counts of the check and of the parse baseline
#   upload     benchmark 2 (10,000 and 250,000 records, raw-insert baseline)
#   load       benchmark 3 (crates/bench/load.sh: fsync floor, /health and the
#              service mix, CPU per request, writes per commit)
#   dispatch   benchmark 4 (needs moto: CPIS_MOTO_ENDPOINT, as the tests)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_INCREMENTAL=0
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)')"
functions=(attendance-check history-query mesh-poll notification-dispatch outbox-relay plan-upload portal)

sizes() {
  python3 -m pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2'
  local arches=(--x86-64)
  rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu && arches+=(--arm64)
  for arch in "${arches[@]}"; do
    # Each with its deploy profile (CARGO_PROFILES in infra/lib/constructs/rust-function.ts).
    local sized=(mesh-poll portal)
    local released=(attendance-check history-query notification-dispatch outbox-relay plan-upload)
    cargo lambda build --release "$arch" $(printf -- '-p %s ' "${released[@]}") >/dev/null
    for f in "${sized[@]}"; do cargo lambda build --profile size "$arch" -p "$f" >/dev/null; done
    for f in "${functions[@]}"; do
      bytes=$(stat -c %s "target/lambda/$f/bootstrap")
      printf '%-8s %-22s %10d bytes  %.2f of 8,000,000\n' "$arch" "$f" "$bytes" "$(echo "$bytes/8000000" | bc -l)"
    done
  done
}

check() {
  CARGO_PROFILE_BENCH_STRIP=false CARGO_PROFILE_BENCH_DEBUG=line-tables-only \
    cargo build --profile bench -p cpis-bench --bench check_path
  local bin
  bin=$(ls -t target/release/deps/check_path-* | grep -v '\.d$' | head -1)
  "$bin" --bench | grep -E 'per-call|ratio|time:'
  for what in parse memory; do
    CPIS_BENCH_PROFILE=$what:300 valgrind --tool=callgrind --callgrind-out-file="target/callgrind.$what" \
      --toggle-collect='*profile_checks*' "$bin" 2>&1 | sed -n "s/.*Collected : \([0-9]*\)/$what: \1 instructions for 300 (\/300 per call)/p"
  done
}

upload() {
  cargo bench -p cpis-bench --bench bulk_upload
  cargo build --release -p cpis-bench --bin upload-national
  for mode in route raw; do
    /usr/bin/time -f "$mode: %e s, peak RSS %M KB" target/release/upload-national "$mode"
  done
}

load() { crates/bench/load.sh; }
dispatch() {
  : "${CPIS_MOTO_ENDPOINT:?start moto first, as for the tests}"
  CARGO_PROFILE_BENCH_STRIP=false CARGO_PROFILE_BENCH_DEBUG=line-tables-only \
    cargo build --profile bench -p notification-dispatch --bench dispatch_batch
  local bin port proxy
  bin=$(ls -t target/release/deps/dispatch_batch-* | grep -v '\.d$' | head -1)
  "$bin" --bench | grep -E 'time:|per ASN'
  # Calls per ASN: the same binary through a proxy that counts AWS operations.
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 functions/notification-dispatch/benches/count_calls.py --port "$port" --moto "$CPIS_MOTO_ENDPOINT" &
  proxy=$!
  sleep 1
  CPIS_MOTO_ENDPOINT="http://127.0.0.1:$port" CPIS_COUNT_CALLS="http://127.0.0.1:$port/_counts" \
    "$bin" --test | sed -n '/^AWS calls/,$p'
  kill "$proxy"
  # Instructions on the dispatching thread: all, the SDK's call path, signing.
  valgrind --tool=callgrind --callgrind-out-file=target/callgrind.dispatch --collect-atstart=no \
    '--toggle-collect=cpis_domain::dispatch::dispatch_batch_with::{{closure}}' "$bin" --test >/dev/null 2>&1
  callgrind_annotate --inclusive=yes target/callgrind.dispatch 2>/dev/null |
    grep -E 'PROGRAM TOTALS|orchestrator::invoke_with_stop_point::\{\{closure\}\}::\{\{closure\}\}::\{\{closure\}\} \[|sign_http_request \[' |
    grep -v '=>'
}

case "${1:-all}" in
  all) sizes; check; upload; load; dispatch ;;
  sizes|check|upload|load|dispatch) "$1" ;;
  *) echo "usage: $0 [all|sizes|check|upload|load|dispatch]" >&2; exit 2 ;;
esac
