//! identity-exchange over the real release modules: jwt-auth verifies the caller's token and
//! writes the identity context, identity-exchange mints the internal token from it. Keys come
//! from the VM's environment (PKCS#8 made by ring at test time, so the module parses another
//! implementation's encoding), the minted tokens are verified with ring against the JWKS the
//! module serves, and nothing the client sends under the internal headers reaches the upstream.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p jwt-auth -p identity-exchange

// Test code: a failed expectation is meant to panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use host_tests::{jws, wasm_path, Envoy, Outcome, Plugin, Request, Worker};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::{json, Value};

const EDGE_SECRET: &[u8] = b"identity-exchange-edge-secret-of-32-bytes";
const EDGE_ISSUER: &str = "https://idp.bank.example";
const GATEWAY_ISSUER: &str = "https://gateway.bank.example";
const JWKS_PATH: &str = "/.well-known/internal-jwks.json";

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

fn pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// A fresh P-256 private key as PKCS#8 PEM.
fn p256_pem() -> String {
    let rng = SystemRandom::new();
    let doc =
        signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
    pem(doc.as_ref())
}

/// A fresh Ed25519 private key as PKCS#8 PEM (ring writes the form with the public key).
fn ed25519_pem() -> (String, Vec<u8>) {
    let doc = signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let kp = signature::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    (pem(doc.as_ref()), kp.public_key().as_ref().to_vec())
}

/// An HS256 access token of the edge IdP.
fn edge_token(envoy: &Envoy, sub: &str, tenant: &str, extra: Value) -> String {
    let now = envoy.now_unix_secs();
    let mut claims = json!({"iss": EDGE_ISSUER, "sub": sub, "aud": "bank-api", "client_id": "mobile",
                            "scope": "read transfer", "tenant": tenant, "iat": now, "exp": now + 600});
    if let (Some(c), Value::Object(more)) = (claims.as_object_mut(), extra) {
        c.extend(more);
    }
    jws::hs256(
        EDGE_SECRET,
        &json!({"alg": "HS256", "kid": "edge"}),
        &claims,
    )
}

fn jwt_auth() -> Plugin {
    Plugin::new(wasm_path("jwt-auth"))
        .name("jwt")
        .vm_id("jwt")
        .json(&json!({
            "providers": {"edge": {
                "issuer": EDGE_ISSUER, "audiences": ["bank-api"],
                "local_jwks": {"keys": [{"kty": "oct", "kid": "edge", "alg": "HS256", "k": jws::b64url(EDGE_SECRET)}]}}},
            "rules": [{"match": {"prefix": "/healthz"}},
                      {"match": {"prefix": "/"}, "requires": {"allow_missing": {"provider": "edge"}}}]
        }))
}

fn exchange_config(alg: &str, extra_keys: Vec<Value>) -> Value {
    let mut keys = vec![json!({"kid": "2026-11", "private_key_env": "SHIELDWALL_SIGNING_KEY"})];
    keys.extend(extra_keys);
    json!({
        "spiffe_id": "spiffe://{tenant}.bank.example/user/{sub}",
        "token": {"issuer": GATEWAY_ISSUER, "audience": "{tenant}", "ttl_s": 300, "alg": alg,
                  "keys": keys, "act": true},
        "jwks_path": JWKS_PATH,
        "rules": [{"match": {"prefix": "/healthz"}, "exchange": "skip"},
                  {"match": {"prefix": "/payments/"}, "audience": "payments", "ttl_s": 60},
                  {"match": {"prefix": "/tenants/"}}]
    })
}

fn exchange(config: &Value, key_pem: &str) -> Plugin {
    Plugin::new(wasm_path("identity-exchange"))
        .name("exchange")
        .vm_id("exchange")
        .json(config)
        .env("SHIELDWALL_SIGNING_KEY", key_pem)
}

fn chain(envoy: &Envoy, config: &Value, key_pem: &str) -> Worker {
    envoy
        .worker(&[jwt_auth(), exchange(config, key_pem)])
        .unwrap_or_else(|e| panic!("{e:#}"))
}

fn send(worker: &Worker, req: Request) -> Outcome {
    let mut s = worker.stream(req);
    let out = s.send_request();
    s.finish();
    out
}

fn with_token(path: &str, token: &str) -> Request {
    Request::get(path).header("authorization", &format!("Bearer {token}"))
}

/// The internal token the upstream received.
fn internal_token(out: &Outcome) -> String {
    let up = out.upstream();
    let values = up.header_all("authorization");
    assert_eq!(values.len(), 1, "{values:?}");
    values[0].strip_prefix("Bearer ").unwrap().to_string()
}

fn jwks(worker: &Worker) -> Value {
    let out = send(worker, Request::get(JWKS_PATH));
    let reply = out.local_reply();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    reply.body_json()
}

/// Verifies the token's signature with ring against the key of its `kid` in `jwks`, and returns
/// its header and claims.
fn verify(token: &str, jwks: &Value) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&unb64(parts[0])).unwrap();
    let claims: Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("no key {} in {jwks}", header["kid"]));
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = unb64(parts[2]);
    match header["alg"].as_str().unwrap() {
        "ES256" => {
            let mut point = vec![4u8];
            point.extend(unb64(jwk["x"].as_str().unwrap()));
            point.extend(unb64(jwk["y"].as_str().unwrap()));
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &sig)
                .unwrap();
        }
        "EdDSA" => {
            signature::UnparsedPublicKey::new(
                &signature::ED25519,
                unb64(jwk["x"].as_str().unwrap()),
            )
            .verify(signed.as_bytes(), &sig)
            .unwrap();
        }
        other => panic!("unexpected alg {other}"),
    }
    (header, claims)
}

#[test]
fn the_bank_flow_on_the_real_modules() {
    let envoy = Envoy::new();
    let w = chain(&envoy, &exchange_config("ES256", vec![]), &p256_pem());
    let alice = edge_token(&envoy, "12345", "bank-a", json!({}));
    let out = send(&w, with_token("/tenants/bank-a/accounts", &alice));
    let up = out.upstream();
    assert_eq!(
        up.header_all("x-spiffe-id"),
        vec!["spiffe://bank-a.bank.example/user/12345"]
    );
    let token = internal_token(&out);
    assert_ne!(token, alice, "the external token does not travel inward");
    let (header, claims) = verify(&token, &jwks(&w));
    assert_eq!(
        header,
        json!({"alg": "ES256", "kid": "2026-11", "typ": "JWT"})
    );
    let now = envoy.now_unix_secs();
    assert_eq!(claims["iss"], GATEWAY_ISSUER);
    assert_eq!(claims["sub"], "spiffe://bank-a.bank.example/user/12345");
    assert_eq!(claims["aud"], "bank-a");
    assert_eq!(claims["scope"], "read transfer");
    assert_eq!(claims["tenant"], "bank-a");
    assert_eq!(claims["client_id"], "mobile");
    assert_eq!(claims["act"], json!({"sub": "12345", "iss": EDGE_ISSUER}));
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 300);
    // The payments rule: its own audience and lifetime.
    let out = send(&w, with_token("/payments/transfer", &alice));
    let (_, claims) = verify(&internal_token(&out), &jwks(&w));
    assert_eq!(claims["aud"], "payments");
    assert_eq!(claims["exp"], now + 60);
    assert_eq!(envoy.metric("shieldwall.identity_exchange.minted"), Some(2));
    assert_eq!(
        envoy.metric("shieldwall.identity_exchange.jwks_served"),
        Some(2)
    );
}

#[test]
fn nothing_a_client_sends_poses_as_an_internal_identity() {
    let envoy = Envoy::new();
    let w = chain(&envoy, &exchange_config("ES256", vec![]), &p256_pem());
    let alice = edge_token(&envoy, "12345", "bank-a", json!({}));
    let forged_id = "spiffe://bank-a.bank.example/user/admin";
    // A client-sent SPIFFE ID next to a good token: replaced by the verified one.
    let out = send(
        &w,
        with_token("/tenants/bank-a/x", &alice).header("x-spiffe-id", forged_id),
    );
    assert_eq!(
        out.upstream().header_all("x-spiffe-id"),
        vec!["spiffe://bank-a.bank.example/user/12345"]
    );
    // On a skipped route, both headers the client sent are removed.
    let out = send(
        &w,
        Request::get("/healthz")
            .header("x-spiffe-id", forged_id)
            .header("authorization", "Bearer whatever"),
    );
    assert!(out.upstream().header_all("x-spiffe-id").is_empty());
    assert!(out.upstream().header_all("authorization").is_empty());
    // An internal token presented at the edge: jwt-auth refuses it (not its issuer, not its key).
    let internal = internal_token(&send(&w, with_token("/tenants/bank-a/x", &alice)));
    let out = send(&w, with_token("/tenants/bank-a/x", &internal));
    assert_eq!(out.local_reply().status(), 401);
    // No credential at all on a route that needs one: 401 from identity-exchange, never a 5xx.
    let out = send(
        &w,
        Request::get("/tenants/bank-a/x").header("x-spiffe-id", forged_id),
    );
    assert_eq!(out.local_reply().status(), 401);
    assert_eq!(out.local_reply().body_json()["error"], "missing_token");
    // A subject that would climb out of its segment: refused, not mapped.
    let hostile = edge_token(&envoy, "../admin", "bank-a", json!({}));
    let out = send(&w, with_token("/tenants/bank-a/x", &hostile));
    assert_eq!(out.local_reply().status(), 403);
    assert_eq!(
        out.local_reply().body_json()["error"],
        "identity_not_mappable"
    );
    assert_eq!(
        envoy.metric("shieldwall.identity_exchange.denied.unmappable_value"),
        Some(1)
    );
    // No rule: default deny.
    let out = send(&w, with_token("/admin", &alice));
    assert_eq!(out.local_reply().status(), 403);
}

#[test]
fn a_steady_caller_costs_a_cache_lookup_until_half_the_lifetime() {
    let envoy = Envoy::new();
    let w = chain(&envoy, &exchange_config("ES256", vec![]), &p256_pem());
    let alice = edge_token(&envoy, "12345", "bank-a", json!({}));
    let first = internal_token(&send(&w, with_token("/tenants/bank-a/x", &alice)));
    for _ in 0..5 {
        envoy.advance(Duration::from_secs(20));
        assert_eq!(
            internal_token(&send(&w, with_token("/tenants/bank-a/x", &alice))),
            first
        );
    }
    envoy.advance(Duration::from_secs(50));
    let next = internal_token(&send(&w, with_token("/tenants/bank-a/x", &alice)));
    assert_ne!(next, first);
    assert_eq!(
        envoy.metric("shieldwall.identity_exchange.cache_hit"),
        Some(5)
    );
    assert_eq!(envoy.metric("shieldwall.identity_exchange.minted"), Some(2));
}

#[test]
fn eddsa_with_a_published_next_key() {
    let envoy = Envoy::new();
    let (pem, _) = ed25519_pem();
    let (_, next_public) = ed25519_pem();
    let next = json!({"kid": "2026-12", "public_jwk": {"kty": "OKP", "crv": "Ed25519", "x": jws::b64url(&next_public)}});
    let w = chain(&envoy, &exchange_config("EdDSA", vec![next]), &pem);
    let alice = edge_token(&envoy, "12345", "bank-a", json!({}));
    let out = send(&w, with_token("/tenants/bank-a/x", &alice));
    let keys = jwks(&w);
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec!["2026-11", "2026-12"]);
    let (header, _) = verify(&internal_token(&out), &keys);
    assert_eq!(header["alg"], "EdDSA");
}

#[test]
fn a_missing_or_bad_key_is_refused_at_configuration() {
    let envoy = Envoy::new();
    let config = exchange_config("ES256", vec![]);
    let no_env = Plugin::new(wasm_path("identity-exchange"))
        .name("exchange")
        .vm_id("exchange")
        .json(&config);
    let err = envoy.worker(&[no_env]).err().unwrap();
    let text = format!("{err:#}");
    assert!(text.contains("token.keys[0].private_key_env"), "{text}");
    let err = envoy
        .worker(&[exchange(
            &config,
            "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----",
        )])
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("PKCS#8"), "{err:#}");
    // An Ed25519 key where ES256 is configured.
    let err = envoy
        .worker(&[exchange(&config, &ed25519_pem().0)])
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("not a ES256 key"), "{err:#}");
}
