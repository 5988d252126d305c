#!/usr/bin/env python3
"""Where the modules' own code spends a request: the benchmark's three-module chain (jwt-auth with a
cached token, scope-authz, rate-limit) run on the test host (wasmtime, not Envoy's V8), sampled by
perf, each sample put to the module and the function it fell in.

    python3 bench/guest_profile.py [--requests N] [--plugins chain|one|jwt|rl|cold] [--top K]

`--plugins one` runs the same chain in the one module, built with just those three filters.
Builds the modules with their function names (`CARGO_PROFILE_RELEASE_STRIP=false`, in a target
directory of their own, so the release modules stay as they are), runs
`bench/mint/examples/chain_profile.rs` under `perf record` with `SHIELDWALL_WASM_PERFMAP=1` (the
test host then writes a perf map of the code it compiles), and prints per module its share of the
samples in the guests' code, that share of the measured time per request, and its busiest functions.
The test host's own work (its model of Envoy) is left out: this is the guests' side only. Needs
`perf` (Debian: linux-perf).
"""
import argparse
import bisect
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = {"jwt_auth": "jwt-auth", "scope_authz": "scope-authz", "rate_limit": "rate-limit"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def readable(symbol):
    """A Rust symbol shortened for reading: its hash gone, the escapes of the legacy mangling undone."""
    s = re.sub(r"17h[0-9a-f]{16}E$", "", symbol)
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("$RF$", "&"), ("..", "::")):
        s = s.replace(a, b)
    return s


def map_modules(path):
    """The perf map's functions as (start, end, module, name), sorted by address. The test host
    compiles the modules one after the other, so each is a block of the map; a block is named by
    the crate its functions come from."""
    entries = []
    with open(path) as f:
        for line in f:
            addr, size, name = line.rstrip("\n").split(" ", 2)
            entries.append((int(addr, 16), int(size, 16), name))
    blocks, current = [], []
    for e in entries:
        if current and (e[0] < current[-1][0] or e[0] - current[-1][0] > 1 << 16):
            blocks.append(current)
            current = []
        current.append(e)
    if current:
        blocks.append(current)
    out = []
    for block in blocks:
        names = " ".join(n for _, _, n in block)
        # The one module holds every filter's code; its own crate's symbols name it.
        module = "shieldwall" if "_ZN10shieldwall" in names else next(
            (m for crate, m in MODULES.items() if crate in names), "?")
        out.extend((a, a + size, module, n) for a, size, n in block)
    return sorted(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=30000)
    ap.add_argument("--plugins", choices=["chain", "one", "jwt", "rl", "cold"], default="chain")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    target = subprocess.run(["bash", "scripts/target-dir.sh"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    named = os.path.join(target, "guest-profile")
    env = dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="false")
    run(["cargo", "build", "-q", "--release", "--target", "wasm32-wasip1", "--target-dir", named]
        + [a for m in MODULES.values() for a in ("-p", m)], env=env)
    if args.plugins == "one":
        run(["cargo", "build", "-q", "--release", "--target", "wasm32-wasip1", "--target-dir", named,
             "-p", "shieldwall", "--no-default-features", "--features", ",".join(MODULES.values())], env=env)
    run(["cargo", "build", "-q", "--release", "-p", "bench-mint", "--example", "chain_profile"])
    example = os.path.join(target, "release", "examples", "chain_profile")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        out = run(["perf", "record", "-q", "-F", "2999", "-o", data, "--", "env", "SHIELDWALL_WASM_PERFMAP=1",
                   example, os.path.join(named, "wasm32-wasip1", "release"), str(args.requests), args.plugins],
                  capture_output=True, text=True).stdout
        us = float(out.split()[0])
        script = run(["perf", "script", "-i", data, "-F", "pid,ip,dso"], capture_output=True, text=True).stdout
    samples, pid = [], None
    total = 0
    for line in script.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        total += 1
        m = re.search(r"/tmp/perf-(\d+)\.map", parts[2])
        if m:
            pid = m.group(1)
            samples.append(int(parts[1], 16))
    if not pid:
        sys.exit("no sample fell in the guests' code (is perf allowed to sample here?)")
    funcs = map_modules(f"/tmp/perf-{pid}.map")
    starts = [f[0] for f in funcs]
    per_module = collections.Counter()
    per_func = collections.Counter()
    for ip in samples:
        i = bisect.bisect_right(starts, ip) - 1
        if i >= 0 and ip < funcs[i][1]:
            per_module[funcs[i][2]] += 1
            per_func[(funcs[i][2], readable(funcs[i][3]))] += 1
    print(f"{args.requests} requests, {us:.1f} µs each on the test host; {total} samples, "
          f"{len(samples)} in the guests' code ({100 * len(samples) / max(total, 1):.0f} %)")
    for module, n in per_module.most_common():
        print(f"\n{module}: {n} samples, {100 * n / max(total, 1):.1f} % of all, "
              f"≈ {us * n / max(total, 1):.1f} µs per request")
        busiest = [(name, c) for (m, name), c in per_func.most_common() if m == module][:args.top]
        for name, c in busiest:
            print(f"  {100 * c / n:5.1f} %  {name[:150]}")


if __name__ == "__main__":
    main()
