//! The filter over the mock host: rules, header removal, claims, profiles, the cache, the JWKS,
//! and every minted token verified by an independent JWT library against the served JWKS.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::testing::{CountingHost, MockHost};
use shieldwall_core::{Action, RootFilter, StreamFilter};
use shieldwall_jose::b64url_decode;

use crate::keys::tests::{ED25519_PEM, P256_PEM};
use crate::keys::PrivateKey;
use crate::IdentityExchange;

const JWKS_PATH: &str = "/.well-known/internal-jwks.json";

fn config() -> Value {
    json!({
      "spiffe_id": "spiffe://{tenant}.bank.example/user/{sub}",
      "token": {
        "issuer": "https://gateway.bank.example",
        "audience": "{tenant}",
        "ttl_s": 300,
        "keys": [ { "kid": "2026-11", "private_key": P256_PEM } ],
        "act": true
      },
      "jwks_path": JWKS_PATH,
      "rules": [ { "match": { "prefix": "/healthz" }, "exchange": "skip" },
                 { "match": { "prefix": "/public/" }, "exchange": "optional" },
                 { "match": { "prefix": "/payments/" }, "audience": "payments", "ttl_s": 60 },
                 { "match": { "prefix": "/tenants/" } } ]
    })
}

fn root(config: &Value) -> (IdentityExchange, MockHost) {
    let mut host = MockHost::new();
    host.filter_name = "identity_exchange";
    let root = IdentityExchange::configure(&mut host, config.to_string().as_bytes()).unwrap();
    (root, host)
}

fn alice() -> Value {
    json!({"sub": "12345", "iss": "https://idp.bank.example", "client_id": "mobile-app",
           "scopes": ["read", "transfer"], "tenant": "bank-a", "auth": ["jwt"],
           "exp": 1_700_000_900u64, "claims": {"sub": "12345", "tenant": "bank-a"}})
}

/// Runs one request through a new stream of `root`; `identity` is written as an authenticator
/// before would have.
fn run(
    root: &mut IdentityExchange,
    host: &mut MockHost,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    identity: Option<&Value>,
) -> Action {
    host.new_stream(method, path, headers);
    if let Some(id) = identity {
        host.properties
            .insert(IDENTITY_PROPERTY.into(), id.to_string().into_bytes());
    }
    let mut stream = root.new_stream(host, 2);
    stream.on_request_headers(host, true)
}

fn bearer(host: &MockHost) -> String {
    let values = host.headers_named("authorization");
    assert_eq!(values.len(), 1, "{values:?}");
    values[0].strip_prefix("Bearer ").unwrap().to_string()
}

fn part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&b64url_decode(seg).unwrap()).unwrap()
}

#[test]
fn a_caller_gets_an_internal_token_and_spiffe_id() {
    let (mut r, mut host) = root(&config());
    let act = run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/accounts",
        &[],
        Some(&alice()),
    );
    assert_eq!(act, Action::Continue);
    assert!(host.local_reply.is_none());
    assert_eq!(
        host.headers_named("x-spiffe-id"),
        vec!["spiffe://bank-a.bank.example/user/12345"]
    );
    let token = bearer(&host);
    assert_eq!(
        part(&token, 0),
        json!({"alg": "ES256", "kid": "2026-11", "typ": "JWT"})
    );
    let claims = part(&token, 1);
    let now = 1_700_000_000u64;
    assert_eq!(claims["iss"], "https://gateway.bank.example");
    assert_eq!(claims["sub"], "spiffe://bank-a.bank.example/user/12345");
    assert_eq!(claims["aud"], "bank-a");
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["nbf"], now);
    assert_eq!(claims["exp"], now + 300);
    assert_eq!(claims["scope"], "read transfer");
    assert_eq!(claims["tenant"], "bank-a");
    assert_eq!(claims["client_id"], "mobile-app");
    assert_eq!(
        claims["act"],
        json!({"sub": "12345", "iss": "https://idp.bank.example"})
    );
    assert_eq!(
        b64url_decode(claims["jti"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );
    assert_eq!(host.metric("shieldwall.identity_exchange.minted"), 1);
    // The rule's audience and lifetime.
    run(
        &mut r,
        &mut host,
        "POST",
        "/payments/transfer",
        &[],
        Some(&alice()),
    );
    let claims = part(&bearer(&host), 1);
    assert_eq!(claims["aud"], "payments");
    assert_eq!(claims["exp"], now + 60);
}

#[test]
fn the_token_never_outlives_the_external_credential() {
    let (mut r, mut host) = root(&config());
    let mut id = alice();
    id["exp"] = json!(1_700_000_100u64);
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(part(&bearer(&host), 1)["exp"], 1_700_000_100u64);
    id["exp"] = json!(1_700_000_000u64);
    let act = run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(act, Action::Pause);
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "expired");
    assert!(host.headers_named("authorization").is_empty());
}

#[test]
fn client_copies_of_both_headers_are_removed_on_every_request() {
    let (mut r, mut host) = root(&config());
    let forged = [
        ("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA"),
        ("x-spiffe-id", "spiffe://bank-a.bank.example/user/admin"),
        ("x-spiffe-id", "spiffe://bank-a.bank.example/user/root"),
    ];
    // Skipped, optional without identity, and minted: never the client's values.
    for (path, identity) in [
        ("/healthz", None),
        ("/public/rates", None),
        ("/tenants/bank-a/x", Some(alice())),
    ] {
        let act = run(&mut r, &mut host, "GET", path, &forged, identity.as_ref());
        assert_eq!(act, Action::Continue, "{path}");
        for (_, v) in host.request_headers.iter() {
            assert!(
                !v.contains("admin") && !v.contains("root") && !v.contains("AAAA"),
                "{path}: {v}"
            );
        }
        assert!(host.headers_named("x-spiffe-id").len() <= 1);
    }
    assert_eq!(
        host.headers_named("x-spiffe-id"),
        vec!["spiffe://bank-a.bank.example/user/12345"]
    );
    // Refused requests too: the reply goes to the client, and nothing forged stays in the request.
    run(&mut r, &mut host, "GET", "/tenants/bank-a/x", &forged, None);
    assert_eq!(host.local_reply.as_ref().unwrap().status, 401);
    assert!(host.headers_named("x-spiffe-id").is_empty());
    assert!(host.headers_named("authorization").is_empty());
}

#[test]
fn rules_required_optional_skip_and_default_deny() {
    let (mut r, mut host) = root(&config());
    // Required without identity: 401, never a 5xx.
    assert_eq!(
        run(&mut r, &mut host, "GET", "/tenants/bank-a/x", &[], None),
        Action::Pause
    );
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"shieldwall\"")
    );
    assert_eq!(reply.json()["error"], "missing_token");
    // Optional with an identity mints, without one passes.
    run(
        &mut r,
        &mut host,
        "GET",
        "/public/rates",
        &[],
        Some(&alice()),
    );
    assert_eq!(part(&bearer(&host), 1)["aud"], "bank-a");
    run(&mut r, &mut host, "GET", "/public/rates", &[], None);
    assert!(host.local_reply.is_none());
    assert!(host.headers_named("authorization").is_empty());
    // Skip mints nothing even with an identity.
    run(&mut r, &mut host, "GET", "/healthz", &[], Some(&alice()));
    assert!(host.headers_named("authorization").is_empty());
    // No rule: refused.
    assert_eq!(
        run(&mut r, &mut host, "GET", "/admin", &[], Some(&alice())),
        Action::Pause
    );
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"], "no_matching_rule");
    // A path that cannot be decided on: 400.
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/a%2f..%2fb",
        &[],
        Some(&alice()),
    );
    assert_eq!(host.local_reply.as_ref().unwrap().status, 400);
    assert_eq!(
        host.metric("shieldwall.identity_exchange.denied.missing_identity"),
        1
    );
    assert_eq!(
        host.metric("shieldwall.identity_exchange.denied.no_matching_rule"),
        1
    );
    assert_eq!(host.metric("shieldwall.identity_exchange.skipped"), 1);
    assert_eq!(
        host.metric("shieldwall.identity_exchange.passed_without_identity"),
        1
    );
}

#[test]
fn hostile_subjects_are_refused_not_mapped() {
    let (mut r, mut host) = root(&config());
    for sub in ["../admin", "a/b", "", "%2f", "..", "12345/../admin"] {
        let mut id = alice();
        id["sub"] = json!(sub);
        assert_eq!(
            run(
                &mut r,
                &mut host,
                "GET",
                "/tenants/bank-a/x",
                &[],
                Some(&id)
            ),
            Action::Pause
        );
        let reply = host.local_reply.clone().unwrap();
        assert_eq!(reply.status, 403, "{sub:?}");
        if !sub.is_empty() {
            assert!(
                !String::from_utf8_lossy(&reply.body).contains(sub),
                "no echo of the value"
            );
        }
        assert!(host.headers_named("authorization").is_empty());
        assert!(host.headers_named("x-spiffe-id").is_empty());
    }
    assert_eq!(
        host.metric("shieldwall.identity_exchange.denied.unmappable_value"),
        5
    );
    assert_eq!(
        host.metric("shieldwall.identity_exchange.denied.missing_field"),
        1
    );
    // A tenant that would change the trust domain.
    let mut id = alice();
    id["tenant"] = json!("evil.example/user");
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(
        host.local_reply.as_ref().unwrap().json()["error"],
        "identity_not_mappable"
    );
    // With escaping, the same values stay inside their segment.
    let mut c = config();
    c["spiffe_segments"] = json!("escape");
    let (mut r, mut host) = root(&c);
    let mut id = alice();
    id["sub"] = json!("../admin");
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(
        host.headers_named("x-spiffe-id"),
        vec!["spiffe://bank-a.bank.example/user/.._2Fadmin"]
    );
}

#[test]
fn an_mtls_spiffe_id_is_kept_unless_configured() {
    let mut id = alice();
    id["spiffe_id"] = json!("spiffe://bank-a.example/ns/payments/sa/gateway");
    let (mut r, mut host) = root(&config());
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(
        part(&bearer(&host), 1)["sub"],
        "spiffe://bank-a.example/ns/payments/sa/gateway"
    );
    let mut c = config();
    c["keep_spiffe_id"] = json!(false);
    let (mut r, mut host) = root(&c);
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(
        part(&bearer(&host), 1)["sub"],
        "spiffe://bank-a.bank.example/user/12345"
    );
}

#[test]
fn an_incoming_act_chain_is_nested_and_bounded() {
    let (mut r, mut host) = root(&config());
    let mut id = alice();
    id["claims"]["act"] = json!({"sub": "batch-job", "act": {"sub": "scheduler"}});
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(
        part(&bearer(&host), 1)["act"],
        json!({"sub": "12345", "iss": "https://idp.bank.example",
               "act": {"sub": "batch-job", "act": {"sub": "scheduler"}}})
    );
    let mut deep = json!({"sub": "x"});
    for _ in 0..10 {
        deep = json!({"sub": "x", "act": deep});
    }
    id["claims"]["act"] = deep;
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(host.local_reply.as_ref().unwrap().status, 403);
    id["claims"]["act"] = json!("not an object");
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(host.local_reply.as_ref().unwrap().status, 403);
}

#[test]
fn rfc9068_profile() {
    let mut c = config();
    c["token"]["profile"] = json!("rfc9068");
    let (mut r, mut host) = root(&c);
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&alice()),
    );
    let token = bearer(&host);
    assert_eq!(part(&token, 0)["typ"], "at+jwt");
    assert_eq!(part(&token, 1)["client_id"], "mobile-app");
    let mut id = alice();
    id.as_object_mut().unwrap().remove("client_id");
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"], "identity_incomplete");
}

#[test]
fn minted_tokens_are_cached_per_identity_and_audience() {
    let (mut r, mut host) = root(&config());
    let path = "/tenants/bank-a/x";
    run(&mut r, &mut host, "GET", path, &[], Some(&alice()));
    let first = bearer(&host);
    host.advance_ms(149_000);
    run(&mut r, &mut host, "GET", path, &[], Some(&alice()));
    assert_eq!(bearer(&host), first, "reused before half of its lifetime");
    assert_eq!(host.metric("shieldwall.identity_exchange.cache_hit"), 1);
    host.advance_ms(1_000);
    run(&mut r, &mut host, "GET", path, &[], Some(&alice()));
    let second = bearer(&host);
    assert_ne!(second, first, "minted again at half of its lifetime");
    assert_ne!(part(&second, 1)["jti"], part(&first, 1)["jti"]);
    // Another audience, another subject: other tokens.
    run(&mut r, &mut host, "GET", "/payments/x", &[], Some(&alice()));
    assert_ne!(bearer(&host), second);
    let mut bob = alice();
    bob["sub"] = json!("67890");
    run(&mut r, &mut host, "GET", path, &[], Some(&bob));
    assert_eq!(
        part(&bearer(&host), 1)["sub"],
        "spiffe://bank-a.bank.example/user/67890"
    );
    // An external credential ending before the cached token: a new, shorter token.
    let mut short = alice();
    short["exp"] = json!(host.now_ns / 1_000_000_000 + 10);
    run(&mut r, &mut host, "GET", path, &[], Some(&short));
    let t = bearer(&host);
    assert_ne!(t, second);
    assert_eq!(part(&t, 1)["exp"], short["exp"]);
    assert_eq!(host.metric("shieldwall.identity_exchange.minted"), 5);
}

#[test]
fn the_cache_is_bounded() {
    let mut c = config();
    c["cache"] = json!({"max_entries": 3});
    let (mut r, mut host) = root(&c);
    for i in 0..50 {
        let mut id = alice();
        id["sub"] = json!(format!("user{i}"));
        run(
            &mut r,
            &mut host,
            "GET",
            "/tenants/bank-a/x",
            &[],
            Some(&id),
        );
        assert!(r.cache_len() <= 3);
    }
    assert_eq!(r.cache_len(), 3);
    c["cache"] = json!({"max_entries": 0});
    let (mut r, mut host) = root(&c);
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&alice()),
    );
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&alice()),
    );
    assert_eq!(host.metric("shieldwall.identity_exchange.minted"), 2);
    assert_eq!(r.cache_len(), 0);
}

#[test]
fn the_jwks_is_served_before_any_rule() {
    let mut c = config();
    let other = PrivateKey::parse(ED25519_PEM).unwrap();
    c["token"]["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kid": "next", "public_jwk": Value::Object(other.public_jwk())}));
    let (mut r, mut host) = root(&c);
    // No rule matches the JWKS path and there is no identity: it is answered anyway.
    assert_eq!(
        run(
            &mut r,
            &mut host,
            "GET",
            &format!("{JWKS_PATH}?x=1"),
            &[],
            None
        ),
        Action::Pause
    );
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    let jwks = reply.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec!["2026-11", "next"]);
    assert!(!String::from_utf8_lossy(&reply.body).contains("\"d\""));
    run(&mut r, &mut host, "HEAD", JWKS_PATH, &[], None);
    assert_eq!(host.local_reply.as_ref().unwrap().status, 200);
    assert!(host.local_reply.as_ref().unwrap().body.is_empty());
    // Other methods go to the rules (and no rule matches).
    run(&mut r, &mut host, "POST", JWKS_PATH, &[], None);
    assert_eq!(host.local_reply.as_ref().unwrap().status, 403);
    assert_eq!(host.metric("shieldwall.identity_exchange.jwks_served"), 2);
}

/// Verifies `token` with the `jsonwebtoken` crate against the JWKS the filter serves.
fn verify_independently(
    r: &mut IdentityExchange,
    host: &mut MockHost,
    token: &str,
    alg: Algorithm,
    aud: &str,
) -> Value {
    let saved_headers = host.request_headers.clone();
    run(r, host, "GET", JWKS_PATH, &[], None);
    let jwks: JwkSet = serde_json::from_slice(&host.local_reply.as_ref().unwrap().body).unwrap();
    host.request_headers = saved_headers;
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).unwrap();
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(alg);
    v.set_audience(&[aud]);
    v.set_issuer(&["https://gateway.bank.example"]);
    v.set_required_spec_claims(&["exp", "nbf", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

#[test]
fn minted_tokens_verify_with_an_independent_library() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut id = alice();
    id["exp"] = json!(now + 3600);
    for (alg, pem, jalg) in [
        ("ES256", P256_PEM, Algorithm::ES256),
        ("EdDSA", ED25519_PEM, Algorithm::EdDSA),
    ] {
        let mut c = config();
        c["token"]["alg"] = json!(alg);
        c["token"]["keys"][0]["private_key"] = json!(pem);
        let (mut r, mut host) = root(&c);
        host.set_now_secs(now);
        run(
            &mut r,
            &mut host,
            "GET",
            "/tenants/bank-a/x",
            &[],
            Some(&id),
        );
        let token = bearer(&host);
        let claims = verify_independently(&mut r, &mut host, &token, jalg, "bank-a");
        assert_eq!(claims["sub"], "spiffe://bank-a.bank.example/user/12345");
        // A changed byte of the payload fails.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1] = shieldwall_jose::b64url_encode(
            serde_json::to_string(
                &json!({"sub": "spiffe://bank-a.bank.example/user/admin", "aud": "bank-a",
                "iss": "https://gateway.bank.example", "exp": now + 60, "nbf": now}),
            )
            .unwrap()
            .as_bytes(),
        );
        let forged = parts.join(".");
        let jwks_reply = {
            run(&mut r, &mut host, "GET", JWKS_PATH, &[], None);
            host.local_reply.clone().unwrap()
        };
        let jwks: JwkSet = serde_json::from_slice(&jwks_reply.body).unwrap();
        let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut v = Validation::new(jalg);
        v.set_audience(&["bank-a"]);
        assert!(
            jsonwebtoken::decode::<Value>(&forged, &key, &v).is_err(),
            "{alg}"
        );
    }
}

#[test]
fn every_mint_has_a_new_jti() {
    let mut c = config();
    c["cache"] = json!({"max_entries": 0});
    let (mut r, mut host) = root(&c);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        run(
            &mut r,
            &mut host,
            "GET",
            "/tenants/bank-a/x",
            &[],
            Some(&alice()),
        );
        assert!(seen.insert(part(&bearer(&host), 1)["jti"].as_str().unwrap().to_string()));
    }
}

fn decision(host: &MockHost) -> Value {
    let raw = host
        .property_value("shieldwall.decision.identity_exchange")
        .expect("a decision was recorded");
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn every_request_records_what_was_decided_and_why() {
    let (mut r, mut host) = root(&config());
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&alice()),
    );
    assert_eq!(decision(&host)["decision"], "allow");
    assert_eq!(decision(&host)["reason"], "minted");
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&alice()),
    );
    assert_eq!(decision(&host)["reason"], "cache_hit");
    run(&mut r, &mut host, "GET", "/healthz", &[], None);
    assert_eq!(decision(&host)["reason"], "skipped");
    run(&mut r, &mut host, "GET", JWKS_PATH, &[], None);
    assert_eq!(decision(&host)["reason"], "jwks_served");
    let mut id = alice();
    id["sub"] = json!("../admin");
    run(
        &mut r,
        &mut host,
        "GET",
        "/tenants/bank-a/x",
        &[],
        Some(&id),
    );
    assert_eq!(
        decision(&host),
        json!({"decision": "deny", "reason": "unmappable_value", "status": 403})
    );
    run(&mut r, &mut host, "GET", "/tenants/bank-a/x", &[], None);
    assert_eq!(
        decision(&host),
        json!({"decision": "deny", "reason": "missing_identity", "status": 401})
    );
}

/// A JWT payload as Envoy's `jwt_authn` writes it to dynamic metadata (the proxy-wasm pairs
/// encoding; a number as the 8 bytes of an `f64`).
fn jwt_authn_payload(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = (entries.len() as u32).to_le_bytes().to_vec();
    for (k, v) in entries {
        out.extend((k.len() as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
    }
    for (k, v) in entries {
        out.extend(k.as_bytes());
        out.push(0);
        out.extend(v);
        out.push(0);
    }
    out
}

fn set_jwt_authn_payload(host: &mut MockHost, payload: &[u8]) {
    host.properties.insert(
        [
            "metadata",
            "filter_metadata",
            "envoy.filters.http.jwt_authn",
            "jwt_payload",
        ]
        .join("\0"),
        payload.to_vec(),
    );
}

fn carol(sub: &str, exp: u64) -> Vec<u8> {
    jwt_authn_payload(&[
        ("iss", b"https://idp.bank.example".to_vec()),
        ("sub", sub.as_bytes().to_vec()),
        ("tenant", b"bank-a".to_vec()),
        ("scope", b"read transfer".to_vec()),
        ("client_id", b"mobile-app".to_vec()),
        ("exp", (exp as f64).to_le_bytes().to_vec()),
    ])
}

#[test]
fn identity_from_jwt_authn_mints_from_the_payload_envoy_verified() {
    let mut cfg = config();
    cfg["identity_from"] = json!("jwt_authn");
    let (mut r, mut host) = root(&cfg);
    let now = 1_700_000_000u64;
    let path = "/tenants/bank-a/x";
    let forged = [("x-spiffe-id", "spiffe://bank-a.bank.example/user/admin")];

    // No payload (jwt_authn let the request through without a token): 401 on a required route,
    // passed on an optional one; the client's header never stays.
    assert_eq!(
        run(&mut r, &mut host, "GET", path, &forged, None),
        Action::Pause
    );
    assert_eq!(host.local_reply.as_ref().unwrap().status, 401);
    run(&mut r, &mut host, "GET", "/public/x", &forged, None);
    assert!(host.local_reply.is_none());
    assert!(host.headers_named("x-spiffe-id").is_empty());

    host.new_stream("GET", path, &forged);
    set_jwt_authn_payload(&mut host, &carol("12345", now + 100));
    let mut stream = r.new_stream(&mut host, 2);
    assert_eq!(stream.on_request_headers(&mut host, true), Action::Continue);
    assert_eq!(
        host.headers_named("x-spiffe-id"),
        vec!["spiffe://bank-a.bank.example/user/12345"]
    );
    let first = bearer(&host);
    let claims = part(&first, 1);
    assert_eq!(claims["sub"], "spiffe://bank-a.bank.example/user/12345");
    assert_eq!(claims["aud"], "bank-a");
    assert_eq!(claims["scope"], "read transfer");
    assert_eq!(claims["client_id"], "mobile-app");
    assert_eq!(
        claims["act"],
        json!({"sub": "12345", "iss": "https://idp.bank.example"})
    );
    // Never past the external token's `exp`, which came as a number in the metadata.
    assert_eq!(claims["exp"], now + 100);

    // The same payload again, its members in another order (Envoy keeps no order): the cached
    // token. Another subject: its own token.
    let reordered = jwt_authn_payload(&[
        ("exp", ((now + 100) as f64).to_le_bytes().to_vec()),
        ("client_id", b"mobile-app".to_vec()),
        ("scope", b"read transfer".to_vec()),
        ("tenant", b"bank-a".to_vec()),
        ("sub", b"12345".to_vec()),
        ("iss", b"https://idp.bank.example".to_vec()),
    ]);
    assert_ne!(reordered, carol("12345", now + 100));
    host.new_stream("GET", path, &[]);
    set_jwt_authn_payload(&mut host, &reordered);
    r.new_stream(&mut host, 3)
        .on_request_headers(&mut host, true);
    assert_eq!(bearer(&host), first);
    assert_eq!(host.metric("shieldwall.identity_exchange.cache_hit"), 1);
    host.new_stream("GET", path, &[]);
    set_jwt_authn_payload(&mut host, &carol("12346", now + 100));
    r.new_stream(&mut host, 4)
        .on_request_headers(&mut host, true);
    assert_eq!(
        part(&bearer(&host), 1)["sub"],
        "spiffe://bank-a.bank.example/user/12346"
    );
    // Only `exp` differs: a token that ends with it, not the cached one.
    host.new_stream("GET", path, &[]);
    set_jwt_authn_payload(&mut host, &carol("12345", now + 50));
    r.new_stream(&mut host, 5)
        .on_request_headers(&mut host, true);
    assert_eq!(part(&bearer(&host), 1)["exp"], now + 50);
    assert_eq!(host.metric("shieldwall.identity_exchange.minted"), 3);

    // The default source ignores the metadata: without an identity context, 401.
    let (mut plain, mut host) = root(&config());
    host.new_stream("GET", path, &[]);
    set_jwt_authn_payload(&mut host, &carol("12345", now + 100));
    plain
        .new_stream(&mut host, 2)
        .on_request_headers(&mut host, true);
    assert_eq!(host.local_reply.as_ref().unwrap().status, 401);
}

#[test]
fn the_cache_key_is_lossless_for_binary_identities() {
    use crate::token::TokenCache;
    // Two byte strings that a lossy UTF-8 conversion would make equal.
    let a = TokenCache::key(0, &[b'x', 0x80]);
    let b = TokenCache::key(0, &[b'x', 0x81]);
    assert_ne!(a, b);
    assert_eq!(a, "0#7880");
    assert_eq!(TokenCache::key(1, b"{}"), "1\n{}");
    // Text and its hex spelling never meet: different separators.
    assert_ne!(TokenCache::key(0, b"7880"), a);
}

/// The cached path, call by call: what a request costs in calls out of the VM once its caller's
/// token is cached. Each is a crossing between V8 and Envoy (and a read also a call back into the
/// VM for memory), the bulk of a cheap filter's cost in Envoy.
#[test]
fn the_cached_path_makes_only_the_calls_it_needs() {
    let (mut r, host) = root(&config());
    let mut host = CountingHost {
        inner: host,
        calls: Default::default(),
    };
    let path = "/tenants/bank-a/x";
    // Round 0 mints, round 1 defines the cache_hit metric once per VM; round 2 is the steady state.
    for round in 0..3 {
        host.inner
            .new_stream("GET", path, &[("x-spiffe-id", "forged")]);
        host.inner
            .properties
            .insert(IDENTITY_PROPERTY.into(), alice().to_string().into_bytes());
        host.calls.borrow_mut().clear();
        let mut stream = r.new_stream(&mut host, 2);
        assert_eq!(stream.on_request_headers(&mut host, true), Action::Continue);
        if round < 2 {
            continue;
        }
        assert_eq!(
            host.inner.metric("shieldwall.identity_exchange.cache_hit"),
            2
        );
        assert_eq!(
            *host.calls.borrow(),
            [
                "request_header", // :path
                "request_header", // :method
                "property",       // the identity context (not parsed on a hit)
                "now",            // the cache entry's age
                "replace_header", // the internal token, replacing every client copy
                "replace_header", // the SPIFFE ID, likewise
                "set_property",   // the decision record
            ]
        );
        assert_eq!(
            host.inner.headers_named("x-spiffe-id"),
            vec!["spiffe://bank-a.bank.example/user/12345"]
        );
    }
}
