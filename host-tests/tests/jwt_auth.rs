//! jwt-auth over the real release module: the JWKS life cycle across workers, the request path,
//! refused configuration, and robustness against hostile tokens.
//!
//! Tokens are minted here with ring (ES256, EdDSA; RS256 with a key `openssl genpkey` makes), so
//! the file needs nothing but the module and the harness.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use host_tests::jws::{self, b64url};
use host_tests::{
    wasm_path, CalloutRequest, Cluster, Envoy, LocalReply, Outcome, Plugin, Reply, Request,
    TimeoutBehavior, Worker, FLUSH_ENV,
};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example.com";
const JWKS_AUTHORITY: &str = "idp.example.com:8443";
const JWKS_PATH: &str = "/oauth2/jwks";
const VM_ID: &str = "jwt";
const PLUGIN: &str = "jwt";

// ------------------------------------------------------------------ tokens

enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

/// A signing key with its `kid`, its public JWK, and a way to mint tokens.
struct Key {
    kid: String,
    signer: Signer,
}

impl Key {
    fn es256(kid: &str) -> Key {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Es256(pair),
        }
    }

    fn eddsa(kid: &str) -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::EdDsa(pair),
        }
    }

    /// RSA 2048 from `openssl genpkey` (ring signs RSA but does not generate keys).
    fn rs256(kid: &str) -> Key {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
            ])
            .output()
            .expect("openssl genpkey (the RS256 test key)");
        assert!(out.status.success(), "openssl genpkey failed: {out:?}");
        // `-outform DER` writes the RSAPrivateKey structure (PKCS#1), which ring reads too.
        let pair = RsaKeyPair::from_der(&out.stdout).expect("an RSA private key");
        Key {
            kid: kid.into(),
            signer: Signer::Rs256(pair),
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Es256(_) => "ES256",
            Signer::EdDsa(_) => "EdDSA",
            Signer::Rs256(_) => "RS256",
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Es256(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                       "x": b64url(&point[1..33]), "y": b64url(&point[33..65])})
            }
            Signer::EdDsa(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "alg": "EdDSA", "use": "sig",
                       "x": b64url(pair.public_key().as_ref())})
            }
            Signer::Rs256(pair) => {
                let c: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
                json!({"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                       "n": b64url(&c.n), "e": b64url(&c.e)})
            }
        }
    }

    fn sign_raw(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Es256(pair) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
            Signer::EdDsa(pair) => pair.sign(input).as_ref().to_vec(),
            Signer::Rs256(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input, &mut sig).unwrap();
                sig
            }
        }
    }

    /// A compact JWS with this header (as given) and these claims, signed by this key.
    fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        jws::compact(header, claims.to_string().as_bytes(), |input| {
            self.sign_raw(input)
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "typ": "at+jwt", "kid": self.kid});
        self.sign_with_header(&header, claims)
    }
}

fn jwks(keys: &[&Key]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// Claims of a good token at the harness's current time; `extra` overrides.
fn claims(envoy: &Envoy, extra: Value) -> Value {
    let now = envoy.now_unix_secs();
    let mut c = json!({"iss": ISSUER, "sub": "alice", "aud": "orders-api", "iat": now,
                       "exp": now + 3600, "client_id": "orders-reader",
                       "scope": "orders:read orders:write", "tenant": "a", "tier": "gold",
                       "jti": format!("{now}-{}", rand_u64())});
    if let (Some(obj), Value::Object(more)) = (c.as_object_mut(), extra) {
        obj.extend(more);
    }
    c
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b).unwrap();
    u64::from_le_bytes(b)
}

// ------------------------------------------------------------------ setup

fn config(extra_provider: Value, extra_remote: Value) -> Value {
    let mut remote = json!({"cluster": "idp", "uri": format!("https://{JWKS_AUTHORITY}{JWKS_PATH}"),
                            "timeout_ms": 1000, "cache_duration_s": 60, "refetch_min_interval_s": 10});
    if let (Some(o), Value::Object(more)) = (remote.as_object_mut(), extra_remote) {
        o.extend(more);
    }
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": ["orders-api"],
        "remote_jwks": remote,
        "claim_to_headers": [{"claim": "sub", "header": "x-jwt-sub"},
                             {"claim": "tenant", "header": "x-jwt-tenant"}]
    });
    if let (Some(o), Value::Object(more)) = (provider.as_object_mut(), extra_provider) {
        o.extend(more);
    }
    json!({
        "realm": "orders",
        "providers": {"idp": provider},
        "rules": [
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/billing/"}, "requires": {"provider": "idp", "audiences": ["billing-api"]}},
            {"match": {"prefix": "/api/"}, "requires": {"provider": "idp"}}
        ]
    })
}

fn plugin(config: &Value) -> Plugin {
    Plugin::new(wasm_path("jwt-auth"))
        .name(PLUGIN)
        .vm_id(VM_ID)
        .json(config)
}

/// An IdP cluster serving whatever JWKS `doc` holds, counting its calls.
struct Idp {
    doc: Rc<std::cell::RefCell<Reply>>,
    calls: Rc<Cell<usize>>,
}

impl Idp {
    fn install(envoy: &Envoy, keys: &[&Key]) -> Idp {
        let doc = Rc::new(std::cell::RefCell::new(Reply::json(200, &jwks(keys))));
        let calls = Rc::new(Cell::new(0));
        let (d, c) = (doc.clone(), calls.clone());
        envoy.cluster(
            "idp",
            Cluster::scripted(move |_: &CalloutRequest| {
                c.set(c.get() + 1);
                d.borrow().clone()
            }),
        );
        Idp { doc, calls }
    }
    fn serve(&self, reply: Reply) {
        *self.doc.borrow_mut() = reply;
    }
    fn serve_keys(&self, keys: &[&Key]) {
        self.serve(Reply::json(200, &jwks(keys)));
    }
    fn calls(&self) -> usize {
        self.calls.get()
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Sends a request and lets the harness run until it is decided (callouts, ticks).
fn decide(envoy: &Envoy, worker: &Worker, req: Request) -> Outcome {
    let mut s = worker.stream(req);
    let mut out = s.send_request();
    for _ in 0..20 {
        if !out.is_paused() {
            break;
        }
        envoy.advance(Duration::from_millis(100));
        out = s.outcome();
    }
    s.finish();
    out
}

fn get(envoy: &Envoy, worker: &Worker, path: &str, token: &str) -> Outcome {
    decide(
        envoy,
        worker,
        Request::get(path).header("authorization", &bearer(token)),
    )
}

fn reply(out: &Outcome) -> &LocalReply {
    match out {
        Outcome::LocalReply(r) => r,
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn error_code(out: &Outcome) -> (u16, String) {
    let r = reply(out);
    (
        r.status(),
        r.body_json()["error"].as_str().unwrap_or("").to_string(),
    )
}

fn assert_passes(out: &Outcome, worker: &Worker) {
    assert!(
        matches!(out, Outcome::Upstream(_)),
        "expected the request upstream, got {out:?}\n--- guest log ---\n{}",
        worker.log_text()
    );
}

/// An Envoy with one IdP serving `keys`, and a worker whose first fetch is done.
fn ready(keys: &[&Key], cfg: &Value) -> (Envoy, Idp, Worker) {
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, keys);
    let worker = envoy.worker(&[plugin(cfg)]).unwrap();
    envoy.advance(Duration::from_millis(300));
    assert_eq!(idp.calls(), 1, "the first tick fetched the key set");
    (envoy, idp, worker)
}

// ------------------------------------------------------------------ JWKS life cycle

#[test]
fn first_request_waits_for_the_first_fetch_and_resumes() {
    let key = Key::es256("k1");
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, &[&key]);
    // The IdP takes 50 ms to answer.
    let (doc, calls) = (idp.doc.clone(), idp.calls.clone());
    envoy.cluster(
        "idp",
        Cluster::delayed(Duration::from_millis(50), move |_| {
            calls.set(calls.get() + 1);
            doc.borrow().clone()
        }),
    );
    let worker = envoy
        .worker(&[plugin(&config(json!({}), json!({})))])
        .unwrap();
    assert_eq!(worker.tick_period(PLUGIN), Some(Duration::from_millis(200)));

    let token = key.sign(&claims(&envoy, json!({})));
    let mut s = worker.stream(Request::get("/api/orders").header("authorization", &bearer(&token)));
    let first = s.send_request();
    assert!(
        first.is_paused(),
        "no keys yet: the request waits, got {first:?}\n{}",
        worker.log_text()
    );
    let calls = envoy.callouts();
    assert_eq!(calls.len(), 1, "the waiting request started the fetch");
    let call = &calls[0];
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.method(), "GET");
    assert_eq!(call.path(), JWKS_PATH);
    assert_eq!(call.header(":authority"), Some(JWKS_AUTHORITY));
    assert_eq!(call.timeout, Some(Duration::from_millis(1000)));

    // A second request on the same worker waits for the same fetch.
    let mut s2 =
        worker.stream(Request::get("/api/orders").header("authorization", &bearer(&token)));
    assert!(s2.send_request().is_paused());

    envoy.advance(Duration::from_millis(49));
    assert!(s.outcome().is_paused() && s2.outcome().is_paused());
    envoy.advance(Duration::from_millis(1));
    let up = s.outcome();
    assert_passes(&up, &worker);
    assert_eq!(up.upstream().header("x-jwt-sub"), Some("alice"));
    assert_passes(&s2.outcome(), &worker);
    // Ticks that follow find the key set fresh: no second fetch.
    envoy.advance(Duration::from_secs(2));
    assert_eq!(idp.calls(), 1);
    assert_eq!(envoy.metric("shieldwall.jwt_auth.jwks.fetch.ok"), Some(1));
    assert_eq!(envoy.metric("shieldwall.jwt_auth.jwks.idp.keys"), Some(1));
    assert!(envoy
        .shared_data(
            VM_ID,
            &format!("shieldwall/jwt_auth/{PLUGIN}/jwks/idp/keys")
        )
        .is_some_and(|v| String::from_utf8_lossy(&v).contains("\"k1\"")));
    s.finish();
    s2.finish();
}

#[test]
fn workers_share_one_fetch() {
    let key = Key::es256("k1");
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, &[&key]);
    // The IdP answers after 150 ms, so every worker sees the fetch in flight.
    let slow = idp.doc.clone();
    let calls = idp.calls.clone();
    envoy.cluster(
        "idp",
        Cluster::delayed(Duration::from_millis(150), move |_| {
            calls.set(calls.get() + 1);
            slow.borrow().clone()
        }),
    );
    let cfg = config(json!({}), json!({}));
    let workers: Vec<Worker> = (0..3)
        .map(|_| envoy.worker(&[plugin(&cfg)]).unwrap())
        .collect();
    let token = key.sign(&claims(&envoy, json!({})));
    let mut streams: Vec<_> = workers
        .iter()
        .map(|w| {
            let mut s =
                w.stream(Request::get("/api/orders").header("authorization", &bearer(&token)));
            assert!(s.send_request().is_paused());
            s
        })
        .collect();
    envoy.advance(Duration::from_millis(400));
    for (s, w) in streams.iter().zip(&workers) {
        assert_passes(&s.outcome(), w);
    }
    assert_eq!(
        idp.calls(),
        1,
        "three workers, one fetch: {:?}",
        envoy.callouts()
    );
    // Later ticks on every worker take the stored set; still one fetch.
    envoy.advance(Duration::from_secs(5));
    assert_eq!(idp.calls(), 1);
    for w in &workers {
        assert_passes(&get(&envoy, w, "/api/x", &token), w);
    }
    for s in streams.drain(..) {
        s.finish();
    }
}

#[test]
fn the_key_set_is_refreshed_before_cache_duration() {
    let key = Key::es256("k1");
    let cfg = config(json!({}), json!({}));
    let (envoy, idp, worker) = ready(&[&key], &cfg);
    let other = envoy.worker(&[plugin(&cfg)]).unwrap();
    // cache_duration_s 60: the refresh is due 10 % (6 s) before, at 54 s.
    envoy.advance(Duration::from_secs(53));
    assert_eq!(idp.calls(), 1, "not yet");
    envoy.advance(Duration::from_millis(1300));
    assert_eq!(idp.calls(), 2, "refreshed before the set runs out");
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.jwks.fetch.started.refresh"),
        Some(1)
    );
    envoy.advance(Duration::from_secs(30));
    assert_eq!(idp.calls(), 2, "one refresh for both workers");
    let token = key.sign(&claims(&envoy, json!({})));
    assert_passes(&get(&envoy, &worker, "/api/x", &token), &worker);
    assert_passes(&get(&envoy, &other, "/api/x", &token), &other);
}

#[test]
fn a_flush_faster_than_the_filters_tick_keeps_the_filters_period() {
    // Counters flushed every 50 ms, jwt-auth's own tick every 200 ms: the module ticks every
    // 50 ms and runs jwt-auth's tick on every fourth.
    let key = Key::es256("k1");
    let envoy = Envoy::new();
    let idp = Idp::install(&envoy, &[&key]);
    let worker = envoy
        .worker(&[plugin(&config(json!({}), json!({}))).env(FLUSH_ENV, "50")])
        .unwrap();
    assert_eq!(worker.tick_period(PLUGIN), Some(Duration::from_millis(50)));
    envoy.advance(Duration::from_millis(150));
    assert_eq!(
        idp.calls(),
        0,
        "three flushes, not yet the filter's first tick"
    );
    envoy.advance(Duration::from_millis(60));
    assert_eq!(
        idp.calls(),
        1,
        "the filter's first tick fetched the key set"
    );
    envoy.advance(Duration::from_millis(50));
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.jwks.fetch.started.initial"),
        Some(1),
        "counted, and handed over on a flush tick"
    );
    let token = key.sign(&claims(&envoy, json!({})));
    assert_passes(&get(&envoy, &worker, "/api/x", &token), &worker);
    assert_eq!(envoy.metric("shieldwall.jwt_auth.allowed"), Some(0));
    envoy.advance(Duration::from_millis(50));
    assert_eq!(envoy.metric("shieldwall.jwt_auth.allowed"), Some(1));
}

#[test]
fn key_rotation_unknown_kid_refetches_once_and_the_old_key_is_refused() {
    let k1 = Key::es256("k1");
    let k2 = Key::eddsa("k2");
    let (envoy, idp, worker) = ready(&[&k1], &config(json!({}), json!({})));
    let old = k1.sign(&claims(&envoy, json!({})));
    assert_passes(&get(&envoy, &worker, "/api/x", &old), &worker);
    assert_passes(&get(&envoy, &worker, "/api/x", &old), &worker); // now cached

    // The IdP rotates to k2.
    idp.serve_keys(&[&k2]);
    envoy.advance(Duration::from_secs(11));
    let new = k2.sign(&claims(&envoy, json!({})));
    let out = get(&envoy, &worker, "/api/x", &new);
    assert_passes(&out, &worker);
    assert_eq!(idp.calls(), 2, "one refetch for the unknown kid");
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.jwks.fetch.started.unknown_kid"),
        Some(1)
    );
    assert_passes(&get(&envoy, &worker, "/api/x", &new), &worker);
    // The old key's cached token left with its key.
    let out = get(&envoy, &worker, "/api/x", &old);
    assert_eq!(error_code(&out), (401, "unknown_kid".into()));
    assert_eq!(
        idp.calls(),
        2,
        "the old kid costs no fetch within the interval"
    );
}

/// The forgery of a weak Ed25519 key: with the identity point in the IdP's key set, the signature
/// R = identity, S = 0 verifies every message. The module skips that key at import (logged,
/// counted), keeps the rest of the set, and the forged admin token is refused.
#[test]
fn a_small_order_ed25519_key_in_the_key_set_cannot_forge_tokens() {
    let good = Key::es256("good");
    let (envoy, idp, worker) = ready(&[&good], &config(json!({}), json!({})));
    let mut doc = jwks(&[&good]);
    doc["keys"].as_array_mut().unwrap().push(json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "weak",
        "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}));
    idp.serve(Reply::json(200, &doc));
    envoy.advance(Duration::from_secs(61));
    assert_eq!(idp.calls(), 2, "the refresh brought the weak key");

    let header = json!({"alg": "EdDSA", "kid": "weak"});
    let payload = claims(&envoy, json!({"sub": "admin", "scope": "admin"}));
    let mut forged = [0u8; 64];
    forged[0] = 1;
    let token = jws::compact(&header, payload.to_string().as_bytes(), |_| forged.to_vec());
    let out = get(&envoy, &worker, "/api/admin", &token);
    assert_eq!(error_code(&out), (401, "unknown_kid".into()));
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.jwks.key_skipped.ed25519_small_order"),
        Some(1)
    );
    assert!(
        worker
            .log_text()
            .contains("key weak skipped: ed25519_small_order"),
        "{}",
        worker.log_text()
    );
    // The same forgery without a kid is tried against every usable key, and refused.
    let header = json!({"alg": "EdDSA"});
    let token = jws::compact(&header, payload.to_string().as_bytes(), |_| forged.to_vec());
    assert_eq!(
        error_code(&get(&envoy, &worker, "/api/admin", &token)),
        (401, "no_matching_key".into())
    );
    // The good key of the same set still works.
    let ok = good.sign(&claims(&envoy, json!({})));
    assert_passes(&get(&envoy, &worker, "/api/x", &ok), &worker);
}

/// A token without `kid` is tried against at most `max_key_tries` keys; past that bound it is
/// refused and the metric says why.
#[test]
fn max_key_tries_bounds_kidless_tokens_and_is_counted() {
    let keys: Vec<Key> = (0..5).map(|i| Key::es256(&format!("k{i}"))).collect();
    let refs: Vec<&Key> = keys.iter().collect();
    let kidless = |key: &Key, envoy: &Envoy| {
        key.sign_with_header(&json!({"alg": "ES256"}), &claims(envoy, json!({})))
    };

    // Default (4): the fifth key's tokens are refused, and counted.
    let (envoy, _idp, worker) = ready(&refs, &config(json!({}), json!({})));
    assert_passes(
        &get(&envoy, &worker, "/api/x", &kidless(&keys[3], &envoy)),
        &worker,
    );
    let out = get(&envoy, &worker, "/api/x", &kidless(&keys[4], &envoy));
    assert_eq!(error_code(&out), (401, "bad_signature".into()));
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.key_tries_exhausted"),
        Some(1)
    );

    // Raised to 5: every key's kid-less token passes.
    let (envoy, _idp, worker) = ready(&refs, &config(json!({"max_key_tries": 5}), json!({})));
    for key in &keys {
        assert_passes(
            &get(&envoy, &worker, "/api/x", &kidless(key, &envoy)),
            &worker,
        );
    }
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.key_tries_exhausted"),
        None
    );
}

#[test]
fn a_flood_of_random_kids_costs_one_fetch_per_interval() {
    let k1 = Key::es256("k1");
    let (envoy, idp, worker) = ready(&[&k1], &config(json!({}), json!({})));
    envoy.advance(Duration::from_secs(10));
    let attacker = Key::es256("x");
    let flood = |n: usize| {
        for i in 0..n {
            let header = json!({"alg": "ES256", "kid": format!("random-{}-{i}", rand_u64())});
            let t = attacker.sign_with_header(&header, &claims(&envoy, json!({})));
            let out = get(&envoy, &worker, "/api/x", &t);
            assert_eq!(error_code(&out), (401, "unknown_kid".into()));
        }
    };
    flood(200);
    assert_eq!(idp.calls(), 2, "one refetch in the interval");
    flood(100);
    assert_eq!(idp.calls(), 2);
    envoy.advance(Duration::from_secs(10));
    flood(100);
    assert_eq!(idp.calls(), 3, "one more after refetch_min_interval_s");
    assert!(!worker.is_dead(PLUGIN));
    let good = k1.sign(&claims(&envoy, json!({})));
    assert_passes(&get(&envoy, &worker, "/api/x", &good), &worker);
}

#[test]
fn failed_fetches_keep_the_last_good_keys() {
    let key = Key::es256("k1");
    let cfg = config(json!({}), json!({"max_bytes": 2048}));
    let (envoy, idp, worker) = ready(&[&key], &cfg);
    let big = json!({"keys": [key.jwk()], "padding": "x".repeat(4096)});
    let failures: Vec<(&str, Reply, &str)> = vec![
        ("500", Reply::ok(500, "oops"), "http_status"),
        ("timeout", Reply::never(), "http_status"),
        ("reset", Reply::reset(), "unreachable"),
        ("bad JSON", Reply::ok(200, "{\"keys\": [tru"), "bad_json"),
        ("oversized", Reply::json(200, &big), "too_large"),
    ];
    // The refresh is due at 54 s; after a failure the next try waits refetch_min_interval_s.
    envoy.advance(Duration::from_secs(50));
    for (i, (what, r, _)) in failures.into_iter().enumerate() {
        idp.serve(r);
        envoy.advance(Duration::from_secs(if i == 0 { 5 } else { 10 }));
        envoy.advance(Duration::from_millis(1200)); // a timeout is delivered after 1 s
        assert_eq!(idp.calls(), 2 + i, "{what}: a refresh was tried");
        let token = key.sign(&claims(&envoy, json!({})));
        assert_passes(&get(&envoy, &worker, "/api/x", &token), &worker);
    }
    let failed: u64 = envoy
        .metrics()
        .iter()
        .filter(|(n, _)| n.starts_with("shieldwall.jwt_auth.jwks.fetch.failed."))
        .map(|(n, _)| envoy.metric(n).unwrap_or(0))
        .sum();
    assert_eq!(
        failed,
        5,
        "{:?}",
        envoy.metrics().keys().collect::<Vec<_>>()
    );
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.jwks.fetch.failed.unreachable"),
        Some(1)
    );
    assert!(worker.log_text().contains("keeping the last good key set"));
    // And the IdP comes back: the next refresh succeeds.
    idp.serve_keys(&[&key]);
    envoy.advance(Duration::from_secs(11));
    assert_eq!(envoy.metric("shieldwall.jwt_auth.jwks.fetch.ok"), Some(2));
}

#[test]
fn no_keys_at_all_is_503_with_retry_after() {
    let key = Key::es256("k1");
    for (what, r) in [
        ("500", Reply::ok(500, "down")),
        ("timeout", Reply::never()),
        ("reset", Reply::reset()),
    ] {
        let envoy = Envoy::new();
        let idp = Idp::install(&envoy, &[]);
        idp.serve(r);
        let worker = envoy
            .worker(&[plugin(&config(json!({}), json!({})))])
            .unwrap();
        let token = key.sign(&claims(&envoy, json!({})));
        let out = get(&envoy, &worker, "/api/x", &token);
        let rep = reply(&out);
        assert_eq!(rep.status(), 503, "{what}: {:?}", rep);
        assert_eq!(rep.body_json()["error"], "jwks_unavailable", "{what}");
        assert_eq!(rep.header("retry-after"), Some("10"), "{what}");
        assert!(rep.header("www-authenticate").is_none(), "{what}");
    }
}

#[test]
fn a_timeout_delivered_as_a_reset_is_a_failure_too() {
    let key = Key::es256("k1");
    let envoy = Envoy::new();
    envoy.set_timeout_behavior(TimeoutBehavior::Reset);
    let idp = Idp::install(&envoy, &[]);
    idp.serve(Reply::never());
    let worker = envoy
        .worker(&[plugin(&config(json!({}), json!({})))])
        .unwrap();
    let token = key.sign(&claims(&envoy, json!({})));
    let out = get(&envoy, &worker, "/api/x", &token);
    assert_eq!(error_code(&out), (503, "jwks_unavailable".into()));
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.jwks.fetch.failed.unreachable"),
        Some(1)
    );
}

// ------------------------------------------------------------------ the request path

#[test]
fn an_accepted_token_reaches_the_upstream_with_identity_and_claim_headers() {
    let es = Key::es256("es");
    let ed = Key::eddsa("ed");
    let rs = Key::rs256("rs");
    let (envoy, _idp, worker) = ready(&[&es, &ed, &rs], &config(json!({}), json!({})));
    for key in [&es, &ed, &rs] {
        let token = key.sign(&claims(&envoy, json!({"sub": format!("sub-{}", key.kid)})));
        let mut s = worker.stream(
            Request::get("/api/orders?x=1")
                .header("authorization", &bearer(&token))
                .header("x-jwt-sub", "forged")
                .header("x-jwt-tenant", "forged"),
        );
        let out = s.send_request();
        assert_passes(&out, &worker);
        let up = out.upstream();
        assert_eq!(up.header("authorization"), None, "{}", key.alg());
        assert_eq!(
            up.header_all("x-jwt-sub"),
            vec![format!("sub-{}", key.kid).as_str()]
        );
        assert_eq!(up.header_all("x-jwt-tenant"), vec!["a"]);
        let identity: Value =
            serde_json::from_slice(&s.filter_state("shieldwall.identity").expect("identity"))
                .unwrap();
        assert_eq!(identity["sub"], format!("sub-{}", key.kid));
        assert_eq!(identity["iss"], ISSUER);
        assert_eq!(identity["aud"], json!(["orders-api"]));
        assert_eq!(identity["client_id"], "orders-reader");
        assert_eq!(identity["scopes"], json!(["orders:read", "orders:write"]));
        assert_eq!(identity["tenant"], "a");
        assert_eq!(identity["auth"], json!(["jwt"]));
        assert_eq!(identity["claims"]["tier"], "gold");
        s.finish();
    }
    // A public route needs no token, and a client's claim headers are removed there too.
    let out = decide(
        &envoy,
        &worker,
        Request::get("/healthz").header("x-jwt-sub", "forged"),
    );
    assert_passes(&out, &worker);
    assert_eq!(out.upstream().header("x-jwt-sub"), None);
    assert_eq!(envoy.metric("shieldwall.jwt_auth.allowed"), Some(3));
}

#[test]
fn denials_get_rfc6750_replies() {
    let key = Key::es256("k1");
    let stranger = Key::es256("k1"); // same kid, another key
    let (envoy, _idp, worker) = ready(&[&key], &config(json!({}), json!({})));
    let now = envoy.now_unix_secs();

    // Missing: 401, realm, no error attribute.
    let out = decide(&envoy, &worker, Request::get("/api/x"));
    let r = reply(&out);
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"orders\"")
    );
    assert_eq!(r.body_json()["error"], "missing_token");
    // Envoy keeps the filter's content-type (it adds text/plain only when there is none); the
    // harness lists text/plain first, so look at every value.
    assert!(r.header_all("content-type").contains(&"application/json"));

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&claims(&envoy, json!({"exp": now - 61}))),
            "expired",
        ),
        (
            "not yet valid",
            key.sign(&claims(&envoy, json!({"nbf": now + 120}))),
            "not_yet_valid",
        ),
        (
            "foreign issuer",
            key.sign(&claims(&envoy, json!({"iss": "https://evil.example.com"}))),
            "bad_issuer",
        ),
        (
            "foreign audience",
            key.sign(&claims(&envoy, json!({"aud": "other-api"}))),
            "bad_audience",
        ),
        (
            "wrong key",
            stranger.sign(&claims(&envoy, json!({}))),
            "bad_signature",
        ),
        (
            "tampered",
            {
                let t = key.sign(&claims(&envoy, json!({})));
                let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
                parts[1] = b64url(
                    claims(&envoy, json!({"sub": "mallory"}))
                        .to_string()
                        .as_bytes(),
                );
                parts.join(".")
            },
            "bad_signature",
        ),
        (
            "no exp",
            key.sign(&json!({"iss": ISSUER, "aud": "orders-api", "sub": "a"})),
            "missing_exp",
        ),
    ];
    for (what, token, code) in cases {
        let out = get(&envoy, &worker, "/api/x", &token);
        let r = reply(&out);
        assert_eq!(
            (r.status(), r.body_json()["error"].as_str()),
            (401, Some(code)),
            "{what}"
        );
        let www = r.header("www-authenticate").unwrap_or("");
        assert!(
            www.starts_with(
                "Bearer realm=\"orders\", error=\"invalid_token\", error_description=\""
            ),
            "{what}: {www}"
        );
        assert!(!r.body_str().contains(&token), "{what}: no token echoed");
    }

    // A route that needs another audience.
    let token = key.sign(&claims(&envoy, json!({})));
    assert_eq!(
        error_code(&get(&envoy, &worker, "/billing/x", &token)),
        (401, "bad_audience".into())
    );
    // Two credentials: 400.
    let out = decide(
        &envoy,
        &worker,
        Request::get("/api/x")
            .header("authorization", &bearer(&token))
            .header("authorization", &bearer(&token)),
    );
    let r = reply(&out);
    assert_eq!(r.status(), 400);
    assert_eq!(r.body_json()["error"], "invalid_request");
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.contains("error=\"invalid_request\"")));
    // ...also as Envoy delivers them: repeated `authorization` headers joined by a comma.
    let out = decide(
        &envoy,
        &worker,
        Request::get("/api/x").header("authorization", &format!("Bearer {token},Bearer {token}")),
    );
    assert_eq!(error_code(&out), (400, "invalid_request".into()));
    // No rule: 403.
    assert_eq!(
        error_code(&get(&envoy, &worker, "/admin", &token)),
        (403, "no_matching_rule".into())
    );
    assert_eq!(envoy.metric("shieldwall.jwt_auth.denied.expired"), Some(1));
    assert_eq!(
        envoy.metric("shieldwall.jwt_auth.denied.missing_token"),
        Some(1)
    );
}

#[test]
fn a_bad_configuration_is_refused_with_the_field_path() {
    let envoy = Envoy::new();
    for (cfg, expected) in [
        (
            config(json!({}), json!({"uri": "ftp://idp/jwks"})),
            "providers.idp.remote_jwks.uri: not an http(s) URI",
        ),
        (
            config(json!({}), json!({"refetch_min_interval_s": 0})),
            "providers.idp.remote_jwks.refetch_min_interval_s",
        ),
        (
            config(
                json!({"claim_to_headers": [{"claim": "sub", "header": "authorization"}]}),
                json!({}),
            ),
            "providers.idp.claim_to_headers[0].header",
        ),
        (
            config(json!({"colour": "blue"}), json!({})),
            "unknown field `colour`",
        ),
    ] {
        let err = envoy
            .worker(&[plugin(&cfg)])
            .err()
            .unwrap_or_else(|| panic!("accepted: {cfg}"));
        let text = format!("{err:#}");
        assert!(text.contains("invalid configuration"), "{text}");
        assert!(text.contains(expected), "{expected} not in {text}");
    }
}

// ------------------------------------------------------------------ robustness

/// Hostile tokens: each is refused (401, or 400 for a malformed request), none traps the VM,
/// and afterwards a good token still passes.
#[test]
fn malformed_tokens_are_refused_without_a_trap() {
    let key = Key::es256("k1");
    let cfg = config(json!({"max_token_bytes": 262144}), json!({}));
    let (envoy, _idp, worker) = ready(&[&key], &cfg);
    let good_claims = claims(&envoy, json!({}));
    let enc = |v: &str| b64url(v.as_bytes());
    let claims_b64 = enc(&good_claims.to_string());
    let good = key.sign(&good_claims);
    let sig = good.rsplit('.').next().unwrap().to_string();
    let signed = |header: Value| key.sign_with_header(&header, &good_claims);
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));

    let mut corpus: Vec<(String, String)> = vec![
        ("empty".into(), String::new()),
        ("spaces".into(), "   ".into()),
        ("huge".into(), "a".repeat(300_000)),
        ("one dot".into(), format!("{}.{}", enc("{}"), claims_b64)),
        ("no dot".into(), "abcdef".into()),
        ("only dots".into(), ".....".into()),
        ("two empty parts".into(), "..".into()),
        ("four parts".into(), format!("{good}.x")),
        ("five parts (JWE)".into(), format!("{}.a.b.c.d", enc(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#))),
        ("six parts".into(), format!("{good}.x.y.z")),
        ("bad base64 header".into(), format!("!!!.{claims_b64}.{sig}")),
        ("bad base64 signature".into(), format!("{}.{claims_b64}.*&^", good.split('.').next().unwrap())),
        ("padded base64".into(), format!("{}==.{claims_b64}.{sig}", good.split('.').next().unwrap())),
        ("non-JSON header".into(), format!("{}.{claims_b64}.{sig}", enc("not json"))),
        ("header is an array".into(), format!("{}.{claims_b64}.{sig}", enc("[1,2]"))),
        ("non-JSON claims".into(), format!("{}.{}.{sig}", good.split('.').next().unwrap(), enc("{oops"))),
        ("claims is a string".into(), signed_payload(&key, "\"alice\"")),
        ("alg none".into(), format!("{}.{claims_b64}.", enc(r#"{"alg":"none","kid":"k1"}"#))),
        ("alg NONE".into(), format!("{}.{claims_b64}.", enc(r#"{"alg":"NONE","kid":"k1"}"#))),
        ("alg nOnE".into(), format!("{}.{claims_b64}.{sig}", enc(r#"{"alg":"nOnE","kid":"k1"}"#))),
        ("no alg".into(), signed(json!({"kid": "k1"}))),
        ("alg HS256 with the EC key's kid".into(), hs256_with_public_key(&key, &good_claims)),
        ("alg lower-case es256".into(), signed(json!({"alg": "es256", "kid": "k1"}))),
        ("crit".into(), signed(json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}))),
        ("crit empty".into(), signed(json!({"alg": "ES256", "kid": "k1", "crit": []}))),
        ("b64 false".into(), signed(json!({"alg": "ES256", "kid": "k1", "b64": false, "crit": ["b64"]}))),
        ("embedded jwk".into(), {
            let mine = Key::es256("k1");
            mine.sign_with_header(&json!({"alg": "ES256", "kid": "k1", "jwk": mine.jwk()}), &good_claims)
        }),
        ("kid is a number".into(), signed(json!({"alg": "ES256", "kid": 1}))),
        ("kid traversal".into(), signed(json!({"alg": "ES256", "kid": "../../etc/passwd"}))),
        ("duplicate alg".into(), format!("{}.{claims_b64}.{sig}", enc(r#"{"alg":"ES256","kid":"k1","alg":"none"}"#))),
        ("JSON serialization".into(), json!({"payload": claims_b64, "signatures": [{"protected": enc(r#"{"alg":"ES256"}"#), "signature": sig}]}).to_string()),
        ("flattened JSON serialization".into(), json!({"payload": claims_b64, "protected": enc(r#"{"alg":"ES256"}"#), "signature": sig}).to_string()),
        ("deeply nested header".into(), format!("{}.{claims_b64}.{sig}", enc(&format!(r#"{{"alg":"ES256","kid":"k1","x":{}}}"#, nested(50_000))))),
        ("deeply nested claims".into(), signed_payload(&key, &format!(r#"{{"iss":"{ISSUER}","x":{}}}"#, nested(50_000)))),
        ("deeply nested objects".into(), signed_payload(&key, &format!("{}{}", r#"{"a":"#.repeat(20_000), "}".repeat(20_000)))),
        ("unicode".into(), "ẗøķèñ.🔑.✓".into()),
        ("NUL bytes".into(), format!("{}\u{0}.{claims_b64}.{sig}", good.split('.').next().unwrap())),
        ("NUL in the middle".into(), good.replacen('.', "\u{0}.", 1)),
        ("negative exp".into(), key.sign(&claims(&envoy, json!({"exp": -1})))),
        ("exp as string".into(), key.sign(&claims(&envoy, json!({"exp": "never"})))),
        ("aud as object".into(), key.sign(&claims(&envoy, json!({"aud": {"x": 1}})))),
        ("long signature".into(), format!("{}.{claims_b64}.{}", good.split('.').next().unwrap(), "A".repeat(100_000))),
        ("short signature".into(), format!("{}.{claims_b64}.AA", good.split('.').next().unwrap())),
        ("empty signature".into(), format!("{}.{claims_b64}.", good.split('.').next().unwrap())),
        ("trailing junk".into(), format!("{good} junk")),
        ("CRLF header injection".into(), format!("{good}\r\nx-jwt-sub: admin")),
        ("LF header injection".into(), "x\nx-admin: 1".to_string()),
        ("comma-joined second token".into(), format!("{good}, Bearer {good}")),
    ];
    for depth in [1usize, 2, 3, 4, 5, 6] {
        corpus.push((format!("{depth} dots"), vec!["e30"; depth + 1].join(".")));
    }

    for (what, token) in &corpus {
        let mut s = worker
            .stream(Request::get("/api/x").header("authorization", &format!("Bearer {token}")));
        let out = match s.try_send_request() {
            Ok(out) => out,
            Err(trap) => panic!("{what}: the VM trapped: {trap}"),
        };
        let r = match &out {
            Outcome::LocalReply(r) => r,
            other => panic!("{what}: not refused: {other:?}"),
        };
        assert!(
            matches!(r.status(), 400 | 401),
            "{what}: status {} {}",
            r.status(),
            r.body_str()
        );
        let body = r.body_str();
        assert!(
            body.len() < 512 && (token.len() < 8 || !body.contains(token.as_str())),
            "{what}: the reply echoes input: {body}"
        );
        assert!(s.try_finish().is_ok(), "{what}: trapped at the end");
        assert!(!worker.is_dead(PLUGIN), "{what}: the VM died");
    }
    // Odd but validly signed tokens: whatever the decision, no trap. (A `jku` is ignored, never
    // fetched; the keys come from the configuration only.)
    for (what, token) in [
        (
            "exp as a huge float",
            key.sign(&claims(&envoy, json!({"exp": 1e308}))),
        ),
        (
            "unicode and NUL in claims",
            key.sign(&claims(
                &envoy,
                json!({"sub": "ålïçé\u{202e}\u{0}", "tenant": "🔑"}),
            )),
        ),
        (
            "jku",
            signed(json!({"alg": "ES256", "kid": "k1", "jku": "https://evil.example.com/jwks"})),
        ),
        (
            "many claims",
            key.sign(&claims(
                &envoy,
                json!({"x": (0..2000).map(|i| i.to_string()).collect::<Vec<_>>()}),
            )),
        ),
    ] {
        let mut s = worker.stream(Request::get("/api/x").header("authorization", &bearer(&token)));
        if let Err(trap) = s.try_send_request() {
            panic!("{what}: the VM trapped: {trap}");
        }
        assert!(s.try_finish().is_ok(), "{what}");
    }
    assert!(envoy.callouts().len() == 1, "a jku is never fetched");
    assert!(worker.traps().is_empty());
    // The VM is alive and still verifies.
    let fresh = key.sign(&claims(&envoy, json!({})));
    assert_passes(&get(&envoy, &worker, "/api/x", &fresh), &worker);
}

/// A header-injection attempt in other headers: the client's claim headers never survive, and a
/// token in a header the filter does not read is no credential.
#[test]
fn forged_identity_headers_never_reach_the_upstream() {
    let key = Key::es256("k1");
    let (envoy, _idp, worker) = ready(&[&key], &config(json!({}), json!({})));
    let token = key.sign(&claims(&envoy, json!({"sub": "bob\r\nx-admin: 1"})));
    let out = decide(
        &envoy,
        &worker,
        Request::get("/api/x")
            .header("authorization", &bearer(&token))
            .header("x-jwt-sub", "admin")
            .header("x-jwt-sub", "root"),
    );
    assert_passes(&out, &worker);
    assert!(
        out.upstream().header_all("x-jwt-sub").is_empty(),
        "a claim with control characters is not copied into a header"
    );
    let out = decide(
        &envoy,
        &worker,
        Request::get("/api/x").header("x-token", &token),
    );
    assert_eq!(error_code(&out), (401, "missing_token".into()));
}

fn signed_payload(key: &Key, payload: &str) -> String {
    let header = json!({"alg": "ES256", "kid": key.kid});
    jws::compact(&header, payload.as_bytes(), |input| key.sign_raw(input))
}

/// The classic algorithm confusion: HS256 keyed with the public key's bytes.
fn hs256_with_public_key(key: &Key, claims: &Value) -> String {
    let header = json!({"alg": "HS256", "kid": key.kid});
    jws::hs256(key.jwk().to_string().as_bytes(), &header, claims)
}
