#!/usr/bin/env bash
# Old against new in one run: the server of each given e2e binary (built at the commits to compare,
# e.g. `git worktree add /tmp/old <commit>` and `cargo build --release -p connect-benches --bin e2e`
# there), pinned to CPU 0 with one worker, driven by h2load on CPU 1 with unary echo calls (4
# connections × 4 streams), the binaries taking turns round after round. Prints each run's server CPU
# per call (from /proc, user + system), calls/s and system calls per call, then the median and the
# minimum per binary: on a shared machine the minimum is the steadier figure.
#
#   benches/ab.sh [--rounds N] [--calls N] [--protocol connect|grpc|grpc-web] [--server NAME] BIN...
#
# Needs h2load (Debian's nghttp2-client) and perf (for the system-call count; optional).
set -euo pipefail

rounds=5 calls=200000 protocol=connect server=ours-tokio
bins=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --calls) calls=$2; shift 2 ;;
        --protocol) protocol=$2; shift 2 ;;
        --server) server=$2; shift 2 ;;
        *) bins+=("$1"); shift ;;
    esac
done
[ ${#bins[@]} -gt 0 ] || { sed -n 2,13p "$0"; exit 2; }
command -v h2load >/dev/null || { echo "ab.sh: h2load is not installed (apt-get install nghttp2-client)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# bench.v1.EchoRequest { message: "hello world" }: bare for Connect, enveloped for gRPC and gRPC-Web.
printf '\x0a\x0bhello world' > "$work/connect.bin"
printf '\x00\x00\x00\x00\x0d\x0a\x0bhello world' > "$work/enveloped.bin"
case "$protocol" in
    connect) headers=(--header="content-type: application/proto" --header="connect-protocol-version: 1"); body=$work/connect.bin ;;
    grpc) headers=(--header="content-type: application/grpc" --header="te: trailers"); body=$work/enveloped.bin ;;
    grpc-web) headers=(--header="content-type: application/grpc-web"); body=$work/enveloped.bin ;;
    *) echo "ab.sh: unknown protocol $protocol" >&2; exit 2 ;;
esac

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))

run_one() {
    local bin=$1
    mkfifo "$work/stdin"
    # The server serves until its standard input closes.
    sleep 100000 > "$work/stdin" &
    local holder=$!
    taskset -c 0 "$bin" serve "$server" < "$work/stdin" > "$work/out" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do grep -q LISTENING "$work/out" && break; sleep 0.1; done
    local addr
    addr=$(awk '/LISTENING/ {print $2}' "$work/out")
    local url="http://$addr/bench.v1.BenchService/Echo"
    taskset -c 1 h2load -c 4 -m 4 -t 1 -n 20000 "${headers[@]}" --data="$body" "$url" > /dev/null
    local before perf_pid=""
    before=$(cpu_ticks "$pid")
    if command -v perf > /dev/null; then
        perf stat -e raw_syscalls:sys_enter -p "$pid" -o "$work/perf" 2> /dev/null &
        perf_pid=$!
    fi
    local out
    out=$(taskset -c 1 h2load -c 4 -m 4 -t 1 -n "$calls" "${headers[@]}" --data="$body" "$url")
    [ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid" 2> /dev/null || true; }
    local after ok rps syscalls=""
    after=$(cpu_ticks "$pid")
    ok=$(grep -o '[0-9]* succeeded' <<< "$out" | awk '{print $1}')
    rps=$(grep -o 'finished in .* req/s' <<< "$out" | awk '{print $(NF-1)}')
    [ -n "$perf_pid" ] && syscalls=$(awk '/raw_syscalls/ {gsub(",", "", $1); printf "%.2f", $1 / '"$ok"'}' "$work/perf")
    kill "$holder"; wait "$pid" 2> /dev/null || true
    rm -f "$work/stdin"
    if [ "$ok" != "$calls" ]; then
        echo "ab.sh: $bin: $ok of $calls calls succeeded" >&2
        exit 1
    fi
    awk -v b="$bin" -v t=$((after - before)) -v u="$tick_us" -v n="$ok" -v r="$rps" -v s="$syscalls" \
        'BEGIN {printf "%s\t%.2f\t%s\t%s\n", b, t * u / n, r, s}' | tee -a "$work/runs"
}

echo -e "binary\tserver CPU µs/call\tcalls/s\tsyscalls/call"
for _ in $(seq "$rounds"); do
    for bin in "${bins[@]}"; do run_one "$bin"; done
done
echo
echo -e "binary\tmedian µs/call\tmin µs/call"
for bin in "${bins[@]}"; do
    awk -F'\t' -v b="$bin" '$1 == b {print $2}' "$work/runs" | sort -n |
        awk -v b="$bin" '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s\t%.2f\t%.2f\n", b, m, v[1]}'
done
