//! shieldwall's deciding filters behind Envoy's own JWT filter: `jwt_authn` verifies the IdP's
//! tokens with native crypto and writes their payload to dynamic metadata
//! (`payload_in_metadata`); scope-authz and rate-limit, configured with
//! `"identity_from": "jwt_authn"`, decide on that payload: the tenant boundary, the scopes, and
//! rate-limit tiers by the `tier` claim. Both as separate modules and as the one module.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p scope-authz -p rate-limit -p shieldwall

use serde_json::{json, Value};
use shieldwall_e2e::{wasm_path, Cluster, Echo, Envoy, EnvoyConfig, Idp, IdpOptions, WasmFilter};

fn jwt_authn(idp: &Idp) -> String {
    format!(
        r#"- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      idp:
        issuer: "{issuer}"
        audiences: [orders-api]
        remote_jwks:
          http_uri: {{ uri: "http://{authority}{jwks}", cluster: idp, timeout: 5s }}
        payload_in_metadata: jwt_payload
    rules:
    - match: {{ prefix: /healthz }}
    - match: {{ prefix: / }}
      requires: {{ provider_name: idp }}
"#,
        issuer = idp.issuer(),
        authority = idp.authority(),
        jwks = idp.jwks_path()
    )
}

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
    let error = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (resp.status, error)
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
            .native_filter(jwt_authn(&idp))
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
            .native_filter(jwt_authn(&idp))
            .filter(WasmFilter::new(
                wasm_path("shieldwall"),
                "shieldwall",
                chain.to_string(),
            )),
    );
    check(&envoy, &idp);
}
