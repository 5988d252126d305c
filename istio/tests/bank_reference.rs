//! The bank reference's mesh side (istio/bank-reference/) agrees with its gateway: the services'
//! RequestAuthentication trusts exactly the tokens the gateway's identity-exchange mints (issuer,
//! keys at its jwks_path, audience per tenant), each tenant's AuthorizationPolicy admits the
//! gateway's workload identity with that tenant's SPIFFE subjects and `tenant` claim, and mutual
//! TLS is STRICT. (Schemas: validate.rs; plugin configurations: plugin_configs.rs.)

// Helpers outside #[test] functions panic on purpose: a panic is how a test reports.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

mod common;

use common::{all_wasm_plugins, istio_dir};
use serde_json::Value;
use shieldwall_istio::parse_documents;
use shieldwall_istio::plugins::WasmPlugin;

const TENANTS: &[&str] = &["bank-a", "bank-b"];

fn gateway() -> WasmPlugin {
    let plugins: Vec<WasmPlugin> = all_wasm_plugins()
        .into_iter()
        .filter(|p| p.file.starts_with("bank-reference"))
        .collect();
    assert_eq!(plugins.len(), 1, "one gateway WasmPlugin: {plugins:?}");
    let gateway = plugins.into_iter().next().expect("one");
    assert_eq!(
        gateway.filter, "shieldwall",
        "{gateway}: the one-module chain"
    );
    gateway
}

/// The configuration of one stage of the gateway's chain.
fn stage(gateway: &WasmPlugin, filter: &str) -> Value {
    gateway.plugin_config["chain"]
        .as_array()
        .expect("chain")
        .iter()
        .find(|s| s["filter"] == filter)
        .unwrap_or_else(|| panic!("{gateway}: no {filter} in the chain"))["config"]
        .clone()
}

fn tenant_documents(tenant: &str) -> Vec<Value> {
    let path = istio_dir().join(format!("bank-reference/{tenant}.yaml"));
    let text = std::fs::read_to_string(&path).expect("the tenant's manifests");
    parse_documents(&text)
        .expect("YAML")
        .into_iter()
        .map(|(_, d)| d)
        .collect()
}

fn one_of_kind<'a>(docs: &'a [Value], kind: &str, tenant: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "{tenant}: one {kind}");
    assert_eq!(
        found[0]["metadata"]["namespace"], tenant,
        "{kind} of {tenant}"
    );
    found[0]
}

#[test]
fn the_gateway_chain_is_the_whole_bank_flow() {
    let gateway = gateway();
    let filters: Vec<&str> = gateway.plugin_config["chain"]
        .as_array()
        .expect("chain")
        .iter()
        .map(|s| s["filter"].as_str().expect("filter"))
        .collect();
    assert_eq!(
        filters,
        [
            "audit-log",
            "mtls-identity",
            "jwt-auth",
            "token-introspection",
            "scope-authz",
            "rate-limit",
            "payload-guard",
            "identity-exchange"
        ]
    );
    // The global limit shared by the gateway replicas, through the rate-limit service.
    let limits = stage(&gateway, "rate-limit");
    assert!(limits["global"]["cluster"].as_str().is_some(), "{limits}");
}

#[test]
fn services_trust_exactly_the_gateways_internal_tokens() {
    let gateway = gateway();
    let exchange = stage(&gateway, "identity-exchange");
    let issuer = exchange["token"]["issuer"].as_str().expect("issuer");
    let jwks_path = exchange["jwks_path"].as_str().expect("jwks_path");
    assert_eq!(
        exchange["token"]["audience"], "{tenant}",
        "one audience per tenant"
    );
    for tenant in TENANTS {
        let docs = tenant_documents(tenant);
        let auth = one_of_kind(&docs, "RequestAuthentication", tenant);
        let rules = auth["spec"]["jwtRules"].as_array().expect("jwtRules");
        assert_eq!(rules.len(), 1, "{tenant}: only the gateway's tokens");
        let rule = &rules[0];
        assert_eq!(rule["issuer"], issuer, "{tenant}");
        assert_eq!(rule["audiences"], serde_json::json!([tenant]), "{tenant}");
        let jwks_uri = rule["jwksUri"].as_str().expect("jwksUri");
        let host_and_path = jwks_uri
            .strip_prefix("http://")
            .or_else(|| jwks_uri.strip_prefix("https://"))
            .expect("http(s)");
        let (host, path) = host_and_path.split_once('/').expect("a path");
        assert_eq!(
            format!("/{path}"),
            jwks_path,
            "{tenant}: the gateway's jwks_path"
        );
        assert!(
            host.ends_with(&format!(".{}.svc.cluster.local", gateway.namespace)),
            "{tenant}: {host} is a Service of the gateway's namespace {}",
            gateway.namespace
        );
    }
}

#[test]
fn each_tenant_admits_only_its_own_callers_through_the_gateway() {
    let gateway = gateway();
    let exchange = stage(&gateway, "identity-exchange");
    let issuer = exchange["token"]["issuer"].as_str().expect("issuer");
    let template = exchange["spiffe_id"].as_str().expect("spiffe_id");
    assert!(
        exchange["token"]["claims"]["tenant"] == "tenant",
        "the internal token carries the `tenant` claim"
    );
    // The tenant boundary at the gateway: a path's {tenant} must be the caller's.
    let authz = stage(&gateway, "scope-authz");
    for rule in authz["rules"].as_array().expect("rules") {
        if rule["match"]["template"]
            .as_str()
            .is_some_and(|t| t.starts_with("/tenants/{tenant}/"))
        {
            assert_eq!(rule["require"]["tenant"], "{tenant}", "{rule}");
        }
    }
    for tenant in TENANTS {
        let docs = tenant_documents(tenant);
        let policy = one_of_kind(&docs, "AuthorizationPolicy", tenant);
        assert_eq!(policy["spec"]["action"], "ALLOW", "{tenant}");
        assert!(
            policy["spec"]["selector"].is_null(),
            "{tenant}: the whole namespace"
        );
        let rules = policy["spec"]["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 1, "{tenant}");
        let sources = rules[0]["from"].as_array().expect("from");
        assert_eq!(sources.len(), 1, "{tenant}");
        let source = &sources[0]["source"];
        // The gateway's workload identity (mutual TLS), in the gateway's namespace.
        let principals = source["principals"].as_array().expect("principals");
        for p in principals {
            assert!(
                p.as_str()
                    .is_some_and(|p| p.contains(&format!("/ns/{}/sa/", gateway.namespace))),
                "{tenant}: principal {p} is not the gateway's"
            );
        }
        // The internal token's <iss>/<sub>: this tenant's SPIFFE IDs, the ones the template makes.
        let trust_domain = format!("spiffe://{tenant}.bank.example/");
        let rendered = template.replace("{tenant}", tenant);
        assert!(rendered.starts_with(&trust_domain), "{rendered}");
        for rp in source["requestPrincipals"]
            .as_array()
            .expect("requestPrincipals")
        {
            assert_eq!(
                rp.as_str(),
                Some(format!("{issuer}/{trust_domain}*").as_str()),
                "{tenant}"
            );
        }
        // And the tenant claim.
        let when = rules[0]["when"].as_array().expect("when");
        assert!(
            when.iter()
                .any(|w| w["key"] == "request.auth.claims[tenant]"
                    && w["values"] == serde_json::json!([tenant])),
            "{tenant}: {when:?}"
        );
        // No other tenant's name anywhere in the policy.
        for other in TENANTS.iter().filter(|t| *t != tenant) {
            assert!(
                !policy.to_string().contains(other),
                "{tenant} names {other}"
            );
        }
    }
}

#[test]
fn mutual_tls_is_strict_in_each_tenant() {
    for tenant in TENANTS {
        let docs = tenant_documents(tenant);
        let peer = one_of_kind(&docs, "PeerAuthentication", tenant);
        assert_eq!(peer["spec"]["mtls"]["mode"], "STRICT", "{tenant}");
        assert!(
            peer["spec"]["selector"].is_null(),
            "{tenant}: the whole namespace"
        );
        assert!(
            peer["spec"]["portLevelMtls"].is_null(),
            "{tenant}: no exception"
        );
    }
}

/// The mTLS trust domains the gateway maps to tenants are the tenants' SPIFFE trust domains.
#[test]
fn certificate_callers_map_to_their_tenant() {
    let mtls = stage(&gateway(), "mtls-identity");
    for tenant in TENANTS {
        let domain = format!("{tenant}.bank.example");
        assert_eq!(mtls["tenant_from_trust_domain"][&domain], *tenant, "{mtls}");
    }
}
