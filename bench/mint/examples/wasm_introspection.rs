//! Times requests through the real `token_introspection.wasm` on the test host (wasmtime, not
//! Envoy's V8: the figures are indicative of the cost inside a wasm VM, not of Envoy), beside
//! jwt-auth's warm path (an ES256 token already in its cache):
//!
//! - `us_cache_hit`: one opaque token N times, answered from the shared cache;
//! - `us_cache_miss`: N distinct tokens, each introspected (the IdP is a scripted cluster that
//!   answers at once, so this is the module's own work for a miss: the callout, the answer's
//!   parsing and caching, the pause and the resume);
//! - `us_jwt_auth_cache_hit`: jwt-auth's cache hit, the figure the introspection hit is held to.
//!
//! Prints one JSON line. `cargo run -p bench-mint --example wasm_introspection -- [N]`

use std::time::{Duration, Instant};

use bench_mint::{claims, Alg, KeySet, Result, AUDIENCE, ISSUER};
use host_tests::{
    wasm_path, CalloutRequest, Cluster, Envoy, Outcome, Plugin, Reply, Request, Worker,
};
use serde_json::json;

/// Timed passes per kind; the fastest counts.
const PASSES: usize = 3;

/// Microseconds per request for these tokens, each sent once, in order; every one must pass.
fn time_requests(envoy: &Envoy, worker: &Worker, tokens: &[String]) -> Result<f64> {
    let started = Instant::now();
    for token in tokens {
        let mut stream = worker.stream(
            Request::get("/orders")
                .header("authorization", &format!("Bearer {token}"))
                .source("10.0.0.1:40000"),
        );
        let mut out = stream.send_request();
        if out.is_paused() {
            // A miss: the scripted IdP answers in the next turn of the event loop.
            envoy.advance(Duration::from_millis(1));
            out = stream.outcome();
        }
        if !matches!(out, Outcome::Upstream(_)) {
            return Err(format!(
                "a benchmark token did not pass: {out:?}\n{}",
                worker.log_text()
            )
            .into());
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
    let envoy = Envoy::new();
    let now = envoy.now_unix_secs();
    let answer = json!({"active": true, "sub": "bench", "client_id": "orders-reader",
        "scope": "orders:read", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 86_400});
    envoy.cluster(
        "idp",
        Cluster::scripted(move |_: &CalloutRequest| Reply::json(200, &answer)),
    );
    let introspection = envoy
        .worker(&[Plugin::new(wasm_path("token-introspection"))
            .name("introspection")
            .vm_id("introspection")
            .json(&json!({
                "providers": {"bench": {
                    "introspection": {"cluster": "idp", "uri": "http://idp/token/introspection",
                                      "client_id": "gateway", "client_secret": "gateway-secret"},
                    "issuer": ISSUER, "audiences": [AUDIENCE],
                    "cache": {"max_entries": 100_000, "max_ttl_s": 86_400}
                }},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}]
            }))])
        .map_err(|e| e.to_string())?;
    let keys = KeySet::generate()?;
    let jwt_auth = envoy
        .worker(&[Plugin::new(wasm_path("jwt-auth"))
            .name("jwt")
            .vm_id("jwt")
            .json(&json!({
                "providers": {"bench": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": keys.jwks()}},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}]
            }))])
        .map_err(|e| e.to_string())?;

    let opaque = "2YotnFZFEjr1zCsicMWpAA-bench".to_string();
    let same: Vec<String> = std::iter::repeat_n(opaque, n).collect();
    let jwt = keys.token(Alg::Es256, &claims(0, now, 86_400))?;
    let same_jwt: Vec<String> = std::iter::repeat_n(jwt, n).collect();
    time_requests(
        &envoy,
        &introspection,
        same.get(..20.min(n)).unwrap_or_default(),
    )?;
    time_requests(
        &envoy,
        &jwt_auth,
        same_jwt.get(..20.min(n)).unwrap_or_default(),
    )?;
    let (mut hit, mut miss, mut jwt_hit) = (f64::MAX, f64::MAX, f64::MAX);
    for pass in 0..PASSES {
        let distinct: Vec<String> = (0..n).map(|i| format!("miss-{pass}-{i}")).collect();
        miss = miss.min(time_requests(&envoy, &introspection, &distinct)?);
        hit = hit.min(time_requests(&envoy, &introspection, &same)?);
        jwt_hit = jwt_hit.min(time_requests(&envoy, &jwt_auth, &same_jwt)?);
    }
    println!(
        "{}",
        json!({"requests": n, "passes": PASSES, "us_cache_hit": hit, "us_cache_miss": miss,
               "us_jwt_auth_cache_hit": jwt_hit, "hit_vs_jwt_auth": hit / jwt_hit})
    );
    Ok(())
}
