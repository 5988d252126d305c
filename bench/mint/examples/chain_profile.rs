//! The benchmark's three-module chain on the test host (wasmtime, not Envoy's V8), N requests in
//! a loop: jwt-auth with one cached ES256 token, scope-authz requiring `orders:read`, rate-limit
//! keyed by the client address under a limit no request reaches, each with the configuration
//! bench/run.py gives Envoy. Prints the time per request. bench/guest_profile.py runs it under
//! perf to see where the modules' own code spends a request.
//!
//! `cargo run --release -p bench-mint --example chain_profile -- DIR [N] [MODE]`, DIR holding
//! `jwt_auth.wasm`, `scope_authz.wasm` and `rate_limit.wasm`. MODE:
//! - `chain` (the default): the three modules;
//! - `one`: the same chain as the one module (`shieldwall.wasm` in DIR), its `chain` listing the
//!   three configurations;
//! - `jwt` or `rl`: that module alone;
//! - `cold`: jwt-auth alone with a new RS256 token on every request, as the benchmark's cold
//!   RS256 row (N tokens, more than the token cache holds, so every one verifies);
//! - `floor`: the chain's floor, as the benchmark's `diag-swap-0` row does in Envoy: three
//!   hostcalls guests (`hostcalls.wasm`, also in DIR), each making just its module's host calls
//!   (bench/run.py's lists); the chain's time minus the floor's is what the three modules cost on
//!   the test host beyond their calls, wasmtime's own code for them included.

use std::path::PathBuf;
use std::time::Instant;

use bench_mint::{claims, Alg, KeySet, Result, AUDIENCE, ISSUER};
use host_tests::{Envoy, Outcome, Plugin, Request};
use serde_json::{json, Value};

// Each module's host calls on this path (`floor`), as bench/run.py lists them for the floor rows
// (`_JWT_WARM_CALLS`, `_SCOPE_CALLS`, `_RATELIMIT_CALLS`).
const JWT_CALLS: &str = concat!(
    "get_header_pairs clock metric get_property_missing set_property_new ",
    "replace_header metric set_property_new"
);
const SCOPE_CALLS: &str = "get_header_pairs get_property metric set_property_new";
const RL_CALLS: &str = concat!(
    "get_header_pairs clock get_property get_shared set_shared metric ",
    "set_property_new"
);

fn plugin(dir: &str, file: &str, name: &str, config: &Value) -> Plugin {
    Plugin::new(PathBuf::from(dir).join(file))
        .name(name)
        .vm_id(name)
        .json(config)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: chain_profile DIR [N] [chain|one|jwt|rl|cold|floor]")?;
    let n: usize = args.next().map_or(Ok(30_000), |v| v.parse())?;
    let which = args.next().unwrap_or_else(|| "chain".into());
    let keys = KeySet::generate()?;
    let jwt_config = json!({
        "providers": {"bench": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": keys.jwks()}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}]});
    let scope_config = json!({
        "rules": [{"match": {"prefix": "/"}, "require": {"scopes": ["orders:read"]}}]});
    let rl_config = json!({
        "rules": [{"name": "per-ip", "match": {"prefix": "/"}, "key": {"source": "client_ip"},
                   "limit": {"requests": 1_000_000_000u64, "per": "second"}}],
        "headers": "none"});
    let one = plugin(
        &dir,
        "shieldwall.wasm",
        "one",
        &json!({"chain": [
            {"filter": "jwt-auth", "config": jwt_config},
            {"filter": "scope-authz", "config": scope_config},
            {"filter": "rate-limit", "config": rl_config}]}),
    );
    let jwt = plugin(&dir, "jwt_auth.wasm", "jwt", &jwt_config);
    let scope = plugin(&dir, "scope_authz.wasm", "scope", &scope_config);
    let rl = plugin(&dir, "rate_limit.wasm", "rl", &rl_config);
    // A hostcalls guest making `calls` once each, in order.
    let seq = |name: &str, calls: &str| {
        plugin(
            &dir,
            "hostcalls.wasm",
            &format!("{name}-floor"),
            &json!(format!("seq/{name} {calls}")),
        )
    };
    let plugins = match which.as_str() {
        "jwt" | "cold" => vec![jwt],
        "rl" => vec![rl],
        "chain" => vec![jwt, scope, rl],
        "one" => vec![one],
        "floor" => vec![
            seq("jwt", JWT_CALLS),
            seq("scope", SCOPE_CALLS),
            seq("rl", RL_CALLS),
        ],
        other => {
            return Err(
                format!("unknown plugins `{other}`: chain, one, jwt, rl, cold or floor").into(),
            )
        }
    };
    let envoy = Envoy::new();
    let now = envoy.now_unix_secs();
    let bearers = if which == "cold" {
        (0..n)
            .map(|i| {
                Ok(format!(
                    "Bearer {}",
                    keys.token(Alg::Rs256, &claims(i, now, 3600))?
                ))
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        vec![format!(
            "Bearer {}",
            keys.token(Alg::Es256, &claims(0, now, 3600))?
        )]
    };
    let worker = envoy.worker(&plugins).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for bearer in bearers.iter().cycle().take(n) {
        let mut stream = worker.stream(
            Request::get("/orders")
                .header("authorization", bearer)
                .source("10.0.0.1:40000"),
        );
        match stream.send_request() {
            Outcome::Upstream(_) => {}
            other => return Err(format!("{other:?}\n{}", worker.log_text()).into()),
        }
        stream.finish();
    }
    println!(
        "{:.1} µs per request",
        started.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
    );
    Ok(())
}
