//! Filter-level tests over MockHost: rule matching, each decision and reply, path tricks, the
//! method override, shadow mode, and configurations refused with their field path.

use serde_json::{json, Value};
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::testing::{LocalReply, MockHost};
use shieldwall_core::{Action, RootFilter, StreamFilter};

use crate::config::{template_params, Config, Principal};
use crate::filter::ScopeAuthz;

/// The configuration of the issue, verbatim.
fn issue_config() -> Value {
    json!({ "rules": [
        { "match": { "path": "/healthz" }, "public": true },
        { "match": { "methods": ["GET"], "template": "/tenants/{tenant}/orders/{id}" },
          "require": { "scopes": ["orders:read"], "tenant": "{tenant}" } },
        { "match": { "methods": ["POST", "DELETE"], "template": "/tenants/{tenant}/orders/**" },
          "require": { "scopes": ["orders:write"], "tenant": "{tenant}" } },
        { "match": { "prefix": "/admin/" },
          "require": { "any_scopes": ["admin", "ops"], "claims": { "acr": ["mfa"] } } },
        { "match": { "prefix": "/internal/" },
          "require": { "principals": ["spiffe://bank-a/api-gateway"] } } ],
      "default": "deny", "shadow": false })
}

fn with(mut config: Value, key: &str, value: Value) -> Value {
    config[key] = value;
    config
}

fn reader_a() -> Value {
    json!({"sub": "orders-reader", "client_id": "orders-reader", "scopes": ["orders:read"],
           "tenant": "a", "auth": ["jwt"]})
}
fn writer_a() -> Value {
    json!({"sub": "orders-writer", "scopes": ["orders:read", "orders:write"], "tenant": "a", "auth": ["jwt"]})
}
fn reader_b() -> Value {
    json!({"sub": "tenant-b", "scopes": ["orders:read"], "tenant": "b", "auth": ["jwt"]})
}

struct Run {
    action: Action,
    host: MockHost,
}

impl Run {
    fn allowed(&self) -> bool {
        self.action == Action::Continue && self.host.local_reply.is_none()
    }
    fn reply(&self) -> &LocalReply {
        self.host.local_reply.as_ref().expect("a local reply")
    }
    fn status(&self) -> u16 {
        self.reply().status
    }
    fn code(&self) -> String {
        self.reply().json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    fn upstream_path(&self) -> String {
        self.host.request_header(":path").unwrap_or_default()
    }
}

use shieldwall_core::Host;

fn run_with(
    config: &Value,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    identity: Option<Value>,
) -> Run {
    let mut host = MockHost::request(method, path, headers);
    if let Some(id) = identity {
        host.properties
            .insert(IDENTITY_PROPERTY.into(), serde_json::to_vec(&id).unwrap());
    }
    let mut root = ScopeAuthz::configure(&mut host, config.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("config refused: {e}"));
    let mut stream = root.new_stream(&mut host, 1);
    let action = stream.on_request_headers(&mut host, true);
    if action == Action::Pause {
        assert!(host.local_reply.is_some(), "paused without a reply");
    }
    Run { action, host }
}

fn run(method: &str, path: &str, identity: Option<Value>) -> Run {
    run_with(&issue_config(), method, path, &[], identity)
}

fn refused(config: Value) -> (String, String) {
    let e = Config::parse(config.to_string().as_bytes()).unwrap_err();
    (e.path, e.reason)
}

// ------------------------------------------------------------------ decisions and replies

#[test]
fn issue_config_loads() {
    let c = Config::parse(issue_config().to_string().as_bytes()).unwrap();
    assert_eq!(c.rules.len(), 5);
    assert_eq!(c.rules[1].label, "rules[1]");
    assert!(!c.shadow);
    assert!(c.rewrite_path);
    assert_eq!(c.realm, "shieldwall");
}

#[test]
fn public_route_needs_no_identity() {
    let r = run("GET", "/healthz", None);
    assert!(r.allowed());
    assert_eq!(r.host.metric("shieldwall.scope_authz.allowed.public"), 1);
    // ...but only that exact path: a neighbour is not public.
    assert_eq!(run("GET", "/healthz/x", None).status(), 403);
}

#[test]
fn no_identity_on_a_protected_route_is_401_with_the_realm() {
    let config = with(issue_config(), "realm", json!("orders"));
    let r = run_with(&config, "GET", "/tenants/a/orders/1", &[], None);
    assert_eq!(r.action, Action::Pause);
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.reply().header("www-authenticate"),
        Some("Bearer realm=\"orders\"")
    );
    assert_eq!(r.code(), "missing_token");
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.denied.missing_identity"),
        1
    );
    assert!(r.host.logged("missing_identity"));
}

#[test]
fn an_unreadable_identity_is_no_identity() {
    let mut host = MockHost::request("GET", "/tenants/a/orders/1", &[]);
    host.properties
        .insert(IDENTITY_PROPERTY.into(), b"{not json".to_vec());
    let mut root = ScopeAuthz::configure(&mut host, issue_config().to_string().as_bytes()).unwrap();
    let mut s = root.new_stream(&mut host, 1);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    assert_eq!(host.local_reply.unwrap().status, 401);
}

#[test]
fn identity_with_the_scope_and_tenant_passes() {
    let r = run("GET", "/tenants/a/orders/1", Some(reader_a()));
    assert!(r.allowed());
    assert_eq!(r.host.metric("shieldwall.scope_authz.allowed"), 1);
    assert_eq!(r.upstream_path(), "/tenants/a/orders/1");
}

#[test]
fn missing_scope_is_403_insufficient_scope_naming_the_scope() {
    let r = run("POST", "/tenants/a/orders", Some(reader_a()));
    assert_eq!(r.status(), 403);
    let www = r.reply().header("www-authenticate").unwrap();
    assert!(
        www.starts_with("Bearer realm=\"shieldwall\", error=\"insufficient_scope\""),
        "{www}"
    );
    assert!(www.ends_with("scope=\"orders:write\""), "{www}");
    assert_eq!(r.code(), "insufficient_scope");
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.denied.insufficient_scope"),
        1
    );
    // The writer may.
    assert!(run("POST", "/tenants/a/orders", Some(writer_a())).allowed());
    assert!(run("DELETE", "/tenants/a/orders/1/items/2", Some(writer_a())).allowed());
}

#[test]
fn read_never_satisfies_readonly_and_scopes_are_exact() {
    let config = json!({"rules": [
        {"match": {"prefix": "/r/"}, "require": {"scopes": ["orders:readonly"]}}]});
    for scopes in [
        json!(["orders:read"]),
        json!(["orders:readonly2"]),
        json!(["ORDERS:READONLY"]),
        json!(["orders:read only"]),
    ] {
        let id = json!({"sub": "x", "scopes": scopes});
        let r = run_with(&config, "GET", "/r/1", &[], Some(id));
        assert_eq!(r.status(), 403, "{scopes}");
        assert_eq!(r.code(), "insufficient_scope");
    }
    let id = json!({"sub": "x", "scopes": ["orders:readonly"]});
    assert!(run_with(&config, "GET", "/r/1", &[], Some(id)).allowed());
}

#[test]
fn scopes_from_scope_string_or_scp_array_in_the_claims() {
    // An authenticator that left `scopes` empty but passed the claims.
    for claims in [
        json!({"scope": "orders:read other"}),
        json!({"scp": ["other", "orders:read"]}),
    ] {
        let id = json!({"sub": "x", "tenant": "a", "claims": claims});
        assert!(
            run("GET", "/tenants/a/orders/1", Some(id)).allowed(),
            "{claims}"
        );
        // Or with other scopes in the identity: the claims still count.
        let id = json!({"sub": "x", "tenant": "a", "scopes": ["other"], "claims": claims});
        assert!(
            run("GET", "/tenants/a/orders/1", Some(id)).allowed(),
            "{claims}"
        );
    }
}

#[test]
fn tenant_boundary_a_token_for_a_cannot_read_b() {
    let r = run("GET", "/tenants/b/orders/1", Some(reader_a()));
    assert_eq!(r.status(), 403);
    assert_eq!(r.code(), "access_denied");
    assert!(r.reply().header("www-authenticate").is_none());
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.denied.tenant_mismatch"),
        1
    );
    assert!(r
        .host
        .logged("denied GET /tenants/b/orders/1 by rules[1]: tenant_mismatch"));
    // No tenant at all is no match either.
    let id = json!({"sub": "x", "scopes": ["orders:read"]});
    assert_eq!(
        run("GET", "/tenants/a/orders/1", Some(id)).code(),
        "access_denied"
    );
    // And writes are held to the tenant too.
    assert_eq!(
        run("DELETE", "/tenants/b/orders/1", Some(writer_a())).code(),
        "access_denied"
    );
    assert!(run("GET", "/tenants/b/orders/1", Some(reader_b())).allowed());
}

#[test]
fn tenant_template_with_text_around_the_parameter() {
    let config = json!({"rules": [{"match": {"template": "/t/{org}/{unit}/x"},
        "require": {"tenant": "{org}-{unit}"}}]});
    let id = |t: &str| Some(json!({"sub": "x", "tenant": t}));
    assert!(run_with(&config, "GET", "/t/acme/eu/x", &[], id("acme-eu")).allowed());
    assert_eq!(
        run_with(&config, "GET", "/t/acme/us/x", &[], id("acme-eu")).status(),
        403
    );
}

#[test]
fn path_tricks_are_each_decided_on_purpose() {
    // Same resource, written differently: decided as /tenants/a/orders/1, and the upstream gets
    // exactly that path (so it cannot resolve it to another tenant).
    for path in [
        "/tenants/a/orders/1",
        "//tenants/a/orders/1",
        "/tenants/a/./orders/1",
        "/tenants/b/../a/orders/1",
        "/tenants/%61/orders/%31",
        "/tenants//a/orders/1",
    ] {
        let r = run("GET", path, Some(reader_a()));
        assert!(r.allowed(), "{path}");
        assert_eq!(r.upstream_path(), "/tenants/a/orders/1", "{path}");
        // Tenant b's token is refused for the very same resource.
        let r = run("GET", path, Some(reader_b()));
        assert_eq!(r.code(), "access_denied", "{path}");
    }
    // The other way round: the `..` leads into tenant b.
    let r = run("GET", "/tenants/a/../b/orders/1", Some(reader_a()));
    assert_eq!(r.code(), "access_denied");
    // Paths are case-sensitive: /TENANTS is no rule's path, so the default refuses it.
    let r = run("GET", "/TENANTS/a/orders/1", Some(reader_a()));
    assert_eq!((r.status(), r.code().as_str()), (403, "no_matching_rule"));
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.denied.no_matching_rule"),
        1
    );
    // Encoded slashes cannot hide a separator: 400 before any rule.
    let r = run("GET", "/tenants/a/orders/1%2F..%2F..%2Fb", Some(reader_a()));
    assert_eq!((r.status(), r.code().as_str()), (400, "encoded_separator"));
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.denied.encoded_separator"),
        1
    );
    let r = run("GET", "/tenants/a/orders/1%5c..", Some(reader_a()));
    assert_eq!(r.status(), 400);
    // A trailing slash or an extra segment is another route, not a looser one.
    assert_eq!(
        run("GET", "/tenants/a/orders/1/", Some(reader_a())).code(),
        "no_matching_rule"
    );
    assert_eq!(
        run("GET", "/tenants/a/orders/1/x", Some(reader_a())).code(),
        "no_matching_rule"
    );
    // Dot segments cannot climb into /admin/ unseen, nor a bare /admin skip it.
    let r = run("GET", "/healthz/../admin/users", Some(reader_a()));
    assert_eq!(r.code(), "insufficient_scope");
    assert_eq!(
        run("GET", "/admin", Some(reader_a())).code(),
        "insufficient_scope"
    );
    // The query is kept when the path is rewritten.
    let r = run("GET", "//tenants/a/orders/1?x=1&y=%2F", Some(reader_a()));
    assert_eq!(r.upstream_path(), "/tenants/a/orders/1?x=1&y=%2F");
    assert_eq!(r.host.metric("shieldwall.scope_authz.path_rewritten"), 1);
}

#[test]
fn rewrite_path_false_leaves_the_path_alone() {
    let config = with(issue_config(), "rewrite_path", json!(false));
    let r = run_with(
        &config,
        "GET",
        "//tenants/a/./orders/1",
        &[],
        Some(reader_a()),
    );
    assert!(r.allowed());
    assert_eq!(r.upstream_path(), "//tenants/a/./orders/1");
}

#[test]
fn methods_are_matched_and_unlisted_methods_fall_to_the_default() {
    assert_eq!(
        run("PUT", "/tenants/a/orders/1", Some(writer_a())).code(),
        "no_matching_rule"
    );
    assert_eq!(
        run("HEAD", "/tenants/a/orders/1", Some(writer_a())).code(),
        "no_matching_rule"
    );
    // Lower-case methods are the same method.
    assert!(run("get", "/tenants/a/orders/1", Some(reader_a())).allowed());
}

#[test]
fn method_override_is_not_trusted_unless_configured() {
    let r = run_with(
        &issue_config(),
        "GET",
        "/tenants/a/orders/1",
        &[
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x-method-override", "PUT"),
        ],
        Some(reader_a()),
    );
    assert!(r.allowed(), "decided on the real method, GET");
    // ...and the upstream never sees an override it could act on.
    for h in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        assert!(r.host.request_header(h).is_none(), "{h}");
    }
}

#[test]
fn a_configured_method_override_must_be_allowed_too() {
    let config = with(
        issue_config(),
        "method_override_header",
        json!("X-HTTP-Method-Override"),
    );
    let h = [("x-http-method-override", "DELETE")];
    let r = run_with(&config, "GET", "/tenants/a/orders/1", &h, Some(reader_a()));
    assert_eq!(r.code(), "insufficient_scope");
    assert!(r
        .reply()
        .header("www-authenticate")
        .unwrap()
        .ends_with("scope=\"orders:write\""));
    assert!(r.host.logged("denied DELETE /tenants/a/orders/1"));
    // A writer may do both; the header the upstream honours is kept, the others removed.
    let h = [
        ("x-http-method-override", "delete"),
        ("x-http-method", "PUT"),
    ];
    let r = run_with(&config, "POST", "/tenants/a/orders/1", &h, Some(writer_a()));
    assert!(r.allowed());
    assert_eq!(
        r.host.request_header("x-http-method-override").as_deref(),
        Some("delete")
    );
    assert!(r.host.request_header("x-http-method").is_none());
    // The real method is checked as well: an override cannot widen what the method may do.
    let h = [("x-http-method-override", "GET")];
    let r = run_with(&config, "PUT", "/tenants/a/orders/1", &h, Some(writer_a()));
    assert_eq!(r.code(), "no_matching_rule");
    // Two values, or a value that is no method: 400.
    let h = [
        ("x-http-method-override", "GET"),
        ("x-http-method-override", "DELETE"),
    ];
    let r = run_with(&config, "GET", "/tenants/a/orders/1", &h, Some(writer_a()));
    assert_eq!(
        (r.status(), r.code().as_str()),
        (400, "invalid_method_override")
    );
    let h = [("x-http-method-override", "DEL ETE")];
    let r = run_with(&config, "GET", "/tenants/a/orders/1", &h, Some(writer_a()));
    assert_eq!(r.status(), 400);
}

#[test]
fn any_scopes_and_claims() {
    let admin = |scopes: Value, acr: Value| {
        Some(json!({"sub": "x", "scopes": scopes, "claims": {"acr": acr}}))
    };
    assert!(run("GET", "/admin/users", admin(json!(["admin"]), json!("mfa"))).allowed());
    assert!(run("GET", "/admin/users", admin(json!(["ops"]), json!("mfa"))).allowed());
    // An array claim passes if any element is allowed.
    assert!(run(
        "GET",
        "/admin/users",
        admin(json!(["ops"]), json!(["pwd", "mfa"]))
    )
    .allowed());
    let r = run(
        "GET",
        "/admin/users",
        admin(json!(["orders:read"]), json!("mfa")),
    );
    assert_eq!(r.code(), "insufficient_scope");
    assert!(r
        .reply()
        .header("www-authenticate")
        .unwrap()
        .ends_with("scope=\"admin ops\""));
    let r = run("GET", "/admin/users", admin(json!(["admin"]), json!("pwd")));
    assert_eq!((r.status(), r.code().as_str()), (403, "access_denied"));
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.denied.claim_mismatch"),
        1
    );
    assert!(r.host.logged("claim_mismatch (claim acr)"));
    assert_eq!(
        run(
            "GET",
            "/admin/users",
            admin(json!(["admin"]), json!(["pwd"]))
        )
        .code(),
        "access_denied"
    );
    assert_eq!(
        run(
            "GET",
            "/admin/users",
            admin(json!(["admin"]), json!({"v": "mfa"}))
        )
        .code(),
        "access_denied"
    );
    let no_acr = Some(json!({"sub": "x", "scopes": ["admin"]}));
    assert_eq!(run("GET", "/admin/users", no_acr).code(), "access_denied");
}

#[test]
fn nested_namespaced_and_typed_claims() {
    let config = json!({"rules": [{"match": {"prefix": "/"}, "require": {"claims": {
        "org.region": ["eu"], "https://example.com/roles": ["clerk"], "level": [3], "staff": [true]}}}]});
    let ok = json!({"sub": "x", "claims": {"org": {"region": "eu"}, "https://example.com/roles": ["clerk", "x"],
                                          "level": 3, "staff": true}});
    assert!(run_with(&config, "GET", "/a", &[], Some(ok.clone())).allowed());
    for (k, v) in [
        ("org", json!({"region": "us"})),
        ("level", json!("3")),
        ("staff", json!("true")),
        ("https://example.com/roles", json!("admin")),
    ] {
        let mut bad = ok.clone();
        bad["claims"][k] = v;
        assert_eq!(
            run_with(&config, "GET", "/a", &[], Some(bad)).code(),
            "access_denied",
            "{k}"
        );
    }
}

#[test]
fn principals_exact_and_trailing_wildcard() {
    let mtls = |id: &str| Some(json!({"spiffe_id": id, "auth": ["mtls"]}));
    assert!(run("GET", "/internal/x", mtls("spiffe://bank-a/api-gateway")).allowed());
    for id in [
        "spiffe://bank-a/api-gateway2",
        "spiffe://bank-a/api-gateway/x",
        "spiffe://bank-b/api-gateway",
    ] {
        let r = run("GET", "/internal/x", mtls(id));
        assert_eq!(r.code(), "access_denied", "{id}");
        assert_eq!(
            r.host
                .metric("shieldwall.scope_authz.denied.principal_not_allowed"),
            1
        );
    }
    // A JWT-only identity has no SPIFFE ID.
    assert_eq!(
        run("GET", "/internal/x", Some(reader_a())).code(),
        "access_denied"
    );
    // No identity at all on a route only a client certificate can pass: 403, no Bearer challenge.
    let r = run("GET", "/internal/x", None);
    assert_eq!((r.status(), r.code()), (403, "access_denied".to_string()));
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.denied.missing_client_certificate"),
        1
    );

    let config = json!({"rules": [{"match": {"prefix": "/"}, "require": {"principals": ["spiffe://bank-a/ns/payments/*"]}}]});
    assert!(run_with(
        &config,
        "GET",
        "/",
        &[],
        mtls("spiffe://bank-a/ns/payments/sa/api")
    )
    .allowed());
    for id in [
        "spiffe://bank-a/ns/payments",
        "spiffe://bank-a/ns/payments/",
        "spiffe://bank-a/ns/paymentsx/a",
    ] {
        assert_eq!(
            run_with(&config, "GET", "/", &[], mtls(id)).status(),
            403,
            "{id}"
        );
    }
    let p = Principal::Under("spiffe://d/a/".into());
    assert!(p.allows("spiffe://d/a/b") && !p.allows("spiffe://d/a/"));
}

#[test]
fn empty_require_means_any_authenticated_caller() {
    let config = json!({"rules": [{"match": {"prefix": "/me"}, "require": {}}]});
    assert!(run_with(&config, "GET", "/me", &[], Some(json!({"sub": "x"}))).allowed());
    assert_eq!(run_with(&config, "GET", "/me", &[], None).status(), 401);
}

#[test]
fn the_first_matching_rule_decides() {
    let config = json!({"rules": [
        {"match": {"prefix": "/admin/health"}, "public": true},
        {"match": {"prefix": "/admin/"}, "require": {"scopes": ["admin"]}},
        {"match": {"prefix": "/"}, "public": true}]});
    assert!(run_with(&config, "GET", "/admin/health", &[], None).allowed());
    assert_eq!(
        run_with(&config, "GET", "/admin/users", &[], None).status(),
        401
    );
    assert!(run_with(&config, "GET", "/other", &[], None).allowed());
    // A named rule shows its name in the log.
    let config = json!({"rules": [{"name": "admin-area", "match": {"prefix": "/admin/"}, "require": {"scopes": ["admin"]}}]});
    let r = run_with(&config, "GET", "/admin/x", &[], Some(reader_a()));
    assert!(r
        .host
        .logged("by admin-area: insufficient_scope (needs admin)"));
}

#[test]
fn default_deny_unless_allow_is_written() {
    let config = json!({"rules": []});
    let r = run_with(&config, "GET", "/anything", &[], Some(writer_a()));
    assert_eq!((r.status(), r.code().as_str()), (403, "no_matching_rule"));
    let config = json!({"rules": [], "default": "allow"});
    let r = run_with(&config, "GET", "/anything", &[], None);
    assert!(r.allowed());
    assert_eq!(r.host.metric("shieldwall.scope_authz.allowed.default"), 1);
    // Rules still apply when the default allows.
    let config = with(issue_config(), "default", json!("allow"));
    assert_eq!(
        run_with(&config, "GET", "/tenants/b/orders/1", &[], Some(reader_a())).status(),
        403
    );
}

#[test]
fn shadow_mode_counts_and_logs_but_lets_through() {
    let config = with(issue_config(), "shadow", json!(true));
    let r = run_with(&config, "GET", "/tenants/b/orders/1", &[], Some(reader_a()));
    assert!(r.allowed());
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.shadow.denied.tenant_mismatch"),
        1
    );
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.denied.tenant_mismatch"),
        0
    );
    assert!(r
        .host
        .logged("shadow: would deny GET /tenants/b/orders/1 by rules[1]: tenant_mismatch"));
    let r = run_with(&config, "GET", "/tenants/a/orders/1", &[], None);
    assert!(r.allowed());
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.shadow.denied.missing_identity"),
        1
    );
    let r = run_with(&config, "GET", "/nowhere", &[], None);
    assert!(r.allowed());
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.shadow.denied.no_matching_rule"),
        1
    );
    let r = run_with(&config, "GET", "/a%2fb", &[], None);
    assert!(r.allowed());
    assert_eq!(
        r.host
            .metric("shieldwall.scope_authz.shadow.denied.encoded_separator"),
        1
    );
    // Shadow mode changes nothing on the request: no path rewrite, no header removal.
    let r = run_with(
        &config,
        "GET",
        "//tenants/a/orders/1",
        &[("x-http-method-override", "DELETE")],
        Some(reader_a()),
    );
    assert_eq!(r.upstream_path(), "//tenants/a/orders/1");
    assert!(r.host.request_header("x-http-method-override").is_some());
    // What is allowed anyway is counted as allowed.
    assert_eq!(r.host.metric("shieldwall.scope_authz.allowed"), 1);
}

#[test]
fn reply_bodies_are_small_json_without_client_input() {
    let r = run(
        "GET",
        "/tenants/b/orders/secret-order-name",
        Some(reader_a()),
    );
    let body = r.reply().json();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert!(body["error_description"].is_string());
    let raw = String::from_utf8_lossy(&r.reply().body).to_string();
    assert!(
        !raw.contains("secret-order-name") && !raw.contains("tenants"),
        "{raw}"
    );
    assert_eq!(r.reply().header("content-type"), Some("application/json"));
    assert_eq!(r.reply().header("cache-control"), Some("no-store"));
}

// ------------------------------------------------------------------ configuration

#[test]
fn configurations_that_cannot_work_are_refused_with_the_field_path() {
    let rule = |r: Value| json!({"rules": [r]});
    let tpl = json!({"template": "/tenants/{tenant}/orders/{id}"});
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            rule(json!({"match": tpl, "require": {"tenant": "{org}"}})),
            "rules[0].require.tenant",
            "not a parameter",
        ),
        (
            rule(json!({"match": {"prefix": "/t/"}, "require": {"tenant": "{tenant}"}})),
            "rules[0].require.tenant",
            "has none",
        ),
        (
            rule(json!({"match": tpl, "require": {"tenant": "{tenant"}})),
            "rules[0].require.tenant",
            "without its",
        ),
        (
            rule(json!({"match": tpl, "require": {"tenant": ""}})),
            "rules[0].require.tenant",
            "non-empty",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "public": true, "require": {}})),
            "rules[0]",
            "exclude each other",
        ),
        (
            rule(json!({"match": {"path": "/a"}})),
            "rules[0]",
            "needs `public: true` or `require`",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "public": false})),
            "rules[0].public",
            "needs a `require`",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"scopes": []}})),
            "rules[0].require.scopes",
            "at least one",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"any_scopes": []}})),
            "rules[0].require.any_scopes",
            "at least one",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"scopes": ["a b"]}})),
            "rules[0].require.scopes[0]",
            "not a scope",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"claims": {}}})),
            "rules[0].require.claims",
            "at least one",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"claims": {"acr": []}}})),
            "rules[0].require.claims.acr",
            "at least one",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"claims": {"acr": [{"x": 1}]}}})),
            "rules[0].require.claims.acr[0]",
            "strings, numbers",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"claims": {"a..b": ["x"]}}})),
            "rules[0].require.claims.a..b",
            "dotted",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"principals": []}})),
            "rules[0].require.principals",
            "at least one",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"principals": ["bank-a/gw"]}})),
            "rules[0].require.principals[0]",
            "not a SPIFFE ID",
        ),
        (
            rule(
                json!({"match": {"path": "/a"}, "require": {"principals": ["spiffe://bank-a/*/gw"]}}),
            ),
            "rules[0].require.principals[0]",
            "trailing",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"principals": ["spiffe://bank-a"]}})),
            "rules[0].require.principals[0]",
            "path",
        ),
        (
            rule(json!({"match": {"path": "/a"}, "require": {"scope": ["x"]}})),
            "rules[0].require.scope",
            "unknown field",
        ),
        (
            rule(json!({"match": {"path": "/a/../b"}, "public": true})),
            "rules[0].match.path",
            "normalised",
        ),
        (
            rule(json!({"match": {"prefix": "/a", "methods": ["G T"]}, "public": true})),
            "rules[0].match.methods[0]",
            "method",
        ),
        (
            rule(json!({"name": "has space", "match": {"path": "/a"}, "public": true})),
            "rules[0].name",
            "letters",
        ),
        (
            json!({"rules": [], "default": "maybe"}),
            "default",
            "unknown variant",
        ),
        (json!({"rules": [], "realm": "a\"b"}), "realm", "quotes"),
        (
            json!({"rules": [], "method_override_header": "x override"}),
            "method_override_header",
            "header name",
        ),
        (
            json!({"rules": [], "shadow": "yes"}),
            "shadow",
            "invalid type",
        ),
        (json!({"default": "deny"}), "", "missing field `rules`"),
    ];
    for (config, path, reason) in cases {
        let (p, r) = refused(config.clone());
        assert_eq!(p, path, "{config}: {r}");
        assert!(r.contains(reason), "{config}: `{r}` lacks `{reason}`");
    }
}

#[test]
fn a_refused_configuration_fails_configure() {
    let mut host = MockHost::new();
    let err = ScopeAuthz::configure(&mut host, br#"{"rules": [{"match": {"path": "/a"}}]}"#)
        .err()
        .unwrap();
    assert_eq!(err.path, "rules[0]");
}

#[test]
fn template_parameters_are_found() {
    assert_eq!(
        template_params("/tenants/{tenant}/orders/{id}"),
        vec!["tenant", "id"]
    );
    assert_eq!(template_params("/v1/*/x/{path=**}"), vec!["path"]);
    assert!(template_params("/a/b").is_empty());
}

/// An allowed request, call by call, as the benchmark's chain of three modules runs it
/// (`require.scopes` on every path): what it costs in calls out of the VM once the worker's
/// metrics exist. bench/run.py prices the chain row's floor from this list. In a proxy the
/// adapter adds the decision record (one property write).
#[test]
fn an_allowed_request_makes_only_the_calls_it_needs() {
    use shieldwall_core::testing::CountingHost;
    let mut inner = MockHost::new();
    // Envoy's default log level: the debug message of an allowed request makes no call.
    inner.log_level = Some(shieldwall_core::LogLevel::Info);
    let mut host = CountingHost::new(inner);
    let config =
        json!({"rules": [{"match": {"prefix": "/"}, "require": {"scopes": ["orders:read"]}}]});
    let mut root = ScopeAuthz::configure(&mut host, config.to_string().as_bytes()).unwrap();
    let identity = serde_json::to_vec(&reader_a()).unwrap();
    let calls = host.header_calls_when_warm(&mut root, "/orders", &[], |mock| {
        mock.properties
            .insert(IDENTITY_PROPERTY.into(), identity.clone());
    });
    assert_eq!(calls, CALLS_ALLOWED);
}

/// The request headers come from one read of the header map in a proxy (the adapter's), and a
/// removed header the map does not have makes no call there.
const CALLS_ALLOWED: [&str; 7] = [
    "request_header", // :path
    "request_header", // :method
    "property",       // the identity context
    "remove_header",  // x-http-method-override (absent: no call in a proxy)
    "remove_header",  // x-http-method (absent: no call in a proxy)
    "remove_header",  // x-method-override (absent: no call in a proxy)
    "request_header", // :path again, for the rewrite check (from the same map read)
];
