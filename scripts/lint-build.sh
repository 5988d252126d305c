#!/usr/bin/env bash
# Runs cargo with clippy's lints applied to the workspace's own crates while they compile, so one
# native build both lints and builds the tests (scripts/test.sh). A separate `cargo clippy` pass
# checks every dependency a second time (check mode shares nothing with a build): on the 2-core
# test machine it took 7.5 minutes of one run of the test command (where it also built the build
# scripts and proc macros the test build then reused), and 107 s over a tree already built.
#
#   scripts/lint-build.sh test --workspace --no-run ...   build (and lint) the tests
#   scripts/lint-build.sh test --workspace ...            run them (nothing is rebuilt)
#   scripts/lint-build.sh --self-check                    show that a lint fails the build
#
# How: cargo runs `clippy-driver` (the compiler with clippy's lints, from the toolchain that
# rust-toolchain.toml pins) in place of rustc for workspace members only
# (RUSTC_WORKSPACE_WRAPPER); dependencies compile with plain rustc. `-D warnings` reaches the
# driver the way `cargo clippy -- -D warnings` passes it (CLIPPY_ARGS), so every warning, rustc's
# and clippy's, fails the build. The driver compiles with rustc's MIR optimisations off and without
# the debug-build checks of raw-pointer reads (alignment, null), so its lints see the code as
# written. A test build at opt-level 0 hardly notices the first. For the second: the one code the
# tests run natively that reads through raw pointers, core's small-block allocator (pool.rs), has
# tests that assert every block's alignment themselves. The release wasm modules are built without
# the driver (they are what ships and what the benchmark measures).
#
# Both variables are part of cargo's fingerprint of a crate: a crate built without them is rebuilt
# (and so linted) with them, and the other way round. Run the tests through this script after
# building them through it, or cargo rebuilds the workspace's crates.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

driver="$(rustc --print sysroot)/bin/clippy-driver"
if [ ! -x "$driver" ]; then
  echo "lint-build: $driver is missing: the toolchain lacks clippy (rustup component add clippy)" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

if [ "${1:-}" = --self-check ]; then
  # A one-function crate outside the workspace (its own [workspace] table, its own target
  # directory) with a warn-by-default clippy lint: built this way it must fail and name the lint.
  # If a toolchain update changed how the driver takes its arguments, the lints would silently
  # stop; this says so instead. Run from the repository root, so rustup picks the pinned
  # toolchain.
  probe="$(bash scripts/target-dir.sh)/tmp/lint-probe"
  rm -rf "$probe"
  mkdir -p "$probe/src"
  printf '[package]\nname = "lint-probe"\nversion = "0.0.0"\nedition = "2021"\n\n[workspace]\n' \
    >"$probe/Cargo.toml"
  printf 'pub fn length(v: &Vec<u8>) -> usize {\n    v.len()\n}\n' >"$probe/src/lib.rs"
  if CARGO_TARGET_DIR="$probe/target" cargo build --offline --quiet \
    --manifest-path "$probe/Cargo.toml" >"$probe/out" 2>&1; then
    echo "lint-build: a crate with a clippy warning built: the lints are not applied" >&2
    cat "$probe/out" >&2
    exit 1
  fi
  if ! grep -q 'clippy::ptr_arg' "$probe/out"; then
    echo "lint-build: the probe crate failed, but not on clippy's ptr_arg lint:" >&2
    cat "$probe/out" >&2
    exit 1
  fi
  rm -rf "$probe"
  exit 0
fi

exec cargo "$@"
