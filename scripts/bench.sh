#!/usr/bin/env bash
# The side-by-side benchmark: Envoy's native filters against shieldwall's modules, in the same run
# on the same machine. Builds the modules and the helper, mints fresh keys and tokens, runs the
# micro-benchmarks, then bench/run.py (throughput, latency, memory) writes bench/RESULTS.md.
#
#   scripts/bench.sh                                  # 3 rounds x 10 s per variant
#   BENCH_SECONDS=5 BENCH_ROUNDS=1 scripts/bench.sh   # a quick check that everything works
#
# Environment: BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_WARMUP (3 s per variant),
# BENCH_CONNECTIONS (16), BENCH_TOKENS (6000 cold-path tokens per algorithm; more than jwt-auth's
# token cache holds), BENCH_MEMORY_SECONDS (3), BENCH_SKIP_MEMORY=1, BENCH_SKIP_ATTACK=1, BENCH_ENVOY_CPU (0),
# BENCH_LOAD_CPU (1), BENCH_RESULTS (bench/RESULTS.md). See bench/README.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*" >&2; }

envoy="$("$root/scripts/envoy-path.sh" 2>/dev/null || true)"
if [ -z "$envoy" ] || ! command -v openssl >/dev/null 2>&1; then
  "$root/scripts/setup.sh"
  envoy="$("$root/scripts/envoy-path.sh")"
fi
# The load generator is the benchmark's own package: scripts/setup.sh (for the gateway and the
# tests) does not install it.
if ! command -v wrk >/dev/null 2>&1; then
  say "installing the Debian package wrk (the load generator)"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq wrk >/dev/null
fi
for tool in taskset python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is needed"; exit 1; }
done

target="$(bash "$root/scripts/target-dir.sh")"
release="$target/wasm32-wasip1/release"
# The modules the rows load: their packages, and the files cargo writes for them (one list, so
# what is built is what goes through wasm-opt below).
packages=(jwt-auth scope-authz rate-limit token-introspection shieldwall audit-log identity-exchange
  payload-guard policy-authz mtls-identity noop hostcalls ladder)
build_args=()
module_files=()
for package in "${packages[@]}"; do
  build_args+=(-p "$package")
  module_files+=("$release/${package//-/_}.wasm")
done
say "building the modules (release, wasm32-wasip1)"
cargo build --quiet --release --target wasm32-wasip1 "${build_args[@]}"
# The one module built with only the filters a row runs, beside the default build (each variant
# writes shieldwall.wasm, so it is copied away, and the default build is made again last).
say "building the one module with only the filters of a row"
bench/one-module.sh "$release/shieldwall-jwt-only.wasm" --no-default-features --features jwt-auth
bench/one-module.sh "$release/shieldwall-jwt-scope-ratelimit.wasm" --no-default-features \
  --features jwt-auth,scope-authz,rate-limit
# Every filter but policy-authz (the Rego interpreter): the build for deployments without policies.
bench/one-module.sh "$release/shieldwall-without-policy-authz.wasm" --without policy-authz
# The default build last: the tests and the other rows load shieldwall.wasm.
touch "$root/filters/shieldwall/src/lib.rs"
cargo build --quiet --release --target wasm32-wasip1 -p shieldwall
# The empty module that also exports the response-header and log callbacks (diag-noop-exports),
# built and copied away the same way, then the plain one again.
touch "$root/host-tests/guests/noop/src/lib.rs"
cargo build --quiet --release --target wasm32-wasip1 -p noop --features noop/every-callback
cp "$release/noop.wasm" "$release/noop-exports.wasm"
module_files+=("$release/noop-exports.wasm")
touch "$root/host-tests/guests/noop/src/lib.rs"
cargo build --quiet --release --target wasm32-wasip1 -p noop
# Every module as it ships: Binaryen's wasm-opt over each (scripts/wasm-opt.sh).
say "wasm-opt over the modules"
bash scripts/wasm-opt.sh "${module_files[@]}"
say "building the benchmark helper"
cargo build --quiet --release -p bench-mint --bin bench-mint
cargo build --quiet -p bench-mint --example wasm_verify

work="$(mktemp -d "${TMPDIR:-/tmp}/shieldwall-bench-tokens.XXXXXX")"
trap 'rm -rf "$work"' EXIT
say "minting keys (RSA-2048, P-256, Ed25519) and ${BENCH_TOKENS:-6000} tokens per algorithm"
"$target/release/bench-mint" mint --out "$work" --count "${BENCH_TOKENS:-6000}"

say "micro-benchmark: signature verification natively (ring, jwt-auth's own verifier)"
taskset -c "${BENCH_LOAD_CPU:-1}" "$target/release/bench-mint" verify --dir "$work" \
  --iterations "${BENCH_MICRO_ITERATIONS:-2000}" | tee "$work/micro-native.jsonl" >&2
say "micro-benchmark: requests through jwt_auth.wasm on the test host (wasmtime)"
taskset -c "${BENCH_LOAD_CPU:-1}" "$target/debug/examples/wasm_verify" "${BENCH_MICRO_REQUESTS:-500}" \
  | tee "$work/micro-wasm.jsonl" >&2

say "the same paths natively, on the mock host (filters/shieldwall/examples/path_cost.rs)"
cargo build --quiet --release -p shieldwall --example path_cost
taskset -c "${BENCH_LOAD_CPU:-1}" "$target/release/examples/path_cost" | tee "$work/path-cost.txt" >&2

say "Envoy: $("$envoy" --version | grep -o 'version: [^ ]*' | head -1)"
BENCH_ENVOY="$envoy" \
BENCH_WASM_DIR="$target/wasm32-wasip1/release" \
BENCH_TOKENS_DIR="$work" \
BENCH_MICRO_NATIVE="$work/micro-native.jsonl" \
BENCH_MICRO_WASM="$work/micro-wasm.jsonl" \
BENCH_PATH_COST="$work/path-cost.txt" \
  python3 "$root/bench/run.py"
