#!/usr/bin/env bash
# One piece of a module's own code, timed in wasm engines other than Envoy's: the hostcalls
# guest's `compute` work (host-tests/guests/hostcalls: 24 short strings formatted, sorted, joined
# and hashed; no host call), from the same module file as the benchmark loads (release build, then
# scripts/wasm-opt.sh), through its export `shieldwall_bench_compute`:
#   - wasmtime with its default settings (Cranelift), the test host's engine
#     (bench/mint/examples/engine_compute.rs);
#   - V8 in Node with `--no-liftoff` (only the optimising compiler, the flag Envoy gives its V8)
#     and with V8's defaults (bench/engine_compute.mjs).
# Each prints the median over 9 rounds of 2,000 runs, in µs per run. Envoy's own figure is the
# `compute` row of the benchmark's host-call table (20 per request, against the empty module):
#   BENCH_ONLY=diag-noop,diag-hc-compute scripts/bench.sh
#
#   bench/engine_compute.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="$(bash scripts/target-dir.sh)"
module="$target/wasm32-wasip1/release/hostcalls.wasm"
cargo build --quiet --release --locked --target wasm32-wasip1 -p hostcalls
bash scripts/wasm-opt.sh "$module" >/dev/null
cargo build --quiet --release --locked -p bench-mint --example engine_compute
node="$(bash scripts/node-path.sh)"
printf 'wasmtime (Cranelift, default settings):   %s\n' \
  "$("$target/release/examples/engine_compute" "$module")"
printf "Node's V8, --no-liftoff (as Envoy sets):   %s\n" \
  "$("$node" --no-liftoff bench/engine_compute.mjs "$module")"
printf "Node's V8, its defaults:                   %s\n" \
  "$("$node" bench/engine_compute.mjs "$module")"
