// Times the hostcalls guest's `compute` work (its export `shieldwall_bench_compute`) in Node's V8:
//   node [--no-liftoff] bench/engine_compute.mjs MODULE.wasm [ROUNDS] [PER_ROUND]
// Prints the median over rounds of µs per `compute`. Every import is a stub that returns 0 (the
// export makes no host call). bench/engine_compute.sh runs it beside the other engines.
import { readFileSync } from "node:fs";

const [path, roundsArg, perArg] = process.argv.slice(2);
if (!path) {
  console.error("usage: node bench/engine_compute.mjs MODULE.wasm [ROUNDS] [PER_ROUND]");
  process.exit(2);
}
const rounds = Number(roundsArg || 9);
const per = Number(perArg || 2000);
const module = new WebAssembly.Module(readFileSync(path));
const imports = {};
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.kind !== "function") continue;
  (imports[imp.module] ??= {})[imp.name] = () => 0;
}
const { exports } = new WebAssembly.Instance(module, imports);
const compute = exports.shieldwall_bench_compute;
// Warm-up: V8 compiles and (with Liftoff on) tiers up the hot functions.
let sink = compute(per * 2);
const times = [];
for (let r = 0; r < rounds; r++) {
  const t0 = process.hrtime.bigint();
  sink ^= compute(per);
  times.push(Number(process.hrtime.bigint() - t0) / 1000 / per);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ us_per_compute: times[Math.floor(times.length / 2)], sink }));
