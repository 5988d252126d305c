//! Filter-level tests over MockHost: rules, replies, headers, identity, the JWKS life cycle.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Action, CalloutResponse, Host, Identity, RootFilter, StreamFilter};

use crate::filter::{JwtAuth, JwtStream};
use shieldwall_jose::b64url_encode;

const NOW: u64 = 1_700_000_000;
const HS_KEY: &str = "c2hpZWxkd2FsbC10ZXN0LXNlY3JldC0zMi1ieXRlcy1sb25nISE";

struct EcKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl EcKey {
    fn new(kid: &str) -> EcKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        EcKey {
            pair,
            kid: kid.into(),
        }
    }
    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256",
               "x": b64url_encode(&point[1..33]), "y": b64url_encode(&point[33..65])})
    }
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64url_encode(header.to_string().as_bytes()),
            b64url_encode(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64url_encode(sig.as_ref()))
    }
}

fn hs256(claims: &Value) -> String {
    let header = json!({"alg": "HS256", "kid": "hs"});
    let input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    let secret =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, HS_KEY).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url_encode(tag.as_ref()))
}

fn claims(iss: &str, extra: Value) -> Value {
    let mut c = json!({"iss": iss, "sub": "alice", "aud": "orders-api", "exp": NOW + 300, "iat": NOW,
                       "client_id": "orders-reader", "scope": "orders:read orders:write", "tenant": "a"});
    if let (Some(obj), Value::Object(more)) = (c.as_object_mut(), extra) {
        obj.extend(more);
    }
    c
}

fn config_with(idp_keys: Value) -> String {
    json!({
        "providers": {
            "idp": {
                "issuer": "https://idp.example.com",
                "audiences": ["orders-api"],
                "local_jwks": idp_keys,
                "claim_to_headers": [{"claim": "sub", "header": "x-jwt-sub"}, {"claim": "org.id", "header": "x-org"}],
                "forward_payload_header": "x-jwt-payload"
            },
            "partner": {
                "issuer": "https://partner.example.net",
                "local_jwks": {"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": HS_KEY}]}
            }
        },
        "rules": [
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/maybe/"}, "requires": {"allow_missing": {"provider": "idp"}}},
            {"match": {"prefix": "/billing/"}, "requires": {"provider": "idp", "audiences": ["billing-api"]}},
            {"match": {"prefix": "/api/", "methods": ["GET"]}, "requires": {"any": [{"provider": "idp"}, {"provider": "partner"}]}},
            {"match": {"prefix": "/api/"}, "requires": {"provider": "idp"}}
        ]
    })
    .to_string()
}

fn root(host: &mut MockHost, config: &str) -> JwtAuth {
    host.set_now_secs(NOW);
    JwtAuth::configure(host, config.as_bytes()).unwrap()
}

fn run(
    root: &mut JwtAuth,
    host: &mut MockHost,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Action, JwtStream) {
    host.new_stream(method, path, headers);
    let mut stream = root.new_stream(host, 7);
    let action = stream.on_request_headers(host, true);
    (action, stream)
}

fn reply_code(host: &MockHost) -> (u16, String) {
    let r = host.local_reply.clone().expect("a local reply");
    (
        r.status,
        r.json()["error"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn valid_token_passes_with_identity_and_headers() {
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &config_with(json!({"keys": [key.jwk()]})));
    let token = key.sign(&claims(
        "https://idp.example.com",
        json!({"org": {"id": 42}}),
    ));
    let auth = format!("Bearer {token}");
    let (action, _) = run(
        &mut r,
        &mut host,
        "POST",
        "/api/orders",
        &[("authorization", &auth), ("x-jwt-sub", "forged")],
    );
    assert_eq!(action, Action::Continue, "{:?}", host.local_reply);
    assert_eq!(
        host.request_header("authorization"),
        None,
        "the credential is not forwarded by default"
    );
    assert_eq!(
        host.headers_named("x-jwt-sub"),
        vec!["alice"],
        "the client's copy is replaced"
    );
    assert_eq!(host.request_header("x-org").as_deref(), Some("42"));
    assert_eq!(
        host.request_header("x-jwt-payload").as_deref(),
        token.split('.').nth(1)
    );
    let id = Identity::read(&host).unwrap();
    assert_eq!(id.sub.as_deref(), Some("alice"));
    assert_eq!(id.client_id.as_deref(), Some("orders-reader"));
    assert_eq!(id.tenant.as_deref(), Some("a"));
    assert_eq!(id.scopes, vec!["orders:read", "orders:write"]);
    assert_eq!(id.auth, vec!["jwt"]);
    assert_eq!(id.exp, Some(NOW + 300));
    assert_eq!(host.metric("shieldwall.jwt_auth.allowed"), 1);
}

#[test]
fn an_earlier_identity_is_merged_not_replaced() {
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &config_with(json!({"keys": [key.jwk()]})));
    let auth = format!(
        "Bearer {}",
        key.sign(&claims("https://idp.example.com", json!({})))
    );
    for round in 0..2 {
        // An authenticator before this one (mTLS) wrote the caller's certificate identity.
        host.new_stream("GET", "/api/x", &[("authorization", &auth)]);
        Identity {
            spiffe_id: Some("spiffe://bank-a/client".into()),
            auth: vec!["mtls".into()],
            ..Default::default()
        }
        .merge_and_write(&mut host)
        .unwrap();
        let mut stream = r.new_stream(&mut host, 9);
        assert_eq!(
            stream.on_request_headers(&mut host, true),
            Action::Continue,
            "round {round}"
        );
        let id = Identity::read(&host).unwrap();
        assert_eq!(
            id.spiffe_id.as_deref(),
            Some("spiffe://bank-a/client"),
            "round {round}"
        );
        assert_eq!(id.sub.as_deref(), Some("alice"));
        assert_eq!(id.auth, vec!["mtls", "jwt"]);
    }
    assert_eq!(
        host.metric("shieldwall.jwt_auth.cache.hit"),
        1,
        "the second round was a cache hit"
    );
}

#[test]
fn failures_get_rfc6750_replies() {
    let key = EcKey::new("k1");
    let other = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &config_with(json!({"keys": [key.jwk()]})));

    let (action, _) = run(&mut r, &mut host, "GET", "/api/x", &[]);
    assert_eq!(action, Action::Pause);
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"shieldwall\"")
    );

    let cases: Vec<(String, &str)> = vec![
        (
            key.sign(&claims("https://idp.example.com", json!({"exp": NOW - 61}))),
            "expired",
        ),
        (
            key.sign(&claims("https://idp.example.com", json!({"nbf": NOW + 61}))),
            "not_yet_valid",
        ),
        (
            key.sign(&claims("https://evil.example.com", json!({}))),
            "bad_issuer",
        ),
        (
            key.sign(&claims(
                "https://idp.example.com",
                json!({"aud": ["other"]}),
            )),
            "bad_audience",
        ),
        (
            key.sign(&claims("https://idp.example.com", json!({"exp": "never"}))),
            "bad_claim_type",
        ),
        (
            other.sign(&claims("https://idp.example.com", json!({}))),
            "bad_signature",
        ),
        ("not.a.jwt".to_string(), "bad_base64"),
        ("a.b".to_string(), "malformed"),
    ];
    for (token, code) in cases {
        let auth = format!("Bearer {token}");
        let (action, _) = run(
            &mut r,
            &mut host,
            "POST",
            "/api/x",
            &[("authorization", &auth)],
        );
        assert_eq!(action, Action::Pause, "{code}");
        let reply = host.local_reply.clone().unwrap();
        assert_eq!(reply.status, 401, "{code}");
        assert_eq!(reply.json()["error"], code, "{code}: {:?}", reply.json());
        let www = reply.header("www-authenticate").unwrap();
        assert!(
            www.starts_with("Bearer realm=\"shieldwall\", error=\"invalid_token\""),
            "{www}"
        );
        assert!(
            !String::from_utf8_lossy(&reply.body).contains(&token),
            "the token is never echoed"
        );
        assert!(
            host.metric(&format!("shieldwall.jwt_auth.denied.{code}")) >= 1,
            "{code}"
        );
    }
    // Tampering with the payload keeps the signature of the original: refused.
    let good = key.sign(&claims("https://idp.example.com", json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64url_encode(
        claims("https://idp.example.com", json!({"sub": "root"}))
            .to_string()
            .as_bytes(),
    );
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let (_, _) = run(
        &mut r,
        &mut host,
        "POST",
        "/api/x",
        &[("authorization", &format!("Bearer {forged}"))],
    );
    assert_eq!(reply_code(&host), (401, "bad_signature".into()));
}

#[test]
fn a_known_kid_with_a_foreign_alg_is_alg_not_allowed_without_refetch() {
    let k1 = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &remote_config(json!({})));
    r.on_tick(&mut host);
    let t = host.callouts[0].token;
    r.on_http_call_response(&mut host, t, jwks_reply(&[&k1]));
    host.advance_ms(60_000);
    // An HS256 token naming the EC key's kid: the key exists but refuses HS256.
    let header = json!({"alg": "HS256", "kid": "k1"});
    let input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(
            claims("https://idp.example.com", json!({"exp": NOW + 1000}))
                .to_string()
                .as_bytes()
        )
    );
    let token = format!(
        "{input}.{}",
        b64url_encode(b"0123456789abcdef0123456789abcdef")
    );
    let (action, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/x",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host), (401, "alg_not_allowed".into()));
    assert_eq!(
        host.callouts.len(),
        1,
        "no refetch for a kid the key set has"
    );
}

#[test]
fn two_credentials_are_a_bad_request() {
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &config_with(json!({"keys": [key.jwk()]})));
    let token = key.sign(&claims("https://idp.example.com", json!({})));
    let auth = format!("Bearer {token}");
    let (action, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/api/x",
        &[("authorization", &auth), ("authorization", &auth)],
    );
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host), (400, "invalid_request".into()));
    assert!(host
        .local_reply
        .as_ref()
        .unwrap()
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_request\""));
}

#[test]
fn rules_public_unmatched_allow_missing_any_and_audience_override() {
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &config_with(json!({"keys": [key.jwk()]})));

    let (action, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/healthz",
        &[("x-jwt-sub", "forged"), ("x-jwt-payload", "x")],
    );
    assert_eq!(action, Action::Continue);
    assert_eq!(
        host.request_header("x-jwt-sub"),
        None,
        "owned headers are stripped even on public routes"
    );
    assert_eq!(host.request_header("x-jwt-payload"), None);

    let (action, _) = run(&mut r, &mut host, "GET", "/elsewhere", &[]);
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host), (403, "no_matching_rule".into()));

    let (action, _) = run(&mut r, &mut host, "GET", "/maybe/x", &[]);
    assert_eq!(
        action,
        Action::Continue,
        "allow_missing passes without a token"
    );
    let (action, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/maybe/x",
        &[("authorization", "Bearer junk")],
    );
    assert_eq!(
        action,
        Action::Pause,
        "allow_missing still refuses a bad token"
    );

    let partner = hs256(&claims(
        "https://partner.example.net",
        json!({"aud": "anything"}),
    ));
    let auth = format!("Bearer {partner}");
    let (action, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/api/x",
        &[("authorization", &auth)],
    );
    assert_eq!(
        action,
        Action::Continue,
        "any: the partner may GET {:?}",
        host.local_reply
    );
    let (action, _) = run(
        &mut r,
        &mut host,
        "POST",
        "/api/x",
        &[("authorization", &auth)],
    );
    assert_eq!(action, Action::Pause, "but only idp tokens may POST");
    assert_eq!(reply_code(&host), (401, "bad_issuer".into()));

    let token = key.sign(&claims("https://idp.example.com", json!({})));
    let (_, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/billing/x",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(
        reply_code(&host),
        (401, "bad_audience".into()),
        "requires.audiences overrides the provider's"
    );
    let token = key.sign(&claims(
        "https://idp.example.com",
        json!({"aud": ["x", "billing-api"]}),
    ));
    let (action, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/billing/x",
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(action, Action::Continue);

    let (action, _) = run(&mut r, &mut host, "GET", "/api/%2e%2e%2fx", &[]);
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host), (400, "encoded_separator".into()));
}

#[test]
fn unmatched_allow_is_an_explicit_choice() {
    let key = EcKey::new("k1");
    let mut config: Value =
        serde_json::from_str(&config_with(json!({"keys": [key.jwk()]}))).unwrap();
    config["unmatched"] = json!("allow");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &config.to_string());
    let (action, _) = run(&mut r, &mut host, "GET", "/elsewhere", &[]);
    assert_eq!(action, Action::Continue);
}

#[test]
fn token_cache_hits_and_still_checks_expiry() {
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &config_with(json!({"keys": [key.jwk()]})));
    let token = key.sign(&claims(
        "https://idp.example.com",
        json!({"exp": NOW + 100}),
    ));
    let auth = format!("Bearer {token}");
    for _ in 0..3 {
        let (action, _) = run(
            &mut r,
            &mut host,
            "GET",
            "/api/x",
            &[("authorization", &auth)],
        );
        assert_eq!(action, Action::Continue);
    }
    assert_eq!(host.metric("shieldwall.jwt_auth.cache.miss"), 1);
    assert_eq!(host.metric("shieldwall.jwt_auth.cache.hit"), 2);
    host.set_now_secs(NOW + 100 + 61);
    let (action, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/api/x",
        &[("authorization", &auth)],
    );
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host), (401, "expired".into()));
}

/// RFC 8705: a token bound to a client certificate passes only on a connection with that
/// certificate, on a fresh verification and on every cache hit after it.
#[test]
fn a_certificate_bound_token_needs_its_certificate_on_every_request() {
    // SHA-256 of "test": the digest as Envoy gives it (hex) and as the token carries it.
    const DIGEST_HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const THUMBPRINT: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &config_with(json!({"keys": [key.jwk()]})));
    let token = key.sign(&claims(
        "https://idp.example.com",
        json!({"cnf": {"x5t#S256": THUMBPRINT}}),
    ));
    let auth = format!("Bearer {token}");
    let mut send = |host: &mut MockHost, digest: Option<&str>| {
        host.new_stream("GET", "/api/x", &[("authorization", &auth)]);
        if let Some(d) = digest {
            host.properties.insert(
                "connection\0sha256_peer_certificate_digest".into(),
                d.as_bytes().to_vec(),
            );
        }
        let mut stream = r.new_stream(host, 7);
        stream.on_request_headers(host, true)
    };
    // No certificate: refused (the token was verified and cached all the same).
    assert_eq!(send(&mut host, None), Action::Pause);
    assert_eq!(reply_code(&host), (401, "cnf_no_certificate".into()));
    // The right certificate: allowed, from the cache.
    assert_eq!(send(&mut host, Some(DIGEST_HEX)), Action::Continue);
    assert_eq!(host.metric("shieldwall.jwt_auth.cache.hit"), 1);
    // Another certificate, on a cache hit: refused.
    let other = DIGEST_HEX.replace("9f86", "0000");
    assert_eq!(send(&mut host, Some(&other)), Action::Pause);
    assert_eq!(reply_code(&host), (401, "cnf_mismatch".into()));
    let www = host
        .local_reply
        .clone()
        .and_then(|r| r.header("www-authenticate").map(str::to_string))
        .unwrap_or_default();
    assert!(www.contains(r#"error="invalid_token""#), "{www}");
    // A token bound by another method than a certificate is refused, not taken as a bearer.
    let dpop = key.sign(&claims(
        "https://idp.example.com",
        json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
    ));
    let (action, _) = run(
        &mut r,
        &mut host,
        "GET",
        "/api/x",
        &[("authorization", &format!("Bearer {dpop}"))],
    );
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host), (401, "cnf_unsupported".into()));
}

// ------------------------------------------------------------------ remote JWKS

fn remote_config(extra: Value) -> String {
    let mut c = json!({
        "providers": {"idp": {
            "issuer": "https://idp.example.com",
            "audiences": ["orders-api"],
            "remote_jwks": {"cluster": "idp", "uri": "http://idp.local:8080/jwks", "timeout_ms": 1000,
                            "cache_duration_s": 600, "refetch_min_interval_s": 10}
        }},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]
    });
    if let (Some(obj), Value::Object(more)) = (c.as_object_mut(), extra) {
        obj.extend(more);
    }
    c.to_string()
}

fn jwks_reply(keys: &[&EcKey]) -> CalloutResponse {
    let body = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string();
    CalloutResponse {
        status: Some(200),
        headers: vec![(":status".into(), "200".into())],
        body: body.into_bytes(),
    }
}

#[test]
fn first_request_waits_for_the_first_fetch() {
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &remote_config(json!({})));
    assert!(host.tick_period.is_some(), "remote keys need the tick");
    let auth = format!(
        "Bearer {}",
        key.sign(&claims("https://idp.example.com", json!({})))
    );
    let (action, mut stream) = run(&mut r, &mut host, "GET", "/x", &[("authorization", &auth)]);
    assert_eq!(action, Action::Pause, "no keys yet: the request waits");
    assert!(host.local_reply.is_none());
    assert_eq!(host.callouts.len(), 1);
    let call = host.callouts[0].clone();
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.header(":path"), Some("/jwks"));
    assert_eq!(call.header(":authority"), Some("idp.local:8080"));
    assert_eq!(call.timeout.as_millis(), 1000);

    // A second request on the same worker waits too, without a second fetch.
    let mut second = r.new_stream(&mut host, 8);
    assert_eq!(second.on_request_headers(&mut host, true), Action::Pause);
    assert_eq!(host.callouts.len(), 1, "single flight");

    let action = stream.on_http_call_response(&mut host, call.token, jwks_reply(&[&key]));
    assert_eq!(action, Action::Continue, "{:?}", host.local_reply);
    assert!(host.woken.contains(&8), "the other waiter is woken");
    // (MockHost has one request: the first stream removed its credential; give it back.)
    host.new_stream("GET", "/x", &[("authorization", &auth)]);
    assert_eq!(
        second.on_wake(&mut host),
        Action::Continue,
        "{:?}",
        host.local_reply
    );
    assert_eq!(host.metric("shieldwall.jwt_auth.jwks.fetch.ok"), 1);
    assert_eq!(host.metric("shieldwall.jwt_auth.jwks.idp.keys"), 1);
}

#[test]
fn no_key_set_means_503_not_401() {
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &remote_config(json!({})));
    let auth = format!(
        "Bearer {}",
        key.sign(&claims("https://idp.example.com", json!({})))
    );
    let (_, mut stream) = run(&mut r, &mut host, "GET", "/x", &[("authorization", &auth)]);
    let token = host.callouts[0].token;
    // The callout times out: Envoy delivers a reply without :status.
    let action = stream.on_http_call_response(&mut host, token, CalloutResponse::default());
    assert_eq!(action, Action::Pause);
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"], "jwks_unavailable");
    assert_eq!(reply.header("retry-after"), Some("10"));
    assert_eq!(
        host.metric("shieldwall.jwt_auth.jwks.fetch.failed.unreachable"),
        1
    );
}

#[test]
fn waiting_request_gives_up_at_its_deadline() {
    let key = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &remote_config(json!({})));
    let auth = format!(
        "Bearer {}",
        key.sign(&claims("https://idp.example.com", json!({})))
    );
    let (_, mut stream) = run(&mut r, &mut host, "GET", "/x", &[("authorization", &auth)]);
    host.advance_ms(500);
    r.on_tick(&mut host);
    assert!(!host.woken.contains(&7));
    host.advance_ms(600);
    r.on_tick(&mut host);
    assert!(
        host.woken.contains(&7),
        "the tick wakes a waiter past its deadline"
    );
    assert_eq!(stream.on_wake(&mut host), Action::Pause);
    assert_eq!(host.local_reply.as_ref().unwrap().status, 503);
}

#[test]
fn unknown_kid_refetches_at_most_once_per_interval() {
    let k1 = EcKey::new("k1");
    let k2 = EcKey::new("k2");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &remote_config(json!({})));
    r.on_tick(&mut host);
    assert_eq!(host.callouts.len(), 1, "the first tick fetches");
    let t = host.callouts[0].token;
    r.on_http_call_response(&mut host, t, jwks_reply(&[&k1]));

    host.advance_ms(10_000);
    // The IdP rotated to k2: a k2 token makes the filter refetch, and waits for it.
    let auth2 = format!(
        "Bearer {}",
        k2.sign(&claims("https://idp.example.com", json!({})))
    );
    let (action, mut stream) = run(&mut r, &mut host, "GET", "/x", &[("authorization", &auth2)]);
    assert_eq!(action, Action::Pause);
    assert_eq!(host.callouts.len(), 2);
    let token = host.callouts[1].token;
    assert_eq!(
        stream.on_http_call_response(&mut host, token, jwks_reply(&[&k2])),
        Action::Continue
    );

    // Random kids: the first forces no fetch (interval not over), refused at once.
    host.advance_ms(1000);
    let k3 = EcKey::new("random-kid");
    let auth3 = format!(
        "Bearer {}",
        k3.sign(&claims("https://idp.example.com", json!({})))
    );
    for _ in 0..50 {
        let (action, _) = run(&mut r, &mut host, "GET", "/x", &[("authorization", &auth3)]);
        assert_eq!(action, Action::Pause);
        assert_eq!(reply_code(&host), (401, "unknown_kid".into()));
    }
    assert_eq!(
        host.callouts.len(),
        2,
        "a flood of unknown kids costs the IdP nothing more"
    );
    // Tokens of the old key k1 were dropped with their key.
    let auth1 = format!(
        "Bearer {}",
        k1.sign(&claims("https://idp.example.com", json!({})))
    );
    let (_, _) = run(&mut r, &mut host, "GET", "/x", &[("authorization", &auth1)]);
    assert_eq!(reply_code(&host), (401, "unknown_kid".into()));
}

#[test]
fn failed_refresh_keeps_the_last_good_keys() {
    let k1 = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(&mut host, &remote_config(json!({})));
    r.on_tick(&mut host);
    let t = host.callouts[0].token;
    r.on_http_call_response(&mut host, t, jwks_reply(&[&k1]));
    host.advance_ms(541_000);
    r.on_tick(&mut host);
    assert_eq!(host.callouts.len(), 2, "refresh before cache_duration ends");
    let bad = CalloutResponse {
        status: Some(500),
        headers: vec![],
        body: b"oops".to_vec(),
    };
    let t = host.callouts[1].token;
    r.on_http_call_response(&mut host, t, bad);
    assert_eq!(
        host.metric("shieldwall.jwt_auth.jwks.fetch.failed.http_status"),
        1
    );
    assert!(host.logged("keeping the last good key set"));
    let auth = format!(
        "Bearer {}",
        k1.sign(&claims(
            "https://idp.example.com",
            json!({"exp": NOW + 1000})
        ))
    );
    let (action, _) = run(&mut r, &mut host, "GET", "/x", &[("authorization", &auth)]);
    assert_eq!(action, Action::Continue, "{:?}", host.local_reply);
    // Bad JSON and an oversized document are failures too, and the keys stay.
    host.advance_ms(10_000);
    r.on_tick(&mut host);
    let junk = CalloutResponse {
        status: Some(200),
        headers: vec![],
        body: b"{\"keys\": 5}".to_vec(),
    };
    let t = host.callouts[2].token;
    r.on_http_call_response(&mut host, t, junk);
    let (action, _) = run(&mut r, &mut host, "GET", "/x", &[("authorization", &auth)]);
    assert_eq!(action, Action::Continue);
}

#[test]
fn two_workers_share_one_fetch() {
    let k1 = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut a = root(&mut host, &remote_config(json!({})));
    let mut b = JwtAuth::configure(&mut host, remote_config(json!({})).as_bytes()).unwrap();
    a.on_tick(&mut host);
    b.on_tick(&mut host);
    assert_eq!(host.callouts.len(), 1, "worker b sees the fetch in flight");
    let t = host.callouts[0].token;
    a.on_http_call_response(&mut host, t, jwks_reply(&[&k1]));
    host.advance_ms(200);
    b.on_tick(&mut host);
    assert_eq!(host.callouts.len(), 1);
    let auth = format!(
        "Bearer {}",
        k1.sign(&claims("https://idp.example.com", json!({})))
    );
    let (action, _) = run(&mut b, &mut host, "GET", "/x", &[("authorization", &auth)]);
    assert_eq!(
        action,
        Action::Continue,
        "worker b verifies with the keys a fetched"
    );
}

#[test]
fn configuration_errors_name_the_field() {
    let mut host = MockHost::new();
    let bad = |json: &str| {
        let mut host = MockHost::new();
        match JwtAuth::configure(&mut host, json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => e.to_string(),
        }
    };
    let _ = &mut host;
    let idp = r#""issuer": "i", "remote_jwks": {"cluster": "c", "uri": "https://x/j"}"#;
    assert!(bad(r#"{"providers": {}, "rules": []}"#).starts_with("providers:"));
    assert!(bad(&format!(
        r#"{{"providers": {{"idp": {{{idp}, "local_jwks": {{"keys": []}}}}}}, "rules": []}}"#
    ))
    .starts_with("providers.idp: give `local_jwks` or `remote_jwks`"));
    assert_eq!(
        bad(
            r#"{"providers": {"idp": {"issuer": "i", "remote_jwks": {"cluster": "c", "uri": "ftp://x"}}}, "rules": []}"#
        ),
        "providers.idp.remote_jwks.uri: not an http(s) URI"
    );
    assert!(bad(&format!(r#"{{"providers": {{"idp": {{{idp}}}}}, "rules": [{{"match": {{"prefix": "/"}}, "requires": {{"provider": "nope"}}}}]}}"#))
        .starts_with("rules[0].requires.provider: no provider named `nope`"));
    assert!(bad(&format!(
        r#"{{"providers": {{"idp": {{{idp}, "colour": 1}}}}, "rules": []}}"#
    ))
    .contains("unknown field `colour`"));
    assert!(bad(&format!(r#"{{"providers": {{"idp": {{{idp}}}}}, "rules": [{{"match": {{"template": "/a/**/b"}}}}]}}"#))
        .starts_with("rules[0].match.template:"));
    assert!(bad(r#"{"providers": {"p": {"issuer": "i", "local_jwks": {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}}}, "rules": []}"#)
        .starts_with("providers.p.local_jwks"));
    assert!(bad(&format!(r#"{{"providers": {{"idp": {{{idp}, "claim_to_headers": [{{"claim": "sub", "header": ":path"}}]}}}}, "rules": []}}"#))
        .starts_with("providers.idp.claim_to_headers[0].header"));
    for tries in [0, 65] {
        assert_eq!(
            bad(&format!(
                r#"{{"providers": {{"idp": {{{idp}, "max_key_tries": {tries}}}}}, "rules": []}}"#
            )),
            "providers.idp.max_key_tries: must be between 1 and 64"
        );
    }
    // A weak Ed25519 key in a configured set is refused at load, with its reason.
    let weak = bad(
        r#"{"providers": {"p": {"issuer": "i", "local_jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}, {"kty": "OKP", "crv": "Ed25519", "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}}}, "rules": []}"#,
    );
    assert_eq!(
        weak,
        "providers.p.local_jwks.keys[1]: unusable key: ed25519_small_order"
    );
}

// ------------------------------------------------------------------ failure budget

fn budget_config(key: &EcKey, budget: Value) -> String {
    let mut c: Value = serde_json::from_str(&config_with(json!({"keys": [key.jwk()]}))).unwrap();
    c["failed_verification_budget"] = budget;
    c.to_string()
}

/// One request to /api/x with `token` from `ip` (optionally behind `xff`); the status
/// (200 when let through), the error code and the Retry-After header of a reply.
fn from_ip(
    r: &mut JwtAuth,
    host: &mut MockHost,
    ip: &str,
    xff: Option<&str>,
    token: &str,
) -> (u16, String, Option<String>) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(x) = xff {
        headers.push(("x-forwarded-for", x));
    }
    host.new_stream("GET", "/api/x", &headers);
    host.set_property(&["source", "address"], format!("{ip}:40000").as_bytes())
        .unwrap();
    let mut stream = r.new_stream(host, 7);
    match stream.on_request_headers(host, true) {
        Action::Continue => (200, String::new(), None),
        Action::Pause => {
            let (status, code) = reply_code(host);
            let retry = host.local_reply.as_ref().and_then(|rep| {
                rep.headers
                    .iter()
                    .find(|(k, _)| k == "retry-after")
                    .map(|(_, v)| v.clone())
            });
            (status, code, retry)
        }
    }
}

#[test]
fn a_spent_failure_budget_refuses_before_any_signature_work() {
    let key = EcKey::new("k1");
    let impostor = EcKey::new("k1"); // same kid, other key: a bad signature
    let mut host = MockHost::new();
    let mut r = root(
        &mut host,
        &budget_config(&key, json!({"failures": 3, "per": "minute"})),
    );
    let good = |n: u64| key.sign(&claims("https://idp.example.com", json!({"jti": n})));
    let bad = |n: u64| impostor.sign(&claims("https://idp.example.com", json!({"jti": n})));
    let cached = good(0);
    assert_eq!(from_ip(&mut r, &mut host, "10.0.0.1", None, &cached).0, 200);

    // Three failures are within the budget: each is verified and refused as a bad signature.
    for n in 1..=3 {
        let (status, code, _) = from_ip(&mut r, &mut host, "10.0.0.1", None, &bad(n));
        assert_eq!(
            (status, code.as_str()),
            (401, "bad_signature"),
            "failure {n}"
        );
    }
    assert_eq!(host.metric("shieldwall.jwt_auth.budget.charged"), 3);
    let misses = host.metric("shieldwall.jwt_auth.cache.miss");

    // Spent: a bad token, and even a good uncached one, are refused without verification.
    for token in [bad(4), good(5)] {
        let (status, code, retry) = from_ip(&mut r, &mut host, "10.0.0.1", None, &token);
        assert_eq!(
            (status, code.as_str()),
            (429, "too_many_failed_verifications")
        );
        // 3 failures per minute: one more after 20 s.
        assert_eq!(retry.as_deref(), Some("20"));
    }
    assert_eq!(host.metric("shieldwall.jwt_auth.cache.miss"), misses);
    assert_eq!(
        host.metric("shieldwall.jwt_auth.denied.too_many_failed_verifications"),
        2
    );
    // A token verified before needs no signature work: still served.
    assert_eq!(from_ip(&mut r, &mut host, "10.0.0.1", None, &cached).0, 200);

    // Another client is unaffected, and has a budget of its own.
    assert_eq!(
        from_ip(&mut r, &mut host, "10.0.0.2", None, &good(6)).0,
        200
    );
    assert_eq!(from_ip(&mut r, &mut host, "10.0.0.2", None, &bad(7)).0, 401);

    // The budget refills: 20 s later, one more verification, then refused again.
    host.advance_ms(20_000);
    assert_eq!(
        from_ip(&mut r, &mut host, "10.0.0.1", None, &good(8)).0,
        200
    );
    assert_eq!(from_ip(&mut r, &mut host, "10.0.0.1", None, &bad(9)).0, 401);
    assert_eq!(
        from_ip(&mut r, &mut host, "10.0.0.1", None, &good(10)).0,
        429
    );
}

#[test]
fn the_failure_budget_keys_on_the_trusted_forwarded_address() {
    let key = EcKey::new("k1");
    let impostor = EcKey::new("k1");
    let mut host = MockHost::new();
    let mut r = root(
        &mut host,
        &budget_config(
            &key,
            json!({"failures": 1, "per": "hour", "xff_trusted_hops": 1}),
        ),
    );
    let bad = |n: u64| impostor.sign(&claims("https://idp.example.com", json!({"jti": n})));
    let good = key.sign(&claims("https://idp.example.com", json!({"jti": 0})));
    // Behind one trusted proxy (the peer), the client is the last x-forwarded-for entry; what a
    // client wrote to the left of it does not choose its budget.
    let lb = "10.9.9.9";
    assert_eq!(
        from_ip(&mut r, &mut host, lb, Some("203.0.113.7"), &bad(1)).0,
        401
    );
    let (status, _, _) = from_ip(&mut r, &mut host, lb, Some("1.2.3.4, 203.0.113.7"), &bad(2));
    assert_eq!(status, 429);
    assert_eq!(
        from_ip(&mut r, &mut host, lb, Some("198.51.100.1"), &good).0,
        200
    );
}

#[test]
fn failure_budget_configuration_errors_name_the_field() {
    let key = EcKey::new("k1");
    let bad = |budget: Value| {
        let mut host = MockHost::new();
        match JwtAuth::configure(&mut host, budget_config(&key, budget.clone()).as_bytes()) {
            Ok(_) => panic!("accepted: {budget}"),
            Err(e) => e.to_string(),
        }
    };
    assert!(bad(json!({"failures": 0, "per": "minute"}))
        .starts_with("failed_verification_budget.failures:"));
    assert!(bad(json!({"failures": 5, "per": "fortnight"}))
        .starts_with("failed_verification_budget.per"));
    assert!(bad(json!({"failures": 5, "per": "minute", "slots": 0}))
        .starts_with("failed_verification_budget.slots:"));
    assert!(
        bad(json!({"failures": 5, "per": "minute", "xff_trusted_hops": 17}))
            .starts_with("failed_verification_budget.xff_trusted_hops:")
    );
    assert!(bad(json!({"failures": 5, "per": "minute", "colour": 1})).contains("unknown field"));
}

#[test]
fn non_jwt_tokens_are_left_to_the_next_authenticator_only_when_configured() {
    let key = EcKey::new("k1");
    let mut cfg: Value = serde_json::from_str(&config_with(json!({"keys": [key.jwk()]}))).unwrap();
    let mut host = MockHost::new();
    let mut refusing = root(&mut host, &cfg.to_string());
    let (action, _) = run(
        &mut refusing,
        &mut host,
        "GET",
        "/api/x",
        &[("authorization", "Bearer 2YotnFZFEjr1zCsicMWpAA")],
    );
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host), (401, "malformed".into()));

    cfg["non_jwt_tokens"] = json!("pass");
    let mut passing = root(&mut host, &cfg.to_string());
    let (action, _) = run(
        &mut passing,
        &mut host,
        "GET",
        "/api/x",
        &[("authorization", "Bearer 2YotnFZFEjr1zCsicMWpAA")],
    );
    assert_eq!(action, Action::Continue);
    assert_eq!(
        host.request_header("authorization").as_deref(),
        Some("Bearer 2YotnFZFEjr1zCsicMWpAA"),
        "the token stays for the next authenticator"
    );
    assert!(Identity::read(&host).is_none(), "no identity is written");
    assert_eq!(host.metric("shieldwall.jwt_auth.passed.not_jwt"), 1);
    // A token shaped like a JWT is still verified, and refused when bad.
    let (action, _) = run(
        &mut passing,
        &mut host,
        "GET",
        "/api/x",
        &[("authorization", "Bearer a.b.c")],
    );
    assert_eq!(action, Action::Pause);
    assert_eq!(reply_code(&host).0, 401);
    // A good JWT passes as before.
    let auth = format!(
        "Bearer {}",
        key.sign(&claims("https://idp.example.com", json!({})))
    );
    let (action, _) = run(
        &mut passing,
        &mut host,
        "GET",
        "/api/x",
        &[("authorization", &auth)],
    );
    assert_eq!(action, Action::Continue);
    assert_eq!(Identity::read(&host).unwrap().auth, vec!["jwt"]);
}

/// The warm path, call by call: a token already in the worker's cache costs these calls out of
/// the VM (each a crossing between the VM and the proxy, priced in bench/RESULTS.md), once the
/// worker's metrics exist. In a proxy the adapter adds the decision record (one property write).
#[test]
fn a_cached_token_makes_only_the_calls_it_needs() {
    use shieldwall_core::testing::CountingHost;
    let key = EcKey::new("k1");
    let mut inner = MockHost::new();
    inner.set_now_secs(NOW);
    let mut host = CountingHost::new(inner);
    let cfg = json!({"providers": {"idp": {"issuer": "https://idp.example.com",
        "audiences": ["orders-api"], "local_jwks": {"keys": [key.jwk()]}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]});
    let mut r = JwtAuth::configure(&mut host, cfg.to_string().as_bytes()).unwrap();
    let auth = format!(
        "Bearer {}",
        key.sign(&claims(
            "https://idp.example.com",
            json!({"exp": NOW + 100})
        ))
    );
    let calls = host.header_calls_when_warm(&mut r, "/orders", &[("authorization", &auth)], |_| {});
    assert_eq!(calls, CALLS_CACHED_TOKEN);
}

const CALLS_CACHED_TOKEN: [&str; 7] = [
    "request_header", // :path
    "request_header", // :method
    "request_header", // authorization
    "now",            // expiry
    "property",       // an earlier identity context, to merge with
    "set_property",   // the identity context
    "remove_header",  // the credential does not travel upstream
];
