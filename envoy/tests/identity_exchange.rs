//! The bank flow in two real Envoys. The gateway Envoy runs jwt-auth (tokens of the real OpenID
//! Provider) → scope-authz → identity-exchange, whose signing key comes from the VM's environment;
//! it forwards to a second Envoy playing the mesh ingress, which verifies the internal token with
//! Envoy's native `jwt_authn` (remote JWKS fetched from the gateway's `jwks_path`) and lets only
//! bank-a's SPIFFE IDs with tenant `bank-a` reach `/tenants/bank-a/` with native `rbac`; the echo
//! sits behind it.
//!
//! A bank-a caller gets through and the echo shows the internal token's claims and `x-spiffe-id`;
//! a bank-b caller passes the gateway but is refused by the mesh's RBAC; a client-sent
//! `x-spiffe-id` or internal token never passes; an internal token presented at the edge is
//! refused by jwt-auth; after a key rotation (publish the new key, then switch the active kid)
//! the mesh keeps verifying.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p jwt-auth -p scope-authz -p identity-exchange

use serde_json::{json, Value};
use shieldwall_e2e::config::jwt_authn_filter;
use shieldwall_e2e::{
    example_config, free_port, jwt, keys, scratch_dir, validate_config, wasm_path, Cluster, Echo,
    Envoy, EnvoyConfig, Idp, IdpOptions, Response, WasmFilter,
};

const GATEWAY_ISSUER: &str = "https://gateway.bank.example";
const JWKS_PATH: &str = "/.well-known/internal-jwks.json";
const KEY_ENV: &str = "SHIELDWALL_SIGNING_KEY";

/// Two bank clients of the IdP: tenant bank-a and tenant bank-b, both with `orders:read`.
fn bank_clients(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("bank-clients.json");
    let clients = json!([
        {"client_id": "bank-a-app", "client_secret": "bank-a-app-secret", "scope": "orders:read",
         "tenant": "bank-a", "token_endpoint_auth_method": "client_secret_basic"},
        {"client_id": "bank-b-app", "client_secret": "bank-b-app-secret", "scope": "orders:read",
         "tenant": "bank-b", "token_endpoint_auth_method": "client_secret_basic"}
    ]);
    std::fs::write(&file, clients.to_string()).unwrap();
    file
}

fn jwt_auth_config(idp: &Idp) -> String {
    json!({
        "realm": "bank",
        "providers": {"idp": {
            "issuer": idp.issuer(),
            "audiences": ["orders-api"],
            "remote_jwks": {"cluster": "idp", "uri": format!("http://{}{}", idp.authority(), idp.jwks_path()),
                            "timeout_ms": 1000, "cache_duration_s": 300}}},
        "rules": [
            {"match": {"path": JWKS_PATH}},
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/tenants/"}, "requires": {"provider": "idp"}}
        ]
    })
    .to_string()
}

/// The gateway checks the scope; the tenant boundary is left to the mesh here, so that its RBAC
/// is what refuses bank-b on bank-a's path.
fn scope_authz_config() -> String {
    json!({"realm": "bank", "rules": [
        {"match": {"path": JWKS_PATH}, "public": true},
        {"match": {"prefix": "/healthz"}, "public": true},
        {"match": {"prefix": "/tenants/"}, "require": {"scopes": ["orders:read"]}}
    ]})
    .to_string()
}

/// identity-exchange with `keys` (the active one reads its PEM from the environment).
fn exchange_config(keys: Value) -> String {
    json!({
        "spiffe_id": "spiffe://{tenant}.bank.example/user/{sub}",
        "token": {"issuer": GATEWAY_ISSUER, "audience": "{tenant}", "ttl_s": 300, "alg": "ES256",
                  "keys": keys, "act": true},
        "jwks_path": JWKS_PATH,
        "rules": [{"match": {"prefix": "/healthz"}, "exchange": "skip"},
                  {"match": {"prefix": "/tenants/"}}]
    })
    .to_string()
}

/// The gateway: jwt-auth → scope-authz → identity-exchange, as three modules or (`one_module`) as
/// the stages of shieldwall.wasm.
fn start_gateway(
    port: u16,
    mesh: &Envoy,
    idp: &Idp,
    keys: Value,
    pem: &str,
    one_module: bool,
) -> Envoy {
    let config = EnvoyConfig::new(mesh.port())
        .listener_port(port)
        .cluster(Cluster::new("idp", idp.port()));
    if one_module {
        let parse = |text: String| serde_json::from_str::<Value>(&text).expect("a JSON config");
        let stages = json!({"chain": [
            {"filter": "jwt-auth", "config": parse(jwt_auth_config(idp))},
            {"filter": "scope-authz", "config": parse(scope_authz_config())},
            {"filter": "identity-exchange", "config": parse(exchange_config(keys))}
        ]});
        return Envoy::start(
            config.filter(
                WasmFilter::new(wasm_path("shieldwall"), "shieldwall", stages.to_string())
                    .env(KEY_ENV, pem),
            ),
        );
    }
    let config = config
        .filter(WasmFilter::new(
            wasm_path("jwt-auth"),
            "jwt-auth",
            jwt_auth_config(idp),
        ))
        .filter(WasmFilter::new(
            wasm_path("scope-authz"),
            "scope-authz",
            scope_authz_config(),
        ))
        .filter(
            WasmFilter::new(
                wasm_path("identity-exchange"),
                "identity-exchange",
                exchange_config(keys),
            )
            .env(KEY_ENV, pem),
        );
    Envoy::start(config)
}

/// The mesh ingress: native jwt_authn with the gateway's JWKS, native rbac on SPIFFE ID and tenant.
fn start_mesh(echo: &Echo, gateway_port: u16) -> Envoy {
    let jwt_authn = jwt_authn_filter(
        &format!(
            r#"gateway:
  issuer: "{GATEWAY_ISSUER}"
  audiences: ["bank-a", "bank-b"]
  forward: true
  forward_payload_header: x-internal-claims
  payload_in_metadata: jwt_payload
  from_headers: [{{ name: authorization, value_prefix: "Bearer " }}]
  remote_jwks:
    http_uri:
      uri: "http://127.0.0.1:{gateway_port}{JWKS_PATH}"
      cluster: gateway
      timeout: 2s
    cache_duration: 300s
"#
        ),
        "- match: { prefix: \"/\" }\n  requires: { provider_name: gateway }\n",
    );
    let sub_under = |tenant: &str| {
        format!(
            "{{ metadata: {{ filter: envoy.filters.http.jwt_authn, path: [{{ key: jwt_payload }}, {{ key: sub }}], value: {{ string_match: {{ prefix: \"spiffe://{tenant}.bank.example/\" }} }} }} }}"
        )
    };
    let tenant_is = |tenant: &str| {
        format!(
            "{{ metadata: {{ filter: envoy.filters.http.jwt_authn, path: [{{ key: jwt_payload }}, {{ key: tenant }}], value: {{ string_match: {{ exact: \"{tenant}\" }} }} }} }}"
        )
    };
    let rbac = format!(
        r#"- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      action: ALLOW
      policies:
        bank-a-users:
          permissions: [{{ url_path: {{ path: {{ prefix: "/tenants/bank-a/" }} }} }}]
          principals: [{{ and_ids: {{ ids: [{}, {}] }} }}]
"#,
        sub_under("bank-a"),
        tenant_is("bank-a")
    );
    let config = EnvoyConfig::new(echo.port())
        .cluster(Cluster::new("gateway", gateway_port))
        .native_filter(jwt_authn)
        .native_filter(rbac);
    Envoy::start(config)
}

fn echoed(resp: &Response) -> Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["headers"].clone()
}

#[test]
fn the_bank_flow_through_the_gateway_and_the_mesh_ingress() {
    bank_flow(false);
}

#[test]
fn the_bank_flow_with_the_gateway_as_one_module() {
    bank_flow(true);
}

fn bank_flow(one_module: bool) {
    let dir = scratch_dir(if one_module {
        "identity-exchange-one"
    } else {
        "identity-exchange"
    });
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions {
        clients_file: Some(bank_clients(&dir)),
        ..Default::default()
    });
    let (old_pem, old_jwk) = keys::p256(&dir, "2026-11");
    let (new_pem, new_jwk) = keys::p256(&dir, "2026-12");
    let gateway_port = free_port();
    let mesh = start_mesh(&echo, gateway_port);

    // Rotation step 1: the current key signs, the next one is already published.
    let step1 = json!([{"kid": "2026-11", "private_key_env": KEY_ENV},
                       {"kid": "2026-12", "public_jwk": new_jwk}]);
    let gateway = start_gateway(gateway_port, &mesh, &idp, step1, &old_pem, one_module);

    let bank_a = idp.token("bank-a-app", "bank-a-app-secret", Some("orders:read"), None);
    let bank_b = idp.token("bank-b-app", "bank-b-app-secret", Some("orders:read"), None);

    // bank-a: through both Envoys; the echo shows the SPIFFE ID and the internal token.
    let resp = gateway.get_with_token("/tenants/bank-a/accounts", &bank_a);
    let headers = echoed(&resp);
    assert_eq!(
        headers["x-spiffe-id"],
        "spiffe://bank-a.bank.example/user/bank-a-app"
    );
    let internal = headers["authorization"]
        .as_str()
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("the internal token")
        .to_string();
    assert_ne!(
        internal, bank_a,
        "the external token does not travel inward"
    );
    let claims = jwt::claims(&internal);
    assert_eq!(claims["iss"], GATEWAY_ISSUER);
    assert_eq!(
        claims["sub"],
        "spiffe://bank-a.bank.example/user/bank-a-app"
    );
    assert_eq!(claims["aud"], "bank-a");
    assert_eq!(claims["tenant"], "bank-a");
    assert_eq!(claims["scope"], "orders:read");
    assert_eq!(claims["client_id"], "bank-a-app");
    assert_eq!(
        claims["act"],
        json!({"sub": "bank-a-app", "iss": idp.issuer()})
    );
    // The mesh's jwt_authn verified it and passed its payload on.
    let verified = jwt::base64url_json(
        headers["x-internal-claims"]
            .as_str()
            .expect("jwt_authn's payload header"),
        "jwt_authn's payload header",
    );
    assert_eq!(verified["sub"], claims["sub"]);
    let header = jwt::decode(&internal).0;
    assert_eq!(
        header,
        json!({"alg": "ES256", "kid": "2026-11", "typ": "JWT"})
    );

    // bank-b: the gateway mints its own identity; the mesh's RBAC refuses it on bank-a's path.
    let resp = gateway.get_with_token("/tenants/bank-a/accounts", &bank_b);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.text(), "RBAC: access denied");
    // Even when the client claims a bank-a SPIFFE ID in the header.
    let forged = "spiffe://bank-a.bank.example/user/bank-a-app";
    let (auth_a, auth_b) = (format!("Bearer {bank_a}"), format!("Bearer {bank_b}"));
    let resp = gateway.get(
        "/tenants/bank-a/accounts",
        &[("authorization", auth_b.as_str()), ("x-spiffe-id", forged)],
    );
    assert_eq!(resp.status, 403, "{}", resp.text());
    // bank-a with a forged header: the echo shows the verified one only.
    let resp = gateway.get(
        "/tenants/bank-a/accounts",
        &[
            ("authorization", auth_a.as_str()),
            ("x-spiffe-id", "spiffe://bank-a.bank.example/user/admin"),
        ],
    );
    assert_eq!(echoed(&resp)["x-spiffe-id"], forged);
    // A skipped route with a client-sent internal token and SPIFFE ID: both removed at the
    // gateway, so the mesh sees no token at all.
    let auth_internal = format!("Bearer {internal}");
    let resp = gateway.get(
        "/healthz",
        &[
            ("authorization", auth_internal.as_str()),
            ("x-spiffe-id", forged),
        ],
    );
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.text(), "Jwt is missing");
    // The internal token presented at the edge: jwt-auth refuses it (another issuer, another key).
    let resp = gateway.get_with_token("/tenants/bank-a/accounts", &internal);
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert!(resp
        .header("www-authenticate")
        .unwrap_or("")
        .contains("invalid_token"));
    assert_eq!(echo.hits(), 2, "only the two bank-a calls reached the echo");

    // The JWKS as the gateway serves it: public keys only, both kids, with cache-control.
    let resp = gateway.get(JWKS_PATH, &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
    let kids: Vec<String> = resp.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kids, vec!["2026-11", "2026-12"]);
    assert!(!resp.text().contains("\"d\""));
    let stats = gateway.stats_prometheus();
    for metric in [
        "shieldwall_identity_exchange_minted",
        "shieldwall_identity_exchange_cache_hit",
        "shieldwall_identity_exchange_skipped",
        "shieldwall_identity_exchange_jwks_served",
    ] {
        assert!(stats.contains(metric), "{metric} in\n{stats}");
    }

    // Rotation step 2: the new key signs, the old one stays published. The mesh verifies the
    // new kid with the key set it fetched at step 1, without fetching again.
    drop(gateway);
    let step2 = json!([{"kid": "2026-12", "private_key_env": KEY_ENV},
                       {"kid": "2026-11", "public_jwk": old_jwk}]);
    let gateway = start_gateway(gateway_port, &mesh, &idp, step2, &new_pem, one_module);
    let resp = gateway.get_with_token("/tenants/bank-a/accounts", &bank_a);
    let headers = echoed(&resp);
    let internal = headers["authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let header = jwt::decode(internal).0;
    assert_eq!(header["kid"], "2026-12");
    assert_eq!(
        gateway.stat("shieldwall.identity_exchange.jwks_served"),
        None
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example configuration loads in Envoy with the signing key in Envoy's environment
/// (`host_env_keys`, read by `private_key_env` through WASI), and Envoy refuses it, naming the
/// field, when the variable is missing: the filter never runs without its key.
#[test]
fn the_example_takes_its_signing_key_from_the_environment() {
    let dir = scratch_dir("identity-exchange-example");
    let (pem, _) = keys::p256(&dir, "signing");
    let text = example_config("identity-exchange.yaml");
    let validate = |key: Option<&str>| validate_config(&dir, &text, &[(KEY_ENV, key)]);
    let (ok, log) = validate(Some(&pem));
    assert!(ok, "{log}");
    let (ok, log) = validate(None);
    assert!(!ok, "{log}");
    assert!(
        log.contains("token.keys[0].private_key_env: the VM has no environment variable `SHIELDWALL_SIGNING_KEY`"),
        "{log}"
    );
    let (ok, log) = validate(Some("not a key"));
    assert!(!ok, "{log}");
    assert!(
        log.contains("token.keys[0].private_key_env: neither"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
