//! What the tests of this crate share: where `istio/` and the CRDs are, every WasmPlugin under
//! `istio/`, and a filter's own `configure` run on a plugin's configuration and environment.

// Helpers outside #[test] functions panic on purpose: a panic is how a test reports.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, dead_code)]

use serde_json::Value;
use shieldwall_core::filter::RootFilter;
use shieldwall_core::testing::MockHost;
use shieldwall_istio::plugins::{self, EnvSource, WasmPlugin};
use shieldwall_istio::Crds;
use std::path::PathBuf;

pub fn istio_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn repo_root() -> PathBuf {
    istio_dir().join("..")
}

/// `SHIELDWALL_SHARED` if set, else the `shared/` folder beside the repository.
pub fn crds_path() -> PathBuf {
    let shared = std::env::var_os("SHIELDWALL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| istio_dir().join("../../shared"));
    shared.join("testdata/istio/crds.yaml")
}

pub fn crds() -> Crds {
    let path = crds_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the Istio CRDs at {} ({e}); set SHIELDWALL_SHARED to the shared folder",
            path.display()
        )
    });
    Crds::load(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every WasmPlugin document under `istio/`, found by walking the directory.
pub fn all_wasm_plugins() -> Vec<WasmPlugin> {
    plugins::wasm_plugins(&istio_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// A P-256 key made for these tests (`openssl genpkey`), standing in for a signing key that a
/// cluster keeps in a Secret.
pub const STAND_IN_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVAyZFplD8++7hOZg
63sSer07dU+3LlR16H3g+sw+htyhRANCAAReXd2FKCjsCDRTZ3mnWllYLGkrFj5q
QEGoUPQHKbv/MOh5mkp0S39bMcCt9d4N78tF75ppHmIpblCDh3p6lqCR
-----END PRIVATE KEY-----";

/// 32 bytes in base64, the form the manifests' comments make a chain key in
/// (`head -c 32 /dev/urandom | base64`): 44 characters, which the filters read as bytes.
pub const STAND_IN_KEY: &str = "c3RhbmQtaW4ga2V5IGZvciB0aGUgaXN0aW8gdGVzdHM=";

/// The configuration fields (`*_env`) that name `variable` anywhere in `config`.
fn fields_naming(config: &Value, variable: &str, out: &mut Vec<String>) {
    match config {
        Value::Object(map) => {
            for (key, value) in map {
                if key.ends_with("_env") && value.as_str() == Some(variable) {
                    out.push(key.clone());
                }
                fields_naming(value, variable, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| fields_naming(v, variable, out)),
        _ => {}
    }
}

/// The environment the plugin's VM gets from Istio: `INLINE` values as written; for `HOST`
/// variables (a Secret exposed to the istio-proxy container) a stand-in of the form the field
/// naming it expects: a PEM private key for `private_key_env`, a 32-byte key in base64 otherwise.
/// A variable the manifest does not list in `vmConfig.env` is not there, as in the proxy.
pub fn vm_env(plugin: &WasmPlugin) -> std::collections::HashMap<String, String> {
    plugin
        .env
        .iter()
        .map(|(name, source)| {
            let value = match source {
                EnvSource::Inline(v) => v.clone(),
                EnvSource::Host => {
                    let mut fields = Vec::new();
                    fields_naming(&plugin.plugin_config, name, &mut fields);
                    if fields.iter().any(|f| f == "private_key_env") {
                        STAND_IN_SIGNING_KEY.to_string()
                    } else {
                        STAND_IN_KEY.to_string()
                    }
                }
            };
            (name.clone(), value)
        })
        .collect()
}

fn run<F: RootFilter>(host: &mut MockHost, config: &[u8]) -> Result<(), String> {
    F::configure(host, config)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The chain's documented order (filters/shieldwall/README.md, the gateway in envoy/gateway.yaml):
/// audit-log first so it records every outcome, the identity from the certificate, then from the
/// token (jwt-auth, then token-introspection for opaque tokens), authorization by scope, the rate
/// limits, the body against the API's schema, the Rego policy, and the internal identity last.
pub const CHAIN: &[&str] = &[
    "audit-log",
    "mtls-identity",
    "jwt-auth",
    "token-introspection",
    "scope-authz",
    "rate-limit",
    "payload-guard",
    "policy-authz",
    "identity-exchange",
];

/// Every filter this crate can configure, by the name its directory under `filters/` has: the
/// chain's filters and the one module `shieldwall` that bundles them.
pub fn configurable() -> Vec<&'static str> {
    CHAIN.iter().copied().chain(["shieldwall"]).collect()
}

/// Runs the filter's own `configure` (what its root context calls in `on_configure`) on
/// `config`, with the VM environment `env`.
pub fn configure(
    filter: &str,
    config: &[u8],
    env: std::collections::HashMap<String, String>,
) -> Result<(), String> {
    let mut host = MockHost::new();
    host.env = env;
    match filter {
        "audit-log" => run::<audit_log::filter::AuditLog>(&mut host, config),
        "mtls-identity" => run::<mtls_identity::MtlsIdentity>(&mut host, config),
        "jwt-auth" => run::<jwt_auth::filter::JwtAuth>(&mut host, config),
        "token-introspection" => {
            run::<token_introspection::filter::TokenIntrospection>(&mut host, config)
        }
        "scope-authz" => run::<scope_authz::ScopeAuthz>(&mut host, config),
        "rate-limit" => run::<rate_limit::filter::RateLimit>(&mut host, config),
        "payload-guard" => run::<payload_guard::PayloadGuard>(&mut host, config),
        "policy-authz" => run::<policy_authz::PolicyAuthz>(&mut host, config),
        "identity-exchange" => run::<identity_exchange::IdentityExchange>(&mut host, config),
        "shieldwall" => run::<shieldwall::Shieldwall>(&mut host, config),
        other => Err(format!(
            "no configure known for the filter `{other}` (add it to istio/tests/common/mod.rs)"
        )),
    }
}

/// Configures the plugin's filter with its pluginConfig and its vmConfig.env.
pub fn configure_plugin(plugin: &WasmPlugin) -> Result<(), String> {
    let config = serde_json::to_vec(&plugin.plugin_config).expect("JSON");
    configure(&plugin.filter, &config, vm_env(plugin))
}
