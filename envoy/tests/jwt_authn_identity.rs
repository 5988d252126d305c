//! shieldwall's deciding filters behind Envoy's own JWT filter: `jwt_authn` verifies the IdP's
//! tokens with native crypto and writes their payload to dynamic metadata
//! (`payload_in_metadata`); scope-authz and rate-limit, configured with
//! `"identity_from": "jwt_authn"`, decide on that payload: the tenant boundary, the scopes, and
//! rate-limit tiers by the `tier` claim; identity-exchange mints its internal token from it, and
//! a second native `jwt_authn` after it verifies that token as the mesh would. Both as separate
//! modules and as the one module.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p scope-authz -p rate-limit -p identity-exchange -p shieldwall

use serde_json::{json, Value};
use shieldwall_e2e::config::jwt_authn_filter;
use shieldwall_e2e::{
    jwt, keys, scratch_dir, wasm_path, Cluster, Echo, Envoy, EnvoyConfig, Idp, IdpOptions,
    WasmFilter,
};

fn authz() -> Value {
    json!({"realm": "orders", "identity_from": "jwt_authn", "rules": [
        {"match": {"path": "/healthz"}, "public": true},
        {"match": {"methods": ["GET"], "template": "/tenants/{tenant}/orders/{id}"},
         "require": {"scopes": ["orders:read"], "tenant": "{tenant}"}}],
      "default": "deny"})
}

fn limits() -> Value {
    json!({"identity_from": {"jwt_authn": {"payload_in_metadata": "jwt_payload"}},
        "rules": [{"name": "per-client", "match": {"prefix": "/tenants/"},
            "key": {"identity": "client_id"},
            "limit": {"requests": 1, "per": "minute", "burst": 1},
            "tiers": {"identity": "claims.tier", "limits": {
                "free": {"requests": 1, "per": "minute", "burst": 3},
                "gold": {"requests": 1, "per": "minute", "burst": 50}}}}],
        "headers": "none"})
}

fn error_of(resp: &shieldwall_e2e::Response) -> (u16, String) {
    (resp.status, resp.error())
}

fn check(envoy: &Envoy, idp: &Idp) {
    let reader = idp.demo_token("orders-reader"); // tenant a, tier free, orders:read
    let writer = idp.demo_token("orders-writer"); // tenant a, tier gold
    let other = idp.demo_token("tenant-b");

    assert_eq!(envoy.get("/healthz", &[]).status, 200, "{}", envoy.log());
    // jwt_authn itself refuses a request without a token.
    assert_eq!(envoy.get("/tenants/a/orders/1", &[]).status, 401);

    let resp = envoy.get_with_token("/tenants/a/orders/1", &reader);
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    // The tenant boundary, decided on the payload jwt_authn verified.
    assert_eq!(
        error_of(&envoy.get_with_token("/tenants/a/orders/1", &other)),
        (403, "access_denied".to_string())
    );
    assert_eq!(
        error_of(&envoy.get_with_token("/tenants/b/orders/1", &reader)),
        (403, "access_denied".to_string())
    );
    // Tiers by the payload's `tier` claim: the free reader has a burst of 3 (one used above),
    // the gold writer 50.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(envoy.get_with_token("/tenants/a/orders/1", &reader).status);
    }
    assert_eq!(statuses, [200, 200, 429], "{}", envoy.log());
    for _ in 0..5 {
        assert_eq!(
            envoy.get_with_token("/tenants/a/orders/1", &writer).status,
            200
        );
    }
}

#[test]
fn scope_authz_and_rate_limit_decide_on_what_envoys_jwt_authn_verified() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());

    // Separate modules.
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .cluster(Cluster::new("idp", idp.port()))
            .native_filter(idp.jwt_authn_filter(&["/healthz"]))
            .filter(WasmFilter::new(
                wasm_path("scope-authz"),
                "scope-authz",
                authz().to_string(),
            ))
            .filter(WasmFilter::new(
                wasm_path("rate-limit"),
                "rate-limit",
                limits().to_string(),
            )),
    );
    check(&envoy, &idp);
    drop(envoy);

    // The one module, with the same two stages.
    let chain = json!({"chain": [
        {"filter": "scope-authz", "config": authz()},
        {"filter": "rate-limit", "config": limits()}
    ]});
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .cluster(Cluster::new("idp", idp.port()))
            .native_filter(idp.jwt_authn_filter(&["/healthz"]))
            .filter(WasmFilter::new(
                wasm_path("shieldwall"),
                "shieldwall",
                chain.to_string(),
            )),
    );
    check(&envoy, &idp);
}

// ------------------------------------------------------------------ identity-exchange

const GATEWAY_ISSUER: &str = "https://gateway.bank.example";
const KEY_ENV: &str = "SHIELDWALL_SIGNING_KEY";

fn exchange() -> Value {
    json!({
        "identity_from": "jwt_authn",
        "spiffe_id": "spiffe://{tenant}.bank.example/user/{sub}",
        "token": {"issuer": GATEWAY_ISSUER, "audience": "{tenant}", "ttl_s": 300, "alg": "EdDSA",
                  "keys": [{"kid": "2026-11", "private_key_env": KEY_ENV}], "act": true},
        "rules": [{"match": {"prefix": "/healthz"}, "exchange": "skip"},
                  {"match": {"prefix": "/tenants/"}}]
    })
}

/// Envoy's `jwt_authn` again, after identity-exchange, as the mesh would verify the internal
/// token: the gateway's issuer and public key; it forwards the token so the echo shows it.
fn internal_jwt_authn(jwk: &Value) -> String {
    let jwks = json!({"keys": [jwk]}).to_string();
    jwt_authn_filter(
        &format!(
            r#"internal:
  issuer: "{GATEWAY_ISSUER}"
  audiences: [a, b]
  forward: true
  from_headers: [{{ name: authorization, value_prefix: "Bearer " }}]
  local_jwks: {{ inline_string: '{jwks}' }}
"#
        ),
        "- match: { prefix: /healthz }\n- match: { prefix: / }\n  requires: { provider_name: internal }\n",
    )
}

fn check_exchange(envoy: &Envoy, idp: &Idp) {
    let reader = idp.demo_token("orders-reader"); // tenant a
    let external = jwt::claims(&reader);
    let sub = external["sub"].as_str().expect("the IdP's token has a sub");
    let spiffe_id = format!("spiffe://a.bank.example/user/{sub}");

    assert_eq!(envoy.get("/healthz", &[]).status, 200, "{}", envoy.log());
    // Without a token the native filter refuses first; identity-exchange never mints.
    assert_eq!(envoy.get("/tenants/a/orders/1", &[]).status, 401);

    // A client-sent SPIFFE ID does not survive; the internal token passed the second jwt_authn.
    let resp = envoy.get(
        "/tenants/a/orders/1",
        &[
            ("authorization", &format!("Bearer {reader}")),
            ("x-spiffe-id", "spiffe://a.bank.example/user/admin"),
        ],
    );
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    let headers = resp.json()["headers"].clone();
    assert_eq!(headers["x-spiffe-id"], spiffe_id.as_str());
    let internal = headers["authorization"]
        .as_str()
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("the internal token")
        .to_string();
    assert_ne!(
        internal, reader,
        "the external token does not travel inward"
    );
    let claims = jwt::claims(&internal);
    assert_eq!(claims["iss"], GATEWAY_ISSUER);
    assert_eq!(claims["sub"], spiffe_id.as_str());
    assert_eq!(claims["aud"], "a");
    assert_eq!(claims["tenant"], "a");
    assert!(claims["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|x| x == "orders:read")));
    assert_eq!(claims["act"], json!({"sub": sub, "iss": idp.issuer()}));
    // Never past the external token's expiry, read as a number from the metadata.
    assert!(claims["exp"].as_u64() <= external["exp"].as_u64());

    // The same caller again: the cached token.
    let again = envoy.get_with_token("/tenants/a/orders/2", &reader);
    assert_eq!(again.status, 200, "{again}");
    assert_eq!(
        again.json()["headers"]["authorization"],
        format!("Bearer {internal}")
    );
    // Another tenant's caller: its own SPIFFE ID and audience, verified the same way.
    let other = envoy.get_with_token("/tenants/b/orders/1", &idp.demo_token("tenant-b"));
    assert_eq!(other.status, 200, "{other}\n{}", envoy.log());
    let claims = jwt::claims(
        other.json()["headers"]["authorization"]
            .as_str()
            .and_then(|v| v.strip_prefix("Bearer "))
            .expect("the internal token"),
    );
    assert_eq!(claims["aud"], "b");
    assert!(claims["sub"]
        .as_str()
        .is_some_and(|s| s.starts_with("spiffe://b.bank.example/user/")));
    let minted = envoy.stat("wasmcustom.shieldwall.identity_exchange.minted");
    let hits = envoy.stat("wasmcustom.shieldwall.identity_exchange.cache_hit");
    assert_eq!((minted, hits), (Some(2), Some(1)), "{}", envoy.log());
}

#[test]
fn identity_exchange_mints_from_what_envoys_jwt_authn_verified() {
    let dir = scratch_dir("jwt-authn-exchange");
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let (pem, mut jwk) = keys::ed25519(&dir, "signing");
    jwk["kid"] = json!("2026-11");
    jwk["alg"] = json!("EdDSA");

    // Separate module.
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .cluster(Cluster::new("idp", idp.port()))
            .native_filter(idp.jwt_authn_filter(&["/healthz"]))
            .filter(
                WasmFilter::new(
                    wasm_path("identity-exchange"),
                    "identity-exchange",
                    exchange().to_string(),
                )
                .env(KEY_ENV, &pem),
            )
            .native_filter(internal_jwt_authn(&jwk)),
    );
    check_exchange(&envoy, &idp);
    drop(envoy);

    // The one module.
    let chain = json!({"chain": [{"filter": "identity-exchange", "config": exchange()}]});
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .cluster(Cluster::new("idp", idp.port()))
            .native_filter(idp.jwt_authn_filter(&["/healthz"]))
            .filter(
                WasmFilter::new(wasm_path("shieldwall"), "shieldwall", chain.to_string())
                    .env(KEY_ENV, &pem),
            )
            .native_filter(internal_jwt_authn(&jwk)),
    );
    check_exchange(&envoy, &idp);
}
