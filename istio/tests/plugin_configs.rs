//! Every WasmPlugin under `istio/` (found by walking the directory, so a manifest added later is
//! covered without touching this file) is configured by its filter's own `configure`, the function
//! the module's root context runs in `on_configure`, with the VM environment its `vmConfig.env`
//! gives it. A manifest whose example no longer parses, or that names a secret variable it does not
//! pass to the VM, fails here instead of failing closed in a cluster.

// Helpers outside #[test] functions panic on purpose: a panic is how a test reports.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod common;

use common::{all_wasm_plugins, configurable, configure, configure_plugin, repo_root, vm_env};
use serde_json::{json, Value};
use shieldwall_istio::plugins::{EnvSource, WasmPlugin};
use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn every_wasm_plugin_config_is_accepted_by_its_filter() {
    let plugins = all_wasm_plugins();
    let mut failures = Vec::new();
    let mut filters = BTreeSet::new();
    for plugin in &plugins {
        match configure_plugin(plugin) {
            Ok(()) => {
                filters.insert(plugin.filter.clone());
            }
            Err(e) => failures.push(format!(
                "{plugin}: {} refuses its pluginConfig: {e}",
                plugin.filter
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The manifests of the main branch: each of these filters has at least one.
    for filter in configurable() {
        assert!(
            filters.contains(filter),
            "no WasmPlugin of {filter}: {filters:?}"
        );
    }
    eprintln!(
        "{} WasmPlugins configured by their filters: {filters:?}",
        plugins.len()
    );
}

/// A filter crate added under `filters/` gets a configure here, so its manifest is checked.
#[test]
fn every_filter_crate_can_be_configured_here() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("filters")).expect("filters/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if name == "core" || !path.join("Cargo.toml").exists() {
            continue;
        }
        if !configurable().contains(&name.as_str()) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "filters without a configure in istio/tests/common/mod.rs: {missing:?}"
    );
}

/// Each stage of a one-module chain is also configured as its own filter with the plugin's
/// environment, so a chain's stage names its error by filter as the separate plugin would.
#[test]
fn each_stage_of_a_one_module_chain_is_accepted_by_its_filter() {
    let mut stages = 0;
    for plugin in all_wasm_plugins()
        .iter()
        .filter(|p| p.filter == "shieldwall")
    {
        let chain = plugin.plugin_config["chain"]
            .as_array()
            .unwrap_or_else(|| panic!("{plugin}: pluginConfig.chain is not a list"));
        for (i, stage) in chain.iter().enumerate() {
            let filter = stage["filter"].as_str().expect("chain[i].filter");
            let config = serde_json::to_vec(&stage["config"]).expect("JSON");
            if let Err(e) = configure(filter, &config, vm_env(plugin)) {
                panic!("{plugin}: chain[{i}] ({filter}) refuses its config: {e}");
            }
            stages += 1;
        }
    }
    assert!(stages >= 8, "only {stages} chain stages found");
}

/// A plugin's configuration names a secret by its variable (`client_secret_env`, `key_env`,
/// `private_key_env`…); the variable must reach the VM through `vmConfig.env`, taken from the
/// proxy's environment (`valueFrom: HOST`), never written into the manifest (`INLINE`). And a
/// variable passed to the VM is one a field of the configuration names.
#[test]
fn secrets_reach_the_vm_from_the_proxy_environment() {
    let mut checked = 0;
    for plugin in all_wasm_plugins() {
        for (name, source) in &plugin.env {
            assert_eq!(
                source,
                &EnvSource::Host,
                "{plugin}: vmConfig.env {name} must be valueFrom: HOST (a Secret exposed to the istio-proxy container), not written in the manifest"
            );
            assert!(
                names_variable(&plugin.plugin_config, name),
                "{plugin}: vmConfig.env passes {name}, which no *_env field of pluginConfig names"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} vmConfig.env entries found");
}

fn names_variable(config: &Value, variable: &str) -> bool {
    match config {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k.ends_with("_env") && v.as_str() == Some(variable)) || names_variable(v, variable)
        }),
        Value::Array(items) => items.iter().any(|v| names_variable(v, variable)),
        _ => false,
    }
}

fn plugin_in(file: &str) -> WasmPlugin {
    all_wasm_plugins()
        .into_iter()
        .find(|p| p.file == Path::new(file))
        .unwrap_or_else(|| panic!("no WasmPlugin in istio/{file}"))
}

/// The check above can fail: without its vmConfig.env entry, each plugin that reads a secret is
/// refused by its filter, as the proxy would refuse it.
#[test]
fn a_secret_variable_missing_from_vm_config_env_is_refused() {
    for file in [
        "token-introspection/wasmplugin.yaml",
        "audit-log/wasmplugin.yaml",
        "identity-exchange/wasmplugin.yaml",
        "bank-reference/gateway-wasmplugin.yaml",
    ] {
        let mut plugin = plugin_in(file);
        assert!(!plugin.env.is_empty(), "{plugin} passes no variable");
        assert_eq!(configure_plugin(&plugin), Ok(()), "{plugin}");
        plugin.env.clear();
        let refused = configure_plugin(&plugin).expect_err("refused without its secret");
        assert!(
            refused.contains("_env"),
            "{plugin}: the error names the field: {refused}"
        );
    }
}

/// And a broken example is refused with its field path (the filters' parsers are strict).
#[test]
fn a_broken_plugin_config_is_refused_with_its_path() {
    let mut plugin = plugin_in("rate-limit/wasmplugin.yaml");
    plugin.plugin_config["rules"][0]["limit"]["per"] = json!("fortnight");
    let e = configure_plugin(&plugin).expect_err("refused");
    assert!(e.contains("rules[0].limit.per"), "{e}");

    let mut chain = plugin_in("shieldwall/wasmplugin.yaml");
    chain.plugin_config["chain"][1]["config"]["realmm"] = json!("x");
    let e = configure_plugin(&chain).expect_err("refused");
    assert!(e.contains("chain[1].config"), "{e}");
}
