#!/usr/bin/env bash
# Prints the Node.js binary that runs the OpenID Provider (envoy/idp): SHIELDWALL_NODE when set,
# else the project-local Node that scripts/setup.sh installs from npm into .cache/node when the
# system's Node is not one oidc-provider supports, else `node` on PATH. Exits 1 when there is none.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -n "${SHIELDWALL_NODE:-}" ]; then
  if p="$(command -v "$SHIELDWALL_NODE" 2>/dev/null)"; then echo "$p"; exit 0; fi
  echo "SHIELDWALL_NODE=$SHIELDWALL_NODE is not an executable" >&2
  exit 1
fi
local_node="$root/.cache/node/node_modules/.bin/node"
if [ -x "$local_node" ]; then echo "$local_node"; exit 0; fi
if p="$(command -v node 2>/dev/null)"; then echo "$p"; exit 0; fi
exit 1
