#!/usr/bin/env bash
# Builds the one module `shieldwall.wasm` (release, wasm32-wasip1) with the given cargo arguments
# and copies it to OUT (every variant writes the same file, so each is copied away), then runs
# scripts/wasm-opt.sh over the copy.
#
#   bench/one-module.sh OUT [cargo build arguments…]
#   bench/one-module.sh OUT --without F[,F…] [cargo build arguments…]
#   bench/one-module.sh /tmp/jwt-only.wasm --no-default-features --features jwt-auth
#   bench/one-module.sh /tmp/no-rego.wasm --without policy-authz
#
# --without: every filter of the crate's default features but those named (the list is read from
# filters/shieldwall/Cargo.toml, so a filter added there is in every such build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$1"
shift
if [ "${1:-}" = --without ]; then
  [ $# -ge 2 ] || { echo "--without needs a comma-separated list of filters" >&2; exit 2; }
  features="$(cargo metadata --quiet --no-deps --format-version 1 --locked | python3 -c '
import json, sys
skip = set(sys.argv[1].split(","))
package = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "shieldwall")
default = package["features"]["default"]
unknown = skip - set(default)
if unknown:
    sys.exit("not a default feature of shieldwall: " + ", ".join(sorted(unknown)))
print(",".join(f for f in default if f not in skip))' "$2")"
  shift 2
  set -- --no-default-features --features "$features" "$@"
fi
release="$(bash scripts/target-dir.sh)/wasm32-wasip1/release"
# A touched source makes cargo link this variant anew rather than take another variant's
# fingerprint as up to date.
touch filters/shieldwall/src/lib.rs
cargo build --quiet --release --locked --target wasm32-wasip1 -p shieldwall "$@" >&2
cp "$release/shieldwall.wasm" "$out"
# As it ships: Binaryen's wasm-opt over the copy.
bash scripts/wasm-opt.sh "$out"
