#!/usr/bin/env bash
# End-to-end benchmarks: ours vs tonic vs connectrpc vs a raw hyper floor, in one run.
#
#   benches/run.sh --quick   # a few minutes on 2 cores: prints the table with ratios (results/quick/)
#   benches/run.sh --full    # ~45 minutes: 3 rounds, longer windows; writes benches/results/ (README)
#   benches/run.sh --micro   # criterion micro-benchmarks of the core (cargo bench)
#
# Every scenario is driven by h2load (nghttp2, installed from Debian packages when missing) and by
# our own generator, in the same run; the report has both and the two side by side.
# Extra arguments go to the e2e binary, e.g. --only "echo gRPC", --servers ours-tokio,tonic,
# --generators h2load, --server-threads 2 --no-pin. Builds once in release mode, then runs.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:---quick}"
[ $# -gt 0 ] && shift

if [ "$mode" = "--micro" ]; then
    exec cargo bench -p connect-benches --bench core -- "$@"
fi

# h2load (nghttp2), the third-party load generator whose figures the README quotes: from Debian's
# packages when missing (as root); without it the run uses our generator alone and says so.
if ! command -v h2load > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        apt-get install -y -q nghttp2-client > /dev/null 2>&1 ||
            (apt-get update -q > /dev/null 2>&1 && apt-get install -y -q nghttp2-client > /dev/null 2>&1) ||
            echo "benches: could not install h2load (nghttp2-client); our generator only" >&2
    else
        echo "benches: h2load not found (Debian: apt-get install nghttp2-client); our generator only" >&2
    fi
fi

cargo build --release -p connect-benches --bin e2e --bin allocs
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="$target_dir/release"

case "$mode" in
    --quick) out=benches/results/quick ;;
    --full) out=benches/results ;;
    *) echo "usage: $0 [--quick|--full|--micro] [e2e args...]" >&2; exit 2 ;;
esac
mkdir -p "$out"
"$bin/allocs" --out "$out/allocs.md" > /dev/null
"$bin/e2e" run "$mode" --out "$out" "$@"
cat "$out/allocs.md"
