#!/usr/bin/env bash
# Runs the tests of connect-typed's one `unsafe` block (message::owned_view, and the view
# decoders it serves) under Miri, which reports undefined behaviour such as a view outliving the
# payload it borrows from. Needs a nightly toolchain; installs its Miri component when missing, and
# skips with a reason when neither is possible.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "miri: SKIPPED: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: installing the nightly miri component"
    if ! rustup component add --toolchain nightly miri rust-src; then
        echo "miri: SKIPPED: the miri component could not be installed"
        exit 0
    fi
fi
cargo +nightly miri test -p connect-typed --lib -- message codegen
