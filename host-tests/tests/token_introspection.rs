//! token-introspection over the real release module: one introspection per token across workers
//! and within a burst, the bounded caches under random tokens, an IdP that is down or answers
//! badly, certificate-bound tokens.

// Test code: a failed expectation is meant to panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use host_tests::{
    wasm_path, CalloutRequest, Cluster, Envoy, Outcome, Plugin, Reply, Request, Tls, Worker,
};
use serde_json::{json, Value};

const VM_ID: &str = "introspection";
const PLUGIN: &str = "introspection";
const PREFIX: &str = "shieldwall/token_introspection/introspection/idp";

fn config(cache: Value) -> Value {
    json!({
        "realm": "orders",
        "providers": {"idp": {
            "introspection": {"cluster": "idp", "uri": "https://idp.example.com/token/introspection",
                              "timeout_ms": 500, "client_id": "gateway", "client_secret": "gateway-secret"},
            "issuer": "https://idp.example.com",
            "audiences": ["orders-api"],
            "cache": cache,
            "claim_to_headers": [{"claim": "sub", "header": "x-token-sub"}]
        }},
        "rules": [
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/"}, "requires": {"provider": "idp"}}
        ]
    })
}

fn plugin(cfg: &Value) -> Plugin {
    Plugin::new(wasm_path("token-introspection"))
        .name(PLUGIN)
        .vm_id(VM_ID)
        .json(cfg)
}

/// The token in an introspection request's form body.
fn token_of(req: &CalloutRequest) -> String {
    let body = req.body_str();
    body.split('&')
        .find_map(|p| p.strip_prefix("token="))
        .unwrap_or_default()
        .to_string()
}

/// An IdP: tokens starting with `good` are active (`sub` = the token), others inactive. Counts
/// its calls per token; `mode` switches it to errors.
#[derive(Clone)]
struct Idp {
    calls: Rc<RefCell<Vec<String>>>,
    mode: Rc<Cell<&'static str>>,
}

impl Idp {
    fn install(envoy: &Envoy, delay: Duration) -> Idp {
        let idp = Idp {
            calls: Rc::new(RefCell::new(Vec::new())),
            mode: Rc::new(Cell::new("ok")),
        };
        let (calls, mode) = (idp.calls.clone(), idp.mode.clone());
        let now = {
            let e = envoy.clone();
            move || e.now_unix_secs()
        };
        envoy.cluster(
            "idp",
            Cluster::delayed(delay, move |req: &CalloutRequest| {
                assert_eq!(req.method(), "POST");
                assert_eq!(req.path(), "/token/introspection");
                assert_eq!(
                    req.header("authorization"),
                    Some("Basic Z2F0ZXdheTpnYXRld2F5LXNlY3JldA==")
                );
                let token = token_of(req);
                calls.borrow_mut().push(token.clone());
                match mode.get() {
                    "malformed" => Reply::json(200, &json!({"active": "true"})),
                    "status" => Reply::json(500, &json!({"error": "server_error"})),
                    "never" => Reply::never(),
                    _ if token.starts_with("good") => Reply::json(
                        200,
                        &json!({"active": true, "sub": token, "client_id": "orders-reader",
                                "aud": "orders-api", "iss": "https://idp.example.com",
                                "scope": "orders:read", "exp": now() + 86_400}),
                    ),
                    _ if token.starts_with("bound") => Reply::json(
                        200,
                        &json!({"active": true, "sub": "bound", "exp": now() + 3600,
                                "aud": "orders-api", "iss": "https://idp.example.com",
                                "cnf": {"x5t#S256": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg"}}),
                    ),
                    _ => Reply::json(200, &json!({"active": false})),
                }
            }),
        );
        idp
    }
    fn calls(&self) -> usize {
        self.calls.borrow().len()
    }
    fn calls_for(&self, token: &str) -> usize {
        self.calls.borrow().iter().filter(|t| *t == token).count()
    }
}

fn request(token: &str) -> Request {
    Request::get("/orders").header("authorization", &format!("Bearer {token}"))
}

/// Sends a request and runs the harness until it is decided.
fn decide(envoy: &Envoy, worker: &Worker, req: Request) -> Outcome {
    let mut s = worker.stream(req);
    let mut out = s.send_request();
    for _ in 0..40 {
        if !out.is_paused() {
            break;
        }
        envoy.advance(Duration::from_millis(50));
        out = s.outcome();
    }
    s.finish();
    out
}

fn status(out: &Outcome) -> (u16, String) {
    match out {
        Outcome::Upstream(_) => (200, String::new()),
        Outcome::LocalReply(r) => (
            r.status(),
            r.body_json()["error"].as_str().unwrap_or("").to_string(),
        ),
        other => panic!("undecided: {other:?}"),
    }
}

#[test]
fn an_active_token_passes_and_is_served_from_the_cache_after() {
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, Duration::from_millis(20));
    let worker = envoy
        .worker(&[plugin(&config(json!({"max_ttl_s": 30})))])
        .unwrap();
    let out = decide(&envoy, &worker, request("good-1"));
    let Outcome::Upstream(up) = &out else {
        panic!("{out:?}\n{}", worker.log_text())
    };
    assert_eq!(up.header("x-token-sub"), Some("good-1"));
    assert_eq!(up.header("authorization"), None);
    let call = &envoy.callouts()[0];
    assert_eq!(call.header(":authority"), Some("idp.example.com"));
    assert_eq!(call.body_str(), "token=good-1&token_type_hint=access_token");
    assert_eq!(call.timeout, Some(Duration::from_millis(500)));
    // Another worker is served from the shared cache.
    let other = envoy
        .worker(&[plugin(&config(json!({"max_ttl_s": 30})))])
        .unwrap();
    assert_eq!(status(&decide(&envoy, &other, request("good-1"))).0, 200);
    assert_eq!(idp.calls(), 1);
    assert_eq!(
        envoy.metric("shieldwall.token_introspection.cache.hit"),
        Some(1)
    );
    // After max_ttl_s the IdP is asked again.
    envoy.advance(Duration::from_secs(31));
    assert_eq!(status(&decide(&envoy, &other, request("good-1"))).0, 200);
    assert_eq!(idp.calls(), 2);
    // Inactive: 401, then from the negative cache.
    assert_eq!(
        status(&decide(&envoy, &worker, request("revoked"))),
        (401, "invalid_token".into())
    );
    assert_eq!(
        status(&decide(&envoy, &other, request("revoked"))),
        (401, "invalid_token".into())
    );
    assert_eq!(idp.calls_for("revoked"), 1);
    assert!(!worker.log_text().contains("good-1"));
}

#[test]
fn several_workers_share_one_introspection_per_token() {
    let envoy = Envoy::new();
    // The IdP answers after 150 ms: every worker sees the introspection in flight.
    let idp = Idp::install(&envoy, Duration::from_millis(150));
    let cfg = config(json!({"max_ttl_s": 0, "negative_ttl_s": 0}));
    let workers: Vec<Worker> = (0..4)
        .map(|_| envoy.worker(&[plugin(&cfg)]).unwrap())
        .collect();
    let mut streams = Vec::new();
    for w in &workers {
        for token in ["good-a", "good-b"] {
            let mut s = w.stream(request(token));
            assert!(s.send_request().is_paused());
            streams.push(s);
        }
    }
    envoy.advance(Duration::from_millis(400));
    for s in &streams {
        assert_eq!(status(&s.outcome()).0, 200, "{:?}", s.outcome());
    }
    assert_eq!(idp.calls_for("good-a"), 1, "{:?}", idp.calls.borrow());
    assert_eq!(idp.calls_for("good-b"), 1);
    assert_eq!(
        envoy.metric("shieldwall.token_introspection.waiting"),
        Some(6)
    );
    for s in streams {
        s.finish();
    }
    // max_ttl_s 0: nothing cached, the next request introspects again.
    assert_eq!(
        status(&decide(&envoy, &workers[0], request("good-a"))).0,
        200
    );
    assert_eq!(idp.calls_for("good-a"), 2);
}

#[test]
fn a_burst_of_one_token_makes_one_callout() {
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, Duration::from_millis(80));
    let worker = envoy.worker(&[plugin(&config(json!({})))]).unwrap();
    let mut streams: Vec<_> = (0..50)
        .map(|_| {
            let mut s = worker.stream(request("good-burst"));
            assert!(s.send_request().is_paused());
            s
        })
        .collect();
    envoy.advance(Duration::from_millis(100));
    for s in &streams {
        assert_eq!(status(&s.outcome()).0, 200);
    }
    assert_eq!(idp.calls(), 1);
    assert_eq!(
        envoy.metric("shieldwall.token_introspection.allowed"),
        Some(50)
    );
    for s in streams.drain(..) {
        s.finish();
    }
}

/// Live entries in a table's buckets, and the highest bucket index present.
fn table_usage(envoy: &Envoy, kind: &str, probe: u64) -> (usize, Option<u64>) {
    let mut entries = 0;
    let mut highest = None;
    for i in 0..probe {
        if let Some(v) = envoy.shared_data(VM_ID, &format!("{PREFIX}/{kind}/{i}")) {
            entries += String::from_utf8_lossy(&v).lines().count();
            highest = Some(i);
        }
    }
    (entries, highest)
}

/// Random tokens in the flood (each one introspected, refused and cached as inactive).
const RANDOM_TOKENS: usize = 100_000;

#[test]
fn many_random_tokens_keep_the_caches_at_their_bounds() {
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, Duration::from_millis(1));
    let cfg = config(json!({"max_entries": 256, "negative_max_entries": 16,
                            "max_ttl_s": 86400, "negative_ttl_s": 3600}));
    let worker = envoy.worker(&[plugin(&cfg)]).unwrap();
    for i in 0..32 {
        assert_eq!(
            status(&decide(&envoy, &worker, request(&format!("good-{i}")))).0,
            200
        );
    }
    let (good_before, _) = table_usage(&envoy, "active", 1000);
    assert_eq!(good_before, 32, "room for every good answer");
    for i in 0..RANDOM_TOKENS {
        let out = decide(&envoy, &worker, request(&format!("random-{i}")));
        assert_eq!(status(&out).0, 401);
    }
    assert_eq!(idp.calls(), 32 + RANDOM_TOKENS);
    let (inactive, highest) = table_usage(&envoy, "inactive", 1000);
    assert!(inactive <= 16, "{inactive}");
    assert_eq!(highest, Some(3), "16 entries: 4 buckets of 4");
    let (active, highest) = table_usage(&envoy, "active", 1000);
    assert_eq!(active, good_before, "random tokens evicted no good answer");
    assert!(highest.is_some_and(|h| h < 64), "256 entries: 64 buckets");
    // The flight slots are bounded too (64 for 256 entries).
    assert!(envoy
        .shared_data(VM_ID, &format!("{PREFIX}/flight/64"))
        .is_none());
    // The good answers left in the table are still served from it, without the IdP.
    let mut hits = 0;
    for i in 0..32 {
        let before = idp.calls();
        assert_eq!(
            status(&decide(&envoy, &worker, request(&format!("good-{i}")))).0,
            200
        );
        if idp.calls() == before {
            hits += 1;
        }
    }
    assert_eq!(
        hits, good_before,
        "every good answer in the table was a hit"
    );
    assert!(worker.traps().is_empty());
}

#[test]
fn idp_down_or_misbehaving_is_503_and_cached_tokens_keep_serving() {
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, Duration::from_millis(5));
    let worker = envoy
        .worker(&[plugin(&config(json!({"max_ttl_s": 60})))])
        .unwrap();
    assert_eq!(
        status(&decide(&envoy, &worker, request("good-cached"))).0,
        200
    );
    for mode in ["never", "malformed", "status"] {
        idp.mode.set(mode);
        let out = decide(&envoy, &worker, request(&format!("good-new-{mode}")));
        assert_eq!(
            status(&out),
            (503, "temporarily_unavailable".into()),
            "{mode}"
        );
        let Outcome::LocalReply(r) = &out else {
            unreachable!()
        };
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(
            status(&decide(&envoy, &worker, request("good-cached"))).0,
            200,
            "{mode}: the cached token is still served"
        );
    }
    assert_eq!(
        envoy.metric("shieldwall.token_introspection.callout_errors.timeout"),
        Some(1)
    );
    assert_eq!(
        envoy.metric("shieldwall.token_introspection.callout_errors.malformed_answer"),
        Some(1)
    );
    assert_eq!(
        envoy.metric("shieldwall.token_introspection.callout_errors.http_status"),
        Some(1)
    );
    // The IdP is back: the errors were not cached.
    idp.mode.set("ok");
    assert_eq!(
        status(&decide(&envoy, &worker, request("good-new-malformed"))).0,
        200
    );
}

#[test]
fn a_certificate_bound_token_needs_its_certificate() {
    let envoy = Envoy::new();
    Idp::install(&envoy, Duration::from_millis(5));
    let worker = envoy.worker(&[plugin(&config(json!({})))]).unwrap();
    let right = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let out = decide(
        &envoy,
        &worker,
        request("bound-1").tls(Tls::mtls("CN=client").sha256(right)),
    );
    assert_eq!(status(&out), (200, String::new()), "{}", worker.log_text());
    let out = decide(
        &envoy,
        &worker,
        request("bound-1").tls(Tls::mtls("CN=other").sha256(&"ab".repeat(32))),
    );
    assert_eq!(status(&out), (401, "cnf_mismatch".into()));
    let out = decide(&envoy, &worker, request("bound-1"));
    assert_eq!(status(&out), (401, "cnf_no_certificate".into()));
}

#[test]
fn a_client_with_random_tokens_spends_its_budget_and_then_costs_the_idp_nothing() {
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, Duration::from_millis(1));
    let mut cfg = config(json!({"negative_ttl_s": 0}));
    cfg["failed_verification_budget"] = json!({"failures": 5, "per": "hour"});
    let worker = envoy.worker(&[plugin(&cfg)]).unwrap();
    let other = envoy.worker(&[plugin(&cfg)]).unwrap();
    let mut refused = 0;
    for i in 0..200 {
        // The client's requests land on both workers: they charge one budget.
        let w = if i % 2 == 0 { &worker } else { &other };
        let out = decide(
            &envoy,
            w,
            request(&format!("random-{i}")).source("192.0.2.7:40000"),
        );
        match status(&out) {
            (401, _) => {}
            (429, code) => {
                assert_eq!(code, "too_many_failed_verifications");
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(idp.calls(), 5, "five inactive tokens, then no more calls");
    assert_eq!(refused, 195);
    // Another client still gets its tokens introspected.
    let out = decide(
        &envoy,
        &worker,
        request("good-x").source("198.51.100.1:1234"),
    );
    assert_eq!(status(&out).0, 200);
}

#[test]
fn no_answer_of_the_idp_makes_the_module_trap_or_admit() {
    let envoy = Envoy::new();
    let answers: Vec<Reply> = vec![
        Reply::ok(200, vec![b'x'; 2 << 20]),
        Reply::ok(
            200,
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        ),
        Reply::ok(
            200,
            format!(
                r#"{{"active":true,"x":{}1{}}}"#,
                "[".repeat(5_000),
                "]".repeat(5_000)
            ),
        ),
        Reply::ok(200, vec![0xff, 0xfe, b'{', 0x00]),
        Reply::ok(200, r#"{"active":false,"active":true}"#),
        Reply::ok(200, r#"{"active":"true","exp":1e400}"#),
        Reply::json(200, &json!({"active": 1})),
        Reply::json(302, &json!({"active": true})).header("location", "/elsewhere"),
        Reply::reset(),
    ];
    let n = answers.len();
    let answers = Rc::new(answers);
    let next = Rc::new(Cell::new(0usize));
    let (a, i) = (answers.clone(), next.clone());
    envoy.cluster(
        "idp",
        Cluster::scripted(move |_| {
            let reply = a[i.get() % a.len()].clone();
            i.set(i.get() + 1);
            reply
        }),
    );
    let worker = envoy
        .worker(&[plugin(&config(json!({"max_ttl_s": 30})))])
        .unwrap();
    for k in 0..n {
        let out = decide(&envoy, &worker, request(&format!("good-{k}")));
        let (code, error) = status(&out);
        assert_eq!(
            (code, error.as_str()),
            (503, "temporarily_unavailable"),
            "answer {k}"
        );
    }
    assert_eq!(next.get(), n);
    assert!(worker.traps().is_empty() && !worker.is_dead(PLUGIN));
    assert_eq!(
        envoy.metric("shieldwall.token_introspection.allowed"),
        None,
        "nothing was admitted"
    );
}

#[test]
fn the_client_secret_comes_from_the_vm_environment() {
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, Duration::from_millis(1));
    let mut cfg = config(json!({}));
    let intro = cfg["providers"]["idp"]["introspection"]
        .as_object_mut()
        .unwrap();
    intro.remove("client_secret");
    intro.insert(
        "client_secret_env".into(),
        json!("IDP_INTROSPECTION_SECRET"),
    );
    // The Idp cluster checks the Basic credentials of gateway:gateway-secret.
    let worker = envoy
        .worker(&[plugin(&cfg).env("IDP_INTROSPECTION_SECRET", "gateway-secret")])
        .unwrap();
    assert_eq!(status(&decide(&envoy, &worker, request("good-env"))).0, 200);
    assert_eq!(idp.calls(), 1);
    // Without the variable the configuration is refused: the filter never runs secretless.
    let refused = envoy.worker(&[plugin(&cfg)]).err().expect("refused");
    assert!(
        format!("{refused:#}").contains(
            "client_secret_env: the VM has no environment variable `IDP_INTROSPECTION_SECRET`"
        ),
        "{refused:#}"
    );
}

/// In the one-module chain (token-introspection, then scope-authz), requests get what the two
/// separate modules give them: the same replies, upstream requests and identity, the callout to
/// the IdP routed to the stage that made it.
#[test]
fn in_the_one_module_chain_it_answers_as_its_own_module() {
    let cfg = config(json!({"max_ttl_s": 30}));
    let authz = json!({"rules": [
        {"match": {"prefix": "/healthz"}, "public": true},
        {"match": {"prefix": "/orders"}, "require": {"scopes": ["orders:read"]}}]});
    let separate = [
        plugin(&cfg),
        Plugin::new(wasm_path("scope-authz"))
            .name("authz")
            .vm_id("authz")
            .json(&authz),
    ];
    let one = [Plugin::new(wasm_path("shieldwall"))
        .name("shieldwall")
        .vm_id("shieldwall")
        .json(&json!({"chain": [
            {"filter": "token-introspection", "config": cfg},
            {"filter": "scope-authz", "config": authz}]}))];
    let run = |plugins: &[Plugin]| {
        let envoy = Envoy::new();
        let idp = Idp::install(&envoy, Duration::from_millis(20));
        let worker = envoy.worker(plugins).unwrap();
        let seen: Vec<(Outcome, Option<Vec<u8>>)> = ["good-1", "good-1", "revoked", "nope"]
            .iter()
            .map(|t| {
                let mut s = worker.stream(request(t));
                let mut out = s.send_request();
                for _ in 0..40 {
                    if !out.is_paused() {
                        break;
                    }
                    envoy.advance(Duration::from_millis(50));
                    out = s.outcome();
                }
                let identity = s.filter_state("shieldwall.identity");
                s.finish();
                (out, identity)
            })
            .collect();
        (seen, idp.calls())
    };
    let (a, calls_a) = run(&separate);
    let (b, calls_b) = run(&one);
    assert!(matches!(a[0].0, Outcome::Upstream(_)), "{:?}", a[0].0);
    assert_eq!(status(&a[2].0), (401, "invalid_token".into()));
    assert_eq!(a, b);
    assert_eq!((calls_a, calls_b), (3, 3));
}
