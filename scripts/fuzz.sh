#!/usr/bin/env bash
# Runs each cargo-fuzz target of the project for N seconds (default 20). cargo-fuzz needs unstable
# compiler flags; RUSTC_BOOTSTRAP=1 lets the pinned stable toolchain accept them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet
fi
for fuzz_dir in "$root"/filters/*/fuzz; do
  [ -f "$fuzz_dir/Cargo.toml" ] || continue
  crate_dir="$(dirname "$fuzz_dir")"
  for target in $(cd "$crate_dir" && RUSTC_BOOTSTRAP=1 cargo fuzz list); do
    echo "==> fuzz $(basename "$crate_dir")/$target for ${seconds}s" >&2
    (cd "$crate_dir" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=0 2>&1 | tail -n 3)
  done
done
