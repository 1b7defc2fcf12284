#!/usr/bin/env bash
# Health checking and server reflection against real clients (buf curl, grpcio-health-checking,
# grpcio-reflection, connect-node): builds the examples' demo server, generates the Node code of
# connect-health's health.proto and runs health_reflection.py. Needs the peers that run.sh
# installs (run.sh calls this script); run from anywhere: `bash interop/health_reflection.sh`.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/buf ] || ! .venv/bin/python -c 'import grpc_health, grpc_reflection' 2>/dev/null; then
  echo "health/reflection: the peers are not installed: run bash interop/run.sh (it installs them)" >&2
  exit 1
fi
mkdir -p gen/js
timeout 60 .venv/bin/python -m grpc_tools.protoc -I../connect-health/proto \
  --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es --es_out=gen/js \
  --es_opt=target=js+dts,import_extension=js grpc/health/v1/health.proto
(cd .. && timeout 900 cargo build --quiet -p examples --bin demo)
timeout 300 .venv/bin/python health_reflection.py
