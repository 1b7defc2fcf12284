#!/usr/bin/env bash
# Installs the Node conformance peers (connect-es) and generates their messages from the suite's
# protos: `npm ci` (skipped while package.json and package-lock.json are unchanged), then
# protoc-gen-es through `buf generate` into gen/ (skipped while the protos and buf.gen.yaml are
# unchanged). Offline once the packages are in npm's cache. conformance-runner runs this itself;
# run it by hand with `bash conformance/node/setup.sh`. Exits non-zero, saying why, on failure.
set -euo pipefail
cd "$(dirname "$0")"
shared="${CONNECT_SHARED_DIR:-$(cd ../../.. && pwd)/shared}"
protos="$shared/conformance/proto"
if [ ! -d "$protos" ]; then
  echo "setup: conformance protos not found at $protos" >&2
  exit 1
fi

install_sum=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ "$(cat node_modules/.conformance-stamp 2>/dev/null)" != "$install_sum" ]; then
  echo "setup: npm ci" >&2
  timeout 300 npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$install_sum" > node_modules/.conformance-stamp
fi

gen_sum=$( (cat buf.gen.yaml; echo "$install_sum"; find "$protos" -name '*.proto' | sort | xargs cat) | sha256sum | cut -d' ' -f1)
if [ "$(cat gen/.conformance-stamp 2>/dev/null)" != "$gen_sum" ]; then
  echo "setup: buf generate" >&2
  rm -rf gen
  timeout 120 node_modules/.bin/buf generate "$protos" --template buf.gen.yaml
  echo "$gen_sum" > gen/.conformance-stamp
fi
