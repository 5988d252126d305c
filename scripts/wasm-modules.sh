#!/usr/bin/env bash
# The release wasm modules that scripts/test.sh builds: every crate under filters/ except the
# shared library `core`, plus the host-tests guests (the harness probe and the empty module the
# benchmark measures as the floor of a wasm filter).
#
#   scripts/wasm-modules.sh packages   the cargo package names, one a line
#   scripts/wasm-modules.sh filters    only the filters' package names (those under filters/)
#   scripts/wasm-modules.sh paths      the .wasm files they build to, one a line (the default)
#   scripts/wasm-modules.sh check      `ls -l` of those files; exits 1 naming any that is missing
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

paths() {
  local target name
  target="$(bash "$root/scripts/target-dir.sh")"
  packages | while read -r name; do
    printf '%s\n' "$target/wasm32-wasip1/release/${name//-/_}.wasm"
  done
}

case "${1:-paths}" in
  packages) packages ;;
  filters) packages filters ;;
  paths) paths ;;
  check)
    missing=0
    while read -r path; do
      if [ -f "$path" ]; then
        ls -l "$path"
      else
        echo "missing: $path" >&2
        missing=1
      fi
    done < <(paths)
    exit "$missing"
    ;;
  *)
    echo "usage: $0 [packages|filters|paths|check]" >&2
    exit 2
    ;;
esac
