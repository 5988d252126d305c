#!/usr/bin/env bash
# Builds the one module `shieldwall.wasm` (release, wasm32-wasip1) with the given cargo arguments
# and copies it to OUT (every variant writes the same file, so each is copied away), then runs
# scripts/wasm-opt.sh over the copy.
#
#   bench/one-module.sh OUT [cargo build arguments…]
#   bench/one-module.sh /tmp/jwt-only.wasm --no-default-features --features jwt-auth
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$1"
shift
release="$(bash scripts/target-dir.sh)/wasm32-wasip1/release"
# A touched source makes cargo link this variant anew rather than take another variant's
# fingerprint as up to date.
touch filters/shieldwall/src/lib.rs
cargo build --quiet --release --locked --target wasm32-wasip1 -p shieldwall "$@" >&2
cp "$release/shieldwall.wasm" "$out"
# As it ships: Binaryen's wasm-opt over the copy.
bash scripts/wasm-opt.sh "$out"
