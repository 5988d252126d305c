//! Times the hostcalls guest's `compute` work (its export `shieldwall_bench_compute`) on wasmtime,
//! the engine of the test host, with its default settings (Cranelift): the median over rounds of
//! µs per `compute`, as one JSON line. Every import is defined as a function returning zeros (the
//! export makes no host call). bench/engine_compute.sh runs it beside the other engines.
//!
//! `cargo run --release -p bench-mint --example engine_compute -- MODULE.wasm [ROUNDS] [PER_ROUND]`

use std::time::Instant;

use wasmtime::{Engine, Linker, Module, Store};

fn main() -> wasmtime::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: engine_compute MODULE.wasm [ROUNDS] [PER_ROUND]");
        std::process::exit(2);
    };
    let rounds: usize = args.get(1).map_or(Ok(9), |a| a.parse())?;
    let per: u32 = args.get(2).map_or(Ok(2000), |a| a.parse())?;
    let engine = Engine::default();
    let module = Module::from_file(&engine, path)?;
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.define_unknown_imports_as_default_values(&mut store, &module)?;
    let instance = linker.instantiate(&mut store, &module)?;
    let compute = instance.get_typed_func::<u32, u32>(&mut store, "shieldwall_bench_compute")?;
    let mut sink = compute.call(&mut store, per * 2)?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        sink ^= compute.call(&mut store, per)?;
        times.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(per));
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    println!("{{\"us_per_compute\":{median},\"sink\":{sink}}}");
    Ok(())
}
