//! policy-authz in a real Envoy, behind jwt-auth, with real tokens from the OpenID Provider: the
//! bank policy (the path's tenant is the token's tenant, the `payments:transfer` scope for a
//! payment, its amount within the tier's limit from `data`) allows and refuses, a refused
//! payment's body never reaches the upstream, shadow mode lets everything through and counts,
//! and a runaway policy is stopped by its evaluation budget without stalling the worker.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p jwt-auth -p policy-authz

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shieldwall_e2e::{
    example_config, scratch_dir, validate_config, wasm_path, Cluster, Echo, Envoy, EnvoyConfig,
    Idp, IdpOptions, WasmFilter,
};

const BANK: &str = include_str!("../../filters/policy-authz/policies/bank.rego");
const BANK_DATA: &str = include_str!("../../filters/policy-authz/policies/bank-data.json");

/// The bank's clients: two payers of tenant bank-a (free and gold tier), a viewer without the
/// transfer scope, and a payer of bank-b. Their tokens are for the payments API.
fn bank_idp() -> Idp {
    let dir = scratch_dir("policy-authz-idp");
    let clients = dir.join("clients.json");
    let client = |id: &str, scope: &str, tenant: &str, tier: &str| {
        json!({"client_id": id, "scope": scope, "tenant": tenant, "tier": tier,
               "resource": "urn:shieldwall:payments-api"})
    };
    let list = json!([
        client(
            "a-payer",
            "payments:read payments:transfer",
            "bank-a",
            "free"
        ),
        client(
            "a-gold",
            "payments:read payments:transfer",
            "bank-a",
            "gold"
        ),
        client("a-viewer", "payments:read", "bank-a", "gold"),
        client(
            "b-payer",
            "payments:read payments:transfer",
            "bank-b",
            "gold"
        ),
    ]);
    std::fs::write(&clients, list.to_string()).unwrap();
    Idp::start(IdpOptions {
        clients_file: Some(clients),
        ..IdpOptions::default()
    })
}

fn jwt_config(idp: &Idp) -> String {
    json!({
        "realm": "payments",
        "providers": {"idp": {
            "issuer": idp.issuer(),
            "audiences": ["payments-api"],
            "remote_jwks": {"cluster": "idp", "uri": format!("http://{}{}", idp.authority(), idp.jwks_path())}
        }},
        // jwt-auth verifies a token when one is sent; the policy decides what needs one.
        "rules": [{"match": {"prefix": "/"}, "requires": {"allow_missing": {"provider": "idp"}}}]
    })
    .to_string()
}

fn bank_policy(shadow: bool) -> Value {
    json!({
        "policies": { "bank.rego": BANK },
        "data": serde_json::from_str::<Value>(BANK_DATA).unwrap(),
        "rules": [
            { "match": { "path": "/healthz" }, "public": true },
            { "name": "payments", "match": { "methods": ["POST"], "template": "/tenants/{tenant}/payments" },
              "query": "data.gw.bank.decision" },
            { "name": "accounts", "match": { "methods": ["GET"], "template": "/tenants/{tenant}/accounts/{id}" },
              "query": "data.gw.bank.decision" }
        ],
        "input": { "headers": ["x-request-id"], "body": "json" },
        "default": "deny",
        "shadow": shadow
    })
}

fn start(echo: &Echo, idp: &Idp, shadow: bool) -> Envoy {
    start_as(echo, idp, shadow, false)
}

/// jwt-auth → policy-authz as two modules, or (`one_module`) as the stages of shieldwall.wasm.
fn start_as(echo: &Echo, idp: &Idp, shadow: bool, one_module: bool) -> Envoy {
    let config = EnvoyConfig::new(echo.port()).cluster(Cluster::new("idp", idp.port()));
    if one_module {
        let jwt: Value = serde_json::from_str(&jwt_config(idp)).expect("a JSON config");
        let chain = json!({"chain": [
            {"filter": "jwt-auth", "config": jwt},
            {"filter": "policy-authz", "config": bank_policy(shadow)}
        ]});
        return Envoy::start(config.filter(WasmFilter::new(
            wasm_path("shieldwall"),
            "shieldwall",
            chain.to_string(),
        )));
    }
    let config = config
        .filter(WasmFilter::new(
            wasm_path("jwt-auth"),
            "jwt-auth",
            jwt_config(idp),
        ))
        .filter(WasmFilter::new(
            wasm_path("policy-authz"),
            "policy-authz",
            bank_policy(shadow).to_string(),
        ));
    Envoy::start(config)
}

fn token(idp: &Idp, client: &str) -> String {
    idp.token(client, &format!("{client}-secret"), None, None)
}

fn pay(envoy: &Envoy, tenant: &str, token: &str, body: &str) -> shieldwall_e2e::Response {
    let auth = format!("Bearer {token}");
    envoy.request(
        "POST",
        &format!("/tenants/{tenant}/payments"),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// (status, body `error`, the reason in `error_description`).
fn refusal(resp: &shieldwall_e2e::Response) -> (u16, String, String) {
    let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let reason = body["error_description"]
        .as_str()
        .and_then(|d| d.rsplit_once('('))
        .map(|(_, r)| r.trim_end_matches(')').to_string())
        .unwrap_or_default();
    (
        resp.status,
        body["error"].as_str().unwrap_or_default().to_string(),
        reason,
    )
}

fn stat(envoy: &Envoy, event: &str) -> Option<u64> {
    envoy.stat(&format!("wasmcustom.shieldwall.policy_authz.{event}"))
}

#[test]
fn the_bank_policy_allows_and_refuses_payments_with_real_tokens() {
    bank_policy_payments(false);
}

#[test]
fn the_bank_policy_decides_the_same_in_the_one_module() {
    bank_policy_payments(true);
}

fn bank_policy_payments(one_module: bool) {
    let echo = Echo::start();
    let idp = bank_idp();
    let envoy = start_as(&echo, &idp, false, one_module);
    let payer = token(&idp, "a-payer"); // bank-a, free tier: up to 1000
    let gold = token(&idp, "a-gold"); // bank-a, gold tier: up to 100000
    let viewer = token(&idp, "a-viewer"); // bank-a, no transfer scope
    let b_payer = token(&idp, "b-payer");

    // Allowed: the payment reaches the upstream with its body.
    let resp = pay(&envoy, "bank-a", &payer, r#"{"amount": 250, "to": "DE89"}"#);
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    assert_eq!(resp.json()["body"], r#"{"amount": 250, "to": "DE89"}"#);
    assert_eq!(resp.json()["path"], "/tenants/bank-a/payments");
    assert_eq!(echo.hits(), 1);

    // Refused, each with the policy's reason, and no refused payment reaches the upstream whole.
    let resp = pay(&envoy, "bank-a", &payer, r#"{"amount": 5000}"#);
    assert_eq!(
        refusal(&resp),
        (403, "access_denied".into(), "amount_over_tier_limit".into()),
        "{resp}"
    );
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{resp}"
    );
    let resp = pay(&envoy, "bank-b", &payer, r#"{"amount": 5}"#);
    assert_eq!(refusal(&resp).2, "tenant_mismatch", "{resp}");
    let resp = pay(&envoy, "bank-a", &b_payer, r#"{"amount": 5}"#);
    assert_eq!(refusal(&resp).2, "tenant_mismatch", "{resp}");
    let resp = pay(&envoy, "bank-a", &viewer, r#"{"amount": 5}"#);
    assert_eq!(refusal(&resp).2, "missing_transfer_scope", "{resp}");
    let resp = envoy.request(
        "POST",
        "/tenants/bank-a/payments",
        &[("content-type", "application/json")],
        br#"{"amount": 5}"#,
    );
    assert_eq!(
        refusal(&resp),
        (401, "access_denied".into(), "missing_identity".into())
    );
    assert_eq!(echo.hits(), 1, "a refused payment reached the upstream");

    // The gold tier's limit is higher; bank-b pays in its own tenant.
    assert_eq!(
        pay(&envoy, "bank-a", &gold, r#"{"amount": 5000}"#).status,
        200
    );
    assert_eq!(
        pay(&envoy, "bank-b", &b_payer, r#"{"amount": 5000}"#).status,
        200
    );
    // A read is decided at the headers; the decision's header reaches the upstream.
    let auth = format!("Bearer {viewer}");
    let resp = envoy.request(
        "GET",
        "/tenants/bank-a/accounts/7",
        &[("authorization", auth.as_str())],
        b"",
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(resp.json()["headers"]["x-policy-tier"], "gold");
    // Public, and no rule.
    assert_eq!(envoy.request("GET", "/healthz", &[], b"").status, 200);
    let resp = envoy.request(
        "DELETE",
        "/tenants/bank-a/payments",
        &[("authorization", auth.as_str())],
        b"",
    );
    assert_eq!(refusal(&resp).1, "no_matching_rule");

    assert_eq!(stat(&envoy, "allowed"), Some(4));
    assert_eq!(stat(&envoy, "allowed.public"), Some(1));
    assert_eq!(stat(&envoy, "denied.amount_over_tier_limit"), Some(1));
    assert_eq!(stat(&envoy, "denied.tenant_mismatch"), Some(2));
    assert_eq!(stat(&envoy, "denied.missing_transfer_scope"), Some(1));
    assert_eq!(stat(&envoy, "denied.missing_identity"), Some(1));
    assert_eq!(stat(&envoy, "denied.no_matching_rule"), Some(1));
    assert!(envoy
        .stats_prometheus()
        .contains("shieldwall_policy_authz_denied_amount_over_tier_limit"));
    assert!(
        envoy.wait_for_log(Duration::from_secs(5), |l| l.contains(
            "policy-authz: denied POST /tenants/bank-a/payments by payments (data.gw.bank.decision): amount_over_tier_limit"
        )),
        "{}",
        envoy.log()
    );
}

#[test]
fn shadow_mode_lets_refused_payments_through_and_counts_them() {
    let echo = Echo::start();
    let idp = bank_idp();
    let envoy = start(&echo, &idp, true);
    let payer = token(&idp, "a-payer");
    assert_eq!(
        pay(&envoy, "bank-a", &payer, r#"{"amount": 5000}"#).status,
        200
    );
    assert_eq!(
        pay(&envoy, "bank-b", &payer, r#"{"amount": 5}"#).status,
        200
    );
    assert_eq!(echo.hits(), 2);
    assert_eq!(
        stat(&envoy, "shadow.denied.amount_over_tier_limit"),
        Some(1)
    );
    assert_eq!(stat(&envoy, "shadow.denied.tenant_mismatch"), Some(1));
    assert_eq!(stat(&envoy, "denied.tenant_mismatch"), None);
    assert!(
        envoy.wait_for_log(Duration::from_secs(5), |l| l.contains(
            "policy-authz: shadow: would deny POST /tenants/bank-b/payments by payments (data.gw.bank.decision): tenant_mismatch"
        )),
        "{}",
        envoy.log()
    );
}

/// A comprehension over eight million elements would hold a worker for seconds; the budget
/// (20 ms) stops it, the request is refused with policy_error, and the worker answers the next
/// request at once.
#[test]
fn a_runaway_policy_is_stopped_by_its_budget() {
    let echo = Echo::start();
    let policy = json!({
        "policies": { "runaway.rego": "package gw.runaway\n\nallow if {\n  input.request.path == \"/spin\"\n  n := count([1 | some a in numbers.range(1, 200); some b in numbers.range(1, 200); some c in numbers.range(1, 200)])\n  n > 0\n}\n\nallow if input.request.path == \"/quick\"\n" },
        "rules": [ { "match": { "prefix": "/" }, "query": "data.gw.runaway.allow" } ],
        "eval_budget_ms": 20
    });
    let envoy = Envoy::start(EnvoyConfig::new(echo.port()).filter(WasmFilter::new(
        wasm_path("policy-authz"),
        "policy-authz",
        policy.to_string(),
    )));
    let started = Instant::now();
    let resp = envoy.request("GET", "/spin", &[], b"");
    let took = started.elapsed();
    assert_eq!(
        refusal(&resp),
        (403, "access_denied".into(), String::new()),
        "{resp}"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&resp.body).unwrap()["error_description"],
        "the policy could not decide on this request"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(stat(&envoy, "policy_error.budget_exceeded"), Some(1));
    assert_eq!(stat(&envoy, "denied.policy_error"), Some(1));
    assert_eq!(envoy.request("GET", "/quick", &[], b"").status, 200);
    assert!(
        envoy.wait_for_log(Duration::from_secs(5), |l| l
            .contains("policy-authz: policy error on GET /spin by rules[0] (data.gw.runaway.allow): budget_exceeded")),
        "{}",
        envoy.log()
    );
}

/// The example configuration loads in Envoy as written (its policy compiles, its rules name
/// rules of the policy), and Envoy refuses it when the policy does not compile.
#[test]
fn the_example_configuration_loads_and_a_broken_policy_is_refused() {
    let text = example_config("policy-authz.yaml");
    let dir = scratch_dir("policy-authz-example");
    let validate = |text: &str| validate_config(&dir, text, &[]);
    let (ok, log) = validate(&text);
    assert!(ok, "{log}");
    let broken = text.replacen("not same_tenant", "not same_tenant ===", 1);
    assert_ne!(broken, text, "the example has the bank policy");
    let (ok, log) = validate(&broken);
    assert!(!ok, "{log}");
    assert!(
        log.contains(
            "shieldwall policy_authz: invalid configuration: policies.bank.rego: bank.rego:"
        ),
        "{log}"
    );
}
