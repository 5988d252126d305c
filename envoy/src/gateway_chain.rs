//! The gateway's configuration as the tests read it: the chain of envoy/gateway.yaml's
//! `shieldwall` plugin (each entry a filter and its own configuration), with the placeholders
//! that scripts/gateway.sh fills (the IdP's port, payload-guard's OpenAPI document) filled in.

use serde_json::Value;

use crate::repo_root;

/// The chain of envoy/gateway.yaml's shieldwall plugin, with its placeholders filled as
/// scripts/gateway.sh fills them.
pub fn gateway_chain(idp_port: u16) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join("envoy").join("gateway.yaml"))
        .unwrap_or_else(|e| panic!("read envoy/gateway.yaml: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "name: shieldwall")
        .unwrap_or_else(|| panic!("envoy/gateway.yaml has no shieldwall plugin"));
    let value = at
        + lines[at..]
            .iter()
            .position(|l| l.trim() == "value: |")
            .unwrap_or_else(|| panic!("the shieldwall plugin has no configuration block"));
    let indent = |l: &str| l.len() - l.trim_start().len();
    let own = indent(lines[value]);
    let block: Vec<&str> = lines[value + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > own)
        .copied()
        .collect();
    let openapi = std::fs::read_to_string(
        repo_root()
            .join("envoy")
            .join("openapi")
            .join("orders.yaml"),
    )
    .unwrap_or_else(|e| panic!("read envoy/openapi/orders.yaml: {e}"));
    let json = block
        .join("\n")
        .replace("{{IDP_PORT}}", &idp_port.to_string())
        .replace(
            "{{ORDERS_OPENAPI_JSON}}",
            &Value::String(openapi).to_string(),
        );
    let chain: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}\n{json}"));
    chain["chain"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("the shieldwall plugin has no chain: {chain}"))
}
