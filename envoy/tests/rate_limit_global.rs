//! The rate-limit filter's `global` mode in real Envoys: two Envoys (two workers each), each
//! asking its own rls-redis replica, both replicas counting in one Redis, enforce one limit
//! together; when Redis or the rate-limit service is gone, `failure_mode` decides (`allow` lets
//! the request through, `deny` answers 503 with `Retry-After`).
//!
//! Needs the module: `cargo build --release --target wasm32-wasip1 -p rate-limit`, and
//! `redis-server` (scripts/setup.sh).
//!

// Test helpers outside #[test] functions may fail loudly too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, SocketAddr};

use rls_redis::testing::RedisServer;
use shieldwall_e2e::{wasm_path, Cluster, Echo, Envoy, EnvoyConfig, Response, WasmFilter};

/// The rule `per-key` sends the descriptor `[("per-key", <x-api-key>)]`; the service allows each
/// key 4 requests a day (a test never crosses a window's end except at midnight UTC).
const LIMITS: &str = r#"{"domains": [{"domain": "edge", "descriptors": [
    {"key": "per-key", "rate_limit": {"requests_per_unit": 4, "unit": "day"}}]}]}"#;

const GLOBAL_LIMIT: usize = 4;

fn start_rls(redis: &RedisServer) -> rls_redis::Server {
    rls_redis::Server::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        rls_redis::Config::from_json(LIMITS).unwrap(),
        &redis.url(),
        "e2e",
    )
    .unwrap()
}

/// An Envoy with two workers whose rate-limit filter asks the service on `rls_port`. The local
/// bucket is generous, so only the global limit refuses.
fn start_envoy(echo: &Echo, rls_port: u16, failure_mode: &str) -> Envoy {
    let filter = format!(
        r#"{{"rules": [{{"name": "per-key", "match": {{"prefix": "/"}}, "key": {{"header": "x-api-key"}},
              "limit": {{"requests": 1000, "per": "second"}}}}],
            "global": {{"cluster": "ratelimit", "domain": "edge", "timeout_ms": 1000, "failure_mode": "{failure_mode}"}}}}"#
    );
    Envoy::start(
        EnvoyConfig::new(echo.port())
            .concurrency(2)
            .cluster(Cluster::new("ratelimit", rls_port).http2())
            .filter(WasmFilter::new(
                wasm_path("rate-limit"),
                "rate-limit",
                filter,
            )),
    )
}

fn get(envoy: &Envoy, key: &str) -> Response {
    envoy.get("/orders", &[("x-api-key", key)])
}

#[test]

fn two_envoys_sharing_the_service_enforce_one_limit() {
    let redis = RedisServer::start().unwrap();
    let (rls_a, rls_b) = (start_rls(&redis), start_rls(&redis));
    let echo = Echo::start();
    let a = start_envoy(&echo, rls_a.port(), "deny");
    let b = start_envoy(&echo, rls_b.port(), "deny");

    let mut statuses = Vec::new();
    for i in 0..2 * GLOBAL_LIMIT {
        let envoy = if i % 2 == 0 { &a } else { &b };
        let r = get(envoy, "key-1");
        if r.status == 429 {
            // The limit is per day: the client may retry when the service's day window resets.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let until_midnight = 86_400 - now % 86_400;
            let retry: u64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap();
            assert!(
                retry.abs_diff(until_midnight) <= 2,
                "{retry} vs {until_midnight}"
            );
            assert!(r.text().contains("rate_limited"), "{}", r.text());
        }
        statuses.push(r.status);
    }
    let mut expected = vec![200; GLOBAL_LIMIT];
    expected.extend(vec![429; GLOBAL_LIMIT]);
    assert_eq!(statuses, expected, "envoy a log:\n{}", a.log());
    assert_eq!(echo.hits(), GLOBAL_LIMIT as u64);

    // Another key has a counter of its own, on either Envoy.
    assert_eq!(get(&b, "key-2").status, 200);
    assert_eq!(get(&a, "key-2").status, 200);
    assert_eq!(
        a.stat("wasmcustom.shieldwall.rate_limit.rule.per-key.global_limited")
            .unwrap_or(0)
            + b.stat("wasmcustom.shieldwall.rate_limit.rule.per-key.global_limited")
                .unwrap_or(0),
        GLOBAL_LIMIT as u64,
        "{:?}",
        a.stats_matching("rate_limit")
    );
}

#[test]

fn redis_down_follows_failure_mode() {
    let mut redis = RedisServer::start().unwrap();
    let rls = start_rls(&redis);
    let echo = Echo::start();
    let allow = start_envoy(&echo, rls.port(), "allow");
    let deny = start_envoy(&echo, rls.port(), "deny");
    assert_eq!(get(&allow, "k").status, 200);
    assert_eq!(get(&deny, "k").status, 200);

    redis.stop();
    for _ in 0..3 {
        assert_eq!(get(&allow, "k").status, 200, "{}", allow.log());
        let r = get(&deny, "k");
        assert_eq!(r.status, 503, "{}", deny.log());
        assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
        assert!(r.text().contains("rate_limit_unavailable"), "{}", r.text());
    }
    assert!(
        deny.stat("wasmcustom.shieldwall.rate_limit.rule.per-key.global_error")
            .unwrap_or(0)
            >= 3,
        "{:?}",
        deny.stats_matching("rate_limit")
    );
}

#[test]

fn service_down_follows_failure_mode() {
    let redis = RedisServer::start().unwrap();
    let rls = start_rls(&redis);
    let echo = Echo::start();
    let allow = start_envoy(&echo, rls.port(), "allow");
    let deny = start_envoy(&echo, rls.port(), "deny");
    assert_eq!(get(&allow, "k").status, 200);
    assert_eq!(get(&deny, "k").status, 200);

    drop(rls);
    for _ in 0..3 {
        assert_eq!(get(&allow, "k").status, 200, "{}", allow.log());
        let r = get(&deny, "k");
        assert_eq!(r.status, 503, "{}", deny.log());
        assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    }
}
