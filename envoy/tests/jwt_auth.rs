//! jwt-auth in a real Envoy with the real OpenID Provider: the module fetches the IdP's `/jwks`
//! through the Envoy cluster `idp`, verifies RS256, ES256 and EdDSA access tokens, refuses bad
//! ones with RFC 6750 replies, follows a key rotation, keeps its keys when the IdP goes down, and
//! shows its metrics in `/stats/prometheus`.
//!
//! Each test starts its own IdP and Envoy (the guards stop them, also on failure); the first test
//! shares one Envoy with two workers across every accept/deny case.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shieldwall_e2e::jwt::base64url_encode;
use shieldwall_e2e::{wasm_path, Cluster, Echo, Envoy, EnvoyConfig, Idp, IdpOptions, WasmFilter};

const RESOURCE_ES256: &str = "urn:shieldwall:orders-api:es256";
const RESOURCE_EDDSA: &str = "urn:shieldwall:orders-api:eddsa";

/// The plugin configuration: one provider, the IdP, its keys through the `idp` cluster.
fn jwt_config(idp: &Idp, refetch_min_interval_s: u64) -> String {
    json!({
        "realm": "orders",
        "providers": {
            "idp": {
                "issuer": idp.issuer(),
                "audiences": ["orders-api"],
                "remote_jwks": {
                    "cluster": "idp",
                    "uri": format!("http://{}{}", idp.authority(), idp.jwks_path()),
                    "timeout_ms": 1000,
                    "cache_duration_s": 300,
                    "refetch_min_interval_s": refetch_min_interval_s
                },
                "claim_to_headers": [
                    {"claim": "sub", "header": "x-jwt-sub"},
                    {"claim": "tenant", "header": "x-jwt-tenant"},
                    {"claim": "scope", "header": "x-jwt-scope"}
                ],
                "clock_skew_s": 0
            }
        },
        "rules": [
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/orders"}, "requires": {"provider": "idp"}}
        ]
    })
    .to_string()
}

fn start_envoy(echo: &Echo, idp: &Idp, refetch_min_interval_s: u64, workers: u32) -> Envoy {
    let config = EnvoyConfig::new(echo.port())
        .cluster(Cluster::new("idp", idp.port()))
        .filter(WasmFilter::new(
            wasm_path("jwt-auth"),
            "jwt-auth",
            jwt_config(idp, refetch_min_interval_s),
        ))
        .concurrency(workers);
    Envoy::start(config)
}

fn reader_token(idp: &Idp, resource: Option<&str>) -> String {
    idp.token(
        "orders-reader",
        "orders-reader-secret",
        Some("orders:read"),
        resource,
    )
}

/// The body's `error` and the `WWW-Authenticate` header of a denial.
fn denial(resp: &shieldwall_e2e::Response) -> (u16, String, String) {
    let challenge = resp.header("www-authenticate").unwrap_or("").to_owned();
    (resp.status, resp.error(), challenge)
}

/// Retries `f` until it returns true, up to `timeout`.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The value of one unlabelled prometheus sample, if present.
fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        // Envoy writes an unlabelled sample as `name{} value`.
        let (n, v) = l.split_once(' ')?;
        (n.trim_end_matches("{}") == name)
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

#[test]
fn accepts_and_refuses_tokens_of_the_real_idp() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let envoy = start_envoy(&echo, &idp, 10, 2);

    // RS256, ES256, EdDSA: accepted; the upstream sees the claims, not the token. The first
    // request waits for the first fetch of the key set.
    for (alg, resource) in [
        ("RS256", None),
        ("ES256", Some(RESOURCE_ES256)),
        ("EdDSA", Some(RESOURCE_EDDSA)),
    ] {
        let token = reader_token(&idp, resource);
        let resp = envoy.request(
            "GET",
            "/orders/42",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-jwt-sub", "forged"),
            ],
            b"",
        );
        assert_eq!(resp.status, 200, "{alg}: {resp}\n{}", envoy.log());
        let seen = resp.json();
        let headers = &seen["headers"];
        assert!(headers.get("authorization").is_none(), "{alg}: {seen}");
        assert_eq!(headers["x-jwt-sub"], "orders-reader", "{alg}: {seen}");
        assert_eq!(headers["x-jwt-tenant"], "a", "{alg}");
        assert_eq!(headers["x-jwt-scope"], "orders:read", "{alg}");
    }
    let hits_after_accepts = echo.hits();

    // Missing: 401 with the realm and no error attribute.
    let resp = envoy.get("/orders", &[]);
    let (status, error, www) = denial(&resp);
    assert_eq!((status, error.as_str()), (401, "missing_token"), "{resp}");
    assert_eq!(www, "Bearer realm=\"orders\"");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));

    let good = reader_token(&idp, None);
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut claims = shieldwall_e2e::jwt::decode(&good).1;
        claims["sub"] = json!("admin");
        parts[1] = base64url_encode(claims.to_string().as_bytes());
        parts.join(".")
    };
    let foreign_audience = idp.token(
        "admin",
        "admin-secret",
        None,
        Some("urn:shieldwall:admin-api"),
    );
    // Another IdP: another issuer and other keys.
    let stranger = Idp::start(IdpOptions::default());
    let foreign_issuer = reader_token(&stranger, None);
    // The same issuer name with other keys: a token minted with the wrong key.
    let impostor = Idp::start(IdpOptions {
        issuer: Some(idp.issuer().to_owned()),
        ..IdpOptions::default()
    });
    let wrong_key = reader_token(&impostor, None);
    // The same issuer and keys, 1 s tokens: expired after a short wait (clock_skew_s is 0).
    let short = Idp::start(IdpOptions {
        issuer: Some(idp.issuer().to_owned()),
        keys_file: Some(idp.keys_file().clone()),
        access_token_ttl: Some(1),
        ..IdpOptions::default()
    });
    let expired = reader_token(&short, None);
    drop(short);
    drop(stranger);
    drop(impostor);
    thread::sleep(Duration::from_millis(2100));

    for (what, token, code) in [
        ("tampered", &tampered, "bad_signature"),
        ("expired", &expired, "expired"),
        ("foreign issuer", &foreign_issuer, "bad_issuer"),
        ("foreign audience", &foreign_audience, "bad_audience"),
        ("wrong key", &wrong_key, "unknown_kid"),
    ] {
        let resp = envoy.get_with_token("/orders", token);
        let (status, error, www) = denial(&resp);
        assert_eq!((status, error.as_str()), (401, code), "{what}: {resp}");
        assert!(
            www.starts_with("Bearer realm=\"orders\", error=\"invalid_token\""),
            "{what}: {www}"
        );
        assert!(
            !resp.text().contains(token.as_str()),
            "{what}: token echoed"
        );
    }

    // Two credentials: 400.
    let auth = format!("Bearer {good}");
    let resp = envoy.get(
        "/orders",
        &[("authorization", &auth), ("authorization", &auth)],
    );
    assert_eq!(denial(&resp).0, 400, "{resp}");
    assert_eq!(denial(&resp).1, "invalid_request");
    assert_eq!(
        echo.hits(),
        hits_after_accepts,
        "no denied request went upstream"
    );

    // A public route, and no rule at all (403).
    assert_eq!(envoy.get("/healthz", &[]).status, 200);
    assert_eq!(denial(&envoy.get("/admin", &[])).1, "no_matching_rule");

    // Two workers, many requests at once: every one verified (by either worker's VM).
    let tokens: Vec<String> = (0..4)
        .map(|i| {
            reader_token(
                &idp,
                [None, Some(RESOURCE_ES256), Some(RESOURCE_EDDSA), None][i],
            )
        })
        .collect();
    let addr = envoy.addr();
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let token = tokens[i % tokens.len()].clone();
            thread::spawn(move || {
                let auth = format!("Bearer {token}");
                shieldwall_e2e::http::request(
                    addr,
                    "GET",
                    "/orders",
                    &[("authorization", &auth)],
                    b"",
                )
                .map(|r| r.status)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("client thread").expect("request"), 200);
    }
    let jwks_fetches = idp.stats()["/jwks"].as_u64().unwrap_or(0);
    assert!(
        (1..=2).contains(&jwks_fetches),
        "two workers share their fetches: {jwks_fetches} (one initial, one for the wrong key's kid)"
    );

    // Metrics: Envoy shows a wasm metric `shieldwall.jwt_auth.x` as `wasmcustom.shieldwall.jwt_auth.x`
    // in /stats and as `shieldwall_jwt_auth_x` (no `envoy_` prefix) in /stats/prometheus.
    assert_eq!(
        envoy.stat("wasmcustom.shieldwall.jwt_auth.allowed"),
        Some(27)
    );
    let prom = envoy.stats_prometheus();
    let metric = |name: &str| prometheus_value(&prom, name);
    let dump = || {
        prom.lines()
            .filter(|l| l.contains("shieldwall"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        metric("shieldwall_jwt_auth_allowed"),
        Some(27.0),
        "{}",
        dump()
    );
    assert_eq!(
        metric("shieldwall_jwt_auth_denied_missing_token"),
        Some(1.0),
        "{}",
        dump()
    );
    assert_eq!(
        metric("shieldwall_jwt_auth_denied_expired"),
        Some(1.0),
        "{}",
        dump()
    );
    assert_eq!(
        metric("shieldwall_jwt_auth_denied_bad_signature"),
        Some(1.0),
        "{}",
        dump()
    );
    assert_eq!(
        metric("shieldwall_jwt_auth_denied_invalid_request"),
        Some(1.0),
        "{}",
        dump()
    );
    assert_eq!(
        metric("shieldwall_jwt_auth_jwks_fetch_ok"),
        Some(jwks_fetches as f64),
        "{}",
        dump()
    );
    assert_eq!(
        metric("shieldwall_jwt_auth_jwks_idp_keys"),
        Some(3.0),
        "{}",
        dump()
    );
    assert!(
        prom.contains("# TYPE shieldwall_jwt_auth_allowed counter"),
        "{}",
        dump()
    );
}

#[test]
fn follows_a_key_rotation_and_keeps_its_keys_when_the_idp_is_down() {
    let echo = Echo::start();
    let mut idp = Idp::start(IdpOptions::default());
    let envoy = start_envoy(&echo, &idp, 1, 1);

    let before = reader_token(&idp, None);
    assert_eq!(envoy.get_with_token("/orders", &before).status, 200);
    assert_eq!(envoy.get_with_token("/orders", &before).status, 200); // cached

    // The IdP rotates its keys: a token of the new key is accepted within seconds (one refetch
    // for its unknown kid), and the old key's tokens are refused, cached or not.
    let old_kids = idp.kids();
    idp.restart_with_new_keys();
    assert_ne!(idp.kids(), old_kids);
    let after = reader_token(&idp, Some(RESOURCE_ES256));
    let rotated = eventually(Duration::from_secs(5), || {
        envoy.get_with_token("/orders", &after).status == 200
    });
    assert!(rotated, "the new key was not followed:\n{}", envoy.log());
    let resp = envoy.get_with_token("/orders", &before);
    assert_eq!(denial(&resp).0, 401, "{resp}");
    assert_eq!(denial(&resp).1, "unknown_kid");

    // The IdP goes down: the keys in hand still verify, also tokens never seen before.
    let unseen = reader_token(&idp, Some(RESOURCE_EDDSA));
    let unseen_rs = reader_token(&idp, None);
    idp.stop();
    assert_eq!(envoy.get_with_token("/orders", &after).status, 200);
    assert_eq!(envoy.get_with_token("/orders", &unseen).status, 200);
    // An unknown kid now makes the filter try the IdP, which fails; the stale keys stay.
    thread::sleep(Duration::from_millis(1100));
    let resp = envoy.get_with_token("/orders", &before);
    assert_eq!(denial(&resp).1, "unknown_kid", "{resp}");
    let failed = eventually(Duration::from_secs(3), || {
        envoy
            .stats_matching("shieldwall.jwt_auth.jwks.fetch.failed.")
            .iter()
            .any(|(_, v)| v != "0")
    });
    assert!(failed, "no failed fetch recorded:\n{}", envoy.log());
    assert_eq!(envoy.get_with_token("/orders", &unseen_rs).status, 200);
    assert!(envoy.log().contains("keeping the last good key set"));
    eprintln!(
        "jwks fetch failures with the IdP down: {:?}",
        envoy.stats_matching("shieldwall.jwt_auth.jwks.fetch.failed.")
    );
}

/// A copy of `token` whose signature no longer verifies: one character in the middle of the
/// signature changed (still canonical base64url, so it fails at the signature check, not parsing).
fn with_bad_signature(token: &str) -> String {
    let sig_start = token.rfind('.').expect("a compact JWS") + 1;
    let at = sig_start + (token.len() - sig_start) / 2;
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

#[test]
fn a_client_that_spends_its_failure_budget_is_refused_before_signature_work() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let mut config: Value = serde_json::from_str(&jwt_config(&idp, 10)).expect("json");
    config["failed_verification_budget"] = json!({"failures": 3, "per": "hour"});
    // Envoy behind one trusted proxy (`xff_num_trusted_hops: 1`): Envoy takes the client address
    // from the last x-forwarded-for entry, and the module sees it as `source.address`.
    let mut envoy_config = EnvoyConfig::new(echo.port())
        .cluster(Cluster::new("idp", idp.port()))
        .filter(WasmFilter::new(
            wasm_path("jwt-auth"),
            "jwt-auth",
            config.to_string(),
        ))
        .concurrency(2);
    envoy_config.xff_trusted_hops = 1;
    let envoy = Envoy::start(envoy_config);
    let good = reader_token(&idp, None);
    let bad = with_bad_signature(&good);
    let send = |client: &str, token: &str| {
        envoy.request(
            "GET",
            "/orders/1",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-forwarded-for", client),
            ],
            b"",
        )
    };
    // The good token first, from the attacker's address: verified and cached. The cache is per
    // worker and each request is a new connection, which Envoy hands to either worker: 16 of them
    // leave the token cached on both (the chance that one worker got none is 2 in 65536).
    for _ in 0..16 {
        let resp = send("203.0.113.66", &good);
        assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    }

    // Each request is a new connection, spread over both workers: they share one budget.
    for i in 0..3 {
        let resp = send("203.0.113.66", &bad);
        let (status, error, _) = denial(&resp);
        assert_eq!(
            (status, error.as_str()),
            (401, "bad_signature"),
            "failure {i}: {resp}"
        );
    }
    let resp = send("203.0.113.66", &bad);
    assert_eq!(resp.status, 429, "{resp}");
    assert_eq!(denial(&resp).1, "too_many_failed_verifications", "{resp}");
    let retry: u64 = resp
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    // 3 per hour: one more after 20 minutes (less the seconds this test has run).
    assert!((1100..=1200).contains(&retry), "retry-after {retry}");
    // The cached good token needs no signature work: still served for that client.
    assert_eq!(send("203.0.113.66", &good).status, 200);
    // Another client is not affected; what the attacker writes left of the trusted entry
    // does not move it to another budget.
    assert_eq!(send("198.51.100.7", &good).status, 200);
    assert_eq!(send("198.51.100.7", &bad).status, 401);
    assert_eq!(send("10.1.1.1, 203.0.113.66", &bad).status, 429);

    let prom = envoy.stats_prometheus();
    assert_eq!(
        prometheus_value(&prom, "shieldwall_jwt_auth_budget_charged"),
        Some(4.0),
        "{prom}"
    );
    assert_eq!(
        prometheus_value(
            &prom,
            "shieldwall_jwt_auth_denied_too_many_failed_verifications"
        ),
        Some(2.0),
        "{prom}"
    );
}

/// Serves one fixed JWKS document on a loopback port until the guard is dropped.
struct StaticJwks {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StaticJwks {
    fn serve(doc: String) -> StaticJwks {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        let _ = conn.read(&mut buf);
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                            doc.len()
                        );
                        let _ = conn.write_all(reply.as_bytes());
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        StaticJwks { port, stop }
    }
}

impl Drop for StaticJwks {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The reported forgery, in a real Envoy: the IdP's key set also holds an Ed25519 key that is
/// the identity point, under which R = identity, S = 0 verifies every message. The module skips
/// that key (logged, counted), keeps the IdP's real keys, and refuses the forged admin token.
#[test]
fn a_weak_ed25519_key_in_the_remote_key_set_forges_nothing() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    // The IdP's own keys plus the weak one, served from a port of our own.
    let mut doc = shieldwall_e2e::http::request(idp.addr(), "GET", idp.jwks_path(), &[], b"")
        .unwrap()
        .json();
    doc["keys"].as_array_mut().unwrap().push(json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "weak", "use": "sig",
        "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}));
    let jwks = StaticJwks::serve(doc.to_string());
    let mut config: Value = serde_json::from_str(&jwt_config(&idp, 10)).unwrap();
    config["providers"]["idp"]["remote_jwks"]["cluster"] = json!("jwks");
    config["providers"]["idp"]["remote_jwks"]["uri"] =
        json!(format!("http://127.0.0.1:{}/jwks", jwks.port));
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .cluster(Cluster::new("jwks", jwks.port))
            .filter(WasmFilter::new(
                wasm_path("jwt-auth"),
                "jwt-auth",
                config.to_string(),
            )),
    );

    // A real token passes: the set was fetched and its good keys kept.
    let good = reader_token(&idp, Some(RESOURCE_EDDSA));
    let resp = envoy.get_with_token("/orders/1", &good);
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": idp.issuer(), "sub": "admin", "aud": "orders-api",
                        "scope": "admin orders:read", "iat": now, "exp": now + 600});
    let mut forged_sig = [0u8; 64];
    forged_sig[0] = 1;
    for header in [
        json!({"alg": "EdDSA", "kid": "weak"}),
        json!({"alg": "EdDSA"}),
    ] {
        let token = format!(
            "{}.{}.{}",
            base64url_encode(header.to_string().as_bytes()),
            base64url_encode(claims.to_string().as_bytes()),
            base64url_encode(&forged_sig)
        );
        let resp = envoy.get_with_token("/orders/1", &token);
        assert_eq!(resp.status, 401, "{header}: {resp}");
    }
    assert!(
        envoy
            .log()
            .contains("key weak skipped: ed25519_small_order"),
        "{}",
        envoy.log()
    );
    let skipped = prometheus_value(
        &envoy.stats_prometheus(),
        "shieldwall_jwt_auth_jwks_key_skipped_ed25519_small_order",
    );
    assert_eq!(skipped, Some(1.0));
}
