//! The one shieldwall module against the three separate modules it bundles, over the real release
//! modules: the same requests through jwt-auth → scope-authz → rate-limit as three plugins and as
//! one `shieldwall` plugin give the same local replies, the same upstream requests, the same
//! responses and the same identity context. Then a request that waits for the key set and
//! resumes through the later stages, and a refused configuration.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p shieldwall -p jwt-auth -p scope-authz -p rate-limit

// Test code: a failed expectation is meant to panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use host_tests::{
    jws, wasm_path, Cluster, Envoy, Outcome, Plugin, Reply, Request, Response, Worker,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example.com";

struct Key(EcdsaKeyPair);

impl Key {
    fn new() -> Key {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Key(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }
    fn jwks(&self) -> Value {
        let p = self.0.public_key().as_ref();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
                         "x": jws::b64url(&p[1..33]), "y": jws::b64url(&p[33..65])}]})
    }
    fn bearer(&self, now: u64, extra: Value) -> String {
        let mut claims = json!({"iss": ISSUER, "sub": "alice", "aud": "orders-api", "client_id": "reader",
            "scope": "orders:read", "tenant": "a", "tier": "free", "iat": now, "exp": now + 300});
        if let (Some(c), Value::Object(more)) = (claims.as_object_mut(), extra) {
            c.extend(more);
        }
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        let token = jws::compact(&header, claims.to_string().as_bytes(), |input| {
            let sig = self.0.sign(&SystemRandom::new(), input).unwrap();
            sig.as_ref().to_vec()
        });
        format!("Bearer {token}")
    }
}

fn jwt_config(keys: Value) -> Value {
    json!({"realm": "orders",
        "providers": {"idp": {"issuer": ISSUER, "audiences": ["orders-api"], "local_jwks": keys,
            "claim_to_headers": [{"claim": "sub", "header": "x-jwt-sub"}, {"claim": "tenant", "header": "x-jwt-tenant"}]}},
        "rules": [{"match": {"path": "/healthz"}}, {"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]})
}

fn jwt_remote_config() -> Value {
    json!({"realm": "orders",
        "providers": {"idp": {"issuer": ISSUER, "audiences": ["orders-api"],
            "remote_jwks": {"cluster": "idp", "uri": "https://idp.example.com/jwks", "timeout_ms": 1000}}},
        "rules": [{"match": {"path": "/healthz"}}, {"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]})
}

fn authz_config() -> Value {
    json!({"realm": "orders", "rules": [
        {"name": "health", "match": {"path": "/healthz"}, "public": true},
        {"name": "orders-read", "match": {"methods": ["GET"], "template": "/tenants/{tenant}/orders"},
         "require": {"scopes": ["orders:read"], "tenant": "{tenant}"}},
        {"name": "orders-create", "match": {"methods": ["POST"], "template": "/tenants/{tenant}/orders"},
         "require": {"scopes": ["orders:write"], "tenant": "{tenant}"}}],
      "default": "deny"})
}

fn limit_config() -> Value {
    json!({"rules": [
        {"name": "per-ip", "key": {"source": "client_ip"}, "limit": {"requests": 1, "per": "minute", "burst": 6}},
        {"name": "per-client", "match": {"prefix": "/tenants/"}, "key": {"identity": "client_id"},
         "limit": {"requests": 1, "per": "minute", "burst": 3}}],
      "headers": "draft"})
}

fn separate(jwt: &Value) -> Vec<Plugin> {
    vec![
        Plugin::new(wasm_path("jwt-auth"))
            .name("jwt")
            .vm_id("jwt")
            .json(jwt),
        Plugin::new(wasm_path("scope-authz"))
            .name("authz")
            .vm_id("authz")
            .json(&authz_config()),
        Plugin::new(wasm_path("rate-limit"))
            .name("limit")
            .vm_id("limit")
            .json(&limit_config()),
    ]
}

fn one(jwt: &Value) -> Vec<Plugin> {
    let config = json!({"chain": [
        {"filter": "jwt-auth", "config": jwt},
        {"filter": "scope-authz", "config": authz_config()},
        {"filter": "rate-limit", "config": limit_config()}]});
    vec![Plugin::new(wasm_path("shieldwall"))
        .name("shieldwall")
        .vm_id("shieldwall")
        .json(&config)]
}

/// The outcome of one request and of its response (when it reached the upstream), with the
/// identity context the stream ended with.
#[derive(Debug, PartialEq)]
struct Seen {
    request: Outcome,
    response: Option<Outcome>,
    identity: Option<Value>,
}

fn send(worker: &Worker, req: Request) -> Seen {
    let mut s = worker.stream(req);
    // Everything must be equal, the response code details (`shieldwall_<filter>`) too.
    let request = s.send_request();
    let response = matches!(request, Outcome::Upstream(_)).then(|| {
        s.send_response(
            Response::ok()
                .header("content-type", "text/plain")
                .body("ok"),
        )
    });
    let identity = s
        .filter_state("shieldwall.identity")
        .map(|b| serde_json::from_slice(&b).unwrap());
    s.finish();
    Seen {
        request,
        response,
        identity,
    }
}

fn status(seen: &Seen) -> u16 {
    match &seen.request {
        Outcome::LocalReply(r) => r.status(),
        Outcome::Upstream(_) => 200,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn one_module_answers_as_the_three_modules_do() {
    let key = Key::new();
    let other = Key::new();
    let (a, b) = (Envoy::new(), Envoy::new());
    assert_eq!(a.now_unix_secs(), b.now_unix_secs());
    let wa = a.worker(&separate(&jwt_config(key.jwks()))).unwrap();
    let wb = b.worker(&one(&jwt_config(key.jwks()))).unwrap();
    let now = a.now_unix_secs();
    let good = key.bearer(now, json!({}));
    let forged = other.bearer(now, json!({}));
    let tenant_b = key.bearer(now, json!({"tenant": "b"}));
    let other_client = key.bearer(now, json!({"client_id": "writer"}));
    let get = |path: &str, auth: Option<&str>| {
        let r = Request::get(path).source("10.0.0.7:40000");
        match auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    };
    let cases: Vec<(&str, Request, u16)> = vec![
        ("healthz", get("/healthz", None), 200),
        ("good", get("/tenants/a/orders", Some(&good)), 200),
        ("no token", get("/tenants/a/orders", None), 401),
        (
            "bad signature",
            get("/tenants/a/orders", Some(&forged)),
            401,
        ),
        ("other tenant", get("/tenants/b/orders", Some(&good)), 403),
        (
            "tenant b's token",
            get("/tenants/a/orders", Some(&tenant_b)),
            403,
        ),
        (
            "missing scope",
            Request::new("POST", "/tenants/a/orders")
                .source("10.0.0.7:40000")
                .header("authorization", &good),
            403,
        ),
        ("unknown route", get("/billing", Some(&good)), 403),
        (
            "client budget, 2nd",
            get("/tenants/a/orders", Some(&good)),
            200,
        ),
        (
            "client budget, 3rd",
            get("/tenants/a/orders", Some(&good)),
            200,
        ),
        (
            "client over its limit",
            get("/tenants/a/orders", Some(&good)),
            429,
        ),
        (
            "another client",
            get("/tenants/a/orders", Some(&other_client)),
            200,
        ),
        (
            "the address's last token",
            get("/tenants/a/orders", Some(&other_client)),
            200,
        ),
        (
            "address over its limit",
            get("/tenants/a/orders", Some(&other_client)),
            429,
        ),
        ("healthz over the address limit", get("/healthz", None), 429),
        (
            "another address",
            get("/healthz", None).source("10.0.0.8:40000"),
            200,
        ),
    ];
    for (name, req, want) in cases {
        let (x, y) = (send(&wa, req.clone()), send(&wb, req));
        assert_eq!(status(&x), want, "{name}: {x:?}\n{}", wa.log_text());
        assert_eq!(x, y, "{name}\n{}", wb.log_text());
    }
    // The filters counted the same events in both.
    for m in [
        "shieldwall.jwt_auth.allowed",
        "shieldwall.scope_authz.allowed",
        "shieldwall.scope_authz.denied.insufficient_scope",
        "shieldwall.rate_limit.rule.per-ip.limited",
        "shieldwall.rate_limit.rule.per-client.limited",
    ] {
        assert!(a.metric(m).is_some(), "{m}");
        assert_eq!(a.metric(m), b.metric(m), "{m}");
    }
}

#[test]
fn a_request_waiting_for_keys_resumes_through_the_later_stages() {
    let key = Key::new();
    let envoy = Envoy::new();
    let jwks = key.jwks();
    envoy.cluster(
        "idp",
        Cluster::delayed(Duration::from_millis(50), move |_| Reply::json(200, &jwks)),
    );
    let worker = envoy.worker(&one(&jwt_remote_config())).unwrap();
    assert_eq!(
        worker.tick_period("shieldwall"),
        Some(Duration::from_millis(200))
    );
    let auth = key.bearer(envoy.now_unix_secs(), json!({}));
    let req = Request::get("/tenants/a/orders")
        .source("10.0.0.7:40000")
        .header("authorization", &auth);
    let mut s = worker.stream(req.clone());
    assert!(s.send_request().is_paused(), "{}", worker.log_text());
    let mut s2 = worker.stream(req);
    assert!(s2.send_request().is_paused());
    assert_eq!(envoy.callouts().len(), 1, "one fetch for both");
    envoy.advance(Duration::from_millis(50));
    for s in [&mut s, &mut s2] {
        let up = s.outcome();
        assert_eq!(
            up.upstream().header("authorization"),
            None,
            "{}",
            worker.log_text()
        );
        let resp = s.send_response(Response::ok());
        assert!(
            resp.response().header("ratelimit").is_some(),
            "rate-limit ran: {resp:?}"
        );
    }
    assert_eq!(envoy.metric("shieldwall.scope_authz.allowed"), Some(2));
    assert_eq!(
        envoy.metric("shieldwall.rate_limit.rule.per-client.admitted"),
        Some(2)
    );
    s.finish();
    s2.finish();
    // Later ticks go to jwt-auth's root: the key set stays fresh without another fetch.
    envoy.advance(Duration::from_secs(2));
    assert_eq!(envoy.metric("shieldwall.jwt_auth.jwks.fetch.ok"), Some(1));
}

#[test]
fn a_bad_entry_is_refused_with_its_path() {
    let envoy = Envoy::new();
    let config = json!({"chain": [
        {"filter": "scope-authz", "config": {"rules": [], "default": "deny"}},
        {"filter": "rate-limit", "config": {"rules": [{"name": "a", "key": {"source": "client_ip"},
            "limit": {"requests": 0, "per": "second"}}]}}]});
    let err = envoy
        .worker(&[Plugin::new(wasm_path("shieldwall")).json(&config)])
        .err()
        .expect("on_configure returned false");
    let text = format!("{err:#}");
    assert!(
        text.contains("chain[1].config.rules[0].limit.requests"),
        "{text}"
    );
    let config = json!({"chain": [{"filter": "jwt-authz", "config": {}}]});
    let err = envoy
        .worker(&[Plugin::new(wasm_path("shieldwall")).json(&config)])
        .err()
        .expect("unknown filter");
    assert!(format!("{err:#}").contains("chain[0].filter: unknown variant `jwt-authz`"));
}
