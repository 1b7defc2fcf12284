#!/usr/bin/env bash
# connect-wasm's browser tests: start the CORS test server (connect-tokio, connect-wasm-test-server)
# on 127.0.0.1, run the wasm-bindgen tests in Node and headless Chromium with the shared
# wasm-test.sh (Debian rustc-web, -Zbuild-std), stop the server by PID.
#
#     connect-wasm/run-tests.sh [node|browser|all]
#
# Env: CONNECT_SHARED_DIR (default ../shared beside the repo), CONNECT_WASM_TEST_PORT (default: a
# free port; the address reaches the tests at build time through CONNECT_WASM_TEST_SERVER).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${CONNECT_SHARED_DIR:-$(cd "$ROOT/.." && pwd)/shared}
MODE=${1:-all}
PORT=${CONNECT_WASM_TEST_PORT:-0}

if [ ! -f "$SHARED/tools/wasm-test.sh" ]; then
  echo "connect-wasm: browser tests skipped: $SHARED/tools/wasm-test.sh not found (set CONNECT_SHARED_DIR)"
  exit 0
fi

cd "$ROOT"
cargo build -q -p connect-wasm-test-server
# Where cargo put it: CARGO_TARGET_DIR, a `build.target-dir` in a cargo config, or target/.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$TARGET_DIR" ] || { echo "connect-wasm: cargo metadata gave no target directory"; exit 1; }
SERVER_PID=
LOCK_LINK=
SERVER_LOG=$(mktemp)
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$LOCK_LINK" ] && rm -f "$LOCK_LINK"
  rm -f "$SERVER_LOG"
}
trap cleanup EXIT
"$TARGET_DIR/debug/connect-wasm-test-server" "127.0.0.1:$PORT" > "$SERVER_LOG" &
SERVER_PID=$!
ADDR=
for _ in $(seq 100); do
  ADDR=$(sed -n 's/^listening on //p' "$SERVER_LOG")
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "connect-wasm: the test server did not start"; exit 1; }
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "connect-wasm: the test server did not start"; exit 1; }
echo "connect-wasm: test server on $ADDR (pid $SERVER_PID)"

# wasm-test.sh generates a lockfile in the crate directory when there is none; point it at the
# workspace's instead, so the tests build with the versions the workspace pins.
if [ ! -e "$HERE/Cargo.lock" ]; then
  ln -s ../Cargo.lock "$HERE/Cargo.lock"
  LOCK_LINK=$HERE/Cargo.lock
fi

export CONNECT_WASM_TEST_SERVER="http://$ADDR"
OUT=$(mktemp)
rc=0
bash "$SHARED/tools/wasm-test.sh" "$HERE" "$MODE" 2>&1 | tee "$OUT" || rc=$?
# One closing line for both runs (Node and Chromium): the sums of cargo test's result lines.
sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$OUT" |
  awk '{ p += $1; f += $2 } END { printf "connect-wasm: %d passed, %d failed\n", p, f }' > "$OUT.sum"
rm -f "$OUT"
if [ "$rc" != 0 ]; then cat "$OUT.sum"; rm -f "$OUT.sum"; exit "$rc"; fi

# The example page's module must keep building (same toolchain and target directory: seconds).
bash "$HERE/example/build.sh" > /dev/null
echo "connect-wasm: example page built (connect-wasm/example/pkg)"
cat "$OUT.sum"; rm -f "$OUT.sum"
