#!/usr/bin/env bash
# Prints cargo's target directory as an absolute path: CARGO_TARGET_DIR when set (a relative value
# is taken relative to the repository root, where the scripts run cargo), else <repo>/target.
# Every script that reads build outputs asks this script, so all of them honour CARGO_TARGET_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-}"
if [ -z "$target" ]; then
  target="$root/target"
fi
case "$target" in
  /*) ;;
  *) target="$root/$target" ;;
esac
printf '%s\n' "${target%/}"
