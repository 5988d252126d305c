//! The separate WasmPlugins of the filters reproduce the one-module chain's order on the gateway:
//! Istio orders plugins by phase (AUTHN, AUTHZ, STATS) and, within a phase, by priority, the
//! highest first. The order they give is checked against the documented chain, and against the
//! table in istio/README.md, so the manifests, the README and the chain cannot drift apart.

// Helpers outside #[test] functions panic on purpose: a panic is how a test reports.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

mod common;

use common::{all_wasm_plugins, istio_dir, CHAIN};
use shieldwall_istio::plugins::{Phase, WasmPlugin};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The separate plugins of the chain: every WasmPlugin of a chain filter (not the one-module
/// chain `shieldwall`, and not the bank reference, which deploys the one module).
fn separate_plugins() -> Vec<WasmPlugin> {
    all_wasm_plugins()
        .into_iter()
        .filter(|p| p.filter != "shieldwall" && !p.file.starts_with("bank-reference"))
        .collect()
}

fn position(filter: &str) -> usize {
    CHAIN
        .iter()
        .position(|f| *f == filter)
        .unwrap_or_else(|| panic!("{filter} is not in the documented chain {CHAIN:?}"))
}

#[test]
fn phases_and_priorities_give_the_documented_chain_order() {
    let mut plugins = separate_plugins();
    for p in &plugins {
        assert_ne!(
            p.phase,
            Phase::Unspecified,
            "{p}: no phase; the control plane would place it, not the chain"
        );
    }
    plugins.sort_by(WasmPlugin::chain_order);
    // Two plugins of different filters that Istio cannot order (same phase and priority).
    for pair in plugins.windows(2) {
        if pair[0].chain_order(&pair[1]) == Ordering::Equal {
            assert_eq!(
                pair[0].filter, pair[1].filter,
                "{} and {} have the same phase and priority: Istio would order them by name",
                pair[0], pair[1]
            );
        }
    }
    let mut order: Vec<&str> = plugins.iter().map(|p| p.filter.as_str()).collect();
    order.dedup();
    let expected: Vec<&str> = CHAIN
        .iter()
        .copied()
        .filter(|f| order.contains(f))
        .collect();
    assert_eq!(
        order,
        expected,
        "the plugins' order on the gateway:\n{}",
        plugins
            .iter()
            .map(|p| format!("  {} {} {}", p.phase.name(), p.priority, p))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(order.len() >= 8, "{order:?}");
}

/// Ordering only holds within one proxy: the separate plugins select the same workloads.
#[test]
fn the_separate_plugins_select_the_same_gateway() {
    let plugins = separate_plugins();
    let first = &plugins[0];
    assert!(first.selector.is_object(), "{first}: no selector");
    for p in &plugins {
        assert_eq!(
            (&p.namespace, &p.selector),
            (&first.namespace, &first.selector),
            "{p} vs {first}"
        );
    }
}

/// Every shield fails closed: a module that cannot be fetched or loaded, or that refuses its
/// configuration, must not let traffic through unchecked. None of them is FAIL_OPEN (istio/README.md
/// says why), and every OCI plugin says how it is pulled.
#[test]
fn every_plugin_fails_closed_and_names_its_pull_policy() {
    for p in all_wasm_plugins() {
        assert_eq!(p.fail_strategy, "FAIL_CLOSE", "{p}");
        if p.url.starts_with("oci://") {
            assert!(
                matches!(
                    p.image_pull_policy.as_deref(),
                    Some("IfNotPresent" | "Always")
                ),
                "{p}: imagePullPolicy {:?}",
                p.image_pull_policy
            );
        }
    }
}

/// jwt-auth's `non_jwt_tokens: pass` is safe only with token-introspection after it.
#[test]
fn jwt_auth_passes_opaque_tokens_only_to_token_introspection() {
    let plugins = separate_plugins();
    for p in plugins.iter().filter(|p| p.filter == "jwt-auth") {
        if p.plugin_config["non_jwt_tokens"] == "pass" {
            assert!(
                plugins.iter().any(|q| q.filter == "token-introspection"
                    && p.chain_order(q) == Ordering::Less
                    && q.plugin_config["skip_if_verified_by"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|m| m == "jwt"))),
                "{p}: non_jwt_tokens: pass without token-introspection (skip_if_verified_by: [jwt]) after it"
            );
        }
    }
}

/// The one-module chains list their filters in the documented order too.
#[test]
fn one_module_chains_follow_the_documented_order() {
    let chains: Vec<WasmPlugin> = all_wasm_plugins()
        .into_iter()
        .filter(|p| p.filter == "shieldwall")
        .collect();
    assert!(chains.len() >= 2, "istio/shieldwall and the bank reference");
    for p in chains {
        let filters: Vec<usize> = p.plugin_config["chain"]
            .as_array()
            .expect("chain")
            .iter()
            .map(|s| position(s["filter"].as_str().expect("filter")))
            .collect();
        assert!(
            filters.windows(2).all(|w| w[0] < w[1]),
            "{p}: chain {filters:?} is not in the order of {CHAIN:?}"
        );
    }
}

/// One row of istio/README.md's chain table: `| 1 | audit-log | AUTHN | 1000 | … |`.
fn readme_table() -> Vec<(usize, String, String, i64)> {
    let readme = std::fs::read_to_string(istio_dir().join("README.md")).expect("README");
    let section = readme
        .split_once("### The chain as separate plugins")
        .expect("istio/README.md has the section `The chain as separate plugins`")
        .1;
    let mut rows = Vec::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<String> = line
            .split('|')
            .map(|c| c.trim().trim_matches('`').to_string())
            .collect();
        let Ok(order) = cells[1].parse::<usize>() else {
            continue;
        };
        let priority = cells[4].parse::<i64>().expect("priority");
        rows.push((order, cells[2].clone(), cells[3].clone(), priority));
    }
    rows
}

#[test]
fn the_readme_table_matches_the_manifests_and_the_chain() {
    let rows = readme_table();
    let filters: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(filters, CHAIN, "{rows:?}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.0, i + 1, "row numbers: {rows:?}");
    }
    let table: BTreeMap<&str, (&str, i64)> = rows
        .iter()
        .map(|r| (r.1.as_str(), (r.2.as_str(), r.3)))
        .collect();
    for p in separate_plugins() {
        let (phase, priority) = table[p.filter.as_str()];
        assert_eq!(
            (p.phase.name(), p.priority),
            (phase, priority),
            "{p}: istio/README.md's chain table says {phase} {priority}"
        );
    }
    // The table's own phases and priorities give its order (a row added for a filter without
    // a manifest yet, as payload-guard's, is placed by the same rule).
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let pa = Phase::parse(Some(&a.2)).expect("phase");
        let pb = Phase::parse(Some(&b.2)).expect("phase");
        assert!(
            pa < pb || (pa == pb && a.3 > b.3),
            "istio/README.md: {} ({} {}) does not run before {} ({} {})",
            a.1,
            a.2,
            a.3,
            b.1,
            b.2,
            b.3
        );
    }
}
