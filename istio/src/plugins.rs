//! What the tests need to know about the `WasmPlugin`s under `istio/`: every manifest found by
//! walking the directory, which shieldwall filter each plugin loads, where Istio places it in the
//! gateway's filter chain (phase, then priority), and the environment its VM gets (`vmConfig.env`).
//!
//! The filter of a plugin is read from, in this order:
//! 1. the annotation [`FILTER_ANNOTATION`] (`shieldwall.io/filter: jwt-auth`), for a module whose
//!    URL does not name it;
//! 2. the module URL: the repository's last path segment of an `oci://` image
//!    (`oci://registry.example.com/shieldwall/jwt-auth:0.1.0` or `…/jwt-auth@sha256:…`), or the
//!    file name of an `http(s)://` or `file://` module without `.wasm`, `_` read as `-`
//!    (`file:///var/local/shieldwall/jwt_auth.wasm`).

use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The annotation that names a plugin's filter when its URL does not.
pub const FILTER_ANNOTATION: &str = "shieldwall.io/filter";

/// Istio's `WasmPlugin.phase`, in the order the phases sit in Envoy's HTTP filter chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Before Istio's authentication filters.
    Authn,
    /// After Istio's authentication filters, before its authorization filters.
    Authz,
    /// After Istio's authorization filters, before its stats filters.
    Stats,
    /// No phase: the control plane chooses (generally right before the router).
    Unspecified,
}

impl Phase {
    pub fn parse(value: Option<&str>) -> Result<Phase, String> {
        match value {
            Some("AUTHN") => Ok(Phase::Authn),
            Some("AUTHZ") => Ok(Phase::Authz),
            Some("STATS") => Ok(Phase::Stats),
            None | Some("UNSPECIFIED_PHASE") => Ok(Phase::Unspecified),
            Some(other) => Err(format!("unknown phase `{other}`")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
            Phase::Unspecified => "UNSPECIFIED_PHASE",
        }
    }
}

/// Where a `vmConfig.env` entry takes its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// `valueFrom: HOST`: the variable of the same name in the proxy's environment.
    Host,
    /// `valueFrom: INLINE` (the default): the `value` written in the manifest.
    Inline(String),
}

/// One `WasmPlugin` document found under `istio/`.
#[derive(Debug, Clone)]
pub struct WasmPlugin {
    /// The file, relative to the `istio/` directory.
    pub file: PathBuf,
    /// The document's index in the file (from 0, counting empty documents).
    pub index: usize,
    pub namespace: String,
    pub name: String,
    pub url: String,
    /// `spec.selector` as written (`null` when absent): which workloads load the plugin.
    pub selector: Value,
    /// The shieldwall filter (or `shieldwall`, the one-module chain) the plugin loads.
    pub filter: String,
    pub phase: Phase,
    /// Istio's default is 0.
    pub priority: i64,
    /// `failStrategy`; absent means `FAIL_CLOSE`.
    pub fail_strategy: String,
    pub image_pull_policy: Option<String>,
    pub env: BTreeMap<String, EnvSource>,
    pub plugin_config: Value,
}

impl fmt::Display for WasmPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "istio/{} document {} ({}/{})",
            self.file.display(),
            self.index,
            self.namespace,
            self.name
        )
    }
}

impl WasmPlugin {
    /// Reads a `WasmPlugin` document. `file` and `index` only name it in messages.
    pub fn from_document(file: &Path, index: usize, doc: &Value) -> Result<WasmPlugin, String> {
        let at = format!("istio/{} document {index}", file.display());
        let text = |v: &Value| v.as_str().map(str::to_string);
        let metadata = &doc["metadata"];
        let spec = &doc["spec"];
        let url = text(&spec["url"]).ok_or_else(|| format!("{at}: spec.url is not a string"))?;
        let annotation = field(metadata, &["annotations", FILTER_ANNOTATION]).as_str();
        let filter = match annotation {
            Some(name) => name.to_string(),
            None => filter_of_url(&url).map_err(|e| format!("{at}: {e}"))?,
        };
        let phase = Phase::parse(spec["phase"].as_str()).map_err(|e| format!("{at}: {e}"))?;
        let priority = match &spec["priority"] {
            Value::Null => 0,
            v => v
                .as_i64()
                .ok_or_else(|| format!("{at}: spec.priority is not an integer"))?,
        };
        Ok(WasmPlugin {
            file: file.to_path_buf(),
            index,
            namespace: text(&metadata["namespace"]).unwrap_or_else(|| "default".into()),
            name: text(&metadata["name"]).unwrap_or_default(),
            url,
            selector: spec["selector"].clone(),
            filter,
            phase,
            priority,
            fail_strategy: text(&spec["failStrategy"]).unwrap_or_else(|| "FAIL_CLOSE".into()),
            image_pull_policy: text(&spec["imagePullPolicy"]),
            env: vm_env(spec).map_err(|e| format!("{at}: {e}"))?,
            plugin_config: spec["pluginConfig"].clone(),
        })
    }

    /// Istio's order of two plugins in one proxy: by phase, then by priority, the highest first.
    /// `Equal` means Istio falls back to the plugins' names, an order not to rely on.
    pub fn chain_order(&self, other: &WasmPlugin) -> Ordering {
        self.phase
            .cmp(&other.phase)
            .then(other.priority.cmp(&self.priority))
    }
}

/// The filter an image or module URL names (see the module documentation).
pub fn filter_of_url(url: &str) -> Result<String, String> {
    if let Some(rest) = url.strip_prefix("oci://") {
        // registry[:port]/path/name[:tag][@digest]
        let without_digest = rest.split('@').next().unwrap_or(rest);
        let (_, path) = without_digest
            .split_once('/')
            .ok_or_else(|| format!("`{url}` names no repository"))?;
        let last = path.rsplit('/').next().unwrap_or(path);
        let name = last.split(':').next().unwrap_or(last);
        if name.is_empty() {
            return Err(format!("`{url}` names no repository"));
        }
        return Ok(name.to_string());
    }
    for scheme in ["file://", "http://", "https://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let path = rest.split(['?', '#']).next().unwrap_or(rest);
            let file = path.rsplit('/').next().unwrap_or(path);
            return file
                .strip_suffix(".wasm")
                .filter(|stem| !stem.is_empty())
                .map(|stem| stem.replace('_', "-"))
                .ok_or_else(|| {
                    format!(
                        "`{url}`: the file name is not <filter>.wasm; name the filter with the annotation {FILTER_ANNOTATION}"
                    )
                });
        }
    }
    Err(format!(
        "`{url}`: cannot tell the filter from this URL; name it with the annotation {FILTER_ANNOTATION}"
    ))
}

/// The value at `path` under `value`, `null` where a member is missing.
fn field<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .unwrap_or(&Value::Null)
}

fn vm_env(spec: &Value) -> Result<BTreeMap<String, EnvSource>, String> {
    let mut out = BTreeMap::new();
    let Some(entries) = field(spec, &["vmConfig", "env"]).as_array() else {
        return Ok(out);
    };
    for (i, entry) in entries.iter().enumerate() {
        let name = entry["name"]
            .as_str()
            .ok_or_else(|| format!("spec.vmConfig.env[{i}].name is not a string"))?;
        let source = match entry["valueFrom"].as_str() {
            Some("HOST") => EnvSource::Host,
            None | Some("INLINE") => {
                EnvSource::Inline(entry["value"].as_str().unwrap_or_default().to_string())
            }
            Some(other) => return Err(format!("spec.vmConfig.env[{i}].valueFrom: `{other}`")),
        };
        if out.insert(name.to_string(), source).is_some() {
            return Err(format!("spec.vmConfig.env[{i}]: `{name}` is listed twice"));
        }
    }
    Ok(out)
}

/// Every `*.yaml`/`*.yml` file under `dir`, recursively, sorted; hidden entries and `target` are
/// left out.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    collect_yaml(dir, &mut out)?;
    Ok(out)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        entries.push(entry.map_err(|e| format!("{}: {e}", dir.display()))?.path());
    }
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every `WasmPlugin` document in the YAML files under `root` (recursively), in file order.
pub fn wasm_plugins(root: &Path) -> Result<Vec<WasmPlugin>, String> {
    let mut out = Vec::new();
    for file in yaml_files(root)? {
        let shown = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let docs =
            crate::parse_documents(&text).map_err(|e| format!("istio/{}: {e}", shown.display()))?;
        for (index, doc) in docs {
            if field(&doc, &["kind"]) == "WasmPlugin" {
                out.push(WasmPlugin::from_document(&shown, index, &doc)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_filter_comes_from_the_oci_repository_name() {
        for url in [
            "oci://registry.example.com/shieldwall/jwt-auth:0.1.0",
            "oci://registry.example.com/shieldwall/jwt-auth",
            "oci://127.0.0.1:5000/shieldwall/jwt-auth@sha256:0123",
            "oci://127.0.0.1:5000/jwt-auth:1@sha256:0123",
        ] {
            assert_eq!(filter_of_url(url).as_deref(), Ok("jwt-auth"), "{url}");
        }
        assert!(filter_of_url("oci://registry.example.com").is_err());
    }

    #[test]
    fn the_filter_comes_from_a_module_file_name() {
        assert_eq!(
            filter_of_url("file:///var/local/shieldwall/jwt_auth.wasm").as_deref(),
            Ok("jwt-auth")
        );
        assert_eq!(
            filter_of_url("https://cdn.example.com/m/scope_authz.wasm?v=2").as_deref(),
            Ok("scope-authz")
        );
        assert!(filter_of_url("https://cdn.example.com/m/module.bin").is_err());
        assert!(filter_of_url("registry.example.com/x:1").is_err());
    }

    fn doc(spec: Value) -> Value {
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": spec
        })
    }

    #[test]
    fn the_annotation_wins_over_the_url() {
        let mut d = doc(json!({"url": "oci://r.example/shieldwall/gateway:1"}));
        d["metadata"]["annotations"] = json!({FILTER_ANNOTATION: "shieldwall"});
        let p = WasmPlugin::from_document(Path::new("x.yaml"), 0, &d).expect("plugin");
        assert_eq!(p.filter, "shieldwall");
    }

    #[test]
    fn defaults_and_env_are_read() {
        let d = doc(json!({
            "url": "oci://r.example/shieldwall/audit-log:1",
            "vmConfig": {"env": [
                {"name": "A", "valueFrom": "HOST"},
                {"name": "B", "value": "b"},
            ]}
        }));
        let p = WasmPlugin::from_document(Path::new("x.yaml"), 3, &d).expect("plugin");
        assert_eq!(p.phase, Phase::Unspecified);
        assert_eq!(p.priority, 0);
        assert_eq!(p.fail_strategy, "FAIL_CLOSE");
        assert_eq!(p.env.get("A"), Some(&EnvSource::Host));
        assert_eq!(p.env.get("B"), Some(&EnvSource::Inline("b".into())));
        assert_eq!(p.to_string(), "istio/x.yaml document 3 (ns/p)");

        let twice = doc(json!({
            "url": "oci://r.example/shieldwall/audit-log:1",
            "vmConfig": {"env": [{"name": "A", "valueFrom": "HOST"}, {"name": "A"}]}
        }));
        let e = WasmPlugin::from_document(Path::new("x.yaml"), 0, &twice).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn phases_come_first_then_the_higher_priority() {
        let plugin = |phase: &str, priority: i64| {
            WasmPlugin::from_document(
                Path::new("x.yaml"),
                0,
                &doc(json!({"url": "oci://r/s/f:1", "phase": phase, "priority": priority})),
            )
            .expect("plugin")
        };
        assert_eq!(
            plugin("AUTHN", 1).chain_order(&plugin("AUTHZ", 1000)),
            Ordering::Less
        );
        assert_eq!(
            plugin("STATS", 1000).chain_order(&plugin("AUTHZ", 1)),
            Ordering::Greater
        );
        assert_eq!(
            plugin("AUTHZ", 200).chain_order(&plugin("AUTHZ", 100)),
            Ordering::Less
        );
        assert_eq!(
            plugin("AUTHZ", 7).chain_order(&plugin("AUTHZ", 7)),
            Ordering::Equal
        );
    }
}
