//! Times requests through the real `jwt_auth.wasm` on the test host (wasmtime, not Envoy's V8:
//! the figures are indicative of the cost inside a wasm VM, not of Envoy).
//!
//! Per algorithm: N distinct tokens through a plugin with the token cache off (every request
//! parses and verifies), then one token N times through a plugin with the cache on (every
//! request after the first is a cache hit), each the fastest of a few passes. The difference is the cost of parsing, claim checks
//! and the signature verification inside the module. Prints one JSON line per algorithm.
//!
//! `cargo run -p bench-mint --example wasm_verify -- [N]`

use std::time::Instant;

use bench_mint::{claims, KeySet, Result, ALGS, AUDIENCE, ISSUER};
use host_tests::{wasm_path, Envoy, Outcome, Plugin, Request, Worker};
use serde_json::json;

/// Timed passes per algorithm and kind.
const PASSES: usize = 3;

fn plugin(name: &str, jwks: &serde_json::Value, cache_entries: u64) -> Plugin {
    Plugin::new(wasm_path("jwt-auth"))
        .name(name)
        .vm_id(name)
        .json(&json!({
            "providers": {"bench": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": jwks}},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}],
            "token_cache_entries": cache_entries,
        }))
}

/// Microseconds per request for these tokens, each sent once, in order; every one must pass.
fn time_requests(worker: &Worker, tokens: &[String]) -> Result<f64> {
    let started = Instant::now();
    for token in tokens {
        let mut stream = worker.stream(
            Request::get("/orders")
                .header("authorization", &format!("Bearer {token}"))
                .source("10.0.0.1:40000"),
        );
        match stream.send_request() {
            Outcome::Upstream(_) => {}
            other => {
                return Err(format!(
                    "a benchmark token did not pass: {other:?}\n{}",
                    worker.log_text()
                )
                .into())
            }
        }
        stream.finish();
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / tokens.len().max(1) as f64)
}

fn main() -> Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(v) => v.parse()?,
        None => 500,
    };
    let keys = KeySet::generate()?;
    let jwks = keys.jwks();
    let envoy = Envoy::new();
    let now = envoy.now_unix_secs();
    let cold = envoy
        .worker(&[plugin("cold", &jwks, 0)])
        .map_err(|e| e.to_string())?;
    let warm = envoy
        .worker(&[plugin("warm", &jwks, 4096)])
        .map_err(|e| e.to_string())?;
    for alg in ALGS {
        let tokens = (0..n)
            .map(|i| keys.token(alg, &claims(i, now, 3600)))
            .collect::<Result<Vec<_>>>()?;
        // One untimed pass of each kind first, then several timed ones; the fastest pass is the
        // least disturbed by whatever else the machine runs. Each cold pass sends the same tokens:
        // the cache is off, so every request verifies again.
        time_requests(
            &cold,
            tokens.get(..tokens.len().min(20)).unwrap_or_default(),
        )?;
        let same: Vec<String> =
            std::iter::repeat_n(tokens.first().cloned().unwrap_or_default(), n).collect();
        time_requests(&warm, same.get(..same.len().min(20)).unwrap_or_default())?;
        let mut cold_us = f64::MAX;
        let mut warm_us = f64::MAX;
        for _ in 0..PASSES {
            cold_us = cold_us.min(time_requests(&cold, &tokens)?);
            warm_us = warm_us.min(time_requests(&warm, &same)?);
        }
        println!(
            "{}",
            json!({"alg": alg.name(), "requests": n, "passes": PASSES, "us_per_request_cache_off": cold_us,
                   "us_per_request_cache_hit": warm_us, "us_verify_estimate": cold_us - warm_us})
        );
    }
    Ok(())
}
