//! rate-limit over the real release module: several VMs (workers) drawing from one bucket in the
//! shared store, the slot table's bound under 100k distinct keys, the replies and their headers,
//! and the RLS callout with its failure modes.
//!
//! Needs the module: `cargo build --release --target wasm32-wasip1 -p rate-limit`.

use std::time::Duration;

use host_tests::{
    wasm_path, Cluster, Envoy, GrpcReply, Outcome, Plugin, Request, Response, Worker,
};
use serde_json::{json, Value};

const VM_ID: &str = "rl";
const PLUGIN: &str = "rl";

fn plugin(config: &Value) -> Plugin {
    Plugin::new(wasm_path("rate-limit"))
        .name(PLUGIN)
        .vm_id(VM_ID)
        .json(config)
}

fn per_ip(requests: u64, per: &str, burst: u64) -> Value {
    json!({"rules": [{"name": "per-ip", "match": {"prefix": "/"}, "key": {"source": "client_ip"},
        "limit": {"requests": requests, "per": per, "burst": burst}}]})
}

/// Sends one request and, when it reaches the upstream, a 200 back; returns what the client got.
fn call(worker: &Worker, req: Request) -> (u16, Vec<(String, String)>) {
    let mut s = worker.stream(req);
    let out = match s.send_request() {
        Outcome::Upstream(_) => s.send_response(Response::ok()),
        other => other,
    };
    let result = match &out {
        Outcome::Response(m) => (m.status(), m.headers.clone()),
        Outcome::LocalReply(r) => (r.status(), r.headers.clone()),
        other => panic!("unexpected {other:?}"),
    };
    s.finish();
    result
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn several_workers_draw_from_one_bucket_without_losing_an_update() {
    let envoy = Envoy::new();
    let cfg = per_ip(10, "minute", 20);
    let workers: Vec<Worker> = (0..4)
        .map(|_| envoy.worker(&[plugin(&cfg)]).unwrap())
        .collect();
    // 60 requests (3x the capacity), round-robin over four VMs, on a frozen clock.
    let mut admitted = 0;
    for i in 0..60 {
        let w = &workers[i % workers.len()];
        if call(w, Request::get("/orders").source("10.1.1.1:5000")).0 == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 20, "exactly the bucket's capacity");
    // 6 s later one token (10 per minute) is back, for whichever worker asks first.
    envoy.advance(Duration::from_secs(6));
    let got: Vec<u16> = (0..4)
        .map(|i| call(&workers[i], Request::get("/").source("10.1.1.1:5000")).0)
        .collect();
    assert_eq!(got, vec![200, 429, 429, 429]);
    // One slot in the shared store, plus the hash seed every worker agreed on.
    assert_eq!(
        envoy.shared_data_keys(VM_ID).len(),
        2,
        "{:?}",
        envoy.shared_data_keys(VM_ID)
    );
    assert_eq!(
        envoy.metric("shieldwall.rate_limit.rule.per-ip.admitted"),
        Some(21)
    );
    assert_eq!(
        envoy.metric("shieldwall.rate_limit.rule.per-ip.limited"),
        Some(43)
    );
}

#[test]
fn leased_tokens_never_admit_more_than_the_shared_bucket_across_workers() {
    let envoy = Envoy::new();
    let mut cfg = per_ip(10, "second", 20);
    cfg["rules"][0]["lease_tokens"] = json!(6);
    let workers: Vec<Worker> = (0..4)
        .map(|_| envoy.worker(&[plugin(&cfg)]).unwrap())
        .collect();
    // Requests round-robin over the four VMs from one client; how many got through.
    let admitted = |n: usize| {
        (0..n)
            .filter(|i| {
                let req = Request::get("/orders").source("10.1.1.1:5000");
                call(&workers[i % 4], req).0 == 200
            })
            .count()
    };
    // 60 requests on a frozen clock: each VM takes leases of 6 out of the same 20 tokens (6, 6,
    // 6, then the 2 left), and spends them locally.
    assert_eq!(admitted(60), 20, "exactly the bucket's capacity");
    assert_eq!(
        envoy.metric("shieldwall.rate_limit.rule.per-ip.leased"),
        Some(4)
    );
    // A second later every lease has ended and the bucket holds 10 new tokens (10 per second).
    envoy.advance(Duration::from_secs(1));
    assert_eq!(admitted(40), 10);
}

#[test]
fn a_write_by_another_worker_between_requests_is_respected() {
    // Another worker's write lands in the store between two requests of this one: the filter
    // keeps no copy of its own, so it continues from the other worker's state.
    let envoy = Envoy::new();
    let cfg = per_ip(1, "hour", 3);
    let a = envoy.worker(&[plugin(&cfg)]).unwrap();
    assert_eq!(call(&a, Request::get("/").source("10.2.0.1:1")).0, 200);
    let keys = envoy.shared_data_keys(VM_ID);
    let slot = keys.iter().find(|k| !k.ends_with("/seed")).unwrap().clone();
    let mut value = envoy.shared_data(VM_ID, &slot).unwrap();
    // tokens := 0 (bytes 9..17 of the slot encoding).
    value[9..17].copy_from_slice(&0u64.to_le_bytes());
    envoy.set_shared_data(VM_ID, &slot, &value);
    let (status, headers) = call(&a, Request::get("/").source("10.2.0.1:1"));
    assert_eq!(status, 429);
    assert_eq!(header(&headers, "retry-after"), Some("3600"));
}

#[test]
fn a_hundred_thousand_keys_stay_within_the_slot_table() {
    let envoy = Envoy::new();
    let mut cfg = per_ip(5, "minute", 5);
    cfg["slots"] = json!(4096);
    let workers: Vec<Worker> = (0..2)
        .map(|_| envoy.worker(&[plugin(&cfg)]).unwrap())
        .collect();
    for i in 0..100_000u32 {
        let ip = format!("10.{}.{}.{}:1234", i >> 16, (i >> 8) & 255, i & 255);
        let mut s = workers[(i % 2) as usize].stream(Request::get("/").source(&ip));
        s.send_request();
        s.finish();
    }
    let keys = envoy.shared_data_keys(VM_ID);
    // 4096 slots and the seed, whatever the number of keys: the bound holds.
    assert!(keys.len() <= 4097, "{}", keys.len());
    assert!(keys.len() > 4000, "{}", keys.len());
    let bytes: usize = keys
        .iter()
        .map(|k| k.len() + envoy.shared_data(VM_ID, k).map_or(0, |v| v.len()))
        .sum();
    assert!(bytes < 4097 * (40 + 33), "{bytes} bytes of keys and values");
    // 100k keys into 4096 slots on a frozen clock: most requests shared a busy slot, and every
    // one of them still took a token from some bucket (stricter, never looser).
    let admitted = envoy
        .metric("shieldwall.rate_limit.rule.per-ip.admitted")
        .unwrap_or(0);
    assert!(admitted <= 4096 * 5, "{admitted}");
    assert!(
        envoy
            .metric("shieldwall.rate_limit.rule.per-ip.slot.shared")
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn replies_carry_retry_after_and_the_draft_headers() {
    let envoy = Envoy::new();
    let w = envoy.worker(&[plugin(&per_ip(100, "minute", 2))]).unwrap();
    let (status, h) = call(&w, Request::get("/a").source("10.3.0.1:1"));
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "ratelimit-policy"),
        Some("\"per-ip\";q=100;w=60")
    );
    assert_eq!(header(&h, "ratelimit"), Some("\"per-ip\";r=1;t=1"));
    call(&w, Request::get("/a").source("10.3.0.1:1"));
    let mut s = w.stream(Request::get("/a").source("10.3.0.1:1"));
    let out = s.send_request();
    let reply = out.local_reply();
    assert_eq!(reply.status(), 429);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.header("ratelimit"), Some("\"per-ip\";r=0;t=2"));
    assert_eq!(
        reply.header("ratelimit-policy"),
        Some("\"per-ip\";q=100;w=60")
    );
    assert!(reply
        .header_all("content-type")
        .contains(&"application/json"));
    assert_eq!(reply.body_json()["error"], "rate_limited");
}

#[test]
fn the_client_cannot_pick_its_address_through_x_forwarded_for() {
    let envoy = Envoy::new();
    let w = envoy.worker(&[plugin(&per_ip(1, "minute", 1))]).unwrap();
    assert_eq!(call(&w, Request::get("/").source("10.4.0.1:1")).0, 200);
    let forged = Request::get("/")
        .source("10.4.0.1:1")
        .header("x-forwarded-for", "1.2.3.4");
    assert_eq!(call(&w, forged).0, 429);
}

fn global(failure_mode: &str) -> Value {
    let mut cfg = per_ip(100, "second", 100);
    cfg["global"] = json!({"cluster": "ratelimit", "domain": "edge", "timeout_ms": 50, "failure_mode": failure_mode});
    cfg
}

#[test]
fn the_rate_limit_service_is_asked_and_obeyed() {
    let envoy = Envoy::new();
    envoy.cluster(
        "ratelimit",
        Cluster::grpc(|req| {
            // Over the limit for one address only.
            if req.message.windows(8).any(|w| w == b"10.5.0.2") {
                GrpcReply::ok(vec![0x08, 0x02])
            } else {
                GrpcReply::ok(vec![0x08, 0x01])
            }
        }),
    );
    let w = envoy.worker(&[plugin(&global("deny"))]).unwrap();
    let mut s = w.stream(Request::get("/").source("10.5.0.1:1"));
    // The stream pauses for the call; the answer may come in the same turn of the event loop.
    if s.send_request().is_paused() {
        envoy.advance(Duration::from_millis(1));
    }
    assert!(
        matches!(s.outcome(), Outcome::Upstream(_)),
        "{:?}",
        s.outcome()
    );
    let calls = envoy.grpc_callouts();
    assert_eq!(
        calls[0].service,
        "envoy.service.ratelimit.v3.RateLimitService"
    );
    assert_eq!(calls[0].method, "ShouldRateLimit");
    assert_eq!(calls[0].timeout, Some(Duration::from_millis(50)));

    let mut s = w.stream(Request::get("/").source("10.5.0.2:1"));
    if s.send_request().is_paused() {
        envoy.advance(Duration::from_millis(1));
    }
    let out = s.outcome();
    assert_eq!(out.local_reply().status(), 429);
    assert_eq!(out.local_reply().header("retry-after"), Some("1"));
    assert_eq!(
        envoy.metric("shieldwall.rate_limit.rule.per-ip.global_limited"),
        Some(1)
    );
}

#[test]
fn a_silent_rate_limit_service_follows_the_failure_mode() {
    for (mode, expect) in [("deny", 503), ("allow", 200)] {
        let envoy = Envoy::new();
        envoy.cluster("ratelimit", Cluster::grpc(|_| GrpcReply::never()));
        let w = envoy.worker(&[plugin(&global(mode))]).unwrap();
        let mut s = w.stream(Request::get("/").source("10.6.0.1:1"));
        assert!(s.send_request().is_paused());
        envoy.advance(Duration::from_millis(60));
        let status = match s.outcome() {
            Outcome::Upstream(_) => 200,
            Outcome::LocalReply(r) => r.status(),
            other => panic!("{other:?}"),
        };
        assert_eq!(status, expect, "failure_mode {mode}");
        assert_eq!(
            envoy.metric("shieldwall.rate_limit.rule.per-ip.global_error"),
            Some(1),
            "failure_mode {mode}"
        );
    }
}

#[test]
fn a_bad_configuration_is_refused_with_its_path() {
    let envoy = Envoy::new();
    let err = envoy
        .worker(&[plugin(
            &json!({"rules": [{"name": "x", "key": {"source": "client_ip"},
            "limit": {"requests": 1, "per": "fortnight"}}]}),
        )])
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("rules[0].limit.per"), "{err:#}");
}
