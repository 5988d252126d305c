//! Times policy-authz's bank policy in the real `policy_authz.wasm` on the test host (wasmtime,
//! not Envoy's V8: the figures are indicative of the cost inside a wasm VM, not of Envoy).
//! jwt-auth runs first (one ES256 token, warm in its cache) and writes the identity context;
//! policy-authz then decides with the bank policy (five rules: tenant, scope and amount checks
//! against `data`):
//!
//! - `us_payment`: a POST payment with its JSON body, decided at the body's end;
//! - `us_read`: a GET, decided at the headers;
//! - `us_jwt_auth_only`: the same GET through jwt-auth alone;
//!
//! so `us_read - us_jwt_auth_only` is policy-authz's own cost for a request without a body.
//! Prints one JSON line. `cargo run -p bench-mint --example wasm_policy -- [N]`

use std::time::Instant;

use bench_mint::{claims, Alg, KeySet, Result, AUDIENCE, ISSUER};
use host_tests::{wasm_path, Outcome, Plugin, Request, Worker};
use serde_json::json;

const BANK: &str = include_str!("../../../filters/policy-authz/policies/bank.rego");
const BANK_DATA: &str = include_str!("../../../filters/policy-authz/policies/bank-data.json");
const PASSES: usize = 3;

/// Microseconds per request, `n` requests made by `make`; every one must reach the upstream.
fn time(worker: &Worker, n: usize, make: &dyn Fn() -> Request) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..n {
        let mut stream = worker.stream(make());
        let out = stream.send_request();
        if !matches!(out, Outcome::Upstream(_)) {
            return Err(format!(
                "a benchmark request was refused: {out:?}\n{}",
                worker.log_text()
            )
            .into());
        }
        stream.finish();
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64)
}

fn main() -> Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(v) => v.parse()?,
        None => 500,
    };
    let envoy = host_tests::Envoy::new();
    let now = envoy.now_unix_secs();
    let keys = KeySet::generate()?;
    let jwt_auth = || {
        Plugin::new(wasm_path("jwt-auth"))
            .name("jwt")
            .vm_id("jwt")
            .json(&json!({
                "providers": {"bench": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": keys.jwks()}},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}]
            }))
    };
    let policy = Plugin::new(wasm_path("policy-authz"))
        .name("policy")
        .vm_id("policy")
        .json(&json!({
            "policies": {"bank.rego": BANK},
            "data": serde_json::from_str::<serde_json::Value>(BANK_DATA)?,
            "rules": [
                {"name": "payments", "match": {"template": "/tenants/{tenant}/payments"}, "query": "data.gw.bank.decision"},
                {"name": "accounts", "match": {"template": "/tenants/{tenant}/accounts/{id}"}, "query": "data.gw.bank.decision"}
            ],
            "input": {"headers": ["x-request-id"], "body": "json"}
        }));
    let chain = envoy
        .worker(&[jwt_auth(), policy])
        .map_err(|e| e.to_string())?;
    let alone = envoy.worker(&[jwt_auth()]).map_err(|e| e.to_string())?;

    let mut c = claims(0, now, 86_400);
    if let Some(map) = c.as_object_mut() {
        map.insert("scope".into(), json!("payments:read payments:transfer"));
        map.insert("tier".into(), json!("free"));
    }
    let bearer = format!("Bearer {}", keys.token(Alg::Es256, &c)?);
    let body = r#"{"amount": 250, "to": "DE89370400440532013000", "reference": "invoice 42"}"#;
    let payment = || {
        Request::post("/tenants/a/payments", body.as_bytes().to_vec())
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .header("content-length", &body.len().to_string())
            .header("x-request-id", "bench")
    };
    let read = || {
        Request::get("/tenants/a/accounts/7")
            .header("authorization", &bearer)
            .header("x-request-id", "bench")
    };
    // Warm-up: jwt-auth caches the token, both VMs reach their steady state.
    time(&chain, 20.min(n), &payment)?;
    time(&chain, 20.min(n), &read)?;
    time(&alone, 20.min(n), &read)?;
    let (mut pay, mut get, mut base) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..PASSES {
        pay = pay.min(time(&chain, n, &payment)?);
        get = get.min(time(&chain, n, &read)?);
        base = base.min(time(&alone, n, &read)?);
    }
    let r = |v: f64| (v * 10.0).round() / 10.0;
    println!(
        "{}",
        json!({"requests": n, "passes": PASSES, "us_payment": r(pay), "us_read": r(get),
               "us_jwt_auth_only": r(base), "us_policy_authz_read": r(get - base),
               "us_policy_authz_payment": r(pay - base)})
    );
    Ok(())
}
