//! scope-authz in a real Envoy, behind jwt-auth, with real tokens from the OpenID Provider:
//! each reply (public, allowed, 401, 403 insufficient_scope, 403 tenant/claim/principal, 403 no
//! rule), the tenant boundary (a token for tenant a cannot read /tenants/b/...), path tricks
//! decided on the normalised path and handed upstream normalised, the untrusted method override,
//! the metrics, and shadow mode.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p jwt-auth -p scope-authz

use serde_json::{json, Value};
use shieldwall_e2e::{wasm_path, Cluster, Echo, Envoy, EnvoyConfig, Idp, IdpOptions, WasmFilter};

fn jwt_config(idp: &Idp) -> String {
    json!({
        "realm": "orders",
        "providers": {"idp": {
            "issuer": idp.issuer(),
            "audiences": ["orders-api"],
            "remote_jwks": {"cluster": "idp", "uri": format!("http://{}{}", idp.authority(), idp.jwks_path())}
        }},
        // jwt-auth verifies a token when one is sent; scope-authz decides what needs one.
        "rules": [{"match": {"prefix": "/"}, "requires": {"allow_missing": {"provider": "idp"}}}]
    })
    .to_string()
}

fn policy(shadow: bool) -> Value {
    json!({ "rules": [
        { "match": { "path": "/healthz" }, "public": true },
        { "match": { "methods": ["GET"], "template": "/tenants/{tenant}/orders/{id}" },
          "require": { "scopes": ["orders:read"], "tenant": "{tenant}" } },
        { "match": { "methods": ["POST", "DELETE"], "template": "/tenants/{tenant}/orders/**" },
          "require": { "scopes": ["orders:write"], "tenant": "{tenant}" } },
        { "match": { "prefix": "/admin/" },
          "require": { "any_scopes": ["admin", "ops"], "claims": { "tier": ["gold"] } } },
        { "match": { "prefix": "/reports/" },
          "require": { "scopes": ["orders:read"], "claims": { "tier": ["gold"] } } },
        { "match": { "prefix": "/internal/" },
          "require": { "principals": ["spiffe://bank-a/api-gateway"] } } ],
      "default": "deny", "shadow": shadow, "realm": "orders" })
}

fn start(echo: &Echo, idp: &Idp, shadow: bool) -> Envoy {
    let config = EnvoyConfig::new(echo.port())
        .cluster(Cluster::new("idp", idp.port()))
        .filter(WasmFilter::new(
            wasm_path("jwt-auth"),
            "jwt-auth",
            jwt_config(idp),
        ))
        .filter(WasmFilter::new(
            wasm_path("scope-authz"),
            "scope-authz",
            policy(shadow).to_string(),
        ));
    Envoy::start(config)
}

fn send(envoy: &Envoy, method: &str, path: &str, token: Option<&str>) -> shieldwall_e2e::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    envoy.request(method, path, &headers, b"")
}

/// (status, body `error`, `WWW-Authenticate`).
fn denial(resp: &shieldwall_e2e::Response) -> (u16, String, String) {
    let challenge = resp.header("www-authenticate").unwrap_or("").to_owned();
    (resp.status, resp.error(), challenge)
}

fn stat(envoy: &Envoy, event: &str) -> Option<u64> {
    envoy.stat(&format!("wasmcustom.shieldwall.scope_authz.{event}"))
}

#[test]
fn every_reply_the_tenant_boundary_and_path_tricks_with_real_tokens() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let envoy = start(&echo, &idp, false);
    let reader = idp.demo_token("orders-reader"); // orders:read, tenant a, tier free
    let writer = idp.demo_token("orders-writer"); // orders:read orders:write, tenant a, tier gold
    let tenant_b = idp.demo_token("tenant-b"); // orders:read, tenant b
    let admin = idp.demo_token("admin"); // admin, tier gold

    // Public route: no token.
    assert_eq!(send(&envoy, "GET", "/healthz", None).status, 200);

    // Allowed: the reader reads its own tenant; the upstream gets the request (not the token).
    let resp = send(&envoy, "GET", "/tenants/a/orders/1", Some(&reader));
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    assert_eq!(resp.json()["path"], "/tenants/a/orders/1");

    // No token on a protected route: 401 with the realm and no error attribute.
    let resp = send(&envoy, "GET", "/tenants/a/orders/1", None);
    assert_eq!(
        denial(&resp),
        (
            401,
            "missing_token".into(),
            "Bearer realm=\"orders\"".into()
        )
    );

    // A valid token without the scope: 403 insufficient_scope naming the scope.
    let (status, error, www) = denial(&send(&envoy, "POST", "/tenants/a/orders", Some(&reader)));
    assert_eq!((status, error.as_str()), (403, "insufficient_scope"));
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(www.ends_with("scope=\"orders:write\""), "{www}");
    assert_eq!(
        send(&envoy, "POST", "/tenants/a/orders", Some(&writer)).status,
        200
    );
    assert_eq!(
        send(&envoy, "DELETE", "/tenants/a/orders/7", Some(&writer)).status,
        200
    );

    // The tenant boundary: tenant a's tokens cannot read or write tenant b, and back.
    for (method, token) in [("GET", &reader), ("DELETE", &writer)] {
        let resp = send(&envoy, method, "/tenants/b/orders/1", Some(token));
        assert_eq!(
            denial(&resp),
            (403, "access_denied".into(), String::new()),
            "{method}"
        );
    }
    assert_eq!(
        send(&envoy, "GET", "/tenants/b/orders/1", Some(&tenant_b)).status,
        200
    );
    assert_eq!(
        denial(&send(&envoy, "GET", "/tenants/a/orders/1", Some(&tenant_b))).0,
        403
    );

    // Path tricks: decided on the normalised path, and the upstream receives that path, so it
    // cannot resolve the request to another tenant than the one that was checked.
    for path in [
        "//tenants/a/orders/1",
        "/tenants/a/./orders/1",
        "/tenants/b/../a/orders/1",
        "/tenants/%61/orders/1",
    ] {
        let resp = send(&envoy, "GET", path, Some(&reader));
        assert_eq!(resp.status, 200, "{path}: {resp}");
        assert_eq!(resp.json()["path"], "/tenants/a/orders/1", "{path}");
        assert_eq!(
            denial(&send(&envoy, "GET", path, Some(&tenant_b))).0,
            403,
            "{path}"
        );
    }
    let resp = send(&envoy, "GET", "/tenants/a/../b/orders/1", Some(&reader));
    assert_eq!(denial(&resp).1, "access_denied");
    let resp = send(&envoy, "GET", "/TENANTS/a/orders/1", Some(&reader));
    assert_eq!(
        denial(&resp),
        (403, "no_matching_rule".into(), String::new())
    );
    assert_eq!(
        send(&envoy, "GET", "/tenants/a%2Fb/orders/1", Some(&reader)).status,
        400
    );

    // The method override is not trusted (not configured): decided on GET, removed upstream.
    let auth = format!("Bearer {reader}");
    let resp = envoy.request(
        "GET",
        "/tenants/a/orders/1",
        &[
            ("authorization", &auth),
            ("x-http-method-override", "DELETE"),
        ],
        b"",
    );
    assert_eq!(resp.status, 200);
    assert!(
        resp.json()["headers"]["x-http-method-override"].is_null(),
        "{resp}"
    );

    // any_scopes + claims: the writer is gold but has neither admin nor ops; the admin has both.
    let (status, error, www) = denial(&send(&envoy, "GET", "/admin/users", Some(&writer)));
    assert_eq!((status, error.as_str()), (403, "insufficient_scope"));
    assert!(www.ends_with("scope=\"admin ops\""), "{www}");
    assert_eq!(
        send(&envoy, "GET", "/admin/users", Some(&admin)).status,
        200
    );
    // A claim mismatch: the reader's tier is free.
    let resp = send(&envoy, "GET", "/reports/q1", Some(&reader));
    assert_eq!(denial(&resp), (403, "access_denied".into(), String::new()));
    assert_eq!(
        send(&envoy, "GET", "/reports/q1", Some(&writer)).status,
        200
    );
    // Principals: a JWT caller is not the mTLS gateway.
    assert_eq!(
        denial(&send(&envoy, "GET", "/internal/jobs", Some(&admin))).1,
        "access_denied"
    );
    // No rule: default deny.
    assert_eq!(
        denial(&send(&envoy, "GET", "/orders", Some(&writer))).1,
        "no_matching_rule"
    );

    // The metrics say why.
    assert_eq!(stat(&envoy, "allowed.public"), Some(1));
    assert_eq!(stat(&envoy, "denied.missing_identity"), Some(1));
    assert_eq!(stat(&envoy, "denied.insufficient_scope"), Some(2));
    assert_eq!(stat(&envoy, "denied.tenant_mismatch"), Some(8));
    assert_eq!(stat(&envoy, "denied.claim_mismatch"), Some(1));
    assert_eq!(stat(&envoy, "denied.principal_not_allowed"), Some(1));
    assert_eq!(stat(&envoy, "denied.no_matching_rule"), Some(2));
    assert_eq!(stat(&envoy, "path_rewritten"), Some(4));
    assert!(envoy
        .stats_prometheus()
        .contains("shieldwall_scope_authz_denied_tenant_mismatch"));
    // ...and so does the log.
    assert!(
        envoy.wait_for_log(std::time::Duration::from_secs(5), |l| l
            .contains("denied GET /tenants/b/orders/1 by rules[1]: tenant_mismatch")),
        "{}",
        envoy.log()
    );
}

#[test]
fn shadow_mode_lets_through_what_it_would_refuse_and_counts_it() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let envoy = start(&echo, &idp, true);
    let reader = idp.demo_token("orders-reader");

    // Would be 403 tenant_mismatch, 401, 403 insufficient_scope, 403 no rule: all pass.
    assert_eq!(
        send(&envoy, "GET", "/tenants/b/orders/1", Some(&reader)).status,
        200
    );
    assert_eq!(send(&envoy, "GET", "/tenants/a/orders/1", None).status, 200);
    assert_eq!(
        send(&envoy, "POST", "/tenants/a/orders", Some(&reader)).status,
        200
    );
    assert_eq!(send(&envoy, "GET", "/elsewhere", Some(&reader)).status, 200);
    assert_eq!(echo.hits(), 4);

    assert_eq!(stat(&envoy, "shadow.denied.tenant_mismatch"), Some(1));
    assert_eq!(stat(&envoy, "shadow.denied.missing_identity"), Some(1));
    assert_eq!(stat(&envoy, "shadow.denied.insufficient_scope"), Some(1));
    assert_eq!(stat(&envoy, "shadow.denied.no_matching_rule"), Some(1));
    assert_eq!(stat(&envoy, "denied.tenant_mismatch"), None);
    assert!(
        envoy.wait_for_log(std::time::Duration::from_secs(5), |l| l.contains(
            "shadow: would deny GET /tenants/b/orders/1 by rules[1]: tenant_mismatch"
        )),
        "{}",
        envoy.log()
    );
}
