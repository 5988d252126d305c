#!/usr/bin/env bash
# Packages one shieldwall filter as a Wasm OCI image that Istio's WasmPlugin (`url: oci://…`) pulls.
#
#   scripts/oci-package.sh <filter> [--wasm FILE] [--tag TAG] [--out DIR] [--print-digest]
#
# <filter> is a directory under filters/ (jwt-auth, scope-authz, rate-limit, …). Without --wasm it
# builds the release module (`cargo build --release --target wasm32-wasip1 -p <filter>`, then
# scripts/wasm-opt.sh over it).
#
# Writes, without docker and without any registry:
#   DIR/layout/            an OCI image layout: oci-layout, index.json, blobs/sha256/<digest>
#   DIR/<filter>-<TAG>.tar the same layout as one tar ("OCI archive")
# DIR defaults to <target>/oci/<filter> (<target>: CARGO_TARGET_DIR when set, else target/; see
# scripts/target-dir.sh), TAG to the workspace version.
#
# Format: the "compat" variant of the Wasm image spec, the one Istio's agent tries first for an OCI
# manifest: a single layer `application/vnd.oci.image.layer.v1.tar+gzip` whose tar holds
# `plugin.wasm`, and the manifest annotation `module.wasm.image/variant: compat`. Any registry stores
# it (the media types are the ordinary image ones). The output is reproducible: same module, same
# digests (fixed mtimes and owners, gzip without name or time).
#
# Prints on stdout `manifest sha256:<hex>` (the digest a WasmPlugin pins: `oci://…@sha256:<hex>`,
# or its `sha256` field) and `module   sha256:<hex>` (the .wasm itself). With --print-digest it
# prints only `sha256:<hex>` of the manifest, for scripts: digest="$(scripts/oci-package.sh … --print-digest)".
#
# Pushing: scripts/oci-push.sh packages, pushes with skopeo and prints the `oci://…@sha256:` URL.
# By hand, e.g.:
#   oras cp --from-oci-layout DIR/layout:TAG registry.example.com/shieldwall/<filter>:TAG
#   skopeo copy oci:DIR/layout:TAG docker://registry.example.com/shieldwall/<filter>:TAG
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$(bash "$root/scripts/target-dir.sh")"
usage() { echo "usage: $0 <filter> [--wasm FILE] [--tag TAG] [--out DIR] [--print-digest]" >&2; exit 2; }
say() { printf '==> %s\n' "$*" >&2; }

[ $# -ge 1 ] || usage
filter="$1"
shift
wasm=""
tag=""
out=""
print_digest=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wasm) [ $# -ge 2 ] || usage; wasm="$2"; shift 2 ;;
    --tag) [ $# -ge 2 ] || usage; tag="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --print-digest) print_digest=1; shift ;;
    *) usage ;;
  esac
done
case "$filter" in
  ""|*/*|.*) echo "not a filter name: $filter" >&2; exit 2 ;;
esac
if [ -z "$tag" ]; then
  tag="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)"
fi
# An OCI tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}
if ! printf '%s' "$tag" | grep -Eq '^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$'; then
  echo "not an OCI tag: $tag" >&2
  exit 2
fi
out="${out:-$target/oci/$filter}"

if [ -z "$wasm" ]; then
  [ -d "$root/filters/$filter" ] || { echo "no filter named $filter under filters/" >&2; exit 2; }
  say "building $filter (release, wasm32-wasip1)"
  (cd "$root" && cargo build --release --target wasm32-wasip1 -p "$filter") >&2
  wasm="$target/wasm32-wasip1/release/${filter//-/_}.wasm"
  bash "$root/scripts/wasm-opt.sh" "$wasm"
fi
[ -f "$wasm" ] || { echo "no module at $wasm" >&2; exit 1; }
if [ "$(head -c 4 "$wasm" | od -An -tx1 | tr -d ' \n')" != "0061736d" ]; then
  echo "$wasm is not a WebAssembly module" >&2
  exit 1
fi

sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { wc -c <"$1" | tr -d ' '; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
layout="$work/layout"
blobs="$layout/blobs/sha256"
mkdir -p "$blobs" "$work/layer"

# Stores a file as a blob; prints its digest (hex).
put_blob() {
  local digest
  digest="$(sha256 "$1")"
  cp "$1" "$blobs/$digest"
  printf '%s' "$digest"
}

# The layer: a tar holding plugin.wasm, reproducible, gzip'd without name or timestamp.
cp "$wasm" "$work/layer/plugin.wasm"
chmod 0644 "$work/layer/plugin.wasm"
tar --format=ustar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -C "$work/layer" -cf "$work/layer.tar" plugin.wasm
gzip -9 -n -c "$work/layer.tar" >"$work/layer.tar.gz"
diff_id="$(sha256 "$work/layer.tar")"
layer_digest="$(put_blob "$work/layer.tar.gz")"
layer_size="$(size "$work/layer.tar.gz")"

# The image config: architecture/os name the module's target; rootfs names the uncompressed layer.
printf '{"architecture":"wasm","os":"wasip1","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$diff_id" >"$work/config.json"
config_digest="$(put_blob "$work/config.json")"
config_size="$(size "$work/config.json")"

module_digest="$(sha256 "$wasm")"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}],"annotations":{"module.wasm.image/variant":"compat","org.opencontainers.image.title":"shieldwall-%s","org.opencontainers.image.version":"%s","io.shieldwall.module.sha256":"%s"}}' \
  "$config_digest" "$config_size" "$layer_digest" "$layer_size" "$filter" "$tag" "$module_digest" \
  >"$work/manifest.json"
manifest_digest="$(put_blob "$work/manifest.json")"
manifest_size="$(size "$work/manifest.json")"

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "$manifest_size" "$tag" >"$layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

archive="$out/$filter-$tag.tar"
rm -rf "$out/layout" "$archive"
mkdir -p "$out"
cp -R "$layout" "$out/layout"
tar --format=ustar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -C "$layout" -cf "$archive" oci-layout index.json blobs

say "OCI layout:  $out/layout (tag $tag)"
say "OCI archive: $archive"
# The manifest digest is what `oci://…@sha256:` and a WasmPlugin's `sha256` field pin for an OCI url.
if [ "$print_digest" -eq 1 ]; then
  echo "sha256:$manifest_digest"
else
  echo "manifest sha256:$manifest_digest"
  echo "module   sha256:$module_digest"
fi
