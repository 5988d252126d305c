//! Native cost of the benchmark's hot paths, on the mock host: jwt-auth with a cached token,
//! rate-limit under its limit and audit-log's record (each as its own module would run it), the
//! one module running jwt-auth + scope-authz + rate-limit, and the one module running the full
//! chain (those three after audit-log and mtls-identity, then payload-guard and
//! identity-exchange), each with the configuration bench/run.py gives Envoy. Prints microseconds per request (median of 7
//! rounds of 20,000). Then jwt-auth's cold path: every request a new ES256 token (6,000 tokens,
//! more than the token cache holds), beside the signature checks alone over the same tokens.
//!
//!   cargo run --release -p shieldwall --example path_cost [-- --only warm|ratelimit|chain|audit|full-one|cold-ES256]
//!
//! `--requests N` runs one round of N requests instead, for counting instructions with a
//! simulator (`valgrind --tool=callgrind …/path_cost --only warm --requests 2000`): the difference
//! between two counts divided by the difference of N is one request's instructions, which does
//! not move with the load of a shared machine. The module's work in Envoy is this plus V8's
//! overhead; the host calls are the mock's, not Envoy's (bench/RESULTS.md prices those).

use std::time::Instant;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use shieldwall_core::testing::{cli_value, MockHost};
use shieldwall_core::{Action, RootFilter, StreamFilter};

const ISSUER: &str = "https://idp.bench.example";
const AUDIENCE: &str = "orders-api";

type Failure = Box<dyn std::error::Error>;

/// An Ed25519 key's JWKS and one token it signed (the warm path verifies it once).
fn token_and_jwks(now: u64) -> Result<(String, Value), Failure> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| e.to_string())?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "bench", "alg": "EdDSA",
        "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref())}]});
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": "bench", "typ": "JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "scope": "orders:read",
               "iat": now, "exp": now + 3600})
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    let sig = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).as_ref());
    Ok((format!("{input}.{sig}"), jwks))
}

/// An ES256 key's JWKS and `count` distinct tokens it signed (the cold path verifies each).
fn es256_tokens(now: u64, count: u32) -> Result<(Vec<String>, Value), Failure> {
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| e.to_string())?;
    let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|e| e.to_string())?;
    let point = key.public_key().as_ref();
    let (x, y) = point
        .get(1..33)
        .zip(point.get(33..65))
        .ok_or("a P-256 point")?;
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}]});
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "bench", "typ": "JWT"}).to_string());
    let mut tokens = Vec::new();
    for i in 0..count {
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"iss": ISSUER, "aud": AUDIENCE, "sub": format!("bench-user-{i}"),
                   "scope": "orders:read", "iat": now, "exp": now + 3600})
            .to_string(),
        );
        let input = format!("{header}.{claims}");
        let sig = key
            .sign(&rng, input.as_bytes())
            .map_err(|e| e.to_string())?;
        tokens.push(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())));
    }
    Ok((tokens, jwks))
}

/// jwt-auth as the benchmark configures it: one provider with the keys inline, every path.
fn jwt_config(jwks: &Value) -> Value {
    json!({"providers": {"bench": {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": jwks}},
           "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "bench"}}]})
}

/// identity-exchange's configuration in the full chain: a fresh ES256 signing key, as PEM.
fn exchange_config() -> Result<Value, Failure> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| e.to_string())?;
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(pkcs8.as_ref())
    );
    Ok(json!({"spiffe_id": "spiffe://bench.example/user/{sub}",
        "token": {"issuer": "https://gateway.bench.example", "audience": "mesh", "ttl_s": 300,
                  "alg": "ES256", "keys": [{"kid": "bench", "private_key": pem}]},
        "rules": [{"match": {"prefix": "/"}}]}))
}

fn configs(jwks: &Value) -> Result<[(&'static str, Value); 5], Failure> {
    let jwt = jwt_config(jwks);
    let scope =
        json!({"rules": [{"match": {"prefix": "/"}, "require": {"scopes": ["orders:read"]}}]});
    let limit = json!({"rules": [{"name": "per-ip", "match": {"prefix": "/"}, "key": {"source": "client_ip"},
                                   "limit": {"requests": 1_000_000_000u64, "per": "second"}}],
                       "headers": "none"});
    let chain = json!({"chain": [{"filter": "jwt-auth", "config": jwt},
                                 {"filter": "scope-authz", "config": scope},
                                 {"filter": "rate-limit", "config": limit}]});
    // audit-log as the benchmark runs it: the access-log sink, masking on, one extra header.
    let audit =
        json!({"sinks": {"access_log": true}, "include": {"request_headers": ["user-agent"]}});
    // The full chain as bench/run.py's `full_chain_stages`: audit-log, mtls-identity (the
    // certificate optional; the client has none), the three stages above, payload-guard on a GET
    // its OpenAPI document lists, identity-exchange (its token cached after the first request).
    let openapi = json!({"openapi": "3.1.0", "info": {"title": "bench", "version": "1"},
        "paths": {"/orders": {"get": {"responses": {"200": {"description": "ok"}}}}}});
    let mut full = vec![
        json!({"filter": "audit-log", "config": audit}),
        json!({"filter": "mtls-identity",
               "config": {"rules": [{"match": {"prefix": "/"}, "requires": "optional"}]}}),
    ];
    let three = chain.get("chain").and_then(Value::as_array);
    full.extend(three.cloned().unwrap_or_default());
    full.push(json!({"filter": "payload-guard", "config": {"openapi": openapi}}));
    full.push(json!({"filter": "identity-exchange", "config": exchange_config()?}));
    Ok([
        ("warm", jwt),
        ("ratelimit", limit),
        ("chain", chain),
        ("audit", audit),
        ("full-one", json!({ "chain": full })),
    ])
}

/// Runs `rounds` rounds of `n` requests through `root`; the median µs per request.
fn time<R: RootFilter>(
    name: &str,
    root: &mut R,
    host: &mut MockHost,
    headers: &[(&str, &str)],
    tokens: &[String],
    rounds: usize,
    n: u32,
) -> Result<f64, Failure> {
    // With tokens, request i carries token i (cycling): a token cache larger than the list
    // would turn later rounds into hits, so the list is longer than jwt-auth's default cache.
    let bearer: Vec<String> = tokens.iter().map(|t| format!("Bearer {t}")).collect();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        for i in 0..n {
            match bearer.get(i as usize % bearer.len().max(1)) {
                Some(b) => host.new_stream("GET", "/orders", &[("authorization", b.as_str())]),
                None => host.new_stream("GET", "/orders", headers),
            }
            host.properties
                .insert("source\0address".into(), b"10.0.0.1:40000".to_vec());
            let mut s = root.new_stream(host, i + 2);
            if s.on_request_headers(host, true) != Action::Continue || host.local_reply.is_some() {
                return Err(format!("{name}: the request was refused").into());
            }
            let _ = s.on_response_headers(host, true);
            s.on_log(host);
        }
        times.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    times.sort_by(f64::total_cmp);
    Ok(times.get(times.len() / 2).copied().unwrap_or_default())
}

fn main() -> Result<(), Failure> {
    let only = cli_value("--only");
    let one_round: Option<u32> = cli_value("--requests").map(|v| v.parse()).transpose()?;
    let mut host = MockHost::new();
    let now = 1_800_000_000;
    host.set_now_secs(now);
    let (token, jwks) = token_and_jwks(now)?;
    let auth = format!("Bearer {token}");
    for (name, config) in configs(&jwks)? {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let headers: Vec<(&str, &str)> = match name {
            "ratelimit" => vec![],
            "audit" => vec![("user-agent", "wrk"), ("x-request-id", "bench-1")],
            "full-one" => vec![("authorization", auth.as_str()), ("user-agent", "wrk")],
            _ => vec![("authorization", auth.as_str())],
        };
        let n = one_round.unwrap_or(20_000);
        let rounds = if one_round.is_some() { 1 } else { 7 };
        let cfg = config.to_string();
        let median = match name {
            "warm" => {
                let mut root = jwt_auth::filter::JwtAuth::configure(&mut host, cfg.as_bytes())?;
                time(name, &mut root, &mut host, &headers, &[], rounds, n)?
            }
            "ratelimit" => {
                let mut root = rate_limit::filter::RateLimit::configure(&mut host, cfg.as_bytes())?;
                time(name, &mut root, &mut host, &headers, &[], rounds, n)?
            }
            "audit" => {
                let mut root = audit_log::filter::AuditLog::configure(&mut host, cfg.as_bytes())?;
                time(name, &mut root, &mut host, &headers, &[], rounds, n)?
            }
            _ => {
                let mut root = shieldwall::Shieldwall::configure(&mut host, cfg.as_bytes())?;
                time(name, &mut root, &mut host, &headers, &[], rounds, n)?
            }
        };
        println!("{name}: {median:.2} µs per request (median of {rounds} rounds of {n})");
    }
    if only.as_deref().is_none_or(|o| o == "cold-ES256") {
        // Every request a new ES256 token, as the benchmark's cold row: parse, verify, claims,
        // the cache insertion. Then the signature checks alone over the same tokens, so the
        // difference is what the path costs besides the arithmetic.
        let n = one_round.unwrap_or(6_000);
        let rounds = if one_round.is_some() { 1 } else { 7 };
        let (tokens, jwks) = es256_tokens(now, n)?;
        let jwt = jwt_config(&jwks).to_string();
        let mut root = jwt_auth::filter::JwtAuth::configure(&mut host, jwt.as_bytes())?;
        let median = time("cold-ES256", &mut root, &mut host, &[], &tokens, rounds, n)?;
        let opts = shieldwall_jose::jwk::JwksOptions {
            allow_symmetric: false,
            max_bytes: 1 << 20,
            max_keys: 4,
        };
        let keys = shieldwall_jose::jwk::parse_jwks(jwks.to_string().as_bytes(), opts)
            .map_err(|e| e.code())?;
        let key = keys.keys.first().ok_or("the key")?;
        let mut checks = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            for t in &tokens {
                let (input, sig) = t.rsplit_once('.').ok_or("a token")?;
                let sig = URL_SAFE_NO_PAD.decode(sig)?;
                key.verify(shieldwall_jose::jws::Alg::ES256, input.as_bytes(), &sig)
                    .map_err(|e| format!("{e:?}"))?;
            }
            checks.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(n));
        }
        checks.sort_by(f64::total_cmp);
        let check = checks.get(checks.len() / 2).copied().unwrap_or_default();
        println!(
            "cold-ES256: {median:.2} µs per request, of which {check:.2} the signature check \
             (median of {rounds} rounds of {n})"
        );
    }
    Ok(())
}
