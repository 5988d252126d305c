#!/usr/bin/env bash
# The one test command: installs what is missing, then runs every check shieldwall has —
# formatting, lints (native and wasm32), the wasm build, unit tests, the wasm host tests over the
# real modules, the end-to-end tests in a real Envoy, and a short fuzzing run.
#
#   scripts/test.sh            everything
#   SHIELDWALL_FUZZ_SECONDS=0 scripts/test.sh    skip the fuzzing run
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n==> %s\n' "$*" >&2; }

step "setup: toolchain, Envoy, the IdP, Debian packages"
bash scripts/setup.sh

# Every filter crate under filters/ except the shared library (built with the harness probe guest
# and the empty module the benchmark measures as the floor of a wasm filter).
modules=()
for dir in filters/*/; do
  name="$(basename "$dir")"
  [ "$name" = core ] && continue
  modules+=(-p "$name")
done

step "format"
cargo fmt --all -- --check

step "lint (native, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "lint (jwt-auth with its jwt-compact adapter)"
cargo clippy -p jwt-auth --features jwt-compact --all-targets --locked -- -D warnings

step "lint (wasm32-wasip1: the filters as Envoy runs them)"
cargo clippy --target wasm32-wasip1 --release --locked "${modules[@]}" -- -D warnings

step "build the release wasm modules"
cargo build --target wasm32-wasip1 --release --locked "${modules[@]}" -p probe -p noop
ls -l target/wasm32-wasip1/release/*.wasm >&2

step "tests: unit, host-tests (real modules on wasmtime), Envoy end-to-end"
cargo test --workspace --locked

step "tests: jwt-auth's verifiers as jwt-compact algorithms (every Wycheproof vector through the adapter)"
cargo test -p jwt-auth --features jwt-compact --locked

fuzz_seconds="${SHIELDWALL_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" -gt 0 ]; then
  step "fuzz the token and JWKS parsers (${fuzz_seconds}s each)"
  bash scripts/fuzz.sh "$fuzz_seconds"
fi

step "all checks passed"
