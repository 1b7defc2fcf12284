#!/usr/bin/env bash
# Release checks of the crates users depend on (`PUBLIC` below), one PASS/FAIL/SKIP line each, then
# "package-check: N passed, M failed"; exits non-zero on any failure. Run from anywhere:
# `bash ci/package-check.sh` (../test.sh does). Bounded: under 3 min on 2 cores the first time
# (one dependency tree checked with the MSRV toolchain serves the docs and the MSRV check; about
# 400 MB in the target directory), about 1 min after that.
#
#  1. publishable: every workspace member is in PUBLIC or says `publish = false`, and no crate of
#     PUBLIC does;
#  2. `cargo package --no-verify` of PUBLIC (manifests, files, path dependencies carrying versions,
#     the lock files of crates with binaries), each .crate under crates.io's 10 MiB;
#  3. `cargo deny check licenses bans sources` (deny.toml), and `advisories` when the advisory
#     database can be fetched; cargo-deny is installed when missing (`cargo install --locked`: about
#     2.5 min on 2 cores) if that finishes within 10 min, else skipped with the reason;
#  4. `cargo doc --no-deps --all-features` of PUBLIC with RUSTDOCFLAGS="-D warnings" (missing docs,
#     broken intra-doc links), connect-wasm also for wasm32 (as docs.rs documents it);
#  5. `cargo check --all-features --locked` of PUBLIC with the MSRV toolchain (workspace
#     `rust-version`), connect-wasm also for wasm32: installed with rustup when missing, skipped with
#     a reason without rustup or a reachable Rust distribution server.
set -euo pipefail
cd "$(dirname "$0")/.."

# In the order `cargo publish` needs (each after what it depends on).
PUBLIC=(connect-proto connect-typed connect-build connect-hyper connect-tokio connect-smol connect-h3
  connect-wasm connect-health connect-reflection)
packages=()
for crate in "${PUBLIC[@]}"; do packages+=(-p "$crate"); done
MSRV=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
WASM=wasm32-unknown-unknown

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
skip() { echo "SKIP $1"; }
# check NAME COMMAND...: runs it with its output in $log, shown (the end of it) only on failure.
check() {
  local name=$1
  shift
  if "$@" >"$log" 2>&1; then
    pass "$name"
  else
    fail "$name"
    grep -E '^(error|warning)' -A12 "$log" | head -80 || true
    tail -20 "$log"
  fi
}

# 1. Which crates are published.
publishable() {
  local manifest name bad=0
  for manifest in $(cargo metadata --format-version 1 --no-deps |
    grep -o '"manifest_path":"[^"]*"' | sed 's/"manifest_path":"\(.*\)"/\1/'); do
    name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -1)
    local public=0 crate
    for crate in "${PUBLIC[@]}"; do [ "$crate" != "$name" ] || public=1; done
    if grep -q '^publish = false' "$manifest"; then
      if [ "$public" -eq 1 ]; then
        echo "$name is in PUBLIC but says publish = false"
        bad=1
      fi
    elif [ "$public" -eq 0 ]; then
      echo "$name would be published: add it to PUBLIC (ci/package-check.sh) or say publish = false"
      bad=1
    fi
  done
  return "$bad"
}
check "publishable: ${PUBLIC[*]}; every other member has publish = false" publishable

# 1b. The names: each is free on crates.io or already ours (its repository is the workspace's). The
# typed layer was `connect-rpc` until that name turned out to be another project's.
REPOSITORY=$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml | head -1)
names() {
  local crate out repo bad=0
  for crate in "${PUBLIC[@]}"; do
    if ! out=$(cd "${TMPDIR:-/tmp}" && timeout 60 cargo info --registry crates-io "$crate" 2>&1); then
      if grep -q "could not find" <<<"$out"; then
        echo "$crate: free"
        continue
      fi
      echo "$crate: crates.io could not be asked: $out"
      return 2
    fi
    repo=$(sed -n 's/^repository: //p' <<<"$out")
    if [ "$repo" = "$REPOSITORY" ]; then
      echo "$crate: ours ($repo)"
    else
      echo "$crate: taken on crates.io by ${repo:-a crate with no repository}"
      bad=1
    fi
  done
  return "$bad"
}
if names >"$log" 2>&1; then
  pass "crate names free on crates.io (or ours)"
elif [ $? -eq 2 ]; then
  skip "crate names: crates.io's index could not be reached ($(tail -1 "$log" | cut -c1-120))"
else
  fail "crate names free on crates.io (or ours)"
  grep "taken" "$log"
fi

# 2. The packages. --no-verify: verifying builds each .crate against crates.io, where these crates
# are not published yet (and would build a second full target tree). Packaged together, so that
# their dependencies on each other resolve to the packages just made (a local registry that cargo
# lays over crates.io) and not to crates.io, where they are not yet. --allow-dirty: a
# developer's tree has edits in progress; CI's fresh clone has none.
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
package() {
  timeout 300 cargo package --no-verify --allow-dirty "${packages[@]}" || return 1
  local crate file size
  for crate in "${PUBLIC[@]}"; do
    file=$(ls "$target_dir/package/$crate"-*.crate)
    size=$(stat -c %s "$file")
    echo "$(basename "$file"): $size bytes"
    [ "$size" -lt $((10 * 1024 * 1024)) ] || { echo "over crates.io's 10 MiB"; return 1; }
  done
}
check "cargo package --no-verify (${#PUBLIC[@]} crates)" package
grep '\.crate: ' "$log" | sed 's/^/    /' || true

# 3. Licenses, bans, sources; advisories when the database can be had.
if ! cargo deny --version >/dev/null 2>&1; then
  echo "package-check: installing cargo-deny (cargo install --locked, 10 min at most)"
  timeout 600 cargo install cargo-deny --locked --quiet >/dev/null 2>&1 || true
fi
if cargo deny --version >/dev/null 2>&1; then
  check "cargo deny check licenses bans sources" \
    timeout 300 cargo deny check --hide-inclusion-graph licenses bans sources
  if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
    check "cargo deny check advisories" \
      timeout 300 cargo deny check --hide-inclusion-graph --disable-fetch advisories
  else
    skip "cargo deny check advisories: the advisory database (a git repository on GitHub) could not be fetched"
  fi
else
  skip "cargo deny: not installed, and cargo install cargo-deny --locked did not finish in 10 min"
fi

# 4 and 5. One toolchain for both: the MSRV one when it can be had (its dependency tree, checked
# once, serves the docs and the MSRV check), else the default one for the docs alone.
toolchain=()
msrv_reason=""
if ! command -v rustup >/dev/null; then
  msrv_reason="no rustup to run or install Rust $MSRV"
elif ! rustup run "$MSRV" rustc --version >/dev/null 2>&1; then
  echo "package-check: installing Rust $MSRV (rustup, minimal profile)"
  timeout 300 rustup toolchain install "$MSRV" --profile minimal >/dev/null 2>&1 || true
  rustup run "$MSRV" rustc --version >/dev/null 2>&1 ||
    msrv_reason="Rust $MSRV could not be installed (is the Rust distribution server reachable?)"
fi
[ -n "$msrv_reason" ] || toolchain=("+$MSRV")
wasm_reason=""
if ! command -v rustup >/dev/null; then
  wasm_reason="no rustup to add the $WASM target"
else
  tc=${toolchain[0]:-}
  tc=${tc#+}
  tc=${tc:-$(rustup show active-toolchain | cut -d' ' -f1)}
  if ! rustup target list --installed --toolchain "$tc" | grep -qx "$WASM"; then
    timeout 300 rustup target add --toolchain "$tc" "$WASM" >/dev/null 2>&1 ||
      wasm_reason="the $WASM target of $tc could not be installed"
  fi
fi

export RUSTDOCFLAGS="-D warnings"
check "cargo ${toolchain[*]} doc --no-deps --all-features, -D warnings" \
  timeout 600 cargo "${toolchain[@]}" doc --no-deps --all-features --locked "${packages[@]}"
if [ -z "$wasm_reason" ]; then
  check "cargo ${toolchain[*]} doc connect-wasm for $WASM, -D warnings" \
    timeout 300 cargo "${toolchain[@]}" doc --no-deps --all-features --locked -p connect-wasm --target "$WASM"
else
  skip "connect-wasm's docs for $WASM: $wasm_reason"
fi
unset RUSTDOCFLAGS

if [ -z "$msrv_reason" ]; then
  check "MSRV: cargo +$MSRV check --all-features --locked" \
    timeout 300 cargo "+$MSRV" check --all-features --locked "${packages[@]}"
  if [ -z "$wasm_reason" ]; then
    check "MSRV: cargo +$MSRV check connect-wasm for $WASM" \
      timeout 300 cargo "+$MSRV" check --all-features --locked -p connect-wasm --target "$WASM"
  else
    skip "MSRV of connect-wasm for $WASM: $wasm_reason"
  fi
else
  skip "MSRV check: $msrv_reason"
fi

echo "package-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
