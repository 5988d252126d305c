//! Filter-level tests over MockHost: the callout, the answers, the caches, single flight,
//! timeouts, certificate binding, configuration.

use serde_json::{json, Value};
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Action, CalloutResponse, Host, Identity, RootFilter, StreamFilter};

use crate::config::Config;
use crate::filter::{IntrospectionStream, TokenIntrospection};

const NOW: u64 = 1_700_000_000;
const TOKEN: &str = "opaque-Tok3n.value";

fn config_with(cache: Value, extra: Value) -> Value {
    let mut provider = json!({
        "introspection": {
            "cluster": "idp", "uri": "https://idp.example.com/token/introspection",
            "timeout_ms": 1000, "client_id": "gateway", "client_secret": "s3cr&t"
        },
        "issuer": "https://idp.example.com",
        "audiences": ["orders-api"],
        "cache": cache,
        "claim_to_headers": [{"claim": "sub", "header": "x-token-sub"}],
        "max_token_bytes": 256
    });
    if let (Some(o), Value::Object(more)) = (provider.as_object_mut(), extra) {
        o.extend(more);
    }
    json!({
        "realm": "orders",
        "providers": {"idp": provider},
        "rules": [
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/billing/"}, "requires": {"provider": "idp", "audiences": ["billing-api"]}},
            {"match": {"prefix": "/"}, "requires": {"provider": "idp"}}
        ]
    })
}

fn default_config() -> Value {
    config_with(
        json!({"max_entries": 100, "max_ttl_s": 30, "negative_ttl_s": 5}),
        json!({}),
    )
}

fn root(host: &mut MockHost, config: &Value) -> TokenIntrospection {
    host.set_now_secs(NOW);
    TokenIntrospection::configure(host, config.to_string().as_bytes()).unwrap()
}

fn start(
    root: &mut TokenIntrospection,
    host: &mut MockHost,
    ctx: u32,
    path: &str,
    token: &str,
) -> (Action, IntrospectionStream) {
    let auth = format!("Bearer {token}");
    host.new_stream("GET", path, &[("authorization", &auth)]);
    let mut stream = root.new_stream(host, ctx);
    let action = stream.on_request_headers(host, true);
    (action, stream)
}

fn answer(status: u16, body: Value) -> CalloutResponse {
    CalloutResponse {
        status: Some(status),
        headers: vec![(":status".into(), status.to_string())],
        body: body.to_string().into_bytes(),
    }
}

fn active(extra: Value) -> Value {
    let mut a = json!({"active": true, "sub": "alice", "client_id": "orders-reader",
        "scope": "orders:read", "aud": "orders-api", "iss": "https://idp.example.com",
        "exp": NOW + 300, "iat": NOW, "tenant": "a", "token_type": "Bearer"});
    if let (Some(o), Value::Object(more)) = (a.as_object_mut(), extra) {
        o.extend(more);
    }
    a
}

fn last_token(host: &MockHost) -> u32 {
    host.callouts.last().expect("a callout").token
}

/// Runs one request to the end: the callout (if any) answered with `reply`.
fn request(
    root: &mut TokenIntrospection,
    host: &mut MockHost,
    path: &str,
    token: &str,
    reply: &CalloutResponse,
) -> Action {
    let before = host.callouts.len();
    let (action, mut stream) = start(root, host, 7, path, token);
    if action == Action::Pause && host.local_reply.is_none() && host.callouts.len() > before {
        let t = last_token(host);
        return stream.on_http_call_response(host, t, reply.clone());
    }
    action
}

/// The paused stream's own request again (MockHost holds one request at a time).
fn resume(host: &mut MockHost, token: &str) {
    let auth = format!("Bearer {token}");
    host.new_stream("GET", "/a", &[("authorization", &auth)]);
}

fn reply_code(host: &MockHost) -> (u16, String) {
    let r = host.local_reply.clone().expect("a local reply");
    (
        r.status,
        r.json()["error"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn an_active_token_passes_with_identity_headers_and_no_credential_upstream() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    let (action, mut stream) = start(&mut r, &mut host, 7, "/orders", TOKEN);
    assert_eq!(action, Action::Pause, "paused for the IdP");
    assert_eq!(host.callouts.len(), 1);
    let call = host.callouts[0].clone();
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(call.header(":path"), Some("/token/introspection"));
    assert_eq!(call.header(":authority"), Some("idp.example.com"));
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
    assert_eq!(
        call.header("authorization"),
        Some("Basic Z2F0ZXdheTpzM2NyJTI2dA==")
    );
    assert_eq!(
        String::from_utf8(call.body.clone().unwrap()).unwrap(),
        "token=opaque-Tok3n.value&token_type_hint=access_token"
    );
    assert_eq!(call.timeout, std::time::Duration::from_millis(1000));

    host.request_headers
        .push(("x-token-sub".into(), "forged".into()));
    let action =
        stream.on_http_call_response(&mut host, call.token, answer(200, active(json!({}))));
    assert_eq!(action, Action::Continue, "{:?}", host.local_reply);
    assert_eq!(host.request_header("authorization"), None);
    assert_eq!(host.headers_named("x-token-sub"), vec!["alice"]);
    let id = Identity::read(&host).unwrap();
    assert_eq!(id.sub.as_deref(), Some("alice"));
    assert_eq!(id.client_id.as_deref(), Some("orders-reader"));
    assert_eq!(id.tenant.as_deref(), Some("a"));
    assert_eq!(id.scopes, vec!["orders:read"]);
    assert_eq!(id.auth, vec!["introspection"]);
    assert_eq!(host.metric("shieldwall.token_introspection.allowed"), 1);
    assert_eq!(host.metric("shieldwall.token_introspection.callouts"), 1);
    assert_eq!(host.metric("shieldwall.token_introspection.cache.miss"), 1);
    assert!(!host.logs.borrow().iter().any(|(_, m)| m.contains(TOKEN)));
    // Nothing in shared data holds the token.
    for (k, (v, _)) in &host.shared {
        assert!(!k.contains(TOKEN) && !String::from_utf8_lossy(v).contains(TOKEN));
    }
}

#[test]
fn public_routes_missing_and_oversized_tokens() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    host.new_stream("GET", "/healthz", &[]);
    let mut s = r.new_stream(&mut host, 1);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Continue);
    host.new_stream("GET", "/orders", &[]);
    let mut s = r.new_stream(&mut host, 2);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    assert_eq!(reply_code(&host), (401, "missing_token".into()));
    let (_, _) = start(&mut r, &mut host, 3, "/orders", &"x".repeat(257));
    assert_eq!(reply_code(&host), (401, "token_too_large".into()));
    assert!(host.callouts.is_empty(), "nothing was introspected");
}

#[test]
fn active_answers_are_cached_for_min_of_exp_and_max_ttl() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    let ok = answer(200, active(json!({})));
    assert_eq!(
        request(&mut r, &mut host, "/a", TOKEN, &ok),
        Action::Continue
    );
    assert_eq!(r.cached(&host, 0), Some((1, 0)));
    // Within max_ttl_s (30 s): no second callout.
    host.advance_ms(29_000);
    assert_eq!(
        request(&mut r, &mut host, "/a", TOKEN, &ok),
        Action::Continue
    );
    assert_eq!(host.callouts.len(), 1);
    assert_eq!(host.metric("shieldwall.token_introspection.cache.hit"), 1);
    // After it: introspected again.
    host.advance_ms(1_000);
    assert_eq!(
        request(&mut r, &mut host, "/a", TOKEN, &ok),
        Action::Continue
    );
    assert_eq!(host.callouts.len(), 2);

    // A token expiring in 10 s is cached 10 s, not 30.
    let now = (&host as &dyn Host).now_secs();
    let short = answer(200, active(json!({"exp": now + 10})));
    assert_eq!(
        request(&mut r, &mut host, "/a", "short", &short),
        Action::Continue
    );
    host.advance_ms(9_000);
    assert_eq!(
        request(&mut r, &mut host, "/a", "short", &short),
        Action::Continue
    );
    assert_eq!(host.callouts.len(), 3);
    host.advance_ms(1_000);
    let (action, _) = start(&mut r, &mut host, 9, "/a", "short");
    assert_eq!(action, Action::Pause);
    assert_eq!(host.callouts.len(), 4, "expired entry: introspected again");
}

#[test]
fn max_ttl_zero_introspects_every_request() {
    let mut host = MockHost::new();
    let mut r = root(
        &mut host,
        &config_with(json!({"max_ttl_s": 0, "negative_ttl_s": 0}), json!({})),
    );
    let ok = answer(200, active(json!({})));
    for i in 1..=3 {
        assert_eq!(
            request(&mut r, &mut host, "/a", TOKEN, &ok),
            Action::Continue
        );
        assert_eq!(host.callouts.len(), i);
    }
    assert_eq!(r.cached(&host, 0), Some((0, 0)));
}

#[test]
fn inactive_tokens_are_refused_and_cached_negatively() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    let no = answer(200, json!({"active": false}));
    assert_eq!(request(&mut r, &mut host, "/a", TOKEN, &no), Action::Pause);
    assert_eq!(reply_code(&host), (401, "invalid_token".into()));
    let www = host.local_reply.clone().unwrap();
    assert!(www
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    assert_eq!(r.cached(&host, 0), Some((0, 1)));
    host.advance_ms(4_000);
    assert_eq!(request(&mut r, &mut host, "/a", TOKEN, &no), Action::Pause);
    assert_eq!(reply_code(&host), (401, "invalid_token".into()));
    assert_eq!(host.callouts.len(), 1, "answered from the negative cache");
    assert_eq!(
        host.metric("shieldwall.token_introspection.cache.hit_negative"),
        1
    );
    host.advance_ms(1_000);
    // The IdP now says active (say the user re-logged with the same handle): asked again.
    let ok = answer(200, active(json!({})));
    assert_eq!(
        request(&mut r, &mut host, "/a", TOKEN, &ok),
        Action::Continue
    );
    assert_eq!(host.callouts.len(), 2);
    assert_eq!(
        host.metric("shieldwall.token_introspection.denied.inactive"),
        2
    );
}

#[test]
fn malformed_answers_and_errors_are_503_and_never_cached() {
    let bad: Vec<CalloutResponse> = vec![
        answer(200, json!({"active": "true"})),
        answer(200, json!({"active": 1})),
        answer(200, json!({"sub": "alice"})),
        answer(200, json!([{"active": true}])),
        answer(500, json!({"active": true})),
        answer(401, json!({"error": "invalid_client"})),
        CalloutResponse {
            status: Some(200),
            headers: vec![],
            body: b"not json".to_vec(),
        },
        CalloutResponse {
            status: None,
            headers: vec![],
            body: vec![],
        },
        CalloutResponse {
            status: Some(504),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"upstream request timeout".to_vec(),
        },
    ];
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    for (i, reply) in bad.iter().enumerate() {
        assert_eq!(
            request(&mut r, &mut host, "/a", TOKEN, reply),
            Action::Pause,
            "{i}"
        );
        assert_eq!(
            reply_code(&host),
            (503, "temporarily_unavailable".into()),
            "{i}"
        );
        let sent = host.local_reply.clone().unwrap();
        assert_eq!(sent.header("retry-after"), Some("1"));
        assert_eq!(
            host.callouts.len(),
            i + 1,
            "{i}: nothing cached, asked again"
        );
    }
    assert_eq!(r.cached(&host, 0), Some((0, 0)));
    assert_eq!(
        host.metric("shieldwall.token_introspection.callout_errors.malformed_answer"),
        5
    );
    assert_eq!(
        host.metric("shieldwall.token_introspection.callout_errors.http_status"),
        2
    );
    assert_eq!(
        host.metric("shieldwall.token_introspection.callout_errors.unreachable"),
        1
    );
    assert_eq!(
        host.metric("shieldwall.token_introspection.callout_errors.timeout"),
        1
    );
    assert_eq!(
        host.metric("shieldwall.token_introspection.denied.idp_unavailable"),
        9
    );
    assert!(host.logged("introspection failed (malformed_answer)"));
}

#[test]
fn a_cached_answer_is_checked_again_and_never_widens() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    let ok = answer(200, active(json!({"exp": NOW + 20})));
    assert_eq!(
        request(&mut r, &mut host, "/a", TOKEN, &ok),
        Action::Continue
    );
    // The billing route needs another audience: the cached answer does not give it, neither from
    // shared data (first) nor from the worker's memo (then).
    for _ in 0..2 {
        let (action, _) = start(&mut r, &mut host, 8, "/billing/x", TOKEN);
        assert_eq!(action, Action::Pause);
        assert_eq!(reply_code(&host), (401, "bad_audience".into()));
    }
    assert_eq!(host.callouts.len(), 1, "decided from the cache");
    assert_eq!(host.metric("shieldwall.token_introspection.cache.hit"), 2);
    // The answer expires with the token: from the memo too.
    host.advance_ms(20_000);
    let (action, _) = start(&mut r, &mut host, 9, "/a", TOKEN);
    assert_eq!(action, Action::Pause);
    assert!(host.local_reply.is_none());
    assert_eq!(host.callouts.len(), 2, "asked again once the answer ended");
    // Wrong issuer, future nbf, exp claims of the wrong type: refused from a fresh answer.
    for (extra, code) in [
        (json!({"iss": "https://evil.example"}), "bad_issuer"),
        (json!({"nbf": NOW + 3600}), "not_yet_valid"),
        (json!({"exp": "never"}), "bad_claim_type"),
        (json!({"exp": NOW - 3600}), "expired"),
    ] {
        let reply = answer(200, active(extra));
        assert_eq!(
            request(&mut r, &mut host, "/a", &format!("t-{code}"), &reply),
            Action::Pause
        );
        assert_eq!(reply_code(&host), (401, code.into()));
    }
}

#[test]
fn single_flight_on_one_worker_and_across_workers() {
    let mut host = MockHost::new();
    // max_ttl_s 0: the waiters get the very answer, not a cached one.
    let cfg = config_with(json!({"max_ttl_s": 0}), json!({}));
    let mut w1 = root(&mut host, &cfg);
    let mut w2 = TokenIntrospection::configure(&mut host, cfg.to_string().as_bytes()).unwrap();
    let (a1, mut owner) = start(&mut w1, &mut host, 1, "/a", TOKEN);
    let (a2, mut same_worker) = start(&mut w1, &mut host, 2, "/a", TOKEN);
    let (a3, mut other_worker) = start(&mut w2, &mut host, 3, "/a", TOKEN);
    assert_eq!((a1, a2, a3), (Action::Pause, Action::Pause, Action::Pause));
    assert!(host.local_reply.is_none());
    assert_eq!(
        host.callouts.len(),
        1,
        "one introspection for three requests"
    );
    assert_eq!(host.metric("shieldwall.token_introspection.waiting"), 2);

    let t = last_token(&host);
    host.woken.clear();
    assert_eq!(
        owner.on_http_call_response(&mut host, t, answer(200, active(json!({})))),
        Action::Continue
    );
    assert_eq!(
        host.woken,
        vec![2],
        "the waiter of this worker is woken at once"
    );
    resume(&mut host, TOKEN);
    assert_eq!(
        same_worker.on_wake(&mut host),
        Action::Continue,
        "{:?}",
        host.local_reply
    );
    // The other worker's waiter looks again on its tick.
    host.woken.clear();
    w2.on_tick(&mut host);
    assert_eq!(host.woken, vec![3]);
    resume(&mut host, TOKEN);
    assert_eq!(other_worker.on_wake(&mut host), Action::Continue);
    assert_eq!(Identity::read(&host).unwrap().sub.as_deref(), Some("alice"));
    assert_eq!(host.callouts.len(), 1);
    assert_eq!(host.metric("shieldwall.token_introspection.allowed"), 3);
}

#[test]
fn waiters_share_the_owners_error_and_the_next_request_asks_again() {
    let mut host = MockHost::new();
    let cfg = default_config();
    let mut w1 = root(&mut host, &cfg);
    let mut w2 = TokenIntrospection::configure(&mut host, cfg.to_string().as_bytes()).unwrap();
    let (_, mut owner) = start(&mut w1, &mut host, 1, "/a", TOKEN);
    let (_, mut waiter) = start(&mut w2, &mut host, 2, "/a", TOKEN);
    let t = last_token(&host);
    owner.on_http_call_response(&mut host, t, answer(503, json!({})));
    assert_eq!(reply_code(&host), (503, "temporarily_unavailable".into()));
    w2.on_tick(&mut host);
    resume(&mut host, TOKEN);
    assert_eq!(waiter.on_wake(&mut host), Action::Pause);
    assert_eq!(reply_code(&host), (503, "temporarily_unavailable".into()));
    assert_eq!(
        host.callouts.len(),
        1,
        "the waiter did not call the IdP again"
    );
    let (action, _) = start(&mut w1, &mut host, 3, "/a", TOKEN);
    assert_eq!(action, Action::Pause);
    assert_eq!(host.callouts.len(), 2, "errors are not cached");
}

#[test]
fn a_waiter_gives_up_when_the_owner_never_answers() {
    let mut host = MockHost::new();
    let cfg = default_config();
    let mut w1 = root(&mut host, &cfg);
    let mut w2 = TokenIntrospection::configure(&mut host, cfg.to_string().as_bytes()).unwrap();
    let (_, _owner) = start(&mut w1, &mut host, 1, "/a", TOKEN);
    let (_, mut waiter) = start(&mut w2, &mut host, 2, "/a", TOKEN);
    host.advance_ms(1_000);
    w2.on_tick(&mut host);
    resume(&mut host, TOKEN);
    assert_eq!(waiter.on_wake(&mut host), Action::Pause);
    assert!(host.local_reply.is_none(), "still within timeout + margin");
    host.advance_ms(600);
    w2.on_tick(&mut host);
    resume(&mut host, TOKEN);
    assert_eq!(waiter.on_wake(&mut host), Action::Pause);
    assert_eq!(reply_code(&host), (503, "temporarily_unavailable".into()));
    assert_eq!(
        host.metric("shieldwall.token_introspection.denied.timeout"),
        1
    );
    // The abandoned marker does not block the token: the next request introspects.
    let (_, _) = start(&mut w2, &mut host, 3, "/a", TOKEN);
    assert_eq!(host.callouts.len(), 2);
}

#[test]
fn a_failed_dispatch_is_503() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    host.fail_callouts = true;
    let (action, _) = start(&mut r, &mut host, 1, "/a", TOKEN);
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host), (503, "temporarily_unavailable".into()));
    assert_eq!(
        host.metric("shieldwall.token_introspection.callout_errors.dispatch_failed"),
        1
    );
}

#[test]
fn certificate_bound_tokens_need_that_certificate() {
    // sha256("test"): hex as Envoy gives it, base64url as the IdP puts it in cnf.
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let x5t = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    let bound = answer(200, active(json!({"cnf": {"x5t#S256": x5t}})));
    let digest = |host: &mut MockHost, hex: Option<&str>| {
        if let Some(hex) = hex {
            host.properties.insert(
                "connection\0sha256_peer_certificate_digest".into(),
                hex.as_bytes().to_vec(),
            );
        }
    };
    // No client certificate.
    assert_eq!(
        request(&mut r, &mut host, "/a", TOKEN, &bound),
        Action::Pause
    );
    assert_eq!(reply_code(&host), (401, "cnf_no_certificate".into()));
    // Another certificate (the answer is cached now).
    let auth = format!("Bearer {TOKEN}");
    let other = "00".repeat(32);
    host.new_stream("GET", "/a", &[("authorization", &auth)]);
    digest(&mut host, Some(&other));
    let mut s = r.new_stream(&mut host, 5);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    assert_eq!(reply_code(&host), (401, "cnf_mismatch".into()));
    // The right one.
    host.new_stream("GET", "/a", &[("authorization", &auth)]);
    digest(&mut host, Some(hex));
    let mut s = r.new_stream(&mut host, 6);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Continue);
    assert_eq!(host.callouts.len(), 1);
    // A binding the gateway cannot check is refused.
    let jkt = answer(200, active(json!({"cnf": {"jkt": "abc"}})));
    assert_eq!(
        request(&mut r, &mut host, "/a", "dpop-bound", &jkt),
        Action::Pause
    );
    assert_eq!(reply_code(&host), (401, "cnf_unsupported".into()));
}

#[test]
fn random_tokens_keep_both_caches_at_their_bounds() {
    let mut host = MockHost::new();
    let mut r = root(
        &mut host,
        &config_with(
            json!({"max_entries": 16, "negative_max_entries": 4, "max_ttl_s": 300, "negative_ttl_s": 300}),
            json!({}),
        ),
    );
    let ok = answer(200, active(json!({})));
    let no = answer(200, json!({"active": false}));
    for i in 0..40 {
        request(&mut r, &mut host, "/a", &format!("good-{i}"), &ok);
    }
    for i in 0..500 {
        request(&mut r, &mut host, "/a", &format!("random-{i}"), &no);
    }
    let (active, inactive) = r.cached(&host, 0).unwrap();
    assert!((8..=16).contains(&active), "{active}");
    assert!((1..=4).contains(&inactive), "{inactive}");
    // Random tokens never touch the active table: its keys are the same as before the flood.
    let keys = host
        .shared
        .keys()
        .filter(|k| k.starts_with("shieldwall/token_introspection/test/"))
        .count();
    // secret + 4 active buckets + 1 inactive bucket + at most 64 flight slots.
    assert!(keys <= 1 + 4 + 1 + 64, "{keys}");
    let before = host.callouts.len();
    request(&mut r, &mut host, "/a", "good-39", &ok);
    assert_eq!(
        host.callouts.len(),
        before,
        "a recent good answer survived the flood"
    );
}

#[test]
fn client_secret_post_and_the_secret_from_the_environment() {
    let mut host = MockHost::new();
    host.env
        .insert("IDP_INTROSPECTION_SECRET".into(), "from-env".into());
    let cfg = config_with(
        json!({}),
        json!({"introspection": {"cluster": "idp", "uri": "http://idp:9080/token/introspection",
            "client_id": "gate way", "client_secret_env": "IDP_INTROSPECTION_SECRET",
            "auth_method": "client_secret_post", "token_type_hint": ""}}),
    );
    let mut r = root(&mut host, &cfg);
    let (_, _) = start(&mut r, &mut host, 1, "/a", "a+b/c=");
    let call = host.callouts[0].clone();
    assert_eq!(call.header("authorization"), None);
    assert_eq!(
        String::from_utf8(call.body.unwrap()).unwrap(),
        "token=a%2Bb%2Fc%3D&client_id=gate%20way&client_secret=from-env"
    );
}

#[test]
fn configuration_errors_name_the_field() {
    let err = |cfg: Value, env: &[(&str, &str)]| {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(cfg.to_string().as_bytes(), &|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let with = |intro: Value| config_with(json!({}), json!({"introspection": intro}));
    assert_eq!(err(default_config(), &[]), Ok(()));
    assert_eq!(
        err(
            with(json!({"cluster": "idp", "uri": "https://i/x", "client_id": "g"})),
            &[]
        ),
        Err("providers.idp.introspection: one of `client_secret` or `client_secret_env` is required".into())
    );
    assert_eq!(
        err(
            with(
                json!({"cluster": "idp", "uri": "https://i/x", "client_id": "g",
                        "client_secret": "a", "client_secret_env": "B"})
            ),
            &[]
        ),
        Err(
            "providers.idp.introspection: give `client_secret` or `client_secret_env`, not both"
                .into()
        )
    );
    let env_cfg = with(
        json!({"cluster": "idp", "uri": "https://i/x", "client_id": "g",
                              "client_secret_env": "SECRET"}),
    );
    assert!(err(env_cfg.clone(), &[])
        .unwrap_err()
        .starts_with("providers.idp.introspection.client_secret_env: the VM has no environment variable `SECRET`"));
    assert_eq!(err(env_cfg, &[("SECRET", "x")]), Ok(()));
    assert_eq!(
        err(
            with(
                json!({"cluster": "idp", "uri": "ftp://i/x", "client_id": "g", "client_secret": "a"})
            ),
            &[]
        ),
        Err("providers.idp.introspection.uri: not an http(s) URI".into())
    );
    assert!(err(
        with(
            json!({"cluster": "idp", "uri": "https://i/x", "client_id": "g", "client_secret": "a",
                    "auth_method": "private_key_jwt"})
        ),
        &[]
    )
    .unwrap_err()
    .starts_with("providers.idp.introspection.auth_method: unknown variant"));
    assert_eq!(
        err(config_with(json!({"max_entries": 0}), json!({})), &[]),
        Err("providers.idp.cache.max_entries: must be between 1 and 1048576".into())
    );
    assert_eq!(
        err(
            config_with(
                json!({"max_entries": 10, "negative_max_entries": 11}),
                json!({})
            ),
            &[]
        ),
        Err("providers.idp.cache.negative_max_entries: must be between 1 and max_entries".into())
    );
    assert!(err(config_with(json!({"ttl": 1}), json!({})), &[])
        .unwrap_err()
        .contains("unknown field `ttl`"));
}

#[test]
fn the_issue_example_configuration_loads() {
    let text = r#"{
      "providers": {
        "idp": {
          "introspection": {
            "cluster": "idp", "uri": "https://idp.example.com/token/introspection",
            "timeout_ms": 1000,
            "client_id": "gateway", "client_secret": "x",
            "auth_method": "client_secret_basic",
            "token_type_hint": "access_token"
          },
          "issuer": "https://idp.example.com",
          "audiences": ["orders-api"],
          "cache": { "max_entries": 10000, "max_ttl_s": 30, "negative_ttl_s": 5 },
          "from_headers": [ { "name": "authorization", "value_prefix": "Bearer " } ],
          "claim_to_headers": [ { "claim": "sub", "header": "x-token-sub" } ],
          "tenant_claim": "tenant",
          "max_token_bytes": 4096
        }
      },
      "rules": [
        { "match": { "prefix": "/healthz" } },
        { "match": { "prefix": "/" }, "requires": { "provider": "idp" } }
      ]
    }"#;
    let c = Config::parse(text.as_bytes(), &|_| None).unwrap();
    let p = &c.providers[0];
    assert_eq!(p.positive.entries(), 10_000);
    assert_eq!(p.negative.entries(), 2_500);
    assert_eq!(p.max_ttl_s, 30);
}

#[test]
fn inactive_tokens_spend_the_clients_budget_and_then_cost_the_idp_nothing() {
    let mut host = MockHost::new();
    let mut cfg = config_with(json!({"negative_ttl_s": 0}), json!({}));
    cfg["failed_verification_budget"] = json!({"failures": 2, "per": "minute"});
    let mut r = root(&mut host, &cfg);
    let no = answer(200, json!({"active": false}));
    let ok = answer(200, active(json!({})));
    let from = |host: &mut MockHost, client: &str, token: &str| {
        let auth = format!("Bearer {token}");
        host.new_stream("GET", "/a", &[("authorization", &auth)]);
        host.properties
            .insert("source\0address".into(), client.as_bytes().to_vec());
    };
    for i in 0..2 {
        from(&mut host, "10.0.0.1:5000", &format!("random-{i}"));
        let mut s = r.new_stream(&mut host, 1);
        assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
        let t = last_token(&host);
        s.on_http_call_response(&mut host, t, no.clone());
        assert_eq!(reply_code(&host), (401, "invalid_token".into()));
    }
    assert_eq!(
        host.metric("shieldwall.token_introspection.budget.charged"),
        2
    );
    // Spent: the next token of this client is refused before any call to the IdP.
    from(&mut host, "10.0.0.1:5001", "random-3");
    let mut s = r.new_stream(&mut host, 2);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    assert_eq!(
        reply_code(&host),
        (429, "too_many_failed_verifications".into())
    );
    assert!(host
        .local_reply
        .clone()
        .unwrap()
        .header("retry-after")
        .is_some());
    assert_eq!(host.callouts.len(), 2);
    // Another client is not affected; a cached good token of the spent client still passes.
    from(&mut host, "10.0.0.2:5000", "good");
    let mut s = r.new_stream(&mut host, 3);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    let t = last_token(&host);
    assert_eq!(
        s.on_http_call_response(&mut host, t, ok.clone()),
        Action::Continue
    );
    from(&mut host, "10.0.0.1:5002", "good");
    let mut s = r.new_stream(&mut host, 4);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Continue);
    // The budget refills: 2 a minute.
    host.advance_ms(30_000);
    from(&mut host, "10.0.0.1:5003", "random-4");
    let mut s = r.new_stream(&mut host, 5);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    assert!(host.local_reply.is_none());
    assert_eq!(host.callouts.len(), 4);
}

#[test]
fn a_request_an_earlier_filter_verified_is_skipped_when_configured() {
    let mut host = MockHost::new();
    let mut cfg = default_config();
    cfg["skip_if_verified_by"] = json!(["jwt"]);
    let mut r = root(&mut host, &cfg);
    let verified_by = |host: &mut MockHost, method: &str| {
        host.new_stream("GET", "/a", &[]);
        Identity {
            sub: Some("alice".into()),
            auth: vec![method.into()],
            ..Default::default()
        }
        .merge_and_write(host)
        .unwrap();
    };
    // jwt-auth verified a JWT (and removed it): nothing to introspect.
    verified_by(&mut host, "jwt");
    let mut s = r.new_stream(&mut host, 1);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Continue);
    assert!(host.callouts.is_empty());
    assert_eq!(
        host.metric("shieldwall.token_introspection.skipped.verified_before"),
        1
    );
    // A client certificate alone is not a verified token: the token is still required.
    verified_by(&mut host, "mtls");
    let mut s = r.new_stream(&mut host, 2);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    assert_eq!(reply_code(&host), (401, "missing_token".into()));
    // Without the option nothing is skipped.
    let mut plain = root(&mut host, &default_config());
    verified_by(&mut host, "jwt");
    let mut s = plain.new_stream(&mut host, 3);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    assert_eq!(reply_code(&host), (401, "missing_token".into()));
    let bad = |methods: Value| {
        let mut cfg = default_config();
        cfg["skip_if_verified_by"] = methods;
        Config::parse(cfg.to_string().as_bytes(), &|_| None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        bad(json!(["jwt", "introspection"])),
        Err("skip_if_verified_by[1]: must name another authentication method (`jwt`, …)".into())
    );
}

#[test]
fn an_earlier_identity_is_merged_not_replaced_from_a_fresh_or_cached_answer() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, &default_config());
    let ok = answer(200, active(json!({})));
    for round in 0..3 {
        let auth = format!("Bearer {TOKEN}");
        host.new_stream("GET", "/a", &[("authorization", &auth)]);
        Identity {
            spiffe_id: Some("spiffe://bank-a/client".into()),
            auth: vec!["mtls".into()],
            ..Default::default()
        }
        .merge_and_write(&mut host)
        .unwrap();
        let mut s = r.new_stream(&mut host, 4);
        let mut action = s.on_request_headers(&mut host, true);
        if action == Action::Pause {
            let t = last_token(&host);
            action = s.on_http_call_response(&mut host, t, ok.clone());
        }
        assert_eq!(action, Action::Continue, "round {round}");
        let id = Identity::read(&host).unwrap();
        assert_eq!(id.auth, vec!["mtls", "introspection"], "round {round}");
        assert_eq!(id.spiffe_id.as_deref(), Some("spiffe://bank-a/client"));
        assert_eq!(id.sub.as_deref(), Some("alice"));
    }
    assert_eq!(host.callouts.len(), 1);
    // Without an earlier identity, the cached identity is written as it was serialised.
    let auth = format!("Bearer {TOKEN}");
    host.new_stream("GET", "/a", &[("authorization", &auth)]);
    let mut s = r.new_stream(&mut host, 5);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Continue);
    let id = Identity::read(&host).unwrap();
    assert_eq!(id.auth, vec!["introspection"]);
    assert_eq!(id.client_id.as_deref(), Some("orders-reader"));
}

/// The cached path, call by call: a token this worker already found active costs these calls out
/// of the VM once the worker's metrics exist: the same calls as jwt-auth's warm path (its test of
/// the same name), with no `claim_to_headers` configured.
#[test]
fn a_cached_token_makes_only_the_calls_it_needs() {
    use shieldwall_core::testing::CountingHost;
    let mut inner = MockHost::new();
    let config = config_with(
        json!({"max_entries": 100, "max_ttl_s": 30, "negative_ttl_s": 5}),
        json!({"claim_to_headers": []}),
    );
    let mut r = root(&mut inner, &config);
    let ok = answer(200, active(json!({})));
    assert_eq!(
        request(&mut r, &mut inner, "/a", TOKEN, &ok),
        Action::Continue
    );
    let mut host = CountingHost::new(inner);
    let auth = format!("Bearer {TOKEN}");
    let calls = host.header_calls_when_warm(&mut r, "/a", &[("authorization", &auth)], |_| {});
    assert_eq!(calls, CALLS_CACHED_TOKEN);
}

const CALLS_CACHED_TOKEN: [&str; 7] = [
    "request_header", // :path
    "request_header", // :method
    "request_header", // authorization
    "now",            // the memo's expiry and the answer's exp/nbf, one read for both
    "property",       // an earlier identity context, to merge with
    "set_property",   // the identity context
    "remove_header",  // the credential does not travel upstream
];
