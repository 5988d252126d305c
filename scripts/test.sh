#!/usr/bin/env bash
# The one test command: installs what is missing, then runs every check shieldwall has —
# the scripts' own checks, formatting, lints (native and wasm32), the wasm build, unit tests, the
# wasm host tests over the real modules, the end-to-end tests in a real Envoy, and a short fuzzing
# run. At the end it prints each step's wall time and the total (also when a step fails).
#
#   scripts/test.sh                              everything
#   SHIELDWALL_FUZZ_SECONDS=0 scripts/test.sh    skip the fuzzing run
#   scripts/test.sh --list-modules               the .wasm files the build step makes, one a line
#
# Build outputs go to CARGO_TARGET_DIR when it is set (scripts/target-dir.sh), target/ otherwise.
# Once scripts/setup.sh has run (the first step), nothing here needs the network.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The optional features that the lints and the tests turn on, as `package/feature` for cargo's
# --features (accepted with --workspace): the shared signature crate's verifiers as jwt-compact
# algorithms, which every Wycheproof vector also goes through.
features="shieldwall-jose/jwt-compact"

if [ "${1:-}" = --list-modules ]; then
  exec bash scripts/wasm-modules.sh paths
fi
[ $# -eq 0 ] || { echo "usage: $0 [--list-modules]" >&2; exit 2; }

# ------------------------------------------------------------------ steps and their wall time

export LC_ALL=C # a '.' in $EPOCHREALTIME and in the table
now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
test_started="$(now)"
step_names=()
step_times=()
current_step=""
current_started=""

# Ends the step that runs (if any) and starts the next one.
step() {
  end_step
  current_step="$1"
  current_started="$(now)"
  printf '\n==> %s\n' "$1" >&2
}
end_step() { # [failed]
  [ -n "$current_step" ] || return 0
  step_names+=("$current_step${1:+ (${1})}")
  step_times+=("$(seconds_since "$current_started")")
  current_step=""
}

print_times() {
  local status=$? i width=17
  end_step "$([ "$status" -eq 0 ] || echo failed)"
  [ ${#step_names[@]} -gt 0 ] || return 0
  for i in "${!step_names[@]}"; do
    [ ${#step_names[$i]} -le "$width" ] || width=${#step_names[$i]}
  done
  printf '\n%-*s %9s\n' "$width" "step" "seconds" >&2
  for i in "${!step_names[@]}"; do
    printf '%-*s %9s\n' "$width" "${step_names[$i]}" "${step_times[$i]}" >&2
  done
  printf '%-*s %9s\n' "$width" "total (wall time)" "$(seconds_since "$test_started")" >&2
}
trap print_times EXIT

# A build from nothing (as CI's clean clone is) gains nothing from cargo's incremental caches of
# the workspace's crates, and writing them costs time. Measured on the 2-core test machine, the
# test build after touching core and jose: 82 s with the caches (18 crates recompiled, none
# cached), 63 s without (24 crates: turning the caches off recompiled six more). Only where CI is
# set, so a developer's repeated runs keep them; CARGO_INCREMENTAL set by hand wins either way.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

# ------------------------------------------------------------------ the checks

step "setup: toolchain, Envoy, the IdP and its Node, cargo-fuzz, Debian packages"
bash scripts/setup.sh
# The IdP that the end-to-end tests start runs on this Node (envoy/src/idp.rs reads SHIELDWALL_NODE).
SHIELDWALL_NODE="$(bash scripts/node-path.sh)"
export SHIELDWALL_NODE

step "scripts: scripts/check-scripts.sh (CARGO_TARGET_DIR, module list, shellcheck)"
bash scripts/check-scripts.sh

step "format"
cargo fmt --all -- --check

# The native build of every test, example and binary, with clippy's lints (and -D warnings) on the
# workspace's crates as they compile: one pass instead of `cargo clippy --all-targets` and then a
# build, which checked every dependency and then built it again (scripts/lint-build.sh says how,
# and checks first that a lint does fail the build).
step "lint and build the tests (native, every target cargo test builds, features: $features)"
bash scripts/lint-build.sh --self-check
bash scripts/lint-build.sh test --workspace --locked --no-run --features "$features"

# The filters as Envoy runs them: every crate under filters/ except the shared library.
filters=()
while read -r name; do filters+=(-p "$name"); done < <(bash scripts/wasm-modules.sh filters)
step "lint (wasm32-wasip1: the filters as Envoy runs them)"
cargo clippy --target wasm32-wasip1 --release --locked "${filters[@]}" -- -D warnings

# ...and the host-tests guests (the harness probe and the empty module the benchmark measures).
modules=()
while read -r name; do modules+=(-p "$name"); done < <(bash scripts/wasm-modules.sh packages)
step "build the release wasm modules (then wasm-opt, as they ship)"
cargo build --target wasm32-wasip1 --release --locked "${modules[@]}"
bash scripts/wasm-opt.sh
bash scripts/wasm-modules.sh check >&2

step "tests: unit, host-tests (real modules on wasmtime), Envoy end-to-end (features: $features)"
# --no-fail-fast: every test binary runs, so one run reports every failure, not only the first.
# Through lint-build.sh, as they were built above, so cargo rebuilds nothing.
bash scripts/lint-build.sh test --workspace --locked --no-fail-fast --features "$features"

fuzz_seconds="${SHIELDWALL_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" -gt 0 ]; then
  step "fuzz the token and JWKS parsers and the verifiers (${fuzz_seconds}s each)"
  bash scripts/fuzz.sh "$fuzz_seconds"
fi

end_step
printf '\n==> all checks passed\n' >&2
