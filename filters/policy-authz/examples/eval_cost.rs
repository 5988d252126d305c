//! Times the bank policy (filters/policy-authz/policies/bank.rego: five rules, with a tenant
//! check, a scope check and an amount check against `data`) natively, in this process:
//!
//! - `us_compile`: parsing and compiling the policy, as at configuration (per worker);
//! - `us_per_request`: one request's work in the filter: the input document built (identity
//!   context parsed from its JSON, request, source, connection, the JSON body) and the decision
//!   evaluated and read, for an allowed payment;
//! - `us_eval_only`: the evaluation alone, with an input built once.
//!
//! Prints one JSON line. `cargo run --release -p policy-authz --example eval_cost -- [N]`

use std::time::Instant;

use policy_authz::input;
use policy_authz::{Config, Policies, PolicyAuthz, Verdict};
use serde_json::json;
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Host, RequestLine, RootFilter, StreamFilter};

const BANK: &str = include_str!("../policies/bank.rego");
const BANK_DATA: &str = include_str!("../policies/bank-data.json");

/// The fastest of three passes, in microseconds per iteration.
fn fastest(n: usize, mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(v) => v.parse()?,
        None => 20_000,
    };
    let config = json!({
        "policies": { "bank.rego": BANK },
        "data": serde_json::from_str::<serde_json::Value>(BANK_DATA)?,
        "rules": [ { "name": "payments", "match": { "template": "/tenants/{tenant}/payments" },
                     "query": "data.gw.bank.decision" } ],
        "input": { "headers": ["x-request-id"], "body": "json" }
    })
    .to_string();
    let parsed = Config::parse(config.as_bytes())?;

    let us_compile = fastest(n / 100 + 1, || {
        let _ = Policies::compile(&parsed);
    });

    let identity = json!({"sub": "a-payer", "client_id": "a-payer", "iss": "https://idp.example.com",
        "aud": ["payments-api"], "scopes": ["payments:read", "payments:transfer"], "tenant": "bank-a",
        "auth": ["jwt"], "exp": 1_900_000_000u64,
        "claims": {"sub": "a-payer", "tenant": "bank-a", "tier": "free", "scope": "payments:read payments:transfer"}});
    let body = br#"{"amount": 250, "to": "DE89370400440532013000", "reference": "invoice 42"}"#;
    let mut host = MockHost::request(
        "POST",
        "/tenants/bank-a/payments",
        &[
            ("content-type", "application/json"),
            ("x-request-id", "bench"),
        ],
    );
    host.properties
        .insert("source\0address".into(), b"192.0.2.10:43210".to_vec());
    host.properties
        .insert(IDENTITY_PROPERTY.into(), serde_json::to_vec(&identity)?);
    host.request_body = body.to_vec();

    // The whole filter: headers (the body is awaited), then the body (decided).
    let mut root =
        PolicyAuthz::configure(&mut host, config.as_bytes()).map_err(|e| e.to_string())?;
    let mut allowed = true;
    let us_per_request = fastest(n, || {
        let mut stream = root.new_stream(&mut host, 1);
        let _ = stream.on_request_headers(&mut host, false);
        let action = stream.on_request_body(&mut host, body.len(), true);
        allowed &= action == shieldwall_core::Action::Continue && host.local_reply.is_none();
    });
    if !allowed {
        let why = host
            .local_reply
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default();
        let logs: Vec<String> = host
            .logs
            .borrow()
            .iter()
            .filter(|(_, m)| m.contains("error"))
            .map(|(_, m)| m.clone())
            .collect();
        return Err(format!("the benchmark payment was not allowed: {why} {logs:?}").into());
    }

    // The evaluation alone.
    let mut policies = Policies::compile(&parsed).map_err(|e| e.to_string())?;
    let line = RequestLine::from_host(&host, Default::default()).map_err(|e| e.code())?;
    let params = vec![("tenant".to_string(), "bank-a".to_string())];
    let h: &dyn Host = &host;
    let document = input::document(
        input::identity(h),
        input::request(h, &parsed.input, &line, &params, "payments"),
        input::source(h, &parsed.input),
        input::connection(h),
        regorus::Value::from_json_str(std::str::from_utf8(body)?)?,
    );
    let now = h.now_nanos();
    let mut wrong = None;
    let us_eval_only = fastest(n, || {
        let v = policies.evaluate("data.gw.bank.decision", document.clone(), now);
        if !matches!(v, Ok(Verdict::Allow { .. })) {
            wrong = Some(v);
        }
    });
    if let Some(v) = wrong {
        return Err(format!("the benchmark evaluation did not allow: {v:?}").into());
    }
    println!(
        "{}",
        json!({"n": n, "us_compile": round(us_compile), "us_per_request": round(us_per_request),
               "us_eval_only": round(us_eval_only)})
    );
    Ok(())
}

fn round(us: f64) -> f64 {
    (us * 100.0).round() / 100.0
}
