//! Filter-level tests over MockHost: each kind of answer a policy can give and what the filter
//! makes of it, the input document, the body, shadow mode, the decision record, and
//! configurations refused with their field path.

use serde_json::{json, Value};
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::testing::{LocalReply, MockHost};
use shieldwall_core::{Action, Host, RootFilter, StreamFilter};

use crate::config::Config;
use crate::filter::PolicyAuthz;

const BANK: &str = include_str!("../policies/bank.rego");
const BANK_DATA: &str = include_str!("../policies/bank-data.json");

/// The configuration of the issue, with the bank policy.
fn bank_config() -> Value {
    json!({
        "policies": { "bank.rego": BANK },
        "data": serde_json::from_str::<Value>(BANK_DATA).unwrap(),
        "rules": [
            { "match": { "prefix": "/healthz" }, "public": true },
            { "name": "payments", "match": { "template": "/tenants/{tenant}/payments" },
              "query": "data.gw.bank.decision" },
            { "match": { "template": "/tenants/{tenant}/accounts/{id}" }, "query": "data.gw.bank.decision" }
        ],
        "input": { "headers": ["x-request-id"], "body": "json" },
        "default": "deny",
        "shadow": false
    })
}

/// One module `gw.t` with the given body and one rule asking `data.gw.t.<rule>` on `/`.
fn single(rego: &str, rule: &str) -> Value {
    json!({
        "policies": { "t.rego": format!("package gw.t\n\n{rego}\n") },
        "rules": [ { "match": { "prefix": "/" }, "query": format!("data.gw.t.{rule}") } ]
    })
}

fn payer(tenant: &str, tier: &str) -> Value {
    json!({"sub": "payer", "client_id": "payer", "scopes": ["payments:read", "payments:transfer"],
           "tenant": tenant, "auth": ["jwt"], "claims": {"tier": tier, "tenant": tenant}})
}

fn viewer(tenant: &str) -> Value {
    json!({"sub": "viewer", "scopes": ["payments:read"], "tenant": tenant, "auth": ["jwt"],
           "claims": {"tier": "gold"}})
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
    fn body(&self) -> Value {
        self.reply().json()
    }
    fn decision(&self) -> Value {
        serde_json::from_slice(
            &self
                .host
                .property_value(&shieldwall_core::decision::property("policy_authz"))
                .expect("a record"),
        )
        .unwrap()
    }
    fn metric(&self, event: &str) -> u64 {
        self.host
            .metric(&format!("shieldwall.policy_authz.{event}"))
    }
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    identity: Option<Value>,
    body: Option<&'a str>,
}

fn req<'a>(method: &'a str, path: &'a str) -> Req<'a> {
    Req {
        method,
        path,
        headers: Vec::new(),
        identity: None,
        body: None,
    }
}

impl<'a> Req<'a> {
    fn header(mut self, k: &'a str, v: &'a str) -> Self {
        self.headers.push((k, v));
        self
    }
    fn identity(mut self, id: Value) -> Self {
        self.identity = Some(id);
        self
    }
    fn json(mut self, body: &'a str) -> Self {
        self.headers.push(("content-type", "application/json"));
        self.body = Some(body);
        self
    }
}

fn root(config: &Value) -> (PolicyAuthz, MockHost) {
    let mut host = MockHost::new();
    let root = PolicyAuthz::configure(&mut host, config.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("config refused: {e}"));
    (root, host)
}

/// Runs one request through a fresh worker: headers, then the body in one chunk if there is one.
fn run(config: &Value, r: Req) -> Run {
    let (mut root, _) = root(config);
    run_on(&mut root, r)
}

fn run_on(root: &mut PolicyAuthz, r: Req) -> Run {
    let len = r.body.map(|b| b.len().to_string());
    let mut headers = r.headers.clone();
    if let Some(l) = &len {
        headers.push(("content-length", l));
    }
    let mut host = MockHost::request(r.method, r.path, &headers);
    host.filter_name = "policy_authz";
    host.properties
        .insert("source\0address".into(), b"192.0.2.10:43210".to_vec());
    if let Some(id) = r.identity {
        host.properties
            .insert(IDENTITY_PROPERTY.into(), serde_json::to_vec(&id).unwrap());
    }
    let mut stream = root.new_stream(&mut host, 1);
    let mut action = stream.on_request_headers(&mut host, r.body.is_none());
    if let (Some(body), Action::Continue, None) = (r.body, action, &host.local_reply) {
        // As in Envoy, the request headers cannot be read from the body callback.
        host.request_headers.clear();
        host.request_body = body.as_bytes().to_vec();
        action = stream.on_request_body(&mut host, body.len(), true);
    }
    if action == Action::Pause {
        assert!(host.local_reply.is_some(), "paused without a reply");
    }
    Run { action, host }
}

fn refused(config: Value) -> (String, String) {
    let mut host = MockHost::new();
    match PolicyAuthz::configure(&mut host, config.to_string().as_bytes()) {
        Ok(_) => panic!("accepted: {config}"),
        Err(e) => (e.path, e.reason),
    }
}

// ------------------------------------------------------------------ the bank policy

#[test]
fn bank_policy_allows_and_refuses_with_its_reasons() {
    let c = bank_config();
    // A payment within the free tier's limit, in the caller's own tenant.
    let r = run(
        &c,
        req("POST", "/tenants/a/payments")
            .identity(payer("a", "free"))
            .json(r#"{"amount": 250, "to": "DE89"}"#),
    );
    assert!(r.allowed());
    assert_eq!(r.metric("allowed"), 1);

    // Over the free tier's limit: the policy's reason, nothing else, in a 403.
    let r = run(
        &c,
        req("POST", "/tenants/a/payments")
            .identity(payer("a", "free"))
            .json(r#"{"amount": 5000}"#),
    );
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.body(),
        json!({"error": "access_denied",
               "error_description": "the policy refused this request (amount_over_tier_limit)"})
    );
    assert_eq!(r.metric("denied.amount_over_tier_limit"), 1);
    assert_eq!(
        r.decision(),
        json!({"decision": "deny", "reason": "amount_over_tier_limit", "status": 403})
    );
    // The same amount is within the gold tier's.
    let r = run(
        &c,
        req("POST", "/tenants/a/payments")
            .identity(payer("a", "gold"))
            .json(r#"{"amount": 5000}"#),
    );
    assert!(r.allowed());

    // Another tenant's path.
    let r = run(
        &c,
        req("POST", "/tenants/b/payments")
            .identity(payer("a", "gold"))
            .json(r#"{"amount": 5}"#),
    );
    assert_eq!(
        r.body()["error_description"],
        "the policy refused this request (tenant_mismatch)"
    );
    // No transfer scope.
    let r = run(
        &c,
        req("POST", "/tenants/a/payments")
            .identity(viewer("a"))
            .json(r#"{"amount": 5}"#),
    );
    assert!(r.body()["error_description"]
        .as_str()
        .unwrap()
        .ends_with("(missing_transfer_scope)"));
    // Reading needs neither scope nor amount; the decision's header reaches the upstream.
    let r = run(
        &c,
        req("GET", "/tenants/a/accounts/7").identity(viewer("a")),
    );
    assert!(r.allowed());
    assert_eq!(
        r.host.request_header("x-policy-tier").as_deref(),
        Some("gold")
    );
    // No identity: the status the policy chose.
    let r = run(&c, req("GET", "/tenants/a/accounts/7"));
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.decision(),
        json!({"decision": "deny", "reason": "missing_identity", "status": 401})
    );
    // Public and unmatched routes never ask the policy.
    assert!(run(&c, req("GET", "/healthz")).allowed());
    let r = run(&c, req("GET", "/elsewhere").identity(payer("a", "gold")));
    assert_eq!(r.status(), 403);
    assert_eq!(r.body()["error"], "no_matching_rule");
    assert_eq!(r.metric("denied.no_matching_rule"), 1);
}

#[test]
fn a_decision_header_replaces_the_clients_copy() {
    let r = run(
        &bank_config(),
        req("GET", "/tenants/a/accounts/7")
            .identity(viewer("a"))
            .header("x-policy-tier", "platinum"),
    );
    assert!(r.allowed());
    assert_eq!(r.host.headers_named("x-policy-tier"), vec!["gold"]);
}

// ------------------------------------------------------------------ answers of every shape

#[test]
fn booleans_allow_and_deny() {
    let c = single("allow := input.request.method == \"GET\"", "allow");
    assert!(run(&c, req("GET", "/x")).allowed());
    let r = run(&c, req("DELETE", "/x"));
    assert_eq!(
        (r.status(), r.body()["error"].clone()),
        (403, json!("access_denied"))
    );
    assert_eq!(r.metric("denied.policy_denied"), 1);
    assert_eq!(
        r.decision(),
        json!({"decision": "deny", "reason": "policy_denied", "status": 403})
    );
}

#[test]
fn object_decisions_status_reason_and_headers() {
    let c = single(
        r#"decision := {"allow": false, "status": 429, "reason": "too_many_transfers",
                        "headers": {"retry-after": "60"}}"#,
        "decision",
    );
    let r = run(&c, req("GET", "/x"));
    assert_eq!(r.status(), 429);
    assert_eq!(r.reply().header("retry-after"), Some("60"));
    assert_eq!(r.reply().header("content-type"), Some("application/json"));
    assert_eq!(r.body()["error"], "access_denied");
    // `allow: true` with headers: they are set on the request.
    let c = single(
        r#"decision := {"allow": true, "headers": {"x-account-owner": input.request.path}}"#,
        "decision",
    );
    let r = run(&c, req("GET", "/accounts/9"));
    assert!(r.allowed());
    assert_eq!(
        r.host.request_header("x-account-owner").as_deref(),
        Some("/accounts/9")
    );
}

fn policy_error(rego: &str, rule: &str, kind: &str) -> Run {
    let r = run(&single(rego, rule), req("GET", "/x"));
    assert_eq!(r.status(), 403, "{rego}");
    assert_eq!(
        r.body(),
        json!({"error": "access_denied",
               "error_description": "the policy could not decide on this request"}),
        "{rego}"
    );
    assert_eq!(r.metric("denied.policy_error"), 1, "{rego}");
    assert_eq!(r.metric(&format!("policy_error.{kind}")), 1, "{rego}");
    assert_eq!(
        r.decision(),
        json!({"decision": "deny", "reason": "policy_error", "status": 403})
    );
    assert!(
        r.host
            .logged(&format!("by rules[0] (data.gw.t.{rule}): {kind}")),
        "{rego}"
    );
    r
}

#[test]
fn undefined_is_a_policy_error_never_an_allow() {
    // No default and no body that holds: undefined.
    policy_error(
        "allow if input.request.method == \"POST\"",
        "allow",
        "undefined",
    );
    // A decision whose `allow` is missing or not a boolean is no decision.
    policy_error(r#"decision := {"reason": "x"}"#, "decision", "bad_result");
    policy_error(r#"decision := {"allow": "yes"}"#, "decision", "bad_result");
    policy_error(r#"decision := "allow""#, "decision", "bad_result");
    policy_error(r#"decision := 1"#, "decision", "bad_result");
    // A reason that is not a code, a status that is not an error, a header it may not set.
    policy_error(
        r#"decision := {"allow": false, "reason": input.request.path}"#,
        "decision",
        "bad_result",
    );
    policy_error(
        r#"decision := {"allow": false, "status": 200}"#,
        "decision",
        "bad_result",
    );
    policy_error(
        r#"decision := {"allow": true, "headers": {"content-length": "0"}}"#,
        "decision",
        "bad_result",
    );
}

#[test]
fn an_evaluation_error_is_a_policy_error() {
    let r = policy_error("allow := 1 / 0 == 1", "allow", "error");
    assert!(r.host.logged("policy error"));
    // A conflict between two complete rules is an error in Rego too.
    policy_error(
        "allow := true if input.request.method == \"GET\"\nallow := false if startswith(input.request.path, \"/\")",
        "allow",
        "error",
    );
}

#[test]
fn a_runaway_policy_is_stopped_by_the_budget() {
    // Eight million iterations: far more than 1 ms on any machine.
    let mut c = single(
        "allow if {\n  n := count([1 | some a in numbers.range(1, 200); some b in numbers.range(1, 200); some x in numbers.range(1, 200)])\n  n > 0\n}",
        "allow",
    );
    c["eval_budget_ms"] = json!(1);
    let started = std::time::Instant::now();
    let r = policy_error_with(&c, "budget_exceeded");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(r.host.logged("budget_exceeded"));
    // The worker goes on deciding afterwards.
    let (mut root, _) = root(&c);
    let first = run_on(&mut root, req("GET", "/x"));
    assert_eq!(first.status(), 403);
    let second = run_on(&mut root, req("GET", "/x"));
    assert_eq!(second.status(), 403);
}

fn policy_error_with(c: &Value, kind: &str) -> Run {
    let r = run(c, req("GET", "/x"));
    assert_eq!(r.status(), 403);
    assert_eq!(r.metric(&format!("policy_error.{kind}")), 1);
    r
}

#[test]
fn ranges_from_the_input_are_bounded() {
    let c = {
        let mut c = single("allow := true", "allow");
        c["policies"]["t.rego"] = json!(
            "package gw.t\n\nallow if count(numbers.range(1, to_number(input.request.query.n[0]))) > 0\nsteps := numbers.range_step(10, 1, 3)\nup := numbers.range(3, 1)\n"
        );
        c
    };
    assert!(run(&c, req("GET", "/x?n=99999")).allowed());
    let r = run(&c, req("GET", "/x?n=100000000"));
    assert_eq!(r.metric("policy_error.error"), 1);
    // OPA's semantics otherwise: both ends included, counting down when the end is lower.
    let config = Config::parse(c.to_string().as_bytes()).unwrap();
    let mut p = crate::Policies::compile(&config).unwrap();
    assert_eq!(
        p.evaluate_json("data.gw.t.steps", regorus::Value::new_object(), 0)
            .unwrap(),
        json!([10, 7, 4, 1])
    );
    assert_eq!(
        p.evaluate_json("data.gw.t.up", regorus::Value::new_object(), 0)
            .unwrap(),
        json!([3, 2, 1])
    );
}

#[test]
fn time_now_ns_is_the_proxys_clock() {
    let c = single(
        "decision := {\"allow\": true, \"headers\": {\"x-now\": sprintf(\"%d\", [time.now_ns()])}}",
        "decision",
    );
    let r = run(&c, req("GET", "/x"));
    assert_eq!(
        r.host.request_header("x-now").as_deref(),
        Some("1700000000000000000")
    );
}

// ------------------------------------------------------------------ the input document

/// A policy that hands its whole input back in a header, so a test can read what it was given.
fn echo_config() -> Value {
    json!({
        "policies": { "echo.rego": "package gw.echo\n\ndecision := {\"allow\": true, \"headers\": {\"x-input\": json.marshal(input)}}\n" },
        "rules": [
            { "name": "accounts", "match": { "template": "/tenants/{tenant}/accounts/{id=**}" },
              "query": "data.gw.echo.decision" },
            { "match": { "prefix": "/" }, "query": "data.gw.echo.decision" }
        ],
        "input": { "headers": ["X-Request-Id", "x-tags"], "body": "json",
                   "client_ip": { "xff_trusted_hops": 1 } }
    })
}

fn echoed(r: &Run) -> Value {
    assert!(r.allowed(), "{:?}", r.host.local_reply);
    serde_json::from_str(&r.host.request_header("x-input").expect("x-input")).unwrap()
}

#[test]
fn the_input_document_has_identity_request_source_and_connection() {
    let identity = payer("a", "gold");
    let r = run(
        &echo_config(),
        req(
            "GET",
            "/tenants/a/./accounts/7/history?limit=10&tag=x&tag=y%20z",
        )
        .identity(identity.clone())
        .header("x-request-id", "r-1")
        .header("x-tags", "a")
        .header("x-tags", "b")
        .header("x-other", "not listed")
        .header("x-forwarded-for", "203.0.113.7, 198.51.100.2"),
    );
    let input = echoed(&r);
    assert_eq!(
        input,
        json!({
            "identity": identity,
            "request": {
                "method": "GET",
                "path": "/tenants/a/accounts/7/history",
                "path_params": {"tenant": "a", "id": "7/history"},
                "query": {"limit": ["10"], "tag": ["x", "y z"]},
                "headers": {"x-request-id": "r-1", "x-tags": "a, b"},
                "rule": "accounts"
            },
            "source": {"address": "198.51.100.2"},
            "connection": {"mtls": false}
        })
    );
    // The upstream gets the normalised path the policy decided on.
    assert_eq!(
        r.host.request_header(":path").as_deref(),
        Some("/tenants/a/accounts/7/history?limit=10&tag=x&tag=y%20z")
    );
    assert_eq!(r.metric("path_rewritten"), 1);
}

#[test]
fn mtls_facts_when_the_client_presented_a_certificate() {
    let (mut root, _) = root(&echo_config());
    let mut host = MockHost::request("GET", "/x", &[]);
    host.properties.insert("connection\0mtls".into(), vec![1]);
    host.properties.insert(
        "connection\0uri_san_peer_certificate".into(),
        b"spiffe://bank-a/ns/payments/sa/api".to_vec(),
    );
    host.properties.insert(
        "connection\0subject_peer_certificate".into(),
        b"CN=api,O=bank-a".to_vec(),
    );
    host.properties.insert(
        "connection\0sha256_peer_certificate_digest".into(),
        b"ab12".to_vec(),
    );
    let mut stream = root.new_stream(&mut host, 1);
    assert_eq!(stream.on_request_headers(&mut host, true), Action::Continue);
    let input: Value = serde_json::from_str(&host.request_header("x-input").unwrap()).unwrap();
    assert_eq!(
        input["connection"],
        json!({"mtls": true, "subject": "CN=api,O=bank-a",
               "uri_san": "spiffe://bank-a/ns/payments/sa/api", "sha256": "ab12"})
    );
    assert!(input.get("identity").is_none());
    assert!(input["source"].get("address").is_none());
}

#[test]
fn credential_headers_are_never_input() {
    let mut c = echo_config();
    c["input"]["headers"] = json!(["authorization"]);
    let (path, reason) = refused(c);
    assert_eq!(path, "input.headers[0]");
    assert!(reason.contains("credential"), "{reason}");
}

// ------------------------------------------------------------------ the body

#[test]
fn the_json_body_is_input_when_asked_for() {
    // The request headers went on before the body: the policy's verdict is all that can follow
    // from it, so the policy compares the body with what it expects.
    let c = json!({
        "policies": { "b.rego": "package gw.b\n\ndecision := {\"allow\": false, \"reason\": \"no_body\"} if not input.body\nelse := {\"allow\": true} if input.body == {\"amount\": 12.5, \"to\": [\"a\", \"b\"]}\nelse := {\"allow\": false, \"reason\": \"other_body\"}\n" },
        "rules": [ { "match": { "prefix": "/" }, "query": "data.gw.b.decision" } ],
        "input": { "body": "json" }
    });
    assert!(run(
        &c,
        req("POST", "/p").json(r#"{"amount": 12.5, "to": ["a", "b"]}"#)
    )
    .allowed());
    let reason = |r: Run| {
        r.body()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(reason(run(&c, req("POST", "/p").json(r#"{"amount": 13}"#))).ends_with("(other_body)"));
    // Not JSON by its media type, or empty: no body in the input.
    let mut r = req("POST", "/p").header("content-type", "text/plain");
    r.body = Some("amount=12");
    assert!(reason(run(&c, r)).ends_with("(no_body)"));
    assert!(reason(run(&c, req("GET", "/p"))).ends_with("(no_body)"));
    // Without `body: "json"` the body is never read: decided at the headers.
    let mut c = c;
    c["input"] = json!({});
    let (mut root, _) = root(&c);
    let mut host = MockHost::request("POST", "/p", &[("content-type", "application/json")]);
    let mut stream = root.new_stream(&mut host, 1);
    assert_eq!(stream.on_request_headers(&mut host, false), Action::Pause);
    assert!(reason(Run {
        action: Action::Pause,
        host
    })
    .ends_with("(no_body)"));
}

#[test]
fn the_body_waits_for_its_end_and_its_limit() {
    let mut c = bank_config();
    c["input"]["max_body_bytes"] = json!(64);
    let (mut root, _) = root(&c);
    let body = br#"{"amount": 5000}"#;
    let mut host = MockHost::request(
        "POST",
        "/tenants/a/payments",
        &[("content-type", "application/json")],
    );
    host.properties.insert(
        IDENTITY_PROPERTY.into(),
        serde_json::to_vec(&payer("a", "free")).unwrap(),
    );
    let mut stream = root.new_stream(&mut host, 1);
    // The headers go on; the body is held until its end, then decided on.
    assert_eq!(
        stream.on_request_headers(&mut host, false),
        Action::Continue
    );
    host.request_headers.clear();
    host.request_body = body[..6].to_vec();
    assert_eq!(stream.on_request_body(&mut host, 6, false), Action::Pause);
    assert!(host.local_reply.is_none());
    host.request_body = body.to_vec();
    assert_eq!(
        stream.on_request_body(&mut host, body.len(), true),
        Action::Pause
    );
    assert_eq!(host.local_reply.as_ref().unwrap().status, 403);

    // Over the limit while arriving: 413, before the end.
    let mut host = MockHost::request(
        "POST",
        "/tenants/a/payments",
        &[("content-type", "application/json")],
    );
    let mut stream = root.new_stream(&mut host, 2);
    assert_eq!(
        stream.on_request_headers(&mut host, false),
        Action::Continue
    );
    host.request_body = vec![b' '; 65];
    assert_eq!(stream.on_request_body(&mut host, 65, false), Action::Pause);
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (413, json!("body_too_large"))
    );

    // A declared length over the limit: 413 at the headers, nothing buffered.
    let big = " ".repeat(65);
    let r = run_on(&mut root, req("POST", "/tenants/a/payments").json(&big));
    assert_eq!(r.status(), 413);
    // JSON that does not parse: 400.
    let r = run_on(
        &mut root,
        req("POST", "/tenants/a/payments")
            .identity(payer("a", "free"))
            .json(r#"{"amount": "#),
    );
    assert_eq!(
        (r.status(), r.body()["error"].clone()),
        (400, json!("invalid_body"))
    );
}

#[test]
fn a_body_ended_by_trailers_is_decided_at_the_trailers() {
    let (mut root, _) = root(&bank_config());
    let body = br#"{"amount": 5000}"#;
    let mut host = MockHost::request(
        "POST",
        "/tenants/a/payments",
        &[("content-type", "application/json")],
    );
    host.properties.insert(
        IDENTITY_PROPERTY.into(),
        serde_json::to_vec(&payer("a", "free")).unwrap(),
    );
    let mut stream = root.new_stream(&mut host, 1);
    assert_eq!(
        stream.on_request_headers(&mut host, false),
        Action::Continue
    );
    host.request_headers.clear();
    host.request_body = body.to_vec();
    assert_eq!(
        stream.on_request_body(&mut host, body.len(), false),
        Action::Pause
    );
    // The trailers end the request: the held body is decided on, and refused.
    assert_eq!(stream.on_request_trailers(&mut host), Action::Pause);
    assert_eq!(host.local_reply.as_ref().unwrap().status, 403);
}

// ------------------------------------------------------------------ shadow mode

#[test]
fn shadow_mode_lets_through_counts_and_records() {
    let mut c = bank_config();
    c["shadow"] = json!(true);
    let r = run(
        &c,
        req("POST", "/tenants/b/payments")
            .identity(payer("a", "gold"))
            .json(r#"{"amount": 1}"#),
    );
    assert!(r.allowed());
    assert_eq!(r.metric("shadow.denied.tenant_mismatch"), 1);
    assert_eq!(r.metric("denied.tenant_mismatch"), 0);
    assert_eq!(
        r.decision(),
        json!({"decision": "shadow_deny", "reason": "tenant_mismatch", "status": 403})
    );
    assert!(r.host.logged("shadow: would deny POST /tenants/b/payments by payments (data.gw.bank.decision): tenant_mismatch"));
    // A policy error in shadow mode passes too, and is still counted and logged.
    let mut c = single("allow if false", "allow");
    c["shadow"] = json!(true);
    let r = run(&c, req("GET", "/x"));
    assert!(r.allowed());
    assert_eq!(r.metric("shadow.denied.policy_error"), 1);
    assert_eq!(r.metric("policy_error.undefined"), 1);
    // Shadow mode changes nothing on the request.
    let mut c = bank_config();
    c["shadow"] = json!(true);
    let r = run(
        &c,
        req("GET", "/tenants/a//accounts/7").identity(viewer("a")),
    );
    assert!(r.allowed());
    assert_eq!(
        r.host.request_header(":path").as_deref(),
        Some("/tenants/a//accounts/7")
    );
    assert!(r.host.request_header("x-policy-tier").is_none());
}

#[test]
fn reason_metrics_are_bounded() {
    let c = single(
        r#"decision := {"allow": false, "reason": sprintf("r%s", [input.request.query.n[0]])}"#,
        "decision",
    );
    let (mut root, mut host) = root(&c);
    for i in 0..40 {
        host.new_stream("GET", &format!("/x?n={i}"), &[]);
        let mut stream = root.new_stream(&mut host, i + 1);
        assert_eq!(stream.on_request_headers(&mut host, true), Action::Pause);
    }
    // The first 32 distinct reasons have their own counter, the other 8 share one.
    assert_eq!(host.metric("shieldwall.policy_authz.denied.r0"), 1);
    assert_eq!(host.metric("shieldwall.policy_authz.denied.r31"), 1);
    assert_eq!(
        host.metric_definitions("shieldwall.policy_authz.denied.r32"),
        0
    );
    assert_eq!(
        host.metric("shieldwall.policy_authz.denied.other_reason"),
        8
    );
}

// ------------------------------------------------------------------ configuration

#[test]
fn the_issue_configuration_loads() {
    let c = Config::parse(bank_config().to_string().as_bytes()).unwrap();
    assert_eq!(c.rules.len(), 3);
    assert_eq!(c.rules[1].label, "payments");
    assert_eq!(c.rules[2].label, "rules[2]");
    assert_eq!(c.input.json_body_limit, Some(65536));
    assert_eq!(c.input.headers, vec!["x-request-id"]);
    assert_eq!(c.eval_budget_ms, 50);
    let (_, host) = root(&bank_config());
    assert!(host
        .logged("policy-authz: 1 policy modules, 3 rules, default deny, budget 50 ms, enforcing"));
}

#[test]
fn a_policy_that_does_not_compile_is_refused_with_file_and_line() {
    let mut c = bank_config();
    c["policies"]["orders.rego"] = json!("package gw.orders\n\nallow if {\n  input.x ==\n}\n");
    let (path, reason) = refused(c);
    assert_eq!(path, "policies.orders.rego");
    assert_eq!(reason, "orders.rego:5:1: expecting expression (`}`)");

    // Parses, but a variable is unsafe: found when compiled.
    let c = single("allow if { x > 1 }", "allow");
    let (path, reason) = refused(c);
    assert_eq!(path, "policies.t.rego", "{reason}");
    assert_eq!(
        reason,
        "t.rego:3:12: use of undefined variable `x` is unsafe (`allow if { x > 1 }`)"
    );
    // Policies that no rule asks are refused: they could never decide anything.
    let mut c = single("allow := true", "allow");
    c["rules"] = json!([{ "match": { "prefix": "/" }, "public": true }]);
    assert_eq!(refused(c).0, "rules");
}

#[test]
fn other_configurations_are_refused_with_their_field() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            single("allow := true", "deny"),
            "rules[0].query",
            "not a rule of the policies",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["rules"][0]["query"] = json!("allow");
                c
            },
            "rules[0].query",
            "data.<package>.<rule>",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["rules"][0]["public"] = json!(true);
                c
            },
            "rules[0]",
            "exclude each other",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["rules"][0] = json!({"match": {"prefix": "/"}});
                c
            },
            "rules[0]",
            "needs `public: true` or a `query`",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["policies"] = json!({});
                c
            },
            "policies",
            "at least one",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["data"] = json!([1]);
                c
            },
            "data",
            "must be an object",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["rules"] = json!([]);
                c
            },
            "rules",
            "at least one rule",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["input"] = json!({"max_body_bytes": 10});
                c
            },
            "input.max_body_bytes",
            "only with",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["input"] = json!({"body": "json", "max_body_bytes": 0});
                c
            },
            "input.max_body_bytes",
            "from 1",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["input"] = json!({"body": "xml"});
                c
            },
            "input.body",
            "unknown variant",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["eval_budget_ms"] = json!(0);
                c
            },
            "eval_budget_ms",
            "from 1 to 1000",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["policies"] = json!({"a b.rego": "package x"});
                c
            },
            "policies.a b.rego",
            "a file name",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["querry"] = json!(1);
                c
            },
            "querry",
            "unknown field",
        ),
        (
            {
                let mut c = single("allow := true", "allow");
                c["rules"][0]["match"] = json!({"template": "/a/{x}/{x}"});
                c
            },
            "rules[0].match.template",
            "twice",
        ),
    ];
    for (config, want_path, want_reason) in cases {
        let (path, reason) = refused(config.clone());
        assert_eq!(path, want_path, "{config}: {reason}");
        assert!(reason.contains(want_reason), "{config}: {reason}");
    }
}

#[test]
fn oversized_policies_and_data_are_refused() {
    let mut c = single("allow := true", "allow");
    c["policies"]["big.rego"] = json!(format!(
        "package big\n# {}\n",
        "x".repeat(crate::config::MAX_POLICY_BYTES)
    ));
    assert_eq!(refused(c).0, "policies.big.rego");
    let mut c = single("allow := true", "allow");
    c["data"] = json!({"blob": "x".repeat(crate::config::MAX_DATA_BYTES)});
    assert_eq!(refused(c).0, "data");
}
