#!/usr/bin/env bash
# Prints the JWKS that identity-exchange serves at its `jwks_path`, for a configuration file: the
# public halves of every key in `token.keys`, with kid, alg and use. For a static
# `RequestAuthentication.jwks` (or any verifier that cannot fetch the gateway's JWKS).
#
#   scripts/internal-jwks.sh filters/identity-exchange/config.json
#   SHIELDWALL_SIGNING_KEY="$(cat signing.pem)" scripts/internal-jwks.sh config.json
#
# The configuration is checked as the filter checks it at load; the signing key is read from the
# environment variable its `private_key_env` names (as the proxy would hand it to the VM). A
# WasmPlugin manifest's pluginConfig works too once converted to JSON. Builds the small CLI
# (filters/identity-exchange/examples/internal_jwks.rs) with cargo on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -ne 1 ]; then
  echo "usage: $0 <identity-exchange config.json | ->" >&2
  exit 2
fi
config="$1"
if [ "$config" != "-" ]; then
  config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
fi
cd "$root"
exec cargo run --quiet --release --locked -p identity-exchange --example internal_jwks -- "$config"
