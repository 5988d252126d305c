#!/usr/bin/env bash
# The release wasm modules that scripts/test.sh builds: every crate under filters/ except the
# shared library `core`, plus the host-tests guests (the harness probe and the empty module the
# benchmark measures as the floor of a wasm filter).
#
#   scripts/wasm-modules.sh packages   the cargo package names, one a line
#   scripts/wasm-modules.sh filters    only the filters' package names (those under filters/)
#   scripts/wasm-modules.sh paths      the .wasm files they build to, one a line (the default)
#   scripts/wasm-modules.sh budgets    each of those files, a tab, its size budget in bytes (empty: none)
#   scripts/wasm-modules.sh check      `ls -l` of those files; exits 1 naming any that is missing
#                                      or larger than its crate's size budget (below)
#
# A size budget: `wasm-max-bytes = N` under `[package.metadata.shieldwall]` in a crate's
# Cargo.toml, the most bytes its module may have as it ships (scripts/test.sh runs `check` after
# scripts/wasm-opt.sh). The budgets are #19's size targets where a module meets them; where one does
# not yet, about 3 % above its size when the budget was set, so that it cannot grow unnoticed
# (bench/RESULTS.md gives the targets and the sizes of each benchmark run).
#
# The paths are under the target directory of scripts/target-dir.sh (CARGO_TARGET_DIR when set).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages() { # [filters]
  local dir name dirs=("$root"/filters/*/)
  [ "${1:-}" = filters ] || dirs+=("$root"/host-tests/guests/*/)
  for dir in "${dirs[@]}"; do
    [ -f "$dir/Cargo.toml" ] || continue
    name="$(basename "$dir")"
    [ "$name" = core ] && continue
    printf '%s\n' "$name"
  done
}

paths() { # [with-budgets]: each path followed by a tab and its budget in bytes (empty: none)
  local target name dir budget
  target="$(bash "$root/scripts/target-dir.sh")"
  packages | while read -r name; do
    printf '%s' "$target/wasm32-wasip1/release/${name//-/_}.wasm"
    if [ "${1:-}" = with-budgets ]; then
      budget=""
      for dir in "$root/filters/$name" "$root/host-tests/guests/$name"; do
        [ -f "$dir/Cargo.toml" ] || continue
        budget="$(budget_of "$dir/Cargo.toml")"
      done
      printf '\t%s' "$budget"
    fi
    printf '\n'
  done
}

# The `wasm-max-bytes` of a Cargo.toml's [package.metadata.shieldwall] table (digits only; TOML's
# `_` separators allowed), or nothing.
budget_of() {
  awk '
    /^[[:space:]]*\[/ { table = $0; gsub(/[[:space:]]/, "", table); next }
    table == "[package.metadata.shieldwall]" && $1 == "wasm-max-bytes" && $2 == "=" {
      value = $3; gsub(/_/, "", value)
      if (value ~ /^[0-9]+$/) print value
    }' "$1"
}

case "${1:-paths}" in
  packages) packages ;;
  filters) packages filters ;;
  paths) paths ;;
  budgets) paths with-budgets ;;
  check)
    failed=0
    while IFS=$'\t' read -r path budget; do
      if [ ! -f "$path" ]; then
        echo "missing: $path" >&2
        failed=1
        continue
      fi
      ls -l "$path"
      size="$(stat -c %s "$path")"
      if [ -n "$budget" ] && [ "$size" -gt "$budget" ]; then
        echo "too large: $path is $size bytes, over its budget of $budget (wasm-max-bytes in its Cargo.toml)" >&2
        failed=1
      fi
    done < <(paths with-budgets)
    exit "$failed"
    ;;
  *)
    echo "usage: $0 [packages|filters|paths|budgets|check]" >&2
    exit 2
    ;;
esac
