#!/usr/bin/env bash
# Every test of the project, as the README says: unit, property, in-memory pair, end-to-end over
# sockets, the conformance suite, fuzzing (short), the browser client, and interop with real peers.
# Parts that need ../shared (conformance data, wasm tools, peer pins) or a nightly toolchain skip
# with a printed reason when it is absent.
set -euo pipefail
cd "$(dirname "$0")"
export CONNECT_SHARED_DIR="${CONNECT_SHARED_DIR:-$(cd .. && pwd)/shared}"
# One full run builds the workspace, the fuzz targets, Miri's and the wasm target's trees: without
# incremental caches (half of a debug target/, and no help to a run that builds everything once) a
# fresh clone's run needs about half the disk. A developer's own `cargo test` keeps them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# On a nearly full disk (a CI machine's filled up in the wasm build), a tree that no later step reads
# is removed once its step is done; the next run rebuilds it. Threshold in GiB.
drop_if_disk_low() {
    local avail_kb
    avail_kb=$(df -Pk . | awk 'NR==2 {print $4}')
    if [ "${avail_kb:-0}" -lt $(( ${CONNECT_TEST_MIN_FREE_GIB:-8} * 1024 * 1024 )) ]; then
        echo "test.sh: $(( ${avail_kb:-0} / 1024 )) MiB free: removing $* (the next run rebuilds it)"
        rm -rf "$@"
    fi
}
cargo test --workspace
# connect-smol runs on no tokio runtime. hyper (tokio/sync, unconditionally) and h2 (tokio/io-util and
# tokio-util's codec) still bring the tokio crate in for its channels and IO traits, so the check is on
# features: none of tokio's runtime, reactor, timer or macros.
if cargo tree -p connect-smol -e normal,features -i tokio --prefix none \
    | grep -E '^tokio feature "(rt|rt-multi-thread|net|time|macros|process|signal|fs|io-std)"'; then
    echo "connect-smol depends on a tokio runtime feature (above)" >&2
    exit 1
fi
# Release checks of the published crates: which crates publish, `cargo package`, cargo-deny
# (deny.toml), docs with -D warnings, the MSRV (installs Rust 1.85 with rustup; skips with a reason
# where it cannot). Ends with "package-check: N passed, M failed" (ci/package-check.sh).
bash ci/package-check.sh
# Our conformance runner over the full matrix (all three protocols), with the connect-es (Node)
# client and server on one side of each case where they can take it (it installs them itself, see
# conformance/README.md); a debug build reuses the test build's dependencies. Ends with
# "N passed, M failed" and fails on any unexpected failure.
cargo run -p conformance --bin conformance-runner
# Every fuzz target for a few seconds (builds with nightly; skips with a reason without it).
bash fuzz/run.sh 12
drop_if_disk_low fuzz/target
# The unsafe block of connect-typed under Miri (nightly; skips with a reason without it).
bash connect-typed/miri.sh
drop_if_disk_low "${CARGO_TARGET_DIR:-target}/miri" "${CARGO_TARGET_DIR:-target}/package"
# connect-wasm in Node and headless Chromium against the connect-tokio test server (wasm32 toolchain
# from Debian packages; skipped with a reason when the shared tools are absent).
bash connect-wasm/run-tests.sh all
drop_if_disk_low connect-wasm/target
# Interop with real third-party peers (connect-node, grpc-js, grpcio, connect-python): our server and
# client against theirs; installs the pinned peers (cached) and ends with "N passed, M failed".
bash interop/run.sh
# Our server behind nginx (proxy_pass for Connect and gRPC-Web, grpc_pass for gRPC), our client
# calling through it; installs nginx as root with apt-get, else skips with a reason. Ends with
# "nginx: N passed, M failed" (interop/README.md).
bash interop/nginx.sh
# `buf generate` with protoc-gen-connect-rust (examples/buf/buf.gen.yaml) against connect-build's
# output, now that interop/run.sh has installed buf (cargo test above skipped it without buf).
bash examples/buf/check.sh
