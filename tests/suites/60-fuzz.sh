#!/usr/bin/env bash
# Bad input, part 1 (issue 7, suite 5): each cargo-fuzz target in fuzz/ runs
# for a fixed time from the committed corpus (grown and minimised, issue 17)
# and the suite fails on any crash, panic, hang or leak libFuzzer reports.
# Each target's CI time is below, weighted by how much code it reaches (the
# figures: docs/assurance/bad-input.md); CPIS_FUZZ_SECONDS sets one time for
# every target (the long run used 600), CPIS_FUZZ_TARGETS which targets
# (space-separated; default all five).
set -euo pipefail
cd "$(dirname "$0")/../.."

declare -A budget=([upload_body]=30 [check_body]=20 [strict_json]=15 [nhs_number]=10 [hl7v3_upload]=20)
read -r -a targets <<<"${CPIS_FUZZ_TARGETS:-upload_body nhs_number check_body strict_json hl7v3_upload}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

# cargo-fuzz passes compiler flags that rustc accepts only on nightly; the
# machine has the stable toolchain, which accepts them with this.
export RUSTC_BOOTSTRAP=1
# No AddressSanitizer: the workspace has no `unsafe` code, and ASan made the
# check target ten times slower for nothing Rust does not already catch.
fuzz=(cargo fuzz run --sanitizer none)

# The committed corpus holds synthetic NHS numbers only (999 range).
python3 tests/corpus_scan.py fuzz/corpus

cargo fuzz build --sanitizer none

# CPIS_FUZZ_WORK keeps the logs and the corpus grown (the long run).
if [[ -n "${CPIS_FUZZ_WORK:-}" ]]; then
    work=$CPIS_FUZZ_WORK
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi

for target in "${targets[@]}"; do
    seconds="${CPIS_FUZZ_SECONDS:-${budget[$target]:-20}}"
    # New inputs go to a scratch corpus; the committed seeds are read only.
    mkdir -p "$work/$target"
    dict=()
    if [[ -f "fuzz/dicts/$target.dict" ]]; then
        dict=("-dict=fuzz/dicts/$target.dict")
    fi
    log="$work/$target.log"
    if ! "${fuzz[@]}" "$target" "$work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
        grep -v 'Uses:' "$log" | tail -60 || true
        echo "fuzz $target: FAILED (the input is in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    # Coverage once the corpus is loaded, and at the end: what this run found.
    inited=$(grep -o 'INITED *cov: [0-9]*' "$log" | grep -o '[0-9]*$' | head -1 || true)
    coverage=$(grep -o 'DONE *cov: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
    echo "fuzz $target: ${runs} executions in ${seconds} s, 0 crashes (coverage ${inited:-?} edges from the corpus, ${coverage:-?} at the end)"
done
