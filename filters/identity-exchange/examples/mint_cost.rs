//! Times the filter natively over the mock host: a request whose token is minted (a signature
//! each time: the cache is off) and a request served from the cache of minted tokens, for ES256
//! and EdDSA. Run with `cargo run --release -p identity-exchange --example mint_cost`.

// A measurement program: a failed setup is meant to stop it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use identity_exchange::IdentityExchange;
use serde_json::json;
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::testing::MockHost;
use shieldwall_core::{RootFilter, StreamFilter};

const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXMsn9GfCSXAb7AO2
LyuITZbfskra1SaLd2TeJGFl52KhRANCAAQiaaSGXj8A6s2hpr6to4bNYAiOLaLp
UeVQiPXKghbvwKDjQoXKjN77wd+i0V8Y06mXi9LYRE7NEGZ47hC/GPJC
-----END PRIVATE KEY-----";
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICvmcVSY4WtVwbOStSPpJp6yAW1j/9JxDb0LfQT64B2G
-----END PRIVATE KEY-----";

fn per_request_us(alg: &str, pem: &str, cache_entries: usize, rounds: u32) -> f64 {
    let config = json!({
        "spiffe_id": "spiffe://{tenant}.bank.example/user/{sub}",
        "token": {"issuer": "https://gateway.bank.example", "alg": alg,
                  "keys": [{"kid": "k", "private_key": pem}], "act": true},
        "rules": [{"match": {"prefix": "/"}}],
        "cache": {"max_entries": cache_entries}
    });
    let identity = json!({"sub": "12345", "iss": "https://idp.bank.example", "client_id": "app",
                          "scopes": ["read", "transfer"], "tenant": "bank-a", "auth": ["jwt"],
                          "exp": 1_700_003_600u64});
    let mut host = MockHost::new();
    let mut root = IdentityExchange::configure(&mut host, config.to_string().as_bytes()).unwrap();
    let identity = identity.to_string().into_bytes();
    let mut run = |host: &mut MockHost| {
        host.new_stream("GET", "/tenants/bank-a/accounts", &[]);
        host.properties
            .insert(IDENTITY_PROPERTY.into(), identity.clone());
        let mut stream = root.new_stream(host, 2);
        stream.on_request_headers(host, true);
        assert!(host.local_reply.is_none());
    };
    for _ in 0..20 {
        run(&mut host);
    }
    let start = Instant::now();
    for _ in 0..rounds {
        run(&mut host);
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

fn main() {
    for (alg, pem) in [("ES256", P256_PEM), ("EdDSA", ED25519_PEM)] {
        let minted = per_request_us(alg, pem, 0, 2_000);
        let cached = per_request_us(alg, pem, 1024, 20_000);
        println!("{alg}: minted {minted:.1} µs per request, cached {cached:.2} µs per request");
    }
}
