#!/usr/bin/env bash
# Runs each cargo-fuzz target of the project for N seconds (default 20): every fuzz project in
# filters/*/fuzz and crates/*/fuzz.
#
#   scripts/fuzz.sh [SECONDS]
#   scripts/fuzz.sh --list      the fuzz projects, their targets and the build directory; builds nothing
#
# cargo-fuzz is the pinned one scripts/setup.sh installs into .cache/tools (run first when it is
# missing). It needs unstable compiler flags; RUSTC_BOOTSTRAP=1 lets the pinned stable toolchain
# accept them. Each fuzz project is its own workspace: its committed Cargo.lock is checked with
# `cargo fetch --locked` before the run (cargo-fuzz has no --locked of its own), so a run resolves
# nothing anew and, once fetched, needs no network. All fuzz builds go to one directory,
# <target>/fuzz (<target>: CARGO_TARGET_DIR when set, else target/; see scripts/target-dir.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*" >&2; }

list=0
seconds=20
case "${1:-}" in
  --list) list=1 ;;
  "") ;;
  *[!0-9]*)
    echo "usage: $0 [SECONDS | --list]" >&2
    exit 2
    ;;
  *) seconds="$1" ;;
esac

cargo_fuzz="$root/.cache/tools/bin/cargo-fuzz"
if [ ! -x "$cargo_fuzz" ]; then
  say "cargo-fuzz is not installed in .cache/tools: running scripts/setup.sh"
  bash "$root/scripts/setup.sh"
fi
fuzz_target_dir="$(bash "$root/scripts/target-dir.sh")/fuzz"
export RUSTC_BOOTSTRAP=1

fuzz_dirs=()
for fuzz_dir in "$root"/filters/*/fuzz "$root"/crates/*/fuzz; do
  [ -f "$fuzz_dir/Cargo.toml" ] && fuzz_dirs+=("$fuzz_dir")
done
if [ ${#fuzz_dirs[@]} -eq 0 ]; then
  say "no fuzz project under filters/*/fuzz or crates/*/fuzz"
  exit 1
fi

for fuzz_dir in "${fuzz_dirs[@]}"; do
  crate_dir="$(dirname "$fuzz_dir")"
  name="${crate_dir#"$root"/}"
  targets="$(cd "$crate_dir" && "$cargo_fuzz" fuzz list --fuzz-dir "$fuzz_dir")"
  if [ "$list" = 1 ]; then
    printf '%s\t%s\t%s\n' "$name/fuzz" "$(echo "$targets" | tr '\n' ' ' | sed 's/ $//')" "$fuzz_target_dir"
    continue
  fi
  if [ -f "$fuzz_dir/Cargo.lock" ]; then
    (cd "$crate_dir" && cargo fetch --locked --quiet --manifest-path "$fuzz_dir/Cargo.toml")
  else
    say "$name/fuzz has no Cargo.lock: cargo resolves its dependencies anew (network needed, not reproducible)"
  fi
  for target in $targets; do
    say "fuzz $name/$target for ${seconds}s"
    # The run's last lines when it passes; all of it (build errors, the crash and its input) when not.
    log="$(mktemp)"
    if (cd "$crate_dir" && "$cargo_fuzz" fuzz run --fuzz-dir "$fuzz_dir" --target-dir "$fuzz_target_dir" "$target" \
      -- -max_total_time="$seconds" -print_final_stats=0 >"$log" 2>&1); then
      tail -n 3 "$log" >&2
      rm -f "$log"
    else
      cat "$log" >&2
      rm -f "$log"
      say "fuzz $name/$target failed"
      exit 1
    fi
  done
done
