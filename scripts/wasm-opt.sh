#!/usr/bin/env bash
# Binaryen's optimiser (`wasm-opt -O3`, options below) over built wasm modules, in place. rustc's
# wasm32 output keeps about a seventh that wasm-opt removes (jwt_auth.wasm 541,660 → 464,549
# bytes; -Oz would save 1.5 % more, at the cost of the speed passes): a smaller image to pull and
# fewer bytes for every V8 instance to compile.
#
#   scripts/wasm-opt.sh              every module of scripts/wasm-modules.sh paths
#   scripts/wasm-opt.sh FILE...      those files
#
# After every `cargo build --target wasm32-wasip1 --release` of a module: cargo links the module
# anew from rustc's output under deps/ on each build, even one with nothing to do, which puts the
# unoptimised file back. The optimised file replaces the link (rustc's output under deps/ stays
# as it was), and a kept copy with a stamp of both SHA-256s (under <target>/wasm-opt/) lets the
# next run recognise rustc's output and put the optimised copy back without optimising again.
#
# wasm-opt comes from the Debian package `binaryen` (scripts/setup.sh installs it). Without it
# this fails, naming the package; SHIELDWALL_WASM_OPT=off skips the step (the modules then work
# the same, only larger).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ "${SHIELDWALL_WASM_OPT:-on}" = off ]; then
  echo "SHIELDWALL_WASM_OPT=off: the modules are left as rustc wrote them" >&2
  exit 0
fi
if ! command -v wasm-opt >/dev/null 2>&1; then
  echo "wasm-opt is missing: install the Debian package binaryen (scripts/setup.sh does)," >&2
  echo "or set SHIELDWALL_WASM_OPT=off to keep the modules unoptimised" >&2
  exit 1
fi

# -O3, but a function with one caller is inlined only up to 100 instructions: by default Binaryen
# inlines every such function whatever its size, and the giant functions this makes cost Envoy
# 14-16 MiB more memory with jwt-auth alone as V8 compiles them (98 → 113 MiB of VmRSS at start,
# 2 workers; 181 → 213 MiB with the one module). With the limit the module is 0.5 % larger and
# Envoy's memory is what it was without wasm-opt. The features are those rustc enables for
# wasm32-wasip1, which the modules use and Envoy's V8 runs.
options=(-O3 --one-caller-inline-max-function-size 100
  --enable-bulk-memory --enable-sign-ext --enable-mutable-globals
  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types)

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  while read -r path; do files+=("$path"); done < <(bash "$root/scripts/wasm-modules.sh" paths)
fi
state="$(bash "$root/scripts/target-dir.sh")/wasm-opt"
mkdir -p "$state"
# Runs over one build directory take turns (the tests start several gateway stacks at once, each
# building and optimising the same modules); the temporary files are per process as well.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$state/lock"
  flock 9
fi

sha() { sha256sum "$1" | cut -d' ' -f1; }

for file in "${files[@]}"; do
  [ -f "$file" ] || { echo "no module at $file" >&2; exit 1; }
  # One stamp per path and options: "<rustc's sha256> <optimised sha256>", and the optimised copy
  # beside it.
  key="$(printf '%s %s' "$(cd "$(dirname "$file")" && pwd)/$(basename "$file")" "${options[*]}" |
    sha256sum | cut -c1-16)"
  stamp="$state/$key.stamp"
  kept="$state/$key.wasm"
  current="$(sha "$file")"
  before="" after=""
  [ -f "$stamp" ] && read -r before after < "$stamp"
  if [ "$current" = "$after" ]; then
    continue
  fi
  if ! [ "$current" = "$before" ] || ! [ -f "$kept" ] || ! [ "$(sha "$kept")" = "$after" ]; then
    wasm-opt "${options[@]}" "$file" -o "$kept.$$.tmp"
    mv "$kept.$$.tmp" "$kept"
    printf '%s %s\n' "$current" "$(sha "$kept")" > "$stamp"
    printf '%s: %s → %s bytes\n' "$(basename "$file")" "$(stat -c %s "$file")" "$(stat -c %s "$kept")" >&2
  fi
  # A new file in the module's place: a link to rustc's output is replaced, not written through.
  cp "$kept" "$file.wasm-opt.$$.tmp"
  mv "$file.wasm-opt.$$.tmp" "$file"
done
