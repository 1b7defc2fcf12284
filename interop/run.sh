#!/usr/bin/env bash
# Interop with real third-party peers (connect-node, grpc-js, grpcio, connect-python): installs the
# pinned peers, generates their code, builds our interop binaries and runs the matrix (driver.py).
# Ends with "N passed, M failed"; exits non-zero on any unexpected failure. Skips (exit 0) with a
# reason when node or python3 is missing. Run from anywhere: `bash interop/run.sh`.
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "interop: skipped: $tool not found (CI has it)"
    exit 0
  fi
done
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "interop: skipped: python3 has no venv/ensurepip module"
  exit 0
fi

# Installs, skipped when already done for the same lock files.
lock_sum() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
node_sum=$(lock_sum package.json package-lock.json)
if [ "$(cat node_modules/.interop-stamp 2>/dev/null)" != "$node_sum" ]; then
  echo "interop: npm ci"
  timeout 300 npm ci --no-audit --no-fund
  echo "$node_sum" > node_modules/.interop-stamp
fi
py_sum=$(lock_sum requirements.txt)
if [ "$(cat .venv/.interop-stamp 2>/dev/null)" != "$py_sum" ]; then
  echo "interop: pip install"
  rm -rf .venv
  python3 -m venv .venv
  timeout 300 .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$py_sum" > .venv/.interop-stamp
fi

# Peer code from proto/ (never committed).
rm -rf gen && mkdir -p gen/py gen/js
protoc=(timeout 60 .venv/bin/python -m grpc_tools.protoc -Iproto)
"${protoc[@]}" --python_out=gen/py --pyi_out=gen/py --grpc_python_out=gen/py \
  --plugin=protoc-gen-connectrpc=.venv/bin/protoc-gen-connectrpc \
  --connectrpc_out=gen/py --connectrpc_opt=protobuf=google \
  interop/v1/interop.proto google/rpc/status.proto
"${protoc[@]}" --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es --es_out=gen/js \
  --es_opt=target=js+dts,import_extension=js interop/v1/interop.proto google/rpc/status.proto

# Our binaries (debug: shares the test build's dependencies).
(cd .. && timeout 900 cargo build --quiet -p interop --bins)

# HTTP/3 against aioquic (h3_check.py): its client calls our connect-h3 server, our client calls
# its server. Before the matrix, so that the matrix's count stays the last line.
h3_status=0
timeout 300 .venv/bin/python h3_check.py || h3_status=$?

# Health checking and server reflection against buf curl, grpcio-health-checking,
# grpcio-reflection and connect-node (health_reflection.sh); also before the matrix.
hr_status=0
timeout 600 bash health_reflection.sh || hr_status=$?

timeout 900 python3 driver.py
if [ "$h3_status" -ne 0 ]; then
  echo "interop: the HTTP/3 checks failed (above)" >&2
  exit "$h3_status"
fi
if [ "$hr_status" -ne 0 ]; then
  echo "interop: the health/reflection checks failed (above)" >&2
  exit "$hr_status"
fi
