#!/usr/bin/env bash
# Packages one shieldwall filter as a Wasm OCI image (scripts/oci-package.sh), pushes it to a
# registry with skopeo, checks that the registry serves the manifest under the digest that was
# built, and prints the URL a WasmPlugin pins:
#
#   scripts/oci-push.sh <filter> <registry>/<repository> [--tag TAG] [--wasm FILE] [--out DIR] [--insecure]
#
#   scripts/oci-push.sh jwt-auth registry.example.com/shieldwall/jwt-auth
#   ==> … progress on stderr …
#   oci://registry.example.com/shieldwall/jwt-auth@sha256:3f5c…      (stdout: put this in `url`)
#
# TAG defaults to the workspace version; the image is pushed under it too, but the printed URL
# names the manifest digest: a tag can be pushed over, a digest cannot, so a WasmPlugin pinned by
# digest loads the module that was tested, on every proxy, until the manifest is changed.
# --wasm FILE packages that module instead of building the filter; --out DIR keeps the OCI layout
# (default: a temporary directory). --insecure talks plain HTTP / unverified TLS to the registry
# (a registry on loopback in the tests; never for a real one).
#
# Credentials: skopeo's own (`skopeo login <registry>`, or a Docker config.json). Needs skopeo
# (Debian package `skopeo`, installed by scripts/setup.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { echo "usage: $0 <filter> <registry>/<repository> [--tag TAG] [--wasm FILE] [--out DIR] [--insecure]" >&2; exit 2; }
say() { printf '==> %s\n' "$*" >&2; }

[ $# -ge 2 ] || usage
filter="$1"
repository="$2"
shift 2
tag=""
package_args=()
out=""
insecure=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || usage; tag="$2"; shift 2 ;;
    --wasm) [ $# -ge 2 ] || usage; package_args+=(--wasm "$2"); shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --insecure) insecure=1; shift ;;
    *) usage ;;
  esac
done
# <registry>/<path>: a registry host (with a dot or a port, or localhost) and a repository path
# of lower-case components; no tag or digest (the script adds them).
if ! printf '%s' "$repository" | grep -Eq '^([a-zA-Z0-9.-]+\.[a-zA-Z0-9.-]+|[a-zA-Z0-9.-]+:[0-9]+|localhost)(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$'; then
  echo "not <registry>/<repository> (no tag, no digest): $repository" >&2
  exit 2
fi
command -v skopeo >/dev/null 2>&1 || { echo "skopeo is not installed: run scripts/setup.sh (Debian package skopeo)" >&2; exit 1; }
if [ -z "$tag" ]; then
  tag="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="${out:-$work/image}"
digest="$(bash "$root/scripts/oci-package.sh" "$filter" ${package_args[@]+"${package_args[@]}"} --tag "$tag" --out "$out" --print-digest)"
case "$digest" in
  sha256:*) ;;
  *) echo "scripts/oci-package.sh printed no digest: $digest" >&2; exit 1 ;;
esac

tls=()
[ "$insecure" -eq 0 ] || tls=(--tls-verify=false)
dest_tls=()
[ "$insecure" -eq 0 ] || dest_tls=(--dest-tls-verify=false)

say "pushing $filter to docker://$repository:$tag"
# The manifest is copied as it is (an OCI manifest to a registry that stores OCI manifests), so its
# digest stays the one built; the check below makes sure of it.
skopeo copy --quiet ${dest_tls[@]+"${dest_tls[@]}"} "oci:$out/layout:$tag" "docker://$repository:$tag" >&2

# What the registry serves under the tag must be, byte for byte, the manifest that was built.
skopeo inspect --raw ${tls[@]+"${tls[@]}"} "docker://$repository:$tag" >"$work/pushed.json"
pushed="sha256:$(sha256sum "$work/pushed.json" | cut -d' ' -f1)"
if [ "$pushed" != "$digest" ]; then
  echo "the registry serves $repository:$tag as $pushed, not the built manifest $digest" >&2
  exit 1
fi
say "pushed: $repository:$tag is $digest"
echo "oci://$repository@$digest"
