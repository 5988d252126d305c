#!/usr/bin/env bash
# Quick checks of the scripts themselves (a few seconds, no build), run early by scripts/test.sh:
#   - every script parses (bash -n), and shellcheck finds no warning when it is installed;
#   - CARGO_TARGET_DIR is honoured: target-dir.sh, the module list of `scripts/test.sh
#     --list-modules`, `scripts/wasm-modules.sh check`, oci-package.sh's output and fuzz.sh's build
#     directory all point into it when it is set, and into target/ when it is not;
#   - `scripts/wasm-modules.sh check` fails on a module over its size budget;
#   - scripts/wasm-opt.sh optimises a module in place once, leaves rustc's output under deps/
#     alone and puts its kept copy back after cargo linked rustc's output in again;
#   - `scripts/gateway.sh status` exits 1 when the gateway is stopped.
# `test && pass || fail ...` below is safe: pass always succeeds.
# shellcheck disable=SC2015
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

failures=0
checks=0
pass() { checks=$((checks + 1)); }
fail() {
  checks=$((checks + 1))
  failures=$((failures + 1))
  printf 'FAIL: %s\n' "$*" >&2
}
expect_eq() { # WHAT GOT WANT
  if [ "$2" = "$3" ]; then pass; else fail "$1: got '$2', want '$3'"; fi
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/shieldwall-check-scripts.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# --- the scripts parse; shellcheck, when installed
for script in scripts/*.sh .ci/run; do
  if bash -n "$script" 2>"$tmp/syntax"; then pass; else fail "$script does not parse: $(cat "$tmp/syntax")"; fi
done
if command -v shellcheck >/dev/null 2>&1; then
  if shellcheck --severity=warning scripts/*.sh .ci/run >"$tmp/shellcheck" 2>&1; then
    pass
  else
    fail "shellcheck:"$'\n'"$(cat "$tmp/shellcheck")"
  fi
else
  echo "check-scripts: shellcheck is not installed, its check is left out" >&2
fi

# --- target-dir.sh
expect_eq "target-dir.sh without CARGO_TARGET_DIR" \
  "$(env -u CARGO_TARGET_DIR bash scripts/target-dir.sh)" "$root/target"
expect_eq "target-dir.sh with an absolute CARGO_TARGET_DIR" \
  "$(CARGO_TARGET_DIR="$tmp/t/" bash scripts/target-dir.sh)" "$tmp/t"
expect_eq "target-dir.sh with a relative CARGO_TARGET_DIR (taken from the repository root)" \
  "$(cd "$tmp" && CARGO_TARGET_DIR=rel/t bash "$root/scripts/target-dir.sh")" "$root/rel/t"

# --- the module list of scripts/test.sh, with and without CARGO_TARGET_DIR
packages="$(bash scripts/wasm-modules.sh packages)"
count="$(printf '%s\n' "$packages" | grep -c .)"
[ "$count" -ge 3 ] && pass || fail "wasm-modules.sh packages lists $count packages: $packages"
case "$packages" in *core*) fail "wasm-modules.sh lists the core library: $packages" ;; *) pass ;; esac
listed="$(CARGO_TARGET_DIR="$tmp/ct" bash scripts/test.sh --list-modules)"
expect_eq "test.sh --list-modules: one path per package" "$(printf '%s\n' "$listed" | grep -c .)" "$count"
bad="$(printf '%s\n' "$listed" | grep -v "^$tmp/ct/wasm32-wasip1/release/[a-z0-9_]*\.wasm\$" || true)"
expect_eq "test.sh --list-modules with CARGO_TARGET_DIR: paths outside it" "$bad" ""
printf '%s\n' "$listed" | grep -qx "$tmp/ct/wasm32-wasip1/release/jwt_auth.wasm" && pass ||
  fail "test.sh --list-modules lacks jwt_auth.wasm: $listed"
bad="$(env -u CARGO_TARGET_DIR bash scripts/test.sh --list-modules | grep -v "^$root/target/wasm32-wasip1/release/" || true)"
expect_eq "test.sh --list-modules without CARGO_TARGET_DIR: paths outside target/" "$bad" ""

# `wasm-modules.sh check` finds the files in CARGO_TARGET_DIR and names a missing one.
mkdir -p "$tmp/ct/wasm32-wasip1/release"
printf '\0asm\1\0\0\0' >"$tmp/module.wasm"
while read -r path; do
  case "$path" in "$tmp/ct/"*) cp "$tmp/module.wasm" "$path" ;; esac
done <<<"$listed"
if CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-modules.sh check >/dev/null 2>&1; then pass; else
  fail "wasm-modules.sh check does not find the modules in CARGO_TARGET_DIR"
fi
rm "$tmp/ct/wasm32-wasip1/release/jwt_auth.wasm"
if CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-modules.sh check >/dev/null 2>"$tmp/missing"; then
  fail "wasm-modules.sh check passes with jwt_auth.wasm missing"
else
  grep -q "missing: $tmp/ct/wasm32-wasip1/release/jwt_auth.wasm" "$tmp/missing" && pass ||
    fail "wasm-modules.sh check does not name the missing module: $(cat "$tmp/missing")"
fi

# ...and fails naming a module over its crate's size budget (jwt-auth's wasm-max-bytes), not one
# at it.
jwt_budget="$(CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-modules.sh budgets |
  awk -F'\t' -v want="$tmp/ct/wasm32-wasip1/release/jwt_auth.wasm" '$1 == want { print $2 }')"
[ -n "$jwt_budget" ] && pass || fail "wasm-modules.sh budgets gives jwt_auth.wasm no budget (wasm-max-bytes)"
truncate -s "${jwt_budget:-0}" "$tmp/ct/wasm32-wasip1/release/jwt_auth.wasm"
if CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-modules.sh check >/dev/null 2>"$tmp/size"; then pass; else
  fail "wasm-modules.sh check fails with jwt_auth.wasm at its budget: $(cat "$tmp/size")"
fi
truncate -s "$((${jwt_budget:-0} + 1))" "$tmp/ct/wasm32-wasip1/release/jwt_auth.wasm"
if CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-modules.sh check >/dev/null 2>"$tmp/size"; then
  fail "wasm-modules.sh check passes with jwt_auth.wasm one byte over its budget"
else
  grep -q "too large: $tmp/ct/wasm32-wasip1/release/jwt_auth.wasm is $((${jwt_budget:-0} + 1)) bytes" "$tmp/size" && pass ||
    fail "wasm-modules.sh check does not name the module over its budget: $(cat "$tmp/size")"
fi

# --- oci-package.sh writes to CARGO_TARGET_DIR/oci by default
if CARGO_TARGET_DIR="$tmp/ct" bash scripts/oci-package.sh jwt-auth --wasm "$tmp/module.wasm" --tag check \
  >"$tmp/oci.out" 2>&1; then
  [ -f "$tmp/ct/oci/jwt-auth/layout/index.json" ] && [ -f "$tmp/ct/oci/jwt-auth/jwt-auth-check.tar" ] && pass ||
    fail "oci-package.sh with CARGO_TARGET_DIR did not write $tmp/ct/oci/jwt-auth: $(cat "$tmp/oci.out")"
else
  fail "oci-package.sh failed: $(cat "$tmp/oci.out")"
fi

# --- fuzz.sh builds in CARGO_TARGET_DIR/fuzz (needs the cargo-fuzz of scripts/setup.sh)
if [ -x .cache/tools/bin/cargo-fuzz ]; then
  fuzz_list="$(CARGO_TARGET_DIR="$tmp/ct" bash scripts/fuzz.sh --list)"
  [ -n "$fuzz_list" ] && pass || fail "fuzz.sh --list lists no fuzz project"
  bad="$(printf '%s\n' "$fuzz_list" | awk -F'\t' -v want="$tmp/ct/fuzz" '$3 != want' || true)"
  expect_eq "fuzz.sh --list with CARGO_TARGET_DIR: build directories elsewhere" "$bad" ""
else
  echo "check-scripts: cargo-fuzz is not installed yet (scripts/setup.sh), fuzz.sh's check is left out" >&2
fi

# --- wasm-opt.sh: optimises in place, leaves rustc's output under deps/ alone, does nothing a
# second time, and puts its kept copy back after cargo linked rustc's output in again (a module
# with a constant sum to fold, written from text)
if command -v wasm-opt >/dev/null 2>&1; then
  printf '(module (func (export "f") (result i32) (i32.add (i32.const 1) (i32.const 2))))\n' >"$tmp/m.wat"
  wasm-opt "$tmp/m.wat" -o "$tmp/rustc.wasm" 2>/dev/null
  mkdir -p "$tmp/wo/deps"
  cp "$tmp/rustc.wasm" "$tmp/wo/deps/m.wasm"
  ln "$tmp/wo/deps/m.wasm" "$tmp/wo/m.wasm"
  CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-opt.sh "$tmp/wo/m.wasm" 2>"$tmp/wo.err" ||
    fail "wasm-opt.sh failed: $(cat "$tmp/wo.err")"
  optimised="$(sha256sum <"$tmp/wo/m.wasm")"
  [ "$optimised" != "$(sha256sum <"$tmp/rustc.wasm")" ] && pass || fail "wasm-opt.sh left the module as it was"
  expect_eq "wasm-opt.sh leaves rustc's output under deps/ as it was" \
    "$(sha256sum <"$tmp/wo/deps/m.wasm")" "$(sha256sum <"$tmp/rustc.wasm")"
  CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-opt.sh "$tmp/wo/m.wasm" 2>"$tmp/wo.err"
  expect_eq "wasm-opt.sh a second time: nothing to do" "$(cat "$tmp/wo.err")" ""
  ln -f "$tmp/wo/deps/m.wasm" "$tmp/wo/m.wasm"
  CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-opt.sh "$tmp/wo/m.wasm" 2>"$tmp/wo.err"
  expect_eq "wasm-opt.sh after cargo linked rustc's output back: the kept copy, not a new run" \
    "$(sha256sum <"$tmp/wo/m.wasm") $(cat "$tmp/wo.err")" "$optimised "
  # Two runs at once over the same module (as when the tests bring up two gateway stacks), each
  # after cargo linked rustc's output back: both succeed and the module is the optimised one.
  concurrent_ok=1
  for _ in 1 2 3 4 5; do
    ln -f "$tmp/wo/deps/m.wasm" "$tmp/wo/m.wasm"
    CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-opt.sh "$tmp/wo/m.wasm" 2>/dev/null &
    first=$!
    CARGO_TARGET_DIR="$tmp/ct" bash scripts/wasm-opt.sh "$tmp/wo/m.wasm" 2>/dev/null || concurrent_ok=0
    wait "$first" || concurrent_ok=0
    [ "$(sha256sum <"$tmp/wo/m.wasm")" = "$optimised" ] || concurrent_ok=0
  done
  [ "$concurrent_ok" = 1 ] && pass || fail "wasm-opt.sh run twice at once failed or left another module"
  SHIELDWALL_WASM_OPT=off bash scripts/wasm-opt.sh "$tmp/rustc.wasm" 2>/dev/null && pass ||
    fail "SHIELDWALL_WASM_OPT=off does not skip"
else
  echo "check-scripts: wasm-opt is not installed yet (scripts/setup.sh), wasm-opt.sh's check is left out" >&2
fi

# --- gateway.sh status exits 1 when stopped
if SHIELDWALL_GATEWAY_DIR="$tmp/gateway" bash scripts/gateway.sh status >"$tmp/status" 2>&1; then
  fail "gateway.sh status exits 0 with nothing running"
else
  grep -q "not running" "$tmp/status" && pass || fail "gateway.sh status: $(cat "$tmp/status")"
fi

if [ "$failures" -gt 0 ]; then
  echo "check-scripts: $failures of $checks checks failed" >&2
  exit 1
fi
echo "check-scripts: $checks checks passed" >&2
