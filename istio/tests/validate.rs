//! Every YAML document under `istio/` is validated against Istio's CRD schemas (the shared test data
//! `testdata/istio/crds.yaml`, found beside the repository), and the validator itself is checked on
//! manifests it must refuse.

// Helpers outside #[test] functions panic on purpose: a panic is how a test reports.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use serde_json::{json, Value};
mod common;

use common::{crds, istio_dir};
use shieldwall_istio::plugins::yaml_files;
use shieldwall_istio::{parse_documents, Crds, Violation, PLAIN_KINDS};

fn validate_text(crds: &Crds, text: &str) -> Vec<(usize, Violation)> {
    let docs = parse_documents(text).expect("YAML parses");
    docs.iter()
        .flat_map(|(index, doc)| crds.validate(doc).into_iter().map(move |v| (*index, v)))
        .collect()
}

fn violations(crds: &Crds, doc: Value) -> Vec<Violation> {
    crds.validate(&doc)
}

fn assert_refused(found: &[Violation], path: &str, message_part: &str) {
    assert!(
        found
            .iter()
            .any(|v| v.path == path && v.message.contains(message_part)),
        "expected a violation at {path} containing {message_part:?}, got {found:#?}"
    );
}

#[test]
fn every_manifest_under_istio_matches_its_crd() {
    let crds = crds();
    let root = istio_dir();
    let files = yaml_files(&root).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    let mut documents = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for file in &files {
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(file).expect("readable manifest");
        let docs = match parse_documents(&text) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("istio/{shown}: {e}"));
                continue;
            }
        };
        for (index, doc) in docs {
            documents += 1;
            if let Some(kind) = doc.get("kind").and_then(Value::as_str) {
                kinds.insert(kind.to_string());
            }
            for v in crds.validate(&doc) {
                failures.push(format!("istio/{shown} document {index}: {v}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} violation(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    for kind in [
        "WasmPlugin",
        "RequestAuthentication",
        "AuthorizationPolicy",
        "PeerAuthentication",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} manifest found under istio/"
        );
    }
    eprintln!(
        "validated {documents} documents in {} files against {:?}",
        files.len(),
        crds.served()
    );
}

/// A CEL rule that the validator cannot evaluate would be skipped in silence; refuse that.
#[test]
fn every_cel_rule_in_the_crds_is_evaluated() {
    let unknown = crds().unknown_cel_rules();
    assert!(
        unknown.is_empty(),
        "CEL rules the validator does not evaluate (teach istio/src/cel.rs or list them in istio/README.md):\n{unknown:#?}"
    );
}

#[test]
fn all_five_crds_are_served() {
    let served = crds().served();
    for expected in [
        "extensions.istio.io/v1alpha1 WasmPlugin",
        "extensions.istio.io/v1alpha1 TrafficExtension",
        "security.istio.io/v1 AuthorizationPolicy",
        "security.istio.io/v1 PeerAuthentication",
        "security.istio.io/v1 RequestAuthentication",
        "security.istio.io/v1beta1 AuthorizationPolicy",
    ] {
        assert!(
            served.iter().any(|s| s == expected),
            "{expected} not in {served:?}"
        );
    }
}

fn wasm_plugin() -> Value {
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": "p", "namespace": "istio-ingress"},
        "spec": {
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "url": "oci://registry.example.com/shieldwall/jwt-auth:0.1.0",
            "phase": "AUTHN",
            "priority": 10,
            "failStrategy": "FAIL_CLOSE",
            "pluginConfig": {"anything": {"nested": [1, 2]}},
        }
    })
}

#[test]
fn a_valid_wasm_plugin_passes() {
    assert_eq!(violations(&crds(), wasm_plugin()), vec![]);
}

#[test]
fn an_unknown_field_is_refused_with_its_path() {
    let mut doc = wasm_plugin();
    doc["spec"]["selector"]["matchLabel"] = json!({"a": "b"});
    doc["spec"]["imagePullPolice"] = json!("Always");
    let found = violations(&crds(), doc);
    assert_refused(&found, "$.spec.selector.matchLabel", "unknown field");
    assert_refused(&found, "$.spec.imagePullPolice", "unknown field");
    assert_eq!(found.len(), 2, "{found:#?}");
}

#[test]
fn a_wrong_type_is_refused_with_its_path() {
    let mut doc = wasm_plugin();
    doc["spec"]["priority"] = json!("high");
    doc["spec"]["match"] = json!([{"ports": [{"number": "8443"}]}]);
    let found = violations(&crds(), doc);
    assert_refused(
        &found,
        "$.spec.priority",
        "must be of type integer, found string",
    );
    assert_refused(&found, "$.spec.match[0].ports[0].number", "type integer");
}

#[test]
fn a_missing_required_field_is_refused_with_its_path() {
    let mut doc = wasm_plugin();
    doc["spec"].as_object_mut().expect("spec").remove("url");
    let found = violations(&crds(), doc);
    assert_refused(&found, "$.spec", "missing required field \"url\"");

    let auth = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "r"},
        "spec": {"jwtRules": [{"issuer": "i", "fromHeaders": [{"prefix": "Bearer "}]}]}
    });
    assert_refused(
        &violations(&crds(), auth),
        "$.spec.jwtRules[0].fromHeaders[0]",
        "missing required field \"name\"",
    );
}

#[test]
fn enums_bounds_and_patterns_are_checked() {
    let mut doc = wasm_plugin();
    doc["spec"]["phase"] = json!("AUTHENTICATION");
    doc["spec"]["priority"] = json!(5_000_000_000_i64);
    doc["spec"]["sha256"] = json!("ABC");
    doc["spec"]["match"] = json!([{"ports": [{"number": 70000}]}]);
    let found = violations(&crds(), doc);
    assert_refused(&found, "$.spec.phase", "is not one of");
    assert_refused(&found, "$.spec.priority", "does not fit int32");
    assert_refused(&found, "$.spec.sha256", "does not match pattern");
    assert_refused(
        &found,
        "$.spec.match[0].ports[0].number",
        "above the maximum",
    );
}

#[test]
fn null_is_allowed_only_where_nullable() {
    let mut doc = wasm_plugin();
    doc["spec"]["priority"] = Value::Null;
    assert_eq!(violations(&crds(), doc.clone()), vec![]);
    doc["spec"]["phase"] = Value::Null;
    assert_refused(
        &violations(&crds(), doc),
        "$.spec.phase",
        "must not be null",
    );
}

#[test]
fn cel_rules_are_evaluated() {
    let crds = crds();
    let mut doc = wasm_plugin();
    doc["spec"]["selector"]["matchLabels"] = json!({"app*": "x", "istio": "ingress*"});
    doc["spec"]["url"] = json!("ftp://example.com/x.wasm");
    doc["spec"]["targetRefs"] = json!([{"group": "", "kind": "Service", "name": "s"}]);
    let found = violations(&crds, doc);
    assert_refused(&found, "$.spec.selector.matchLabels", "wildcard");
    assert_refused(
        &found,
        "$.spec.selector.matchLabels.istio",
        "wildcard not allowed in label value",
    );
    assert_refused(&found, "$.spec.url", "url must have schema");
    assert_refused(&found, "$.spec", "only one of targetRefs or selector");

    let peer = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "p"},
        "spec": {"portLevelMtls": {"0": {"mode": "STRICT"}}}
    });
    let found = violations(&crds, peer);
    assert_refused(&found, "$.spec", "portLevelMtls requires selector");
    assert_refused(
        &found,
        "$.spec.portLevelMtls",
        "port must be between 1-65535",
    );

    let auth = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "r"},
        "spec": {"jwtRules": [{
            "issuer": "i", "jwksUri": "ftp://x/jwks", "jwks": "{}", "timeout": "0.5ms"
        }]}
    });
    let found = violations(&crds, auth);
    assert_refused(&found, "$.spec.jwtRules[0]", "only one of jwks or jwksUri");
    assert_refused(&found, "$.spec.jwtRules[0].jwksUri", "http:// or https://");
    assert_refused(&found, "$.spec.jwtRules[0].timeout", "greater than 1ms");
}

#[test]
fn one_of_alternatives_are_checked() {
    let crds = crds();
    // TrafficExtension: at most one of wasm / lua (oneOf), and exactly one (CEL).
    let both = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "TrafficExtension",
        "metadata": {"name": "t"},
        "spec": {
            "wasm": {"url": "oci://registry.example.com/x:1"},
            "lua": {"inlineCode": "function envoy_on_request(h) end"}
        }
    });
    let found = violations(&crds, both);
    assert_refused(&found, "$.spec", "must match exactly one of oneOf");
    assert_refused(&found, "$.spec", "matched 2 [has wasm | has lua]");
    assert_refused(&found, "$.spec", "exactly one of wasm or lua must be set");

    // AuthorizationPolicy: `provider` is optional, the oneOf only says "with or without it".
    let custom = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "a"},
        "spec": {"action": "CUSTOM", "provider": {"name": "ext"}, "rules": [{}]}
    });
    assert_eq!(violations(&crds, custom), vec![]);
    let accounts = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "a"},
        "spec": {"action": "ALLOW", "rules": [{"from": [{"source": {
            "serviceAccounts": ["ns/sa"], "principals": ["x"]
        }}]}]}
    });
    assert_refused(
        &violations(&crds, accounts),
        "$.spec.rules[0].from[0].source",
        "Cannot set serviceAccounts with namespaces or principals",
    );
}

#[test]
fn unknown_kinds_and_unserved_versions_are_errors() {
    let crds = crds();
    let entry = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "idp"},
        "spec": {}
    });
    assert_refused(&violations(&crds, entry), "$", "no CRD for this kind");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}
    });
    assert_refused(&violations(&crds, deployment), "$", "no CRD");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    assert_refused(&violations(&crds, pod), "$", "nor a listed plain kind");
    let mut old = wasm_plugin();
    old["apiVersion"] = json!("extensions.istio.io/v1beta1");
    assert_refused(
        &violations(&crds, old),
        "$",
        "no CRD for this kind and version",
    );
}

#[test]
fn listed_plain_kinds_are_validated_structurally() {
    let crds = crds();
    assert!(PLAIN_KINDS.contains(&("v1", "ConfigMap")));
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "shieldwall-modules", "namespace": "istio-ingress"},
        "data": {"a": "b"}
    });
    assert_eq!(violations(&crds, cm.clone()), vec![]);
    let mut bad = cm;
    bad["data"]["n"] = json!(1);
    bad["metadata"]["labelz"] = json!({});
    let found = violations(&crds, bad);
    assert_refused(&found, "$.data.n", "must be of type string");
    assert_refused(&found, "$.metadata.labelz", "unknown field");
}

#[test]
fn metadata_is_checked() {
    let mut doc = wasm_plugin();
    doc["metadata"] = json!({"namespace": "Bad_NS", "labels": {"a": 1}});
    let found = violations(&crds(), doc);
    assert_refused(&found, "$.metadata", "missing required field \"name\"");
    assert_refused(&found, "$.metadata.namespace", "DNS-1123 label");
    assert_refused(&found, "$.metadata.labels.a", "must be a string");
}

#[test]
fn multi_document_files_report_the_document_index() {
    let crds = crds();
    let text = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ok}\nspec: {mtls: {mode: STRICT}}\n---\n# an empty document still counts\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: bad}\nspec: {mtls: {mode: STRICTEST}}\n";
    let found = validate_text(&crds, text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, 2);
    assert_eq!(found[0].1.path, "$.spec.mtls.mode");
}

#[test]
fn int_or_string_and_preserved_fields() {
    let crds = crds();
    let mut doc = wasm_plugin();
    doc["spec"]["pluginConfig"] = json!({"free": {"form": [true, null, 1.5]}});
    assert_eq!(violations(&crds, doc.clone()), vec![]);
    doc["spec"]["pluginConfig"] = json!("not an object");
    assert_refused(
        &violations(&crds, doc),
        "$.spec.pluginConfig",
        "must be of type object",
    );
}
