//! Times identity-exchange in the real `identity_exchange.wasm` on the test host (wasmtime, not
//! Envoy's V8: indicative of the cost inside a wasm VM, not of Envoy), behind jwt-auth with one
//! token in its cache:
//!
//! - `us_jwt_auth_only`: jwt-auth alone, the same token N times;
//! - `us_jwt_auth_noop`: jwt-auth → the harness's empty `noop` module (the baseline: what a
//!   second module costs the host before it does anything);
//! - `us_with_cached_token`: jwt-auth → identity-exchange, the same caller N times, its internal
//!   token served from identity-exchange's cache;
//! - `us_with_mint_es256` / `us_with_mint_eddsa`: the same with the cache off, a signature per
//!   request;
//! - `us_one_module_jwt_auth` / `us_one_module_cached`: the one module `shieldwall.wasm` with the
//!   chain [jwt-auth] and [jwt-auth, identity-exchange]: what identity-exchange adds as a stage
//!   (no second module, the identity handed over in memory).
//!
//! The differences to the `noop` baseline (and, for the one module, to its jwt-auth-only chain) are
//! identity-exchange's own work per request. Each kind runs `PASSES` times and the fastest pass
//! counts, which damps other work on the machine. Prints one JSON line.
//! `cargo run -p bench-mint --example wasm_exchange -- [N]`

use std::time::Instant;

use bench_mint::{claims, Alg, KeySet, Result, AUDIENCE, ISSUER};
use host_tests::{wasm_path, Envoy, Outcome, Plugin, Request, Worker};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// Timed passes per kind; the fastest counts.
const PASSES: usize = 7;

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

/// Microseconds per request: the same token `n` times; every request must reach the upstream.
fn time_requests(worker: &Worker, token: &str, n: usize) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..n {
        let mut stream = worker.stream(
            Request::get("/tenants/bank-a/accounts")
                .header("authorization", &format!("Bearer {token}")),
        );
        let out = stream.send_request();
        if !matches!(out, Outcome::Upstream(_)) {
            return Err(format!("a request did not pass: {out:?}\n{}", worker.log_text()).into());
        }
        stream.finish();
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64)
}

fn exchange_config(alg: &str, cache_entries: usize) -> Value {
    json!({
        "spiffe_id": "spiffe://{tenant}.bank.example/user/{sub}",
        "token": {"issuer": "https://gateway.bank.example", "alg": alg, "act": true,
                  "keys": [{"kid": "bench", "private_key_env": "SIGNING_KEY"}]},
        "rules": [{"match": {"prefix": "/"}}],
        "cache": {"max_entries": cache_entries}
    })
}

fn exchange(alg: &str, key_pem: &str, cache_entries: usize) -> Plugin {
    Plugin::new(wasm_path("identity-exchange"))
        .name("exchange")
        .vm_id("exchange")
        .json(&exchange_config(alg, cache_entries))
        .env("SIGNING_KEY", key_pem)
}

fn main() -> Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(v) => v.parse()?,
        None => 500,
    };
    let envoy = Envoy::new();
    let now = envoy.now_unix_secs();
    let keys = KeySet::generate()?;
    let jwt_config = json!({
        "providers": {"bench": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": keys.jwks()}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}]
    });
    let jwt_auth = || {
        Plugin::new(wasm_path("jwt-auth"))
            .name("jwt")
            .vm_id("jwt")
            .json(&jwt_config)
    };
    let mut token_claims: Value = claims(0, now, 86_400);
    if let Some(c) = token_claims.as_object_mut() {
        c.insert("tenant".into(), json!("bank-a"));
    }
    let token = keys.token(Alg::Es256, &token_claims)?;
    let rng = SystemRandom::new();
    let p256 = pem(
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "key generation")?
            .as_ref(),
    );
    let ed25519 = pem(Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| "key generation")?
        .as_ref());
    let worker = |plugins: &[Plugin]| envoy.worker(plugins).map_err(|e| e.to_string());
    let only = worker(&[jwt_auth()])?;
    let noop = worker(&[
        jwt_auth(),
        Plugin::new(wasm_path("noop")).name("noop").vm_id("noop"),
    ])?;
    let cached = worker(&[jwt_auth(), exchange("ES256", &p256, 1024)])?;
    let mint_es = worker(&[jwt_auth(), exchange("ES256", &p256, 0)])?;
    let mint_ed = worker(&[jwt_auth(), exchange("EdDSA", &ed25519, 0)])?;
    let one_module = |stages: Value| {
        Plugin::new(wasm_path("shieldwall"))
            .name("shieldwall")
            .vm_id("shieldwall")
            .json(&json!({ "chain": stages }))
            .env("SIGNING_KEY", &p256)
    };
    let one_jwt = worker(&[one_module(
        json!([{"filter": "jwt-auth", "config": jwt_config}]),
    )])?;
    let one_cached = worker(&[one_module(json!([
        {"filter": "jwt-auth", "config": jwt_config},
        {"filter": "identity-exchange", "config": exchange_config("ES256", 1024)}
    ]))])?;
    let mints = (n / 10).max(10);
    for w in [
        &only,
        &noop,
        &cached,
        &mint_es,
        &mint_ed,
        &one_jwt,
        &one_cached,
    ] {
        time_requests(w, &token, 20)?;
    }
    let (mut alone, mut base) = (f64::MAX, f64::MAX);
    let (mut hit, mut es, mut ed) = (f64::MAX, f64::MAX, f64::MAX);
    let (mut one_alone, mut one_hit) = (f64::MAX, f64::MAX);
    for _ in 0..PASSES {
        alone = alone.min(time_requests(&only, &token, n)?);
        base = base.min(time_requests(&noop, &token, n)?);
        hit = hit.min(time_requests(&cached, &token, n)?);
        es = es.min(time_requests(&mint_es, &token, mints)?);
        ed = ed.min(time_requests(&mint_ed, &token, mints)?);
        one_alone = one_alone.min(time_requests(&one_jwt, &token, n)?);
        one_hit = one_hit.min(time_requests(&one_cached, &token, n)?);
    }
    println!(
        "{}",
        json!({"requests": n, "mint_requests": mints, "passes": PASSES,
               "us_jwt_auth_only": alone, "us_jwt_auth_noop": base, "us_with_cached_token": hit,
               "us_with_mint_es256": es, "us_with_mint_eddsa": ed,
               "us_added_cached": hit - base, "us_added_mint_es256": es - base,
               "us_added_mint_eddsa": ed - base,
               "us_one_module_jwt_auth": one_alone, "us_one_module_cached": one_hit,
               "us_added_cached_one_module": one_hit - one_alone})
    );
    Ok(())
}
