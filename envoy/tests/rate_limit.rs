//! rate-limit's local buckets in a real Envoy with two workers: the exactness of one bucket shared
//! by both workers (measured), tiers chosen from a real token (jwt-auth → rate-limit), and the
//! replies with their headers.
//!
//! Needs the modules: `cargo build --release --target wasm32-wasip1 -p rate-limit -p jwt-auth`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use serde_json::json;
use shieldwall_e2e::{wasm_path, Cluster, Echo, Envoy, EnvoyConfig, Idp, IdpOptions, WasmFilter};

fn rate_limit(config: serde_json::Value) -> WasmFilter {
    WasmFilter::new(wasm_path("rate-limit"), "rate-limit", config.to_string())
}

/// 90 requests (3x a capacity of 30, refill 1 per second) from 6 threads on fresh connections,
/// which Envoy spreads over its two workers, through the rule `per-ip` with `extra` added to it.
/// Returns the counts and Envoy's own `leased` counter; checks what holds either way.
fn three_times_the_capacity(extra: serde_json::Value) -> (usize, usize, f64, usize) {
    let (capacity, per_second, n) = (30usize, 1.0f64, 90usize);
    let mut rule = json!({"name": "per-ip", "match": {"prefix": "/"}, "key": {"source": "client_ip"},
                          "limit": {"requests": 60, "per": "minute", "burst": capacity}});
    if let (Some(r), Some(more)) = (rule.as_object_mut(), extra.as_object()) {
        r.extend(more.clone());
    }
    let echo = Echo::start();
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .concurrency(2)
            .filter(rate_limit(json!({ "rules": [rule] }))),
    );
    let envoy = Arc::new(envoy);
    let admitted = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (envoy, admitted, limited) = (envoy.clone(), admitted.clone(), limited.clone());
            thread::spawn(move || {
                for _ in 0..n / 6 {
                    match envoy.get("/orders", &[]).status {
                        200 => admitted.fetch_add(1, Ordering::SeqCst),
                        429 => limited.fetch_add(1, Ordering::SeqCst),
                        other => panic!("status {other}"),
                    };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let admitted = admitted.load(Ordering::SeqCst);
    let limited = limited.load(Ordering::SeqCst);
    let refilled = elapsed * per_second;
    eprintln!(
        "{extra}: {n} requests in {elapsed:.3} s over 2 workers: admitted {admitted}, limited {limited}, \
         capacity {capacity} + refill {refilled:.2}"
    );
    assert_eq!(admitted + limited, n);
    // Every admitted request spent a token that left the shared bucket.
    assert!(
        (admitted as f64) <= capacity as f64 + refilled.ceil() + 1.0,
        "admitted {admitted}, at most {capacity} + {refilled:.2} + 1"
    );
    assert_eq!(echo.hits() as usize, admitted);
    // Envoy's own counters agree (custom metrics appear with Envoy's prefix).
    let stat = |event: &str| {
        envoy
            .stats_matching(&format!("rate_limit.rule.per-ip.{event}"))
            .iter()
            .filter_map(|(_, v)| v.parse::<usize>().ok())
            .sum::<usize>()
    };
    assert_eq!(stat("admitted"), admitted);
    assert_eq!(stat("limited"), limited);
    (admitted, limited, refilled, stat("leased"))
}

#[test]
fn one_bucket_is_exact_across_two_workers() {
    let (admitted, _, refilled, leased) = three_times_the_capacity(json!({}));
    assert!(
        admitted >= 29,
        "admitted {admitted}, expected 30 + {refilled:.2} ± 1"
    );
    assert_eq!(leased, 0);
}

#[test]
fn leases_admit_no_more_than_the_bucket_with_fewer_shared_updates() {
    // Leases of 5: at most 4 tokens per worker can be left unspent in a lease when the run ends.
    let (admitted, _, refilled, leased) = three_times_the_capacity(json!({"lease_tokens": 5}));
    assert!(
        admitted >= 30 - 2 * 4 - 1,
        "admitted {admitted}, expected 30 + {refilled:.2} less at most 8 left in leases"
    );
    assert!(
        leased >= 1 && leased * 2 <= admitted,
        "{leased} leases for {admitted} admitted requests"
    );
}

#[test]
fn replies_carry_the_draft_headers_and_retry_after() {
    let echo = Echo::start();
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port()).concurrency(2).filter(rate_limit(json!({
            "rules": [{"name": "api-key", "match": {"prefix": "/partner/"}, "key": {"header": "x-api-key"},
                       "limit": {"requests": 2, "per": "hour"}}]}))),
    );
    let key = [("x-api-key", "k-1")];
    let first = envoy.get("/partner/a", &key);
    assert_eq!(first.status, 200, "{first}");
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"api-key\";q=2;w=3600")
    );
    assert_eq!(first.header("ratelimit"), Some("\"api-key\";r=1;t=1800"));
    assert_eq!(envoy.get("/partner/a", &key).status, 200);
    let refused = envoy.get("/partner/a", &key);
    assert_eq!(refused.status, 429, "{refused}");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1795..=1800).contains(&retry), "{retry}");
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"api-key\";q=2;w=3600")
    );
    assert!(refused
        .header("ratelimit")
        .unwrap()
        .starts_with("\"api-key\";r=0;t="));
    assert_eq!(refused.json()["error"], "rate_limited");
    // Without the key the rule does not apply; another path is not matched at all.
    let other = envoy.get("/partner/a", &[]);
    assert_eq!(other.status, 200);
    assert_eq!(other.header("ratelimit"), None);
    assert_eq!(echo.hits(), 3);
}

#[test]
fn tiers_come_from_a_real_token() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let jwt = json!({
        "providers": {"idp": {
            "issuer": idp.issuer(),
            "audiences": ["orders-api"],
            "remote_jwks": {"cluster": "idp", "uri": format!("http://{}{}", idp.authority(), idp.jwks_path()),
                            "timeout_ms": 1000}}},
        "rules": [{"match": {"prefix": "/api/"}, "requires": {"provider": "idp"}}]
    });
    let rl = json!({"rules": [{"name": "per-client", "match": {"prefix": "/api/"},
        "key": {"identity": "client_id"}, "limit": {"requests": 5, "per": "minute"},
        "tiers": {"identity": "claims.tier", "limits": {
            "gold": {"requests": 8, "per": "minute"}, "free": {"requests": 3, "per": "minute"}}}}]});
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .concurrency(2)
            .cluster(Cluster::new("idp", idp.port()))
            .filter(WasmFilter::new(
                wasm_path("jwt-auth"),
                "jwt-auth",
                jwt.to_string(),
            ))
            .filter(rate_limit(rl)),
    );
    let free = idp.token("orders-reader", "orders-reader-secret", None, None);
    let gold = idp.token("orders-writer", "orders-writer-secret", None, None);
    let admitted = |token: &str| {
        (0..10)
            .filter(|_| {
                let r = envoy.get_with_token("/api/orders", token);
                assert!(r.status == 200 || r.status == 429, "{r}");
                r.status == 200
            })
            .count()
    };
    assert_eq!(admitted(&free), 3, "free tier");
    assert_eq!(admitted(&gold), 8, "gold tier");
    let r = envoy.get_with_token("/api/orders", &gold);
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"per-client\";q=8;w=60")
    );
    // Without a token jwt-auth refuses first; rate-limit never sees it.
    assert_eq!(envoy.get("/api/orders", &[]).status, 401);
}
