#!/usr/bin/env bash
# `buf generate` with protoc-gen-connect-rust, from this directory's buf.gen.yaml, checked against
# connect-build's output for the same protos (connect-build/tests/buf.rs). The buf CLI comes from
# $BUF, interop/node_modules (installed by interop/run.sh) or PATH; without one the test passes
# after printing why it skipped. Fails when the generated code differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test -p connect-build --test buf -- --nocapture
