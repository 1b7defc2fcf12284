#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one after the other, then prints per
# target: executions, coverage (edges and features) and corpus size. Exits non-zero if a target crashed
# or broke one of its properties; the input is then in fuzz/artifacts/<target>/.
#
#   bash fuzz/run.sh 60          # every target for a minute
#   bash fuzz/run.sh 20 envelope # one target
#
# Seeds are regenerated first, from real exchanges of the in-memory client/server pair, by the tests of
# `connect-proto/tests/fuzz_inputs.rs` (corpora are gitignored), which also replay the crash inputs in
# fuzz/regressions through the same entry points.
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/.."
root="$PWD"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: no nightly toolchain (cargo-fuzz needs one: rustup toolchain install nightly)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

echo "fuzz: writing seed corpora from pair exchanges"
if ! out="$(CONNECT_FUZZ_CORPUS_DIR="$root/fuzz/corpus" cargo test -p connect-proto --test fuzz_inputs \
    -- --nocapture 2>&1)"; then
    echo "$out"
    echo "fuzz: FAILED: the seed corpora or the crash inputs in fuzz/regressions break a target"
    exit 1
fi
grep -E "^wrote [0-9]+ seeds" <<<"$out" || true

cd fuzz
echo "fuzz: building the targets (release, debug assertions and overflow checks, AddressSanitizer)"
cargo +nightly fuzz build
if [ "$#" -gt 0 ]; then
    targets="$*"
else
    targets="$(cargo +nightly fuzz list)"
fi

logs="$root/fuzz/target/logs"
mkdir -p "$logs"
failed=()
rows=()
for target in $targets; do
    log="$logs/$target.log"
    echo "fuzz: $target for ${seconds}s"
    # -malloc_limit_mb: no single allocation of 64 MiB or more; the targets' limits are far below that.
    # -timeout: one input taking over 10 s is a hang.
    status=ok
    if ! cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1 \
        -malloc_limit_mb=64 -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
        status=CRASH
        failed+=("$target")
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -n 8 || true
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    last="$(grep -E ' cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")"
    files="$(find "corpus/$target" -type f 2>/dev/null | wc -l)"
    rows+=("| $target | ${execs:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $files | $status |")
done

echo
echo "fuzz: ${seconds}s per target"
echo
echo "| target | executions | edges (cov) | features (ft) | corpus in use (units/size) | corpus files | result |"
echo "|---|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
echo
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (logs in fuzz/target/logs, inputs in fuzz/artifacts)"
    exit 1
fi
echo "fuzz: no crash"
