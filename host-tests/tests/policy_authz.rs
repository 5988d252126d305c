//! The chain jwt-auth → policy-authz over the real release modules: jwt-auth verifies the token
//! and writes the identity context, the bank policy decides on it, the path parameters and the
//! JSON body. Boolean and object decisions, undefined and evaluation errors refused with
//! policy_error, a policy that does not compile refused at load, shadow mode, the decision record.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p jwt-auth -p policy-authz

use host_tests::{jws, wasm_path, Envoy, Outcome, Plugin, Request, Worker};
use serde_json::{json, Value};

const SECRET: &[u8] = b"shieldwall-policy-authz-test-secret";
const ISSUER: &str = "https://idp.example.com";
const BANK: &str = include_str!("../../filters/policy-authz/policies/bank.rego");
const BANK_DATA: &str = include_str!("../../filters/policy-authz/policies/bank-data.json");

/// An HS256 access token with a `scope` string, a tenant and a tier.
fn token(envoy: &Envoy, scope: &str, tenant: &str, tier: &str) -> String {
    let now = envoy.now_unix_secs();
    let claims = json!({"iss": ISSUER, "sub": "client", "aud": "payments-api", "client_id": "client",
                        "scope": scope, "tenant": tenant, "tier": tier, "iat": now, "exp": now + 300});
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "hs"});
    jws::hs256(SECRET, &header, &claims)
}

/// jwt-auth verifies a token when there is one and lets a request without one through, so that
/// the policy decides what an anonymous caller gets.
fn jwt_auth() -> Plugin {
    Plugin::new(wasm_path("jwt-auth"))
        .name("jwt")
        .vm_id("jwt")
        .json(&json!({
            "providers": {"idp": {
                "issuer": ISSUER, "audiences": ["payments-api"],
                "local_jwks": {"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": jws::b64url(SECRET)}]}}},
            "rules": [{"match": {"prefix": "/"}, "requires": {"allow_missing": {"provider": "idp"}}}]
        }))
}

fn bank(shadow: bool) -> Value {
    json!({
        "policies": { "bank.rego": BANK },
        "data": serde_json::from_str::<Value>(BANK_DATA).unwrap(),
        "rules": [
            { "match": { "prefix": "/healthz" }, "public": true },
            { "name": "payments", "match": { "template": "/tenants/{tenant}/payments" },
              "query": "data.gw.bank.decision" },
            { "name": "accounts", "match": { "template": "/tenants/{tenant}/accounts/{id}" },
              "query": "data.gw.bank.decision" }
        ],
        "input": { "headers": ["x-request-id"], "body": "json" },
        "default": "deny",
        "shadow": shadow
    })
}

fn policy_authz(config: &Value) -> Plugin {
    Plugin::new(wasm_path("policy-authz"))
        .name("policy")
        .vm_id("policy")
        .json(config)
}

fn chain(envoy: &Envoy, config: &Value) -> Worker {
    envoy
        .worker(&[jwt_auth(), policy_authz(config)])
        .unwrap_or_else(|e| panic!("{e:#}"))
}

struct Sent {
    outcome: Outcome,
    decision: Option<Value>,
}

fn send(worker: &Worker, req: Request, token: Option<&str>) -> Sent {
    let req = match token {
        Some(t) => req.header("authorization", &format!("Bearer {t}")),
        None => req,
    };
    let mut s = worker.stream(req);
    let outcome = s.send_request();
    let decision = s
        .filter_state("shieldwall.decision.policy_authz")
        .map(|b| serde_json::from_slice(&b).unwrap());
    s.finish();
    Sent { outcome, decision }
}

fn payment(path: &str, body: &str) -> Request {
    Request::post(path, body.as_bytes().to_vec())
        .header("content-type", "application/json")
        .header("content-length", &body.len().to_string())
}

/// (status, body `error`, the reason in `error_description`).
fn refusal(sent: &Sent) -> (u16, String, String) {
    let r = sent.outcome.local_reply();
    let body = r.body_json();
    let description = body["error_description"].as_str().unwrap_or_default();
    let reason = description
        .rsplit_once('(')
        .map(|(_, r)| r.trim_end_matches(')').to_string())
        .unwrap_or_default();
    (
        r.status(),
        body["error"].as_str().unwrap_or_default().to_string(),
        reason,
    )
}

#[test]
fn the_bank_policy_decides_on_identity_path_and_body() {
    let envoy = Envoy::new();
    let w = chain(&envoy, &bank(false));
    let payer = token(&envoy, "payments:read payments:transfer", "a", "free");
    let gold = token(&envoy, "payments:read payments:transfer", "a", "gold");
    let viewer = token(&envoy, "payments:read", "a", "gold");

    // Within the free tier's limit, own tenant, transfer scope: the payment reaches the upstream,
    // body and all, without the token.
    let sent = send(
        &w,
        payment("/tenants/a/payments", r#"{"amount": 250}"#),
        Some(&payer),
    );
    let up = sent.outcome.upstream();
    assert_eq!(up.body_str(), r#"{"amount": 250}"#);
    assert_eq!(up.header("authorization"), None);
    assert_eq!(sent.decision, Some(json!({"decision": "allow"})));

    // Over the free tier's limit: refused with the policy's reason; the body never went on.
    let sent = send(
        &w,
        payment("/tenants/a/payments", r#"{"amount": 5000}"#),
        Some(&payer),
    );
    assert_eq!(
        refusal(&sent),
        (403, "access_denied".into(), "amount_over_tier_limit".into())
    );
    assert_eq!(
        sent.decision,
        Some(json!({"decision": "deny", "reason": "amount_over_tier_limit", "status": 403}))
    );
    // The gold tier's limit is higher.
    send(
        &w,
        payment("/tenants/a/payments", r#"{"amount": 5000}"#),
        Some(&gold),
    )
    .outcome
    .upstream();
    // Path parameters against the token's tenant.
    let sent = send(
        &w,
        payment("/tenants/b/payments", r#"{"amount": 1}"#),
        Some(&gold),
    );
    assert_eq!(refusal(&sent).2, "tenant_mismatch");
    // Scopes from the token.
    let sent = send(
        &w,
        payment("/tenants/a/payments", r#"{"amount": 1}"#),
        Some(&viewer),
    );
    assert_eq!(refusal(&sent).2, "missing_transfer_scope");
    // A read is decided at the headers, and the decision's header reaches the upstream (a
    // client's copy is replaced).
    let sent = send(
        &w,
        Request::get("/tenants/a/accounts/7").header("x-policy-tier", "platinum"),
        Some(&viewer),
    );
    assert_eq!(
        sent.outcome.upstream().header("x-policy-tier"),
        Some("gold")
    );
    // No token: the status the policy chose.
    let sent = send(&w, Request::get("/tenants/a/accounts/7"), None);
    assert_eq!(
        refusal(&sent),
        (401, "access_denied".into(), "missing_identity".into())
    );
    // Public, and no rule.
    send(&w, Request::get("/healthz"), None).outcome.upstream();
    let sent = send(&w, Request::get("/other"), Some(&gold));
    assert_eq!(refusal(&sent).1, "no_matching_rule");
    // A body that is not JSON, and one over the limit.
    let sent = send(
        &w,
        payment("/tenants/a/payments", r#"{"amount": "#),
        Some(&gold),
    );
    assert_eq!(refusal(&sent).0, 400);
    let big = format!(r#"{{"amount": 1, "memo": "{}"}}"#, "x".repeat(70_000));
    let sent = send(&w, payment("/tenants/a/payments", &big), Some(&gold));
    assert_eq!(refusal(&sent).0, 413);

    let m = |n: &str| envoy.metric(&format!("shieldwall.policy_authz.{n}"));
    assert_eq!(m("allowed"), Some(3));
    assert_eq!(m("allowed.public"), Some(1));
    assert_eq!(m("denied.amount_over_tier_limit"), Some(1));
    assert_eq!(m("denied.tenant_mismatch"), Some(1));
    assert_eq!(m("denied.missing_transfer_scope"), Some(1));
    assert_eq!(m("denied.missing_identity"), Some(1));
    assert_eq!(m("denied.no_matching_rule"), Some(1));
    assert_eq!(m("denied.invalid_body"), Some(1));
    assert_eq!(m("denied.body_too_large"), Some(1));
    assert!(w
        .log_text()
        .contains("policy-authz: denied POST /tenants/a/payments by payments (data.gw.bank.decision): amount_over_tier_limit"));
}

#[test]
fn a_body_in_chunks_is_decided_at_its_end() {
    let envoy = Envoy::new();
    let w = chain(&envoy, &bank(false));
    let payer = token(&envoy, "payments:read payments:transfer", "a", "free");
    let chunks = vec![b"{\"amo".to_vec(), b"unt\": 9".to_vec(), b"99}".to_vec()];
    let req = Request::new("POST", "/tenants/a/payments")
        .header("content-type", "application/json")
        .chunks(chunks)
        .header("authorization", &format!("Bearer {payer}"));
    let mut s = w.stream(req);
    let up = s.send_request();
    assert_eq!(up.upstream().body_str(), "{\"amount\": 999}");
    s.finish();
    let req = Request::new("POST", "/tenants/a/payments")
        .header("content-type", "application/json")
        .chunks(vec![b"{\"amount\": 10".to_vec(), b"01}".to_vec()])
        .header("authorization", &format!("Bearer {payer}"));
    let mut s = w.stream(req);
    let out = s.send_request();
    assert_eq!(out.local_reply().status(), 403);
    s.finish();
    // A body ended by trailers is decided at the trailers, not passed on undecided.
    let req = Request::new("POST", "/tenants/a/payments")
        .header("content-type", "application/json")
        .chunks(vec![b"{\"amount\": 5000}".to_vec()])
        .trailer("x-checksum", "abc")
        .header("authorization", &format!("Bearer {payer}"));
    let mut s = w.stream(req);
    let out = s.send_request();
    assert_eq!(out.local_reply().status(), 403);
    s.finish();
}

fn one_rule(rego: &str, rule: &str) -> Value {
    json!({
        "policies": { "t.rego": format!("package gw.t\n\n{rego}\n") },
        "rules": [ { "match": { "prefix": "/" }, "query": format!("data.gw.t.{rule}") } ]
    })
}

#[test]
fn booleans_objects_undefined_and_errors() {
    let envoy = Envoy::new();
    let run = |config: Value, path: &str| -> Outcome {
        let w = envoy
            .worker(&[policy_authz(&config)])
            .unwrap_or_else(|e| panic!("{e:#}"));
        let mut s = w.stream(Request::get(path));
        let out = s.send_request();
        s.finish();
        out
    };
    let allow_get = one_rule("allow := input.request.path == \"/ok\"", "allow");
    run(allow_get.clone(), "/ok").upstream();
    let out = run(allow_get, "/no");
    assert_eq!(out.local_reply().status(), 403);
    assert_eq!(
        out.local_reply().body_json()["error_description"],
        "the policy refused this request (policy_denied)"
    );
    let out = run(
        one_rule(
            r#"decision := {"allow": false, "status": 429, "reason": "slow_down", "headers": {"retry-after": "30"}}"#,
            "decision",
        ),
        "/x",
    );
    assert_eq!(out.local_reply().status(), 429);
    assert_eq!(out.local_reply().header("retry-after"), Some("30"));
    // Undefined and an evaluation error: refused, never allowed.
    for (rego, kind) in [
        ("allow if input.request.method == \"PUT\"", "undefined"),
        ("allow := 1 / 0 == 1", "error"),
        ("allow := \"yes\"", "bad_result"),
    ] {
        let out = run(one_rule(rego, "allow"), "/x");
        assert_eq!(
            out.local_reply().body_json(),
            json!({"error": "access_denied",
                   "error_description": "the policy could not decide on this request"}),
            "{rego}"
        );
        assert_eq!(
            envoy.metric(&format!("shieldwall.policy_authz.policy_error.{kind}")),
            Some(1),
            "{rego}"
        );
    }
    assert_eq!(
        envoy.metric("shieldwall.policy_authz.denied.policy_error"),
        Some(3)
    );
}

#[test]
fn a_policy_that_does_not_compile_is_refused_at_load() {
    let envoy = Envoy::new();
    let mut config = bank(false);
    config["policies"]["bank.rego"] = json!(BANK.replace("not same_tenant", "not same_tenant ==="));
    let err = envoy
        .worker(&[policy_authz(&config)])
        .err()
        .expect("the configuration is refused");
    let text = format!("{err:#}");
    assert!(
        text.contains(
            "shieldwall policy_authz: invalid configuration: policies.bank.rego: bank.rego:"
        ),
        "{text}"
    );
    // Unknown rule.
    let mut config = bank(false);
    config["rules"][1]["query"] = json!("data.gw.bank.decide");
    let err = envoy
        .worker(&[policy_authz(&config)])
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}")
            .contains("rules[1].query: `data.gw.bank.decide` is not a rule of the policies"),
        "{err:#}"
    );
}

#[test]
fn shadow_mode_lets_everything_through_and_records_what_it_would_refuse() {
    let envoy = Envoy::new();
    let w = chain(&envoy, &bank(true));
    let payer = token(&envoy, "payments:read payments:transfer", "a", "free");
    let sent = send(
        &w,
        payment("/tenants/b/payments", r#"{"amount": 1}"#),
        Some(&payer),
    );
    sent.outcome.upstream();
    assert_eq!(
        sent.decision,
        Some(json!({"decision": "shadow_deny", "reason": "tenant_mismatch", "status": 403}))
    );
    send(
        &w,
        payment("/tenants/a/payments", r#"{"amount": 5000}"#),
        Some(&payer),
    )
    .outcome
    .upstream();
    assert_eq!(
        envoy.metric("shieldwall.policy_authz.shadow.denied.tenant_mismatch"),
        Some(1)
    );
    assert_eq!(
        envoy.metric("shieldwall.policy_authz.shadow.denied.amount_over_tier_limit"),
        Some(1)
    );
    assert_eq!(
        envoy.metric("shieldwall.policy_authz.denied.tenant_mismatch"),
        None
    );
    assert!(w.log_text().contains(
        "policy-authz: shadow: would deny POST /tenants/b/payments by payments (data.gw.bank.decision): tenant_mismatch"
    ));
}
