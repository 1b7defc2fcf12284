#!/usr/bin/env bash
# Builds the example page's wasm module into pkg/ (wasm-bindgen --target web) with the toolchain
# that ../run-tests.sh (the shared wasm-test.sh) installs: Debian rustc-web with -Zbuild-std, and
# wasm-bindgen-cli in ~/.cache/wasm-tools. Shares connect-wasm's wasm target directory.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${WASM_TARGET_DIR:-$HERE/../target/wasm-debian}
export PATH="${TOOLS_DIR:-$HOME/.cache/wasm-tools}/bin:$PATH"
cd "$HERE"
/usr/bin/cargo build --lib -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir pkg \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/debug/connect_wasm_example.wasm"
echo "built $HERE/pkg; serve $HERE (e.g. python3 -m http.server -d $HERE 8080) and open it"
