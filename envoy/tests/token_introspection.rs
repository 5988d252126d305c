//! token-introspection in a real Envoy with the real OpenID Provider: opaque access tokens are
//! introspected at the IdP's `/token/introspection` as the `gateway` client, an unknown token is
//! refused, a token revoked at `/token/revocation` is refused within `max_ttl_s` and a tick, and
//! while the IdP is stopped new tokens get 503 and cached ones are still served. A token the IdP
//! bound to a client certificate (RFC 8705) passes only on a TLS connection with that certificate.

use std::thread;
use std::time::{Duration, Instant};

use mtls_identity::testing::{TestCa, TestCert};
use serde_json::{json, Value};
use shieldwall_e2e::curl::https_get;
use shieldwall_e2e::http::{self, form_encode};
use shieldwall_e2e::jwt::base64_encode;
use shieldwall_e2e::{
    example_config, validate_config, wasm_path, Cluster, DownstreamTls, Echo, Envoy, EnvoyConfig,
    Idp, IdpOptions, WasmFilter,
};

const OPAQUE: &str = "urn:shieldwall:orders-api:opaque";

fn config(idp: &Idp, max_ttl_s: u64) -> String {
    json!({
        "realm": "orders",
        "providers": {"idp": {
            "introspection": {
                "cluster": "idp",
                "uri": format!("http://{}/token/introspection", idp.authority()),
                "timeout_ms": 1000,
                "client_id": "gateway",
                "client_secret": "gateway-secret"
            },
            "issuer": idp.issuer(),
            "cache": {"max_entries": 1000, "max_ttl_s": max_ttl_s, "negative_ttl_s": 1},
            "claim_to_headers": [
                {"claim": "client_id", "header": "x-token-client"},
                {"claim": "scope", "header": "x-token-scope"}
            ]
        }},
        "rules": [
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/orders"}, "requires": {"provider": "idp"}}
        ]
    })
    .to_string()
}

fn start_envoy(echo: &Echo, idp: &Idp, max_ttl_s: u64) -> Envoy {
    Envoy::start(
        EnvoyConfig::new(echo.port())
            .cluster(Cluster::new("idp", idp.port()))
            .filter(WasmFilter::new(
                wasm_path("token-introspection"),
                "token-introspection",
                config(idp, max_ttl_s),
            ))
            .concurrency(2),
    )
}

fn opaque_token(idp: &Idp) -> String {
    let token = idp.token(
        "orders-reader",
        "orders-reader-secret",
        Some("orders:read"),
        Some(OPAQUE),
    );
    assert_eq!(token.split('.').count(), 1, "an opaque token, not a JWT");
    token
}

fn error_of(resp: &shieldwall_e2e::Response) -> (u16, String) {
    (resp.status, resp.error())
}

/// RFC 7009 revocation by the client the token was issued to.
fn revoke(idp: &Idp, token: &str) {
    let creds = format!(
        "{}:{}",
        form_encode("orders-reader"),
        form_encode("orders-reader-secret")
    );
    let auth = format!("Basic {}", base64_encode(creds.as_bytes()));
    let body = format!("token={}&token_type_hint=access_token", form_encode(token));
    let resp = http::request(
        idp.addr(),
        "POST",
        "/token/revocation",
        &[
            ("authorization", &auth),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "revocation: {resp}");
}

#[test]
fn opaque_tokens_accepted_unknown_refused_and_revocation_seen_within_max_ttl() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let envoy = start_envoy(&echo, &idp, 2);

    let token = opaque_token(&idp);
    let resp = envoy.get_with_token("/orders/42", &token);
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    let seen = resp.json();
    assert_eq!(seen["headers"]["x-token-client"], "orders-reader");
    assert_eq!(seen["headers"]["x-token-scope"], "orders:read");
    assert!(seen["headers"].get("authorization").is_none());
    assert_eq!(envoy.get_with_token("/orders/42", &token).status, 200);
    assert_eq!(
        idp.stats()["/token/introspection"],
        1,
        "the second request was served from the cache"
    );

    let resp = envoy.get_with_token("/orders/42", "not-a-token-the-idp-issued");
    assert_eq!(error_of(&resp), (401, "invalid_token".into()));
    assert!(resp
        .header("www-authenticate")
        .unwrap_or("")
        .contains("error=\"invalid_token\""));
    let resp = envoy.get("/orders/42", &[]);
    assert_eq!(error_of(&resp), (401, "missing_token".into()));

    // Revoked at the IdP: refused within max_ttl_s (2 s) plus a tick.
    revoke(&idp, &token);
    let revoked_at = Instant::now();
    loop {
        let resp = envoy.get_with_token("/orders/42", &token);
        if resp.status == 401 {
            assert_eq!(error_of(&resp), (401, "invalid_token".into()));
            break;
        }
        assert_eq!(resp.status, 200, "{resp}");
        assert!(
            revoked_at.elapsed() < Duration::from_millis(2_000 + 1_000),
            "still accepted {:?} after revocation",
            revoked_at.elapsed()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let stats = envoy.stats_prometheus();
    assert!(
        stats.contains("shieldwall_token_introspection_denied_inactive"),
        "{stats}"
    );
    assert!(!envoy.log().contains(&token), "the token is never logged");
}

#[test]
fn idp_stopped_new_tokens_503_cached_tokens_served() {
    let echo = Echo::start();
    let mut idp = Idp::start(IdpOptions::default());
    let envoy = start_envoy(&echo, &idp, 60);
    let cached = opaque_token(&idp);
    let fresh = opaque_token(&idp);
    // Cached on both workers' shared cache.
    assert_eq!(envoy.get_with_token("/orders/1", &cached).status, 200);
    idp.stop();
    let resp = envoy.get_with_token("/orders/1", &fresh);
    assert_eq!(
        error_of(&resp),
        (503, "temporarily_unavailable".into()),
        "{resp}"
    );
    assert!(resp.header("retry-after").is_some());
    for _ in 0..5 {
        assert_eq!(envoy.get_with_token("/orders/1", &cached).status, 200);
    }
    let stats = envoy.stats_prometheus();
    assert!(
        stats.contains("shieldwall_token_introspection_denied_idp_unavailable"),
        "{stats}"
    );
}

/// The example configuration loads in Envoy with the client secret in Envoy's environment
/// (`vm_config.environment_variables`, read by `client_secret_env` through WASI), and Envoy
/// refuses it when the variable is missing: the filter never runs without its secret.
#[test]
fn the_example_takes_its_client_secret_from_the_environment() {
    let text = example_config("token-introspection.yaml");
    let dir = std::env::temp_dir().join(format!(
        "shieldwall-introspection-example-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let validate = |secret: Option<&str>| {
        validate_config(&dir, &text, &[("IDP_INTROSPECTION_SECRET", secret)])
    };
    let (ok, log) = validate(Some("gateway-secret"));
    assert!(ok, "{log}");
    let (ok, log) = validate(None);
    assert!(!ok, "{log}");
    assert!(
        log.contains(
            "client_secret_env: the VM has no environment variable `IDP_INTROSPECTION_SECRET`"
        ),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An opaque token past its lifetime is refused: the cached answer lives no longer than the
/// token's `exp`, and the IdP then calls it inactive.
#[test]
fn an_expired_opaque_token_is_refused() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions {
        access_token_ttl: Some(2),
        ..IdpOptions::default()
    });
    // max_ttl_s far above the token's lifetime: exp bounds the cache.
    let envoy = start_envoy(&echo, &idp, 300);
    let token = opaque_token(&idp);
    assert_eq!(envoy.get_with_token("/orders/7", &token).status, 200);
    thread::sleep(Duration::from_millis(3_100));
    let resp = envoy.get_with_token("/orders/7", &token);
    assert_eq!(error_of(&resp).0, 401, "{resp}");
    assert_eq!(
        idp.stats()["/token/introspection"],
        2,
        "the cached answer ended with the token"
    );
}

/// One route takes both kinds of token: jwt-auth verifies JWTs locally and leaves other tokens
/// (`non_jwt_tokens: pass`) to token-introspection, which skips requests jwt-auth verified
/// (`skip_if_verified_by: ["jwt"]`) and introspects the rest.
#[test]
fn one_route_takes_a_jwt_or_an_opaque_token() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let jwt = json!({
        "realm": "orders",
        "non_jwt_tokens": "pass",
        "providers": {"idp": {
            "issuer": idp.issuer(),
            "audiences": ["orders-api"],
            "remote_jwks": {"cluster": "idp", "uri": format!("http://{}{}", idp.authority(), idp.jwks_path()),
                            "timeout_ms": 1000},
            "claim_to_headers": [{"claim": "client_id", "header": "x-jwt-client"}]
        }},
        "rules": [
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/orders"}, "requires": {"provider": "idp"}}
        ]
    });
    let mut introspection: Value = serde_json::from_str(&config(&idp, 30)).unwrap();
    introspection["skip_if_verified_by"] = json!(["jwt"]);
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .cluster(Cluster::new("idp", idp.port()))
            .filter(WasmFilter::new(
                wasm_path("jwt-auth"),
                "jwt-auth",
                jwt.to_string(),
            ))
            .filter(WasmFilter::new(
                wasm_path("token-introspection"),
                "token-introspection",
                introspection.to_string(),
            ))
            .concurrency(2),
    );
    let jwt_token = idp.token(
        "orders-reader",
        "orders-reader-secret",
        Some("orders:read"),
        None,
    );
    assert_eq!(jwt_token.split('.').count(), 3);
    let resp = envoy.get_with_token("/orders/1", &jwt_token);
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    assert_eq!(resp.json()["headers"]["x-jwt-client"], "orders-reader");
    assert!(resp.json()["headers"].get("x-token-client").is_none());

    let opaque = opaque_token(&idp);
    let resp = envoy.get_with_token("/orders/1", &opaque);
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    assert_eq!(resp.json()["headers"]["x-token-client"], "orders-reader");
    assert!(resp.json()["headers"].get("x-jwt-client").is_none());
    assert_eq!(
        idp.stats()["/token/introspection"],
        1,
        "only the opaque token was introspected"
    );

    // A forged JWT is refused by jwt-auth; an unknown opaque token by token-introspection.
    let mut forged = jwt_token.clone();
    forged.pop();
    forged.push(if jwt_token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(error_of(&envoy.get_with_token("/orders/1", &forged)).0, 401);
    assert_eq!(
        error_of(&envoy.get_with_token("/orders/1", "no-such-token")),
        (401, "invalid_token".into())
    );
    assert_eq!(
        error_of(&envoy.get("/orders/1", &[])),
        (401, "missing_token".into())
    );
}

/// An HTTPS GET of `/orders/1` with the test CA and, if given, a client certificate; the status
/// and the body's `error` (empty for a 200).
fn tls_get(envoy: &Envoy, ca: &TestCa, client: Option<&TestCert>, token: &str) -> (u16, String) {
    let client = client.map(|c| (c.cert.as_path(), c.key.as_path()));
    let bearer = format!("Bearer {token}");
    let resp = https_get(
        envoy.port(),
        &ca.cert,
        client,
        "/orders/1",
        &[("authorization", &bearer)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    error_of(&resp)
}

#[test]
fn a_certificate_bound_opaque_token_passes_only_with_its_certificate() {
    let ca = TestCa::new("e2e-introspection-bound");
    let server = ca.end_entity("server", "/CN=localhost", &["DNS:localhost"]);
    let owner = ca.end_entity("owner", "/CN=orders-bound", &["DNS:orders-bound.example"]);
    let other = ca.end_entity("other", "/CN=someone-else", &["DNS:other.example"]);

    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let token = idp
        .bound_token("orders-bound", Some(OPAQUE), &owner.pem)
        .expect("the IdP issues a bound token");
    assert_eq!(token.split('.').count(), 1, "an opaque token, not a JWT");
    // Without the certificate the IdP refuses to issue one at all.
    let refused = idp.try_token(
        "orders-bound",
        "orders-bound-secret",
        None,
        Some(OPAQUE),
        shieldwall_e2e::ClientAuth::Basic,
    );
    assert!(refused.is_err(), "{refused:?}");

    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .tls(DownstreamTls::new(&server.cert, &server.key).client_ca(&ca.cert, false))
            .cluster(Cluster::new("idp", idp.port()))
            .filter(WasmFilter::new(
                wasm_path("token-introspection"),
                "token-introspection",
                config(&idp, 30),
            ))
            .concurrency(2),
    );
    assert_eq!(
        tls_get(&envoy, &ca, Some(&owner), &token),
        (200, String::new()),
        "{}",
        envoy.log()
    );
    // The cached answer is checked against each connection again.
    assert_eq!(tls_get(&envoy, &ca, Some(&owner), &token).0, 200);
    assert_eq!(
        tls_get(&envoy, &ca, Some(&other), &token),
        (401, "cnf_mismatch".to_string())
    );
    assert_eq!(
        tls_get(&envoy, &ca, None, &token),
        (401, "cnf_no_certificate".to_string())
    );
    assert_eq!(
        idp.stats()["/token/introspection"],
        1,
        "one introspection; the other requests were served from the cache"
    );
    // An unbound opaque token of another client still works on any of these connections.
    let plain = opaque_token(&idp);
    assert_eq!(tls_get(&envoy, &ca, Some(&other), &plain).0, 200);
    assert_eq!(tls_get(&envoy, &ca, None, &plain).0, 200);
}
