//! Unit tests: the bucket arithmetic on a fake clock, the slot table, the configuration, and the
//! filter on a mock host.

use serde_json::json;
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Action, GrpcResponse, Host, RootFilter, StreamFilter};

use crate::bucket::{Bucket, Limit, Slot, MAX_COUNT, SLOT_BYTES, UNITS_PER_TOKEN};
use crate::client_ip::{parse_ip, resolve};
use crate::config::Config;
use crate::filter::{RateLimit, RLS_METHOD, RLS_SERVICE};
use crate::headers::retry_after_secs;
use crate::table;

const T0: u64 = 1_700_000_000_000;

fn limit(requests: u64, period_ms: u64, burst: u64) -> Limit {
    Limit {
        requests,
        period_ms,
        burst,
    }
}

// ---------------------------------------------------------------- bucket arithmetic

#[test]
fn a_new_bucket_is_full_and_empties_by_burst() {
    let l = limit(100, 60_000, 5);
    let mut b = Bucket::full(&l, T0);
    for left in (0..5).rev() {
        let (nb, d) = b.take(&l, T0);
        assert!(d.admitted);
        assert_eq!(d.remaining, left);
        b = nb;
    }
    let (_, d) = b.take(&l, T0);
    assert!(!d.admitted);
    assert_eq!(d.remaining, 0);
    // 100 per minute: a token every 600 ms; the full bucket (5) in 3 s.
    assert_eq!(d.retry_after_ms, 600);
    assert_eq!(d.full_in_ms, 3_000);
}

#[test]
fn refill_is_exact_to_the_millisecond() {
    let l = limit(100, 60_000, 1);
    let (b, _) = Bucket::full(&l, T0).take(&l, T0);
    let (_, d) = b.take(&l, T0 + 599);
    assert!(!d.admitted);
    assert_eq!(d.retry_after_ms, 1);
    let (_, d) = b.take(&l, T0 + 600);
    assert!(d.admitted);
}

#[test]
fn no_fraction_is_lost_by_frequent_updates() {
    // 3 per second = one token every 333.33 ms. Updated every millisecond for a second, the
    // bucket must hold exactly three tokens at 1000 ms, not fewer from rounding each update.
    let l = limit(3, 1_000, 3);
    let mut b = Bucket {
        tokens: 0,
        last_ms: T0,
    };
    for t in 1..1_000 {
        b = b.refill(&l, T0 + t);
        assert!(b.tokens < 3 * UNITS_PER_TOKEN);
    }
    b = b.refill(&l, T0 + 1_000);
    assert_eq!(b.tokens, 3 * UNITS_PER_TOKEN);
}

#[test]
fn burst_above_the_rate_is_the_capacity() {
    let l = limit(1, 1_000, 10);
    let mut b = Bucket::full(&l, T0);
    let mut admitted = 0;
    for _ in 0..20 {
        let (nb, d) = b.take(&l, T0);
        admitted += u32::from(d.admitted);
        b = nb;
    }
    assert_eq!(admitted, 10);
    // Ten seconds later it is full again, never fuller.
    let b = b.refill(&l, T0 + 60_000);
    assert_eq!(b.tokens, 10 * UNITS_PER_TOKEN);
}

#[test]
fn a_clock_going_backwards_credits_nothing_twice() {
    let l = limit(1, 1_000, 1);
    let (b, _) = Bucket::full(&l, T0).take(&l, T0);
    // The clock jumps back 5 s: nothing is added and `last_ms` stays.
    let (b2, d) = b.take(&l, T0 - 5_000);
    assert!(!d.admitted);
    assert_eq!(b2.last_ms, T0);
    // Back to T0 + 999: still less than a token since T0.
    assert!(!b2.take(&l, T0 + 999).1.admitted);
    assert!(b2.take(&l, T0 + 1_000).1.admitted);
}

#[test]
fn huge_gaps_and_extreme_limits_saturate() {
    let l = limit(MAX_COUNT, 1_000, MAX_COUNT);
    let b = Bucket {
        tokens: 0,
        last_ms: 0,
    };
    let (b, d) = b.take(&l, u64::MAX);
    assert!(d.admitted);
    assert_eq!(b.tokens, l.capacity() - UNITS_PER_TOKEN);
    // A stored state from a corrupt or older slot with more tokens than capacity is clipped.
    let b = Bucket {
        tokens: u64::MAX,
        last_ms: u64::MAX,
    };
    let l = limit(1, 86_400_000, 1);
    let (b, d) = b.take(&l, 0);
    assert!(d.admitted);
    assert_eq!(b.tokens, 0);
    assert_eq!(d.retry_after_ms, 86_400_000);
    // The slowest rate still refills (one unit per ms at least).
    assert!(l.refill_per_ms() >= 1);
    // give_back never exceeds capacity.
    let full = Bucket::full(&l, 0).give_back(&l, 0);
    assert_eq!(full.tokens, l.capacity());
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    assert_eq!(retry_after_secs(0), 1);
    assert_eq!(retry_after_secs(1), 1);
    assert_eq!(retry_after_secs(1_000), 1);
    assert_eq!(retry_after_secs(1_001), 2);
}

#[test]
fn slot_encoding_round_trips_and_refuses_garbage() {
    let s = Slot {
        fingerprint: 0xdead_beef_0123_4567,
        bucket: Bucket {
            tokens: 42,
            last_ms: T0,
        },
        full_at_ms: u64::MAX,
    };
    let bytes = s.encode();
    assert_eq!(bytes.len(), SLOT_BYTES);
    assert_eq!(Slot::decode(&bytes), Some(s));
    assert_eq!(Slot::decode(&bytes[..32]), None);
    assert_eq!(Slot::decode(b""), None);
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert_eq!(Slot::decode(&v2), None);
}

// ---------------------------------------------------------------- client address

#[test]
fn client_ip_comes_from_the_peer_or_trusted_hops_only() {
    let peer = parse_ip("10.0.0.9:443");
    let xff = vec!["6.6.6.6, 1.2.3.4".to_string(), "10.0.0.9".to_string()];
    assert_eq!(resolve(peer, &xff, 0), parse_ip("10.0.0.9"));
    // One trusted proxy (the peer): the client is what it appended, not what the client wrote.
    assert_eq!(resolve(peer, &xff, 1), parse_ip("1.2.3.4"));
    assert_eq!(resolve(peer, &xff, 2), parse_ip("6.6.6.6"));
    // Fewer entries than hops: the peer, as Envoy does.
    assert_eq!(resolve(peer, &xff, 3), parse_ip("10.0.0.9"));
    // Garbage at the trusted position: the peer.
    assert_eq!(
        resolve(peer, &["nonsense".to_string()], 1),
        parse_ip("10.0.0.9")
    );
    assert_eq!(parse_ip("[2001:db8::1]:80"), parse_ip("2001:db8::1"));
    assert_eq!(resolve(None, &xff, 0), None);
}

// ---------------------------------------------------------------- configuration

fn config_error(cfg: serde_json::Value) -> String {
    let mut host = MockHost::new();
    match RateLimit::configure(&mut host, cfg.to_string().as_bytes()) {
        Ok(_) => panic!("accepted {cfg}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn configuration_errors_name_the_field() {
    let ok = |r: serde_json::Value| json!({"rules": [r]});
    let base = json!({"name": "a", "key": {"source": "client_ip"}, "limit": {"requests": 1, "per": "second"}});
    let mut r = base.clone();
    r["limit"]["requests"] = json!(0);
    assert!(config_error(ok(r)).starts_with("rules[0].limit.requests:"));
    let mut r = base.clone();
    r["limit"]["per"] = json!("week");
    assert!(config_error(ok(r)).starts_with("rules[0].limit.per:"));
    let mut r = base.clone();
    r["key"] = json!({"source": "client_ip", "header": "x"});
    assert!(config_error(ok(r)).starts_with("rules[0].key:"));
    let mut r = base.clone();
    r["key"] = json!({"identity": "password"});
    assert!(config_error(ok(r)).starts_with("rules[0].key.identity:"));
    let mut r = base.clone();
    r["name"] = json!("has space");
    assert!(config_error(ok(r)).starts_with("rules[0].name:"));
    let mut r = base.clone();
    r["tiers"] =
        json!({"identity": "claims.tier", "limits": {"gold": {"requests": 1, "per": "ever"}}});
    assert!(config_error(ok(r)).starts_with("rules[0].tiers.limits.gold.per:"));
    let mut r = base.clone();
    r["tiers"] = json!({"identity": "claims.tier", "limits": {"gold": {"requests": 1, "per": "hour", "burst": 0}}});
    assert!(config_error(ok(r)).starts_with("rules[0].tiers.limits.gold.burst:"));
    let mut r = base.clone();
    r["slots"] = json!(0);
    assert!(config_error(ok(r)).starts_with("rules[0].slots:"));
    for lease in [0, 1001] {
        let mut r = base.clone();
        r["limit"]["burst"] = json!(2000);
        r["lease_tokens"] = json!(lease);
        assert!(config_error(ok(r)).starts_with("rules[0].lease_tokens:"));
    }
    // A lease bigger than the burst of the limit, or of a tier's, could never be taken whole.
    let mut r = base.clone();
    r["limit"]["burst"] = json!(8);
    r["lease_tokens"] = json!(9);
    assert!(config_error(ok(r)).starts_with("rules[0].lease_tokens:"));
    let mut r = base.clone();
    r["limit"]["burst"] = json!(50);
    r["lease_tokens"] = json!(8);
    r["tiers"] =
        json!({"identity": "claims.tier", "limits": {"free": {"requests": 5, "per": "minute"}}});
    assert!(config_error(ok(r)).starts_with("rules[0].lease_tokens:"));
    let mut r = base.clone();
    r["extra"] = json!(1);
    assert!(config_error(ok(r)).contains("unknown field `extra`"));
    assert!(
        config_error(json!({"rules": [base.clone(), base.clone()]})).starts_with("rules[1].name:")
    );
    assert!(
        config_error(json!({"rules": [], "global": {"cluster": "rls", "domain": "", }}))
            .starts_with("global.domain:")
    );
    assert!(config_error(json!({"rules": [], "headers": "rfc"})).starts_with("headers:"));
}

#[test]
fn the_issue_example_parses_with_defaults() {
    let c = Config::parse(example().to_string().as_bytes()).unwrap();
    assert_eq!(c.rules.len(), 3);
    assert_eq!(c.rules[1].limit, limit(1000, 60_000, 1000));
    assert_eq!(
        c.rules[1].tiers.as_ref().unwrap().limits["free"],
        limit(60, 60_000, 60)
    );
    assert_eq!(c.rules[0].slots, crate::config::DEFAULT_SLOTS);
    assert_eq!(c.rules[0].lease_tokens, 1, "exact by default");
    assert_eq!(
        c.global.as_ref().unwrap().failure_mode,
        crate::config::FailureMode::Allow
    );
}

fn example() -> serde_json::Value {
    json!({ "rules": [
        { "name": "per-ip", "match": { "prefix": "/" }, "key": { "source": "client_ip" }, "limit": { "requests": 100, "per": "minute", "burst": 100 } },
        { "name": "per-client", "match": { "prefix": "/api/" }, "key": { "identity": "client_id" }, "limit": { "requests": 1000, "per": "minute" },
          "tiers": { "identity": "claims.tier", "limits": { "gold": { "requests": 10000, "per": "minute" }, "free": { "requests": 60, "per": "minute" } } } },
        { "name": "api-key", "match": { "prefix": "/partner/" }, "key": { "header": "x-api-key" }, "limit": { "requests": 10, "per": "second" } } ],
      "client_ip": { "xff_trusted_hops": 0 },
      "global": { "cluster": "ratelimit", "domain": "edge", "timeout_ms": 50, "failure_mode": "allow" },
      "headers": "draft", "shadow": false })
}

// ---------------------------------------------------------------- the filter on a mock host

struct Gw {
    host: MockHost,
    root: RateLimit,
}

impl Gw {
    fn new(cfg: serde_json::Value) -> Gw {
        let mut host = MockHost::new();
        let root = RateLimit::configure(&mut host, cfg.to_string().as_bytes()).unwrap();
        Gw { host, root }
    }

    /// One request from `ip`; returns the status (200 when let through) and the response headers.
    fn send(&mut self, path: &str, ip: &str, headers: &[(&str, &str)]) -> (u16, MockHost) {
        let status = send_on(&mut self.host, &mut self.root, path, ip, headers);
        (status, self.snapshot())
    }

    fn snapshot(&self) -> MockHost {
        let mut h = MockHost::new();
        h.response_headers = self.host.response_headers.clone();
        h.local_reply = self.host.local_reply.clone();
        h
    }
}

/// One request from `ip` through `root` (one worker; several roots on one host share its shared
/// data as an Envoy's workers do); the status, 200 when let through.
fn send_on(
    host: &mut MockHost,
    root: &mut RateLimit,
    path: &str,
    ip: &str,
    headers: &[(&str, &str)],
) -> u16 {
    host.new_stream("GET", path, headers);
    host.set_property(&["source", "address"], format!("{ip}:40000").as_bytes())
        .unwrap();
    let mut s = root.new_stream(host, 1);
    let action = s.on_request_headers(host, true);
    let status = match (&host.local_reply, action) {
        (Some(r), _) => r.status,
        (None, Action::Continue) => 200,
        (None, Action::Pause) => 0,
    };
    s.on_response_headers(host, true);
    status
}

fn per_ip(requests: u64, per: &str, burst: u64) -> serde_json::Value {
    json!({"rules": [{"name": "per-ip", "key": {"source": "client_ip"},
        "limit": {"requests": requests, "per": per, "burst": burst}}]})
}

#[test]
fn a_bucket_admits_its_burst_then_429_with_retry_after_and_draft_headers() {
    let mut gw = Gw::new(per_ip(100, "minute", 3));
    for left in [2, 1, 0] {
        let (status, h) = gw.send("/x", "10.0.0.1", &[]);
        assert_eq!(status, 200);
        assert_eq!(
            h.response_header("ratelimit-policy").as_deref(),
            Some("\"per-ip\";q=100;w=60")
        );
        let full_in = (3 - left) * 600;
        assert_eq!(
            h.response_header("ratelimit"),
            Some(format!(
                "\"per-ip\";r={left};t={}",
                crate::headers::ceil_secs(full_in)
            ))
        );
    }
    let (status, h) = gw.send("/x", "10.0.0.1", &[]);
    assert_eq!(status, 429);
    let reply = h.local_reply.clone().unwrap();
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.json()["error"], "rate_limited");
    assert_eq!(
        h.response_header("ratelimit").as_deref(),
        Some("\"per-ip\";r=0;t=2")
    );
    // Another address has its own bucket.
    assert_eq!(gw.send("/x", "10.0.0.2", &[]).0, 200);
    assert_eq!(
        gw.host.metric("shieldwall.rate_limit.rule.per-ip.admitted"),
        4
    );
    assert_eq!(
        gw.host.metric("shieldwall.rate_limit.rule.per-ip.limited"),
        1
    );
    // 600 ms later one token is back.
    gw.host.advance_ms(600);
    assert_eq!(gw.send("/x", "10.0.0.1", &[]).0, 200);
    assert_eq!(gw.send("/x", "10.0.0.1", &[]).0, 429);
}

#[test]
fn retry_after_is_the_time_until_a_token_is_back() {
    let mut gw = Gw::new(per_ip(1, "hour", 1));
    assert_eq!(gw.send("/", "10.0.0.1", &[]).0, 200);
    gw.host.advance_ms(1_000_000);
    let (status, h) = gw.send("/", "10.0.0.1", &[]);
    assert_eq!(status, 429);
    assert_eq!(h.local_reply.unwrap().header("retry-after"), Some("2600"));
}

#[test]
fn headers_none_sends_only_retry_after() {
    let mut cfg = per_ip(1, "minute", 1);
    cfg["headers"] = json!("none");
    let mut gw = Gw::new(cfg);
    let (_, h) = gw.send("/", "10.0.0.1", &[]);
    assert!(h.response_headers.is_empty());
    let (status, h) = gw.send("/", "10.0.0.1", &[]);
    assert_eq!(status, 429);
    assert!(h.response_header("ratelimit").is_none());
    assert!(h.local_reply.unwrap().header("retry-after").is_some());
}

#[test]
fn header_and_identity_keys_skip_requests_without_them() {
    let mut gw = Gw::new(json!({"rules": [
        {"name": "api-key", "key": {"header": "x-api-key"}, "limit": {"requests": 1, "per": "minute"}},
        {"name": "client", "key": {"identity": "client_id"}, "limit": {"requests": 1, "per": "minute"}}]}));
    for _ in 0..5 {
        let (status, h) = gw.send("/", "10.0.0.1", &[]);
        assert_eq!(status, 200);
        assert!(h.response_header("ratelimit").is_none());
    }
    assert_eq!(gw.send("/", "10.0.0.1", &[("x-api-key", "k1")]).0, 200);
    assert_eq!(gw.send("/", "10.0.0.1", &[("x-api-key", "k1")]).0, 429);
    assert_eq!(gw.send("/", "10.0.0.1", &[("x-api-key", "k2")]).0, 200);
    // 7, not 8: once `api-key` refused, later rules are not evaluated.
    assert_eq!(
        gw.host.metric("shieldwall.rate_limit.rule.client.skipped"),
        7
    );
}

fn with_identity(gw: &mut Gw, identity: serde_json::Value, path: &str) -> u16 {
    gw.host.new_stream("GET", path, &[]);
    gw.host
        .set_property(&["source", "address"], b"10.0.0.1:1")
        .unwrap();
    gw.host
        .set_property(&["shieldwall.identity"], identity.to_string().as_bytes())
        .unwrap();
    let mut s = gw.root.new_stream(&mut gw.host, 1);
    s.on_request_headers(&mut gw.host, true);
    s.on_response_headers(&mut gw.host, true);
    gw.host
        .local_reply
        .as_ref()
        .map(|r| r.status)
        .unwrap_or(200)
}

#[test]
fn tiers_choose_the_limit_from_the_identity() {
    let mut gw = Gw::new(json!({"rules": [
        {"name": "per-client", "key": {"identity": "client_id"}, "limit": {"requests": 3, "per": "minute"},
         "tiers": {"identity": "claims.tier", "limits": {"gold": {"requests": 5, "per": "minute"}, "free": {"requests": 2, "per": "minute"}}}}]}));
    let count = |gw: &mut Gw, id: serde_json::Value| {
        (0..10)
            .filter(|_| with_identity(gw, id.clone(), "/api/x") == 200)
            .count()
    };
    assert_eq!(
        count(
            &mut gw,
            json!({"client_id": "g", "claims": {"tier": "gold"}})
        ),
        5
    );
    assert_eq!(
        gw.host.response_header("ratelimit-policy").as_deref(),
        Some("\"per-client\";q=5;w=60")
    );
    assert_eq!(
        count(
            &mut gw,
            json!({"client_id": "f", "claims": {"tier": "free"}})
        ),
        2
    );
    // A tier not listed, or none: the rule's limit.
    assert_eq!(
        count(
            &mut gw,
            json!({"client_id": "p", "claims": {"tier": "platinum"}})
        ),
        3
    );
    assert_eq!(count(&mut gw, json!({"client_id": "n"})), 3);
}

#[test]
fn every_matching_rule_applies_and_a_refusal_gives_the_other_tokens_back() {
    let mut gw = Gw::new(json!({"rules": [
        {"name": "wide", "key": {"source": "client_ip"}, "limit": {"requests": 10, "per": "minute"}},
        {"name": "partner", "match": {"prefix": "/partner/"}, "key": {"header": "x-api-key"}, "limit": {"requests": 2, "per": "minute"}}]}));
    let key = [("x-api-key", "k")];
    assert_eq!(gw.send("/partner/a", "10.0.0.1", &key).0, 200);
    let (_, h) = gw.send("/partner/a", "10.0.0.1", &key);
    assert_eq!(
        h.response_header("ratelimit").as_deref(),
        Some("\"wide\";r=8;t=12, \"partner\";r=0;t=60")
    );
    // Refused by `partner`: `wide` must not lose a token for it.
    for _ in 0..5 {
        assert_eq!(gw.send("/partner/a", "10.0.0.1", &key).0, 429);
    }
    let (_, h) = gw.send("/other", "10.0.0.1", &[]);
    assert_eq!(
        h.response_header("ratelimit").as_deref(),
        Some("\"wide\";r=7;t=18")
    );
    assert_eq!(
        gw.host.metric("shieldwall.rate_limit.rule.partner.limited"),
        5
    );
    assert_eq!(gw.host.metric("shieldwall.rate_limit.rule.wide.limited"), 0);
}

#[test]
fn a_bucket_gives_a_lease_what_it_has_up_to_the_ask() {
    let l = limit(10, 1000, 10);
    let (b, d, taken) = Bucket::full(&l, T0).take_up_to(&l, T0, 4);
    assert_eq!((taken, d.admitted, d.remaining), (4, true, 6));
    let (b, d, taken) = b.take_up_to(&l, T0, 8);
    assert_eq!((taken, d.admitted, d.remaining), (6, true, 0));
    let (b, d, taken) = b.take_up_to(&l, T0, 8);
    assert_eq!((taken, d.admitted, d.retry_after_ms), (0, false, 100));
    // 100 ms later one token is back: a lease of one.
    let (_, d, taken) = b.take_up_to(&l, T0 + 100, 8);
    assert_eq!((taken, d.admitted), (1, true));
    // Asking for none asks for one.
    let (_, _, taken) = Bucket::full(&l, T0).take_up_to(&l, T0, 0);
    assert_eq!(taken, 1);
}

fn leased(lease_tokens: u64) -> serde_json::Value {
    json!({"rules": [{"name": "busy", "key": {"source": "client_ip"},
        "limit": {"requests": 10, "per": "second", "burst": 10}, "lease_tokens": lease_tokens}],
        "headers": "none"})
}

#[test]
fn leases_never_admit_more_than_the_shared_bucket_holds() {
    // Two workers on one host: their leases come out of the same shared bucket of 10.
    let mut gw = Gw::new(leased(4));
    let mut b = RateLimit::configure(&mut gw.host, leased(4).to_string().as_bytes()).unwrap();
    let mut admitted = 0;
    // Alternating workers until both are refused: exactly the bucket's 10, whoever leased them.
    for _ in 0..20 {
        for worker in [&mut gw.root, &mut b] {
            if send_on(&mut gw.host, worker, "/x", "10.0.0.1", &[]) == 200 {
                admitted += 1;
            }
        }
    }
    assert_eq!(admitted, 10);
    // Leases of 4, 4 and then the 2 left: three shared-data updates instead of ten.
    assert_eq!(gw.host.metric("shieldwall.rate_limit.rule.busy.leased"), 3);
    assert_eq!(
        gw.host.metric("shieldwall.rate_limit.rule.busy.admitted"),
        10
    );
    // The bucket refills as before: 100 ms, one token.
    gw.host.advance_ms(100);
    assert_eq!(gw.send("/x", "10.0.0.1", &[]).0, 200);
    assert_eq!(gw.send("/x", "10.0.0.1", &[]).0, 429);
}

#[test]
fn a_worker_holding_a_lease_leaves_the_other_fewer_tokens_until_it_ends() {
    let mut gw = Gw::new(leased(4));
    let mut b = RateLimit::configure(&mut gw.host, leased(4).to_string().as_bytes()).unwrap();
    // Worker A takes 4 (spends 1, holds 3); worker B may take only the 6 left.
    assert_eq!(gw.send("/x", "10.0.0.1", &[]).0, 200);
    let b_admitted = (0..10)
        .filter(|_| send_on(&mut gw.host, &mut b, "/x", "10.0.0.1", &[]) == 200)
        .count();
    assert_eq!(b_admitted, 6);
    // A still spends what it holds.
    for _ in 0..3 {
        assert_eq!(gw.send("/x", "10.0.0.1", &[]).0, 200);
    }
    assert_eq!(gw.send("/x", "10.0.0.1", &[]).0, 429);
    // A lease ends after a second at most: what A would hold then is dropped, and the refilled
    // shared bucket serves both workers again.
    assert_eq!(send_on(&mut gw.host, &mut b, "/x", "10.0.0.2", &[]), 200);
    gw.host.advance_ms(1_000);
    let before = gw.host.metric("shieldwall.rate_limit.rule.busy.leased");
    assert_eq!(send_on(&mut gw.host, &mut b, "/x", "10.0.0.2", &[]), 200);
    assert_eq!(
        gw.host.metric("shieldwall.rate_limit.rule.busy.leased"),
        before + 1,
        "an ended lease is not spent: a new one is taken"
    );
}

#[test]
fn an_ended_lease_gives_its_left_over_tokens_back_so_a_slow_key_keeps_its_bucket() {
    // 60 a minute with leases of 10, one request a second for two minutes: each lease ends
    // after a second with 9 tokens left, which go back with the next take. Dropped, they would
    // drain the bucket by 9 a second, and the client's burst below would find it empty.
    let mut gw = Gw::new(
        json!({"rules": [{"name": "slow", "key": {"source": "client_ip"},
        "limit": {"requests": 60, "per": "minute", "burst": 60}, "lease_tokens": 10}],
        "headers": "none"}),
    );
    for second in 0..120 {
        assert_eq!(gw.send("/x", "10.0.0.1", &[]).0, 200, "second {second}");
        gw.host.advance_ms(1_000);
    }
    // And the bucket is whole: a burst of 60 still passes, the 61st does not.
    let burst = (0..61)
        .filter(|_| gw.send("/x", "10.0.0.1", &[]).0 == 200)
        .count();
    assert_eq!(burst, 60);
}

#[test]
fn a_leased_token_a_refused_request_took_goes_back_to_the_lease() {
    let mut gw = Gw::new(json!({"rules": [
        {"name": "wide", "key": {"source": "client_ip"},
         "limit": {"requests": 10, "per": "second", "burst": 10}, "lease_tokens": 5},
        {"name": "partner", "match": {"prefix": "/partner/"}, "key": {"header": "x-api-key"},
         "limit": {"requests": 1, "per": "minute"}}], "headers": "none"}));
    let key = [("x-api-key", "k")];
    assert_eq!(gw.send("/partner/a", "10.0.0.1", &key).0, 200);
    // Refused by `partner`: the leased token `wide` spent comes back to the lease.
    for _ in 0..5 {
        assert_eq!(gw.send("/partner/a", "10.0.0.1", &key).0, 429);
    }
    // `wide` still has its 9: 4 in the lease, then a lease of the 5 in the bucket.
    let admitted = (0..12)
        .filter(|_| gw.send("/other", "10.0.0.1", &[]).0 == 200)
        .count();
    assert_eq!(admitted, 9);
    assert_eq!(gw.host.metric("shieldwall.rate_limit.rule.wide.leased"), 2);
}

/// A request that spends a leased token makes no shared-data call.
#[test]
fn a_request_spending_a_leased_token_makes_only_the_calls_it_needs() {
    use shieldwall_core::testing::CountingHost;
    let mut host = CountingHost::new(MockHost::new());
    let mut root = RateLimit::configure(&mut host, leased(8).to_string().as_bytes()).unwrap();
    let calls = host.header_calls_when_warm(&mut root, "/orders", &[], |mock| {
        mock.set_property(&["source", "address"], b"10.0.0.1:1")
            .unwrap();
    });
    assert_eq!(
        calls,
        [
            "request_header", // :path
            "request_header", // :method
            "now",            // the lease's end
            "property",       // source.address, the client
        ]
    );
}

#[test]
fn shadow_counts_and_logs_but_lets_through() {
    let mut cfg = per_ip(1, "minute", 1);
    cfg["shadow"] = json!(true);
    let mut gw = Gw::new(cfg);
    for _ in 0..4 {
        assert_eq!(gw.send("/", "10.0.0.1", &[]).0, 200);
    }
    assert_eq!(
        gw.host.metric("shieldwall.rate_limit.rule.per-ip.admitted"),
        1
    );
    assert_eq!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-ip.shadow_limited"),
        3
    );
    assert_eq!(
        gw.host.metric("shieldwall.rate_limit.rule.per-ip.limited"),
        0
    );
    assert!(gw.host.logged("shadow: rule per-ip would refuse"));
}

#[test]
fn a_racing_writer_loses_no_update_and_endless_contention_fails_closed() {
    let mut gw = Gw::new(per_ip(1, "hour", 5));
    // Each of the first 3 writes of every request is beaten by another worker: the CAS loop
    // re-reads and the count stays exact.
    for _ in 0..5 {
        gw.host.interfere_with_cas = Some(3);
        assert_eq!(gw.send("/", "10.0.0.1", &[]).0, 200);
    }
    gw.host.interfere_with_cas = Some(3);
    assert_eq!(gw.send("/", "10.0.0.1", &[]).0, 429);
    // A slot that never stops changing: refuse (fail closed) and count it.
    gw.host.interfere_with_cas = Some(usize::MAX);
    let (status, _) = gw.send("/", "10.0.0.9", &[]);
    gw.host.interfere_with_cas = None;
    // The first request on a fresh slot is created without CAS, so it may pass; a second one
    // must hit the contended path.
    if status == 200 {
        gw.host.interfere_with_cas = Some(usize::MAX);
        assert_eq!(gw.send("/", "10.0.0.9", &[]).0, 429);
        gw.host.interfere_with_cas = None;
    }
    assert!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-ip.store_error")
            >= 1
    );
}

#[test]
fn a_million_keys_stay_in_the_slot_table() {
    let mut cfg = per_ip(10, "minute", 10);
    cfg["slots"] = json!(1024);
    let mut gw = Gw::new(cfg);
    for i in 0..100_000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        gw.send("/", &ip, &[]);
    }
    // 1024 slots and the hash seed: nothing else, however many keys came.
    assert!(gw.host.shared.len() <= 1025, "{}", gw.host.shared.len());
    assert!(gw.host.shared.len() > 1000);
    assert!(gw.host.shared.values().all(|(v, _)| v.len() <= SLOT_BYTES));
}

#[test]
fn collisions_share_a_bucket_and_idle_slots_are_reclaimed() {
    let mut cfg = per_ip(1, "minute", 2);
    cfg["slots"] = json!(1);
    let mut gw = Gw::new(cfg);
    // One slot: a, then b, share a's active bucket (stricter, never looser).
    assert_eq!(gw.send("/", "10.0.0.1", &[]).0, 200);
    assert_eq!(gw.send("/", "10.0.0.2", &[]).0, 200);
    assert_eq!(gw.send("/", "10.0.0.2", &[]).0, 429);
    assert_eq!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-ip.slot.shared"),
        2
    );
    // Once a's bucket would be full again (2 minutes), b reclaims the slot with a fresh bucket.
    gw.host.advance_ms(120_000);
    assert_eq!(gw.send("/", "10.0.0.2", &[]).0, 200);
    assert_eq!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-ip.slot.reclaimed"),
        1
    );
    assert_eq!(gw.send("/", "10.0.0.2", &[]).0, 200);
    assert_eq!(gw.send("/", "10.0.0.2", &[]).0, 429);
}

#[test]
fn the_seed_is_shared_by_every_worker() {
    let mut host = MockHost::new();
    let a = table::load_seed(&mut host, "rate_limit", "p", 1);
    let b = table::load_seed(&mut host, "rate_limit", "p", 2);
    assert_eq!(a, 1);
    assert_eq!(b, 1);
    assert_ne!(
        table::fingerprint(1, "r", "k"),
        table::fingerprint(2, "r", "k")
    );
}

// ---------------------------------------------------------------- the rate-limit service

fn global_cfg(mode: &str) -> serde_json::Value {
    let mut cfg = per_ip(5, "minute", 5);
    cfg["global"] =
        json!({"cluster": "ratelimit", "domain": "edge", "timeout_ms": 50, "failure_mode": mode});
    cfg
}

fn global_request(gw: &mut Gw, reply: GrpcResponse) -> (Action, u16) {
    gw.host.new_stream("GET", "/", &[]);
    gw.host
        .set_property(&["source", "address"], b"10.0.0.1:1")
        .unwrap();
    gw.host.grpc_callouts.clear();
    let mut s = gw.root.new_stream(&mut gw.host, 1);
    assert_eq!(s.on_request_headers(&mut gw.host, true), Action::Pause);
    let call = gw.host.grpc_callouts.last().cloned().unwrap();
    assert_eq!(call.cluster, "ratelimit");
    assert_eq!(call.service, RLS_SERVICE);
    assert_eq!(call.method, RLS_METHOD);
    assert_eq!(call.timeout.as_millis(), 50);
    assert_eq!(
        call.message,
        crate::rls::encode_request(
            "edge",
            &[vec![("per-ip".to_string(), "10.0.0.1".to_string())]],
            1
        )
    );
    // The adapter hands the answer to the stream that made the call.
    let action = s.on_grpc_call_response(&mut gw.host, call.token, reply);
    let status = gw
        .host
        .local_reply
        .as_ref()
        .map(|r| r.status)
        .unwrap_or(200);
    (action, status)
}

fn ok(code: u8) -> GrpcResponse {
    GrpcResponse {
        status: 0,
        message: Some(vec![0x08, code]),
    }
}

/// Only the rules whose descriptor the service refused count `global_limited`: a request that two
/// rules apply to, refused for the second one's descriptor, counts for that rule alone.
#[test]
fn global_limited_counts_the_rules_the_service_refused() {
    let cfg = json!({"rules": [
        {"name": "per-ip", "key": {"source": "client_ip"}, "limit": {"requests": 100, "per": "second"}},
        {"name": "per-key", "key": {"header": "x-api-key"}, "limit": {"requests": 100, "per": "second"}}],
        "global": {"cluster": "ratelimit", "domain": "edge", "timeout_ms": 50}});
    let mut gw = Gw::new(cfg);
    gw.host.new_stream("GET", "/", &[("x-api-key", "k1")]);
    gw.host
        .set_property(&["source", "address"], b"10.0.0.1:1")
        .unwrap();
    let mut s = gw.root.new_stream(&mut gw.host, 1);
    assert_eq!(s.on_request_headers(&mut gw.host, true), Action::Pause);
    let token = gw.host.grpc_callouts.last().unwrap().token;
    // overall_code OVER_LIMIT; statuses [OK, OVER_LIMIT], in the order of the descriptors.
    let reply = GrpcResponse {
        status: 0,
        message: Some(vec![0x08, 2, 0x12, 2, 0x08, 1, 0x12, 2, 0x08, 2]),
    };
    assert_eq!(
        s.on_grpc_call_response(&mut gw.host, token, reply),
        Action::Pause
    );
    assert_eq!(gw.host.local_reply.as_ref().map(|r| r.status), Some(429));
    assert_eq!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-key.global_limited"),
        1
    );
    assert_eq!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-ip.global_limited"),
        0
    );
}

#[test]
fn the_rate_limit_service_decides_after_the_local_buckets() {
    let mut gw = Gw::new(global_cfg("deny"));
    assert_eq!(global_request(&mut gw, ok(1)), (Action::Continue, 200));
    let (action, status) = global_request(&mut gw, ok(2));
    assert_eq!((action, status), (Action::Pause, 429));
    assert_eq!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-ip.global_limited"),
        1
    );
    // Local buckets run first: once empty, no call is made at all.
    for _ in 0..10 {
        gw.send("/", "10.0.0.1", &[]);
    }
    gw.host.grpc_callouts.clear();
    gw.send("/", "10.0.0.1", &[]);
    assert!(gw.host.grpc_callouts.is_empty());
}

#[test]
fn a_global_refusal_says_when_the_longest_refusing_window_resets() {
    let mut gw = Gw::new(global_cfg("deny"));
    // OVER_LIMIT overall; statuses: refused (resets in 42 s), admitted (500 s: not a reason to
    // wait), refused (90 s). The client must wait for both refusing windows: 90 s.
    let mut msg = vec![0x08, 0x02];
    msg.extend([0x12, 6, 0x08, 0x02, 0x22, 0x02, 0x08, 42]);
    msg.extend([0x12, 7, 0x08, 0x01, 0x22, 0x03, 0x08, 0xF4, 0x03]);
    msg.extend([0x12, 6, 0x08, 0x02, 0x22, 0x02, 0x08, 90]);
    let reply = GrpcResponse {
        status: 0,
        message: Some(msg),
    };
    assert_eq!(global_request(&mut gw, reply), (Action::Pause, 429));
    let retry = gw.host.local_reply.as_ref().unwrap().header("retry-after");
    assert_eq!(retry, Some("90"));
    // Without any duration: 1.
    assert_eq!(global_request(&mut gw, ok(2)), (Action::Pause, 429));
    let retry = gw.host.local_reply.as_ref().unwrap().header("retry-after");
    assert_eq!(retry, Some("1"));
}

#[test]
fn service_failures_follow_failure_mode_with_a_metric() {
    let err = GrpcResponse {
        status: 4,
        message: None,
    };
    let mut gw = Gw::new(global_cfg("deny"));
    assert_eq!(global_request(&mut gw, err.clone()), (Action::Pause, 503));
    assert_eq!(global_request(&mut gw, ok(0)), (Action::Pause, 503));
    assert_eq!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-ip.global_error"),
        2
    );
    let mut gw = Gw::new(global_cfg("allow"));
    assert_eq!(global_request(&mut gw, err), (Action::Continue, 200));
    let garbage = GrpcResponse {
        status: 0,
        message: Some(vec![0xff]),
    };
    assert_eq!(global_request(&mut gw, garbage), (Action::Continue, 200));
    assert_eq!(
        gw.host
            .metric("shieldwall.rate_limit.rule.per-ip.global_error"),
        2
    );
    // A call that cannot even start: failure mode at once.
    let mut gw = Gw::new(global_cfg("deny"));
    gw.host.fail_callouts = true;
    assert_eq!(gw.send("/", "10.0.0.1", &[]).0, 503);
}

#[test]
fn a_bad_path_is_refused() {
    let mut gw = Gw::new(per_ip(1, "minute", 1));
    assert_eq!(gw.send("/a%2Fb", "10.0.0.1", &[]).0, 400);
    let _: &dyn Host = &gw.host;
}

/// A request under the limit, call by call: what it costs in calls out of the VM (each a crossing
/// between the VM and the proxy, priced in bench/RESULTS.md), once the worker's metrics exist.
#[test]
fn a_request_under_the_limit_makes_only_the_calls_it_needs() {
    use shieldwall_core::testing::CountingHost;
    let mut host = CountingHost::new(MockHost::new());
    let cfg = json!({"rules": [{"name": "per-ip", "key": {"source": "client_ip"},
        "limit": {"requests": 1000000, "per": "second"}}], "headers": "none"});
    let mut root = RateLimit::configure(&mut host, cfg.to_string().as_bytes()).unwrap();
    let calls = host.header_calls_when_warm(&mut root, "/orders", &[], |mock| {
        mock.set_property(&["source", "address"], b"10.0.0.1:1")
            .unwrap();
    });
    assert_eq!(calls, CALLS_UNDER_THE_LIMIT);
}

/// Plus, in a proxy, the adapter's decision record (one property write) when the filter lets the
/// request go on.
const CALLS_UNDER_THE_LIMIT: [&str; 6] = [
    "request_header", // :path
    "request_header", // :method
    "now",            // the bucket's refill
    "property",       // source.address, the client
    "shared_get",     // the bucket
    "shared_set",     // the bucket, compare-and-swap
];
