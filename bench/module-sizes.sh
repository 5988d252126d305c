#!/usr/bin/env bash
# Module sizes: the one module `shieldwall.wasm` built with every filter (the default), without
# policy-authz, without payload-guard and policy-authz, and with each filter alone, beside each
# filter's own module; all with the release profile of the workspace (wasm32-wasip1) and then
# Binaryen's wasm-opt (scripts/wasm-opt.sh), as they ship. Prints a Markdown table.
#
#   bench/module-sizes.sh            # the variants' modules are kept in <target>/module-sizes/
#
# The one module's variants are built one after the other in the usual target directory (each
# overwrites shieldwall.wasm), and the default build comes last, so that the directory holds the
# module the tests use when this ends.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="$(bash scripts/target-dir.sh)"
out="$target/module-sizes"
mkdir -p "$out"
release="$target/wasm32-wasip1/release"
filters=(audit-log mtls-identity jwt-auth token-introspection scope-authz rate-limit payload-guard policy-authz identity-exchange)

size() { stat -c %s "$1"; }
one_module() { # name, cargo arguments...
  local name="$1"
  shift
  bench/one-module.sh "$out/shieldwall-$name.wasm" "$@"
}

echo "==> the filters' own modules" >&2
own=()
for f in "${filters[@]}"; do own+=(-p "$f"); done
cargo build --quiet --release --locked --target wasm32-wasip1 "${own[@]}" >&2
own_files=()
for f in "${filters[@]}"; do
  cp "$release/${f//-/_}.wasm" "$out/own-$f.wasm"
  own_files+=("$out/own-$f.wasm")
done
bash scripts/wasm-opt.sh "${own_files[@]}" >&2

echo "==> the one module, each filter alone" >&2
for f in "${filters[@]}"; do
  one_module "only-$f" --no-default-features --features "$f"
done
echo "==> the one module without policy-authz" >&2
one_module without-policy-authz --without policy-authz
echo "==> the one module without payload-guard and policy-authz" >&2
one_module without-payload-guard-policy-authz --without payload-guard,policy-authz
echo "==> the one module, default (every filter)" >&2
one_module default

printf '| module | bytes |\n| --- | ---: |\n'
printf '| shieldwall.wasm, default (every filter) | %s |\n' "$(size "$out/shieldwall-default.wasm")"
printf '| shieldwall.wasm without policy-authz | %s |\n' "$(size "$out/shieldwall-without-policy-authz.wasm")"
printf '| shieldwall.wasm without payload-guard and policy-authz | %s |\n' \
  "$(size "$out/shieldwall-without-payload-guard-policy-authz.wasm")"
printf '\n| filter | its own module, bytes | shieldwall.wasm with only it, bytes |\n| --- | ---: | ---: |\n'
for f in "${filters[@]}"; do
  printf '| %s | %s | %s |\n' "$f" "$(size "$out/own-$f.wasm")" "$(size "$out/shieldwall-only-$f.wasm")"
done
