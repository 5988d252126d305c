//! The chain over MockHost with the real filters: configuration errors, order, a deny that stops
//! the walk, a pause for keys that resumes into the later stages, callouts routed by stage.
// They run jwt-auth, scope-authz and rate-limit: only in builds that have those three.
#![cfg(all(feature = "jwt-auth", feature = "scope-authz", feature = "rate-limit"))]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use shieldwall_core::chain::ChainStream;
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Action, CalloutResponse, ConfigError, Host, RootFilter, StreamFilter};

use crate::Shieldwall;

const NOW: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct EcKey {
    pair: EcdsaKeyPair,
}

impl EcKey {
    fn new() -> EcKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        EcKey { pair }
    }
    fn jwks(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
               "x": b64(&point[1..33]), "y": b64(&point[33..65])}]})
    }
    fn bearer(&self, extra: Value) -> String {
        let mut claims = json!({"iss": "https://idp.example.com", "sub": "alice", "aud": "orders-api",
            "exp": NOW + 300, "iat": NOW, "client_id": "reader", "scope": "orders:read", "tenant": "a"});
        if let (Some(obj), Value::Object(more)) = (claims.as_object_mut(), extra) {
            obj.extend(more);
        }
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("Bearer {input}.{}", b64(sig.as_ref()))
    }
}

fn jwt(keys: Value) -> Value {
    json!({"realm": "orders",
        "providers": {"idp": {"issuer": "https://idp.example.com", "audiences": ["orders-api"], "local_jwks": keys}},
        "rules": [{"match": {"path": "/healthz"}}, {"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]})
}

fn jwt_remote() -> Value {
    json!({"realm": "orders",
        "providers": {"idp": {"issuer": "https://idp.example.com", "audiences": ["orders-api"],
            "remote_jwks": {"cluster": "idp", "uri": "http://idp.local/jwks", "timeout_ms": 1000}}},
        "rules": [{"match": {"path": "/healthz"}}, {"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]})
}

fn authz() -> Value {
    json!({"realm": "orders", "rules": [
        {"name": "health", "match": {"path": "/healthz"}, "public": true},
        {"name": "orders-read", "match": {"methods": ["GET"], "template": "/tenants/{tenant}/orders"},
         "require": {"scopes": ["orders:read"], "tenant": "{tenant}"}}],
      "default": "deny"})
}

fn limit(burst: u64) -> Value {
    json!({"rules": [{"name": "per-ip", "key": {"source": "client_ip"},
        "limit": {"requests": 1, "per": "minute", "burst": burst}}], "headers": "draft"})
}

fn chain(entries: &[(&str, Value)]) -> String {
    let list: Vec<Value> = entries
        .iter()
        .map(|(f, c)| json!({"filter": f, "config": c}))
        .collect();
    json!({ "chain": list }).to_string()
}

fn configure(host: &mut MockHost, config: &str) -> Result<Shieldwall, ConfigError> {
    host.set_now_secs(NOW);
    Shieldwall::configure(host, config.as_bytes())
}

fn error(config: &str) -> String {
    match configure(&mut MockHost::new(), config) {
        Ok(_) => panic!("accepted: {config}"),
        Err(e) => e.to_string(),
    }
}

/// One request through a chain; returns the action, the stream and the status (200 when let through).
fn request(
    root: &mut Shieldwall,
    host: &mut MockHost,
    id: u32,
    path: &str,
    headers: &[(&str, &str)],
) -> (Action, ChainStream) {
    host.new_stream("GET", path, headers);
    host.set_property(&["source", "address"], b"10.0.0.1:40000")
        .unwrap();
    let mut stream = root.new_stream(host, id);
    let action = stream.on_request_headers(host, true);
    (action, stream)
}

fn status(host: &MockHost, action: Action) -> u16 {
    match (&host.local_reply, action) {
        (Some(r), _) => r.status,
        (None, Action::Continue) => 200,
        (None, Action::Pause) => 0,
    }
}

#[test]
fn errors_name_the_entry_and_the_filters_own_path() {
    // Each filter's own error, under chain[i].config.
    let bad_jwt = json!({"providers": {"idp": {"issuer": "i", "remote_jwks": {"cluster": "c", "uri": "ftp://x"}}}, "rules": []});
    let alone =
        jwt_auth::filter::JwtAuth::configure(&mut MockHost::new(), bad_jwt.to_string().as_bytes())
            .err()
            .unwrap();
    let e = error(&chain(&[("jwt-auth", bad_jwt)]));
    assert_eq!(e, alone.within("chain[0].config").to_string());
    assert_eq!(
        e,
        "chain[0].config.providers.idp.remote_jwks.uri: not an http(s) URI"
    );

    // A serde error deep in a later entry keeps its path, as written.
    let text = r#"{"chain": [
        {"filter": "scope-authz", "config": {"rules": [], "default": "deny"}},
        {"filter": "rate-limit", "config": {"rules": [{"name": "a", "key": {"source": "client_ip"},
            "limit": {"requests": 1, "per": "fortnight"}}]}}]}"#;
    let e = error(text);
    assert!(
        e.starts_with("chain[1].config.rules[0].limit.per: unknown variant `fortnight`"),
        "{e}"
    );

    let e = error(&chain(&[(
        "scope-authz",
        json!({"rules": [], "default": "deny", "extra": 1}),
    )]));
    assert!(
        e.starts_with("chain[0].config.extra: unknown field `extra`"),
        "{e}"
    );

    // The module's own fields.
    assert!(
        error(r#"{"chain": [{"filter": "jwt-authz"}]}"#)
            .starts_with("chain[0].filter: unknown variant `jwt-authz`, expected one of `jwt-auth`, `scope-authz`, `rate-limit`"),
    );
    assert!(
        error(r#"{"chain": [{"filter": "scope-authz", "conf": {}}]}"#)
            .starts_with("chain[0].conf: unknown field `conf`")
    );
    assert!(error(r#"{"chain": [], "x": 1}"#).starts_with("x: unknown field `x`"));
    assert_eq!(error(r#"{"chain": []}"#), "chain: lists no filter");
    assert!(error(r#"{}"#).contains("missing field `chain`"));
    assert_eq!(
        error(&chain(&[
            ("scope-authz", authz()),
            ("scope-authz", authz())
        ])),
        "chain[1].filter: scope-authz is already chain[0]; a filter appears once in the chain"
    );
    // No `config`: the filter's empty configuration, and its own complaint about it.
    let e = error(r#"{"chain": [{"filter": "jwt-auth"}]}"#);
    assert!(
        e.starts_with("chain[0].config: missing field `providers`"),
        "{e}"
    );
}

#[test]
fn the_stages_run_in_the_listed_order() {
    let key = EcKey::new();
    let mut host = MockHost::new();
    let mut root = configure(
        &mut host,
        &chain(&[
            ("jwt-auth", jwt(key.jwks())),
            ("scope-authz", authz()),
            ("rate-limit", limit(5)),
        ]),
    )
    .unwrap();
    assert_eq!(root.stages(), ["jwt_auth", "scope_authz", "rate_limit"]);
    let auth = key.bearer(json!({}));
    let (action, mut s) = request(
        &mut root,
        &mut host,
        1,
        "/tenants/a/orders",
        &[("authorization", &auth)],
    );
    assert_eq!(status(&host, action), 200, "{:?}", host.local_reply);
    // jwt-auth wrote the identity; scope-authz and rate-limit ran after it.
    let identity: Value =
        serde_json::from_slice(&host.property_value("shieldwall.identity").unwrap()).unwrap();
    assert_eq!(identity["client_id"], "reader");
    assert_eq!(host.metric("shieldwall.jwt_auth.allowed"), 1);
    assert_eq!(host.metric("shieldwall.rate_limit.rule.per-ip.admitted"), 1);
    s.on_response_headers(&mut host, true);
    assert_eq!(
        host.response_header("ratelimit-policy").as_deref(),
        Some("\"per-ip\";q=1;w=60")
    );

    // The same filters the other way round: scope-authz runs before any identity exists.
    let mut host = MockHost::new();
    let mut root = configure(
        &mut host,
        &chain(&[("scope-authz", authz()), ("jwt-auth", jwt(key.jwks()))]),
    )
    .unwrap();
    let (action, _) = request(
        &mut root,
        &mut host,
        1,
        "/tenants/a/orders",
        &[("authorization", &auth)],
    );
    assert_eq!(status(&host, action), 401);
    assert_eq!(
        host.metric("shieldwall.jwt_auth.allowed"),
        0,
        "jwt-auth never ran"
    );
}

#[test]
fn a_deny_stops_the_walk_and_only_stages_that_ran_see_the_response() {
    let key = EcKey::new();
    let mut host = MockHost::new();
    let mut root = configure(
        &mut host,
        &chain(&[
            ("jwt-auth", jwt(key.jwks())),
            ("scope-authz", authz()),
            ("rate-limit", limit(5)),
        ]),
    )
    .unwrap();
    let (action, mut s) = request(&mut root, &mut host, 1, "/tenants/a/orders", &[]);
    assert_eq!(action, Action::Pause);
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "missing_token");
    assert_eq!(host.metric("shieldwall.scope_authz.allowed"), 0);
    assert_eq!(host.metric("shieldwall.rate_limit.rule.per-ip.admitted"), 0);
    s.on_response_headers(&mut host, true);
    assert_eq!(
        host.response_header("ratelimit"),
        None,
        "rate-limit never saw the request"
    );
    // A later callback does not restart the walk.
    assert_eq!(s.on_wake(&mut host), Action::Pause);
    assert_eq!(host.metric("shieldwall.rate_limit.rule.per-ip.admitted"), 0);

    // A scope-authz deny: jwt-auth ran, rate-limit did not.
    let auth = key.bearer(json!({"tenant": "b"}));
    let (action, _) = request(
        &mut root,
        &mut host,
        2,
        "/tenants/a/orders",
        &[("authorization", &auth)],
    );
    assert_eq!(status(&host, action), 403);
    assert_eq!(host.metric("shieldwall.jwt_auth.allowed"), 1);
    assert_eq!(host.metric("shieldwall.rate_limit.rule.per-ip.admitted"), 0);

    // The last stage's deny gets its own response headers (Envoy encodes local replies too).
    let mut root = configure(
        &mut host,
        &chain(&[("jwt-auth", jwt(key.jwks())), ("rate-limit", limit(1))]),
    )
    .unwrap();
    let auth = key.bearer(json!({}));
    let (action, _) = request(&mut root, &mut host, 3, "/x", &[("authorization", &auth)]);
    assert_eq!(status(&host, action), 200);
    let (action, mut s) = request(&mut root, &mut host, 4, "/x", &[("authorization", &auth)]);
    assert_eq!(status(&host, action), 429);
    s.on_response_headers(&mut host, true);
    assert!(host.response_header("ratelimit").is_some());
}

fn jwks_reply(key: &EcKey) -> CalloutResponse {
    CalloutResponse {
        status: Some(200),
        headers: vec![(":status".into(), "200".into())],
        body: key.jwks().to_string().into_bytes(),
    }
}

#[test]
fn a_pause_for_keys_resumes_into_the_later_stages() {
    let key = EcKey::new();
    let mut host = MockHost::new();
    let mut root = configure(
        &mut host,
        &chain(&[
            ("jwt-auth", jwt_remote()),
            ("scope-authz", authz()),
            ("rate-limit", limit(5)),
        ]),
    )
    .unwrap();
    assert!(
        host.tick_period.is_some(),
        "jwt-auth's tick reaches the host"
    );
    let auth = key.bearer(json!({}));
    let (action, mut first) = request(
        &mut root,
        &mut host,
        7,
        "/tenants/a/orders",
        &[("authorization", &auth)],
    );
    assert_eq!(action, Action::Pause, "no keys yet");
    assert!(host.local_reply.is_none());
    assert_eq!(host.metric("shieldwall.rate_limit.rule.per-ip.admitted"), 0);
    assert_eq!(host.callouts.len(), 1);
    let token = host.callouts[0].token;

    // A second request waits for the same fetch.
    let (action, mut second) = request(
        &mut root,
        &mut host,
        8,
        "/tenants/a/orders",
        &[("authorization", &auth)],
    );
    assert_eq!(action, Action::Pause);
    assert_eq!(host.callouts.len(), 1, "single flight");

    // The reply goes to jwt-auth in the first stream; the walk goes on through the later stages.
    host.new_stream("GET", "/tenants/a/orders", &[("authorization", &auth)]);
    host.set_property(&["source", "address"], b"10.0.0.1:40000")
        .unwrap();
    assert_eq!(
        first.on_http_call_response(&mut host, token, jwks_reply(&key)),
        Action::Continue
    );
    assert!(host.local_reply.is_none(), "{:?}", host.local_reply);
    assert_eq!(host.metric("shieldwall.scope_authz.allowed"), 1);
    assert_eq!(host.metric("shieldwall.rate_limit.rule.per-ip.admitted"), 1);
    // The reply is delivered once: a repeat is not routed again.
    assert_eq!(
        first.on_http_call_response(&mut host, token, jwks_reply(&key)),
        Action::Continue
    );
    assert_eq!(host.metric("shieldwall.jwt_auth.jwks.fetch.ok"), 1);

    // jwt-auth woke the second stream; its walk resumes at jwt-auth and runs the rest.
    assert!(host.woken.contains(&8));
    host.new_stream("GET", "/tenants/a/orders", &[("authorization", &auth)]);
    host.set_property(&["source", "address"], b"10.0.0.1:40000")
        .unwrap();
    assert_eq!(
        second.on_wake(&mut host),
        Action::Continue,
        "{:?}",
        host.local_reply
    );
    assert_eq!(host.metric("shieldwall.rate_limit.rule.per-ip.admitted"), 2);
    // A second wake without a new request from jwt-auth's root is not delivered.
    assert_eq!(second.on_wake(&mut host), Action::Continue);
    assert_eq!(host.metric("shieldwall.rate_limit.rule.per-ip.admitted"), 2);
    first.on_done(&mut host);
    second.on_done(&mut host);
}

#[test]
fn root_callouts_go_to_the_stage_that_started_them() {
    let key = EcKey::new();
    let mut host = MockHost::new();
    let mut root = configure(
        &mut host,
        &chain(&[
            ("scope-authz", json!({"rules": [], "default": "allow"})),
            ("jwt-auth", jwt_remote()),
        ]),
    )
    .unwrap();
    // jwt-auth (the second stage) fetches on the first tick.
    root.on_tick(&mut host);
    assert_eq!(host.callouts.len(), 1);
    let token = host.callouts[0].token;
    root.on_http_call_response(&mut host, token, jwks_reply(&key));
    assert_eq!(host.metric("shieldwall.jwt_auth.jwks.fetch.ok"), 1);
    // With the keys in place a request passes without waiting.
    let auth = key.bearer(json!({}));
    let (action, _) = request(&mut root, &mut host, 1, "/x", &[("authorization", &auth)]);
    assert_eq!(status(&host, action), 200, "{:?}", host.local_reply);
    // An unknown token reaches no stage.
    root.on_http_call_response(&mut host, 999, jwks_reply(&key));
    assert_eq!(host.metric("shieldwall.jwt_auth.jwks.fetch.ok"), 1);
}

#[test]
fn validate_agrees_with_configure() {
    let key = EcKey::new();
    let good = chain(&[("jwt-auth", jwt(key.jwks())), ("rate-limit", limit(1))]);
    assert_eq!(
        crate::config::validate(good.as_bytes()).unwrap(),
        [crate::FilterKind::JwtAuth, crate::FilterKind::RateLimit]
    );
    for bad in [
        chain(&[(
            "rate-limit",
            json!({"rules": [{"name": "a", "key": {"source": "client_ip"}, "limit": {"requests": 0, "per": "second"}}]}),
        )]),
        chain(&[("scope-authz", authz()), ("scope-authz", authz())]),
        r#"{"chain": []}"#.to_string(),
    ] {
        let e = crate::config::validate(bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert_eq!(e, error(&bad));
    }
}

#[test]
fn each_stage_records_its_own_decision() {
    use shieldwall_core::decision::{read, Decision};
    let key = EcKey::new();
    let mut host = MockHost::new();
    let mut root = configure(
        &mut host,
        &chain(&[
            ("jwt-auth", jwt(key.jwks())),
            ("scope-authz", authz()),
            ("rate-limit", limit(5)),
        ]),
    )
    .unwrap();

    // A scope-authz deny: jwt-auth allowed, scope-authz refused, rate-limit never decided.
    let auth = key.bearer(json!({"tenant": "b"}));
    let (action, _) = request(
        &mut root,
        &mut host,
        1,
        "/tenants/a/orders",
        &[("authorization", &auth)],
    );
    assert_eq!(status(&host, action), 403);
    assert_eq!(read(&host, "jwt_auth"), Some(Decision::allow("")));
    let denied = read(&host, "scope_authz").unwrap();
    assert_eq!(denied.outcome, shieldwall_core::decision::Outcome::Deny);
    assert_eq!(denied.status, 403);
    // The precise reason, behind the client-facing `access_denied`.
    assert_eq!(denied.reason, "tenant_mismatch");
    assert_eq!(
        host.local_reply.as_ref().unwrap().json()["error"],
        "access_denied"
    );
    assert_eq!(read(&host, "rate_limit"), None);
    // The chain itself records nothing under its own name.
    assert_eq!(read(&host, "chain"), None);

    // Allowed through every stage: three allows.
    let auth = key.bearer(json!({}));
    let (action, _) = request(
        &mut root,
        &mut host,
        2,
        "/tenants/a/orders",
        &[("authorization", &auth)],
    );
    assert_eq!(status(&host, action), 200);
    for stage in ["jwt_auth", "scope_authz", "rate_limit"] {
        assert_eq!(read(&host, stage), Some(Decision::allow("")), "{stage}");
    }
}

#[test]
fn each_request_header_is_read_from_the_proxy_once_per_request() {
    let key = EcKey::new();
    let mut host = MockHost::new();
    let mut root = configure(
        &mut host,
        &chain(&[
            ("jwt-auth", jwt(key.jwks())),
            ("scope-authz", authz()),
            ("rate-limit", limit(5)),
        ]),
    )
    .unwrap();
    let auth = key.bearer(json!({}));
    host.header_reads.borrow_mut().clear();
    let (action, _) = request(
        &mut root,
        &mut host,
        1,
        "/tenants/a/orders",
        &[("authorization", &auth)],
    );
    assert_eq!(status(&host, action), 200, "{:?}", host.local_reply);
    let reads = host.header_reads.borrow().clone();
    let mut names = reads.clone();
    names.sort();
    names.dedup();
    assert_eq!(reads.len(), names.len(), "read more than once: {reads:?}");
    assert!(reads.iter().any(|n| n == ":path"), "{reads:?}");
    // jwt-auth removed the token; a later read sees that, not the proxy's first answer.
    assert_eq!(host.request_header("authorization"), None);
}

#[test]
fn a_later_stage_reads_the_decisions_of_earlier_ones_from_memory() {
    let key = EcKey::new();
    let mut host = MockHost::new();
    let audit = json!({"sinks": {"access_log": true}, "decisions": ["jwt_auth", "scope_authz", "rate_limit"]});
    let mut root = configure(
        &mut host,
        &chain(&[
            ("audit-log", audit),
            ("jwt-auth", jwt(key.jwks())),
            ("scope-authz", authz()),
            ("rate-limit", limit(5)),
        ]),
    )
    .unwrap();
    // Refused by scope-authz: rate-limit never ran and recorded nothing.
    let auth = key.bearer(json!({"tenant": "b"}));
    let mut s = root.new_stream(&mut host, 7);
    host.new_stream("GET", "/tenants/a/orders", &[("authorization", &auth)]);
    let action = s.on_request_headers(&mut host, true);
    assert_eq!(status(&host, action), 403);
    host.property_reads.borrow_mut().clear();
    s.on_log(&mut host);
    let reads = host.property_reads.borrow().clone();
    // The two recorded in this request come from memory; the one never recorded is asked of
    // the proxy (a module before the chain may have written it).
    assert!(
        !reads.iter().any(|r| r == "shieldwall.decision.jwt_auth"),
        "{reads:?}"
    );
    assert!(
        !reads.iter().any(|r| r == "shieldwall.decision.scope_authz"),
        "{reads:?}"
    );
    assert!(
        reads.iter().any(|r| r == "shieldwall.decision.rate_limit"),
        "{reads:?}"
    );
    // And the record still says what each decided.
    let record: Value =
        serde_json::from_slice(&host.property_value("shieldwall.audit").unwrap()).unwrap();
    let text = record.to_string();
    assert!(text.contains("tenant_mismatch"), "{text}");
    assert!(text.contains("jwt_auth"), "{text}");
}

/// A host that counts the calls out of the VM, at Envoy's default log level (a stage's debug
/// message makes no call).
fn counting_host() -> shieldwall_core::testing::CountingHost {
    let mut inner = MockHost::new();
    inner.set_now_secs(NOW);
    inner.log_level = Some(shieldwall_core::LogLevel::Info);
    shieldwall_core::testing::CountingHost::new(inner)
}

/// The benchmark's chain row: jwt-auth (keys inline), scope-authz and rate-limit, every path.
fn bench_stages(key: &EcKey) -> [(&'static str, Value); 3] {
    let jwt = json!({"providers": {"idp": {"issuer": "https://idp.example.com",
        "audiences": ["orders-api"], "local_jwks": key.jwks()}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]});
    let scope =
        json!({"rules": [{"match": {"prefix": "/"}, "require": {"scopes": ["orders:read"]}}]});
    let limit = json!({"rules": [{"name": "per-ip", "match": {"prefix": "/"}, "key": {"source": "client_ip"},
        "limit": {"requests": 1_000_000_000u64, "per": "second"}}], "headers": "none"});
    [
        ("jwt-auth", jwt),
        ("scope-authz", scope),
        ("rate-limit", limit),
    ]
}

/// The benchmark's chain row in one module (jwt-auth with a cached token, scope-authz,
/// rate-limit under its limit), call by call: what a request costs in calls out of the VM once
/// the worker is warm. bench/run.py prices the row's floor from this list.
#[test]
fn the_chain_makes_only_the_calls_it_needs() {
    let key = EcKey::new();
    let mut host = counting_host();
    let config = chain(&bench_stages(&key));
    let mut root = Shieldwall::configure(&mut host, config.as_bytes()).unwrap();
    let auth = key.bearer(json!({}));
    let calls =
        host.header_calls_when_warm(&mut root, "/orders", &[("authorization", &auth)], |mock| {
            mock.set_property(&["source", "address"], b"10.0.0.1:40000")
                .unwrap();
        });
    assert_eq!(calls, calls_chain());
}

/// jwt-auth's stage with a cached token, once the request line and the credential are read.
const JWT_CACHED_STAGE: [&str; 4] = [
    "property",      // an identity context from before the chain (none), to merge with
    "set_property",  // the identity context
    "remove_header", // the credential does not travel upstream
    "set_property",  // jwt-auth's decision record
                     // scope-authz: the identity context from memory
];

/// scope-authz's stage after its metric, then rate-limit's (the request line from memory).
const SCOPE_AND_RATE_LIMIT_STAGES: [&str; 8] = [
    "remove_header", // x-http-method-override (absent: no call in a proxy)
    "remove_header", // x-http-method (absent: no call in a proxy)
    "remove_header", // x-method-override (absent: no call in a proxy)
    "set_property",  // scope-authz's decision record
    // rate-limit
    "property",     // source.address, the client
    "shared_get",   // the bucket
    "shared_set",   // the bucket, compare-and-swap
    "set_property", // rate-limit's decision record
];

/// The request headers each stage reads come from one read of the header map in a proxy (the
/// adapter's), and a header removed that the map does not have makes no call there: as Envoy
/// runs it, the chain makes one header-map read, one clock read, four metric increments, two
/// property reads, four property writes (the identity and three decision records), one header
/// removal and two shared-data calls.
fn calls_chain() -> Vec<&'static str> {
    let line = [
        "request_header", // :path
        "request_header", // :method
        "request_header", // authorization
        "now",            // expiry; the later stages use the same reading
    ];
    [&line[..], &JWT_CACHED_STAGE, &SCOPE_AND_RATE_LIMIT_STAGES].concat()
}

/// The benchmark's full chain in one module (audit-log, mtls-identity with the certificate
/// optional on a plaintext connection, jwt-auth with a cached token, scope-authz, rate-limit,
/// payload-guard on a GET its OpenAPI document lists, identity-exchange with its token cached),
/// call by call over the request headers and the end of the stream once the worker is warm.
/// bench/run.py prices the full-chain row's floor from this list.
#[cfg(all(
    feature = "audit-log",
    feature = "mtls-identity",
    feature = "payload-guard",
    feature = "identity-exchange"
))]
#[test]
fn the_full_chain_makes_only_the_calls_it_needs() {
    use base64::engine::general_purpose::STANDARD;
    let key = EcKey::new();
    let rng = SystemRandom::new();
    let signing = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(signing.as_ref())
    );
    let mut host = counting_host();
    let audit =
        json!({"sinks": {"access_log": true}, "include": {"request_headers": ["user-agent"]}});
    let mtls = json!({"rules": [{"match": {"prefix": "/"}, "requires": "optional"}]});
    let openapi = json!({"openapi": "3.1.0", "info": {"title": "bench", "version": "1"},
        "paths": {"/orders": {"get": {"responses": {"200": {"description": "ok"}}}}}});
    let guard = json!({ "openapi": openapi });
    let exchange = json!({"spiffe_id": "spiffe://bench.example/user/{sub}",
        "token": {"issuer": "https://gateway.bench.example", "audience": "mesh", "ttl_s": 300,
                  "alg": "ES256", "keys": [{"kid": "bench", "private_key": pem}]},
        "rules": [{"match": {"prefix": "/"}}]});
    let mut stages = vec![("audit-log", audit), ("mtls-identity", mtls)];
    stages.extend(bench_stages(&key));
    stages.extend([("payload-guard", guard), ("identity-exchange", exchange)]);
    let config = chain(&stages);
    let mut root = Shieldwall::configure(&mut host, config.as_bytes()).unwrap();
    let auth = key.bearer(json!({}));
    let calls = host.calls_when_warm(
        |mock| {
            mock.new_stream(
                "GET",
                "/orders",
                &[("authorization", &auth), ("user-agent", "wrk")],
            );
            mock.set_property(&["source", "address"], b"10.0.0.1:40000")
                .unwrap();
        },
        |host| {
            let mut s = root.new_stream(host, 7);
            let action = s.on_request_headers(host, true);
            assert_eq!(action, Action::Continue, "{:?}", host.inner.local_reply);
            host.note("-- response headers");
            let _ = s.on_response_headers(host, true);
            host.note("-- log");
            s.on_log(host);
        },
    );
    let expected = [
        &CALLS_FULL_CHAIN_START[..],
        &JWT_CACHED_STAGE,
        &SCOPE_AND_RATE_LIMIT_STAGES,
        &CALLS_FULL_CHAIN_END,
    ]
    .concat();
    assert_eq!(calls, expected);
}

/// As Envoy runs it: the request headers come from one read of the header map (the adapter's), a
/// removed header the map does not have makes no call, and the end of the stream reads Envoy's
/// own `request.duration` instead of the clock.
const CALLS_FULL_CHAIN_START: [&str; 10] = [
    // audit-log
    "now",             // the start of the request (read once for every stage of this callback)
    "request_headers", // what the client sent, once
    "property",        // source.address
    "set_property",    // audit-log's decision record
    // mtls-identity
    "property",       // connection.mtls (plaintext: false, nothing more to read)
    "remove_header",  // x-forwarded-client-cert (absent: no call in a proxy)
    "request_header", // :path
    "request_header", // :method
    "set_property",   // mtls-identity's decision record
    // jwt-auth: the request line from memory
    "request_header", // authorization
];

/// After scope-authz and rate-limit: payload-guard, identity-exchange and the end of the stream.
const CALLS_FULL_CHAIN_END: [&str; 20] = [
    // payload-guard: the operation of a GET, no body
    "request_header", // content-length (from the map)
    "set_property",   // payload-guard's decision record
    // identity-exchange: the identity from memory, the token from its cache
    "replace_header", // authorization: the internal token
    "replace_header", // the SPIFFE ID header
    "set_property",   // identity-exchange's decision record, with that reason
    "-- response headers",
    "-- log",
    // audit-log's record: the identity and six decisions from memory
    "property",     // response.code
    "property",     // response.code_details
    "property",     // request.duration (the mock host has none: the clock instead)
    "now",          // (not in a proxy: Envoy knows the duration)
    "property",     // request.total_size
    "property",     // response.total_size
    "property",     // connection.tls_version (plaintext: none)
    "property",     // xds.route_name
    "property",     // xds.cluster_name
    "property",     // request.id (no x-request-id header)
    "property",     // the decision of token-introspection (not in the chain: none)
    "property",     // the decision of policy-authz (not in the chain: none)
    "set_property", // the record
];
