//! A small validator for Kubernetes manifests against CustomResourceDefinition schemas.
//!
//! It implements the part of OpenAPI v3 that Kubernetes structural schemas use, plus the Kubernetes
//! extensions, and evaluates the CEL rules (`x-kubernetes-validations`) that Istio's CRDs carry by
//! recognising each rule's exact text (see [`cel`]). A rule it does not recognise is reported by
//! [`Crds::unknown_cel_rules`] so that a test can fail loudly instead of skipping it in silence.
//!
//! Every violation carries the JSON path of the offending value, e.g.
//! `$.spec.selector.matchLabels["app"]`.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod cel;
pub mod plugins;

/// One schema violation: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The served versions of every CRD in a file, keyed by (group, version, kind).
#[derive(Debug, Default)]
pub struct Crds {
    served: BTreeMap<(String, String, String), Value>,
    /// (group, kind) → versions that exist but are not served.
    unserved: BTreeMap<(String, String), Vec<String>>,
}

/// Kinds outside the CRD file that manifests may use, with the (structural) schema they are checked
/// against. Only plain Kubernetes kinds: an Istio kind must come from the CRD file.
pub const PLAIN_KINDS: &[(&str, &str)] = &[("v1", "ConfigMap"), ("v1", "Secret")];

fn plain_kind_schema(api_version: &str, kind: &str) -> Option<Value> {
    let string_map = serde_json::json!({
        "type": "object", "additionalProperties": {"type": "string"}
    });
    match (api_version, kind) {
        ("v1", "ConfigMap") => Some(serde_json::json!({
            "type": "object",
            "properties": {
                "data": string_map,
                "binaryData": string_map,
                "immutable": {"type": "boolean"}
            }
        })),
        ("v1", "Secret") => Some(serde_json::json!({
            "type": "object",
            "properties": {
                "data": string_map,
                "stringData": string_map,
                "type": {"type": "string"},
                "immutable": {"type": "boolean"}
            }
        })),
        _ => None,
    }
}

/// Parses every YAML document of `text` into JSON values, the way the Kubernetes API machinery sees
/// them: mapping keys become strings, empty documents are dropped. Returns (document index, value);
/// the index counts every document of the file, empty ones included, from 0.
pub fn parse_documents(text: &str) -> Result<Vec<(usize, Value)>, String> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| format!("document {index}: {e}"))?;
        let json = yaml_to_json(&value).map_err(|e| format!("document {index}: {e}"))?;
        if !json.is_null() {
            out.push((index, json));
        }
    }
    Ok(out)
}

fn yaml_to_json(value: &serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("number {n} has no JSON form"))?
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => {
            Value::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("mapping key {other:?} is not a scalar")),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => return Err(format!("YAML tag {} is not allowed in a manifest", t.tag)),
    })
}

impl Crds {
    /// Loads every `CustomResourceDefinition` of a (multi-document) YAML text.
    pub fn load(text: &str) -> Result<Crds, String> {
        let mut crds = Crds::default();
        for (index, doc) in parse_documents(text)? {
            if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let spec = doc.get("spec").ok_or(format!("CRD {index}: no spec"))?;
            let group = str_at(spec, &["group"]).ok_or(format!("CRD {index}: no spec.group"))?;
            let kind =
                str_at(spec, &["names", "kind"]).ok_or(format!("CRD {index}: no names.kind"))?;
            let versions = spec
                .get("versions")
                .and_then(Value::as_array)
                .ok_or(format!("CRD {index}: no versions"))?;
            for v in versions {
                let name = str_at(v, &["name"]).ok_or(format!("CRD {index}: version name"))?;
                let schema = v
                    .get("schema")
                    .and_then(|s| s.get("openAPIV3Schema"))
                    .cloned()
                    .ok_or(format!("CRD {kind}/{name}: no openAPIV3Schema"))?;
                if v.get("served").and_then(Value::as_bool) == Some(true) {
                    crds.served
                        .insert((group.clone(), name.clone(), kind.clone()), schema);
                } else {
                    crds.unserved
                        .entry((group.clone(), kind.clone()))
                        .or_default()
                        .push(name);
                }
            }
        }
        if crds.served.is_empty() {
            return Err("no served CRD version found".into());
        }
        Ok(crds)
    }

    /// `group/version Kind` of every served version, for messages and tests.
    pub fn served(&self) -> Vec<String> {
        self.served
            .keys()
            .map(|(g, v, k)| format!("{g}/{v} {k}"))
            .collect()
    }

    /// The CEL rules of the CRDs that [`cel`] does not know how to evaluate.
    pub fn unknown_cel_rules(&self) -> BTreeSet<String> {
        let mut rules = BTreeSet::new();
        for schema in self.served.values() {
            collect_rules(schema, &mut rules);
        }
        rules.retain(|r| !cel::is_known(r));
        rules
    }

    /// Validates one Kubernetes object. An empty vector means it is valid.
    pub fn validate(&self, doc: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        let Some(obj) = doc.as_object() else {
            out.push(v("$", "a manifest must be a mapping"));
            return out;
        };
        let api_version = obj.get("apiVersion").and_then(Value::as_str);
        let kind = obj.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            out.push(v("$", "apiVersion and kind are required strings"));
            return out;
        };
        let schema = match api_version.split_once('/') {
            Some((group, version)) => {
                let key = (group.to_string(), version.to_string(), kind.to_string());
                match self.served.get(&key) {
                    Some(s) => s.clone(),
                    None => {
                        let gk = (group.to_string(), kind.to_string());
                        let msg = match self.unserved.get(&gk) {
                            Some(vs) if vs.iter().any(|x| x == version) => {
                                format!("{api_version} {kind}: this version is not served")
                            }
                            _ => format!("{api_version} {kind}: no CRD for this kind and version"),
                        };
                        out.push(v("$", &msg));
                        return out;
                    }
                }
            }
            None => match plain_kind_schema(api_version, kind) {
                Some(s) => s,
                None => {
                    out.push(v(
                        "$",
                        &format!(
                            "{api_version} {kind}: not in the CRD file nor a listed plain kind"
                        ),
                    ));
                    return out;
                }
            },
        };
        match obj.get("metadata") {
            Some(meta) => check_metadata(meta, &mut out),
            None => out.push(v("$", "missing required field \"metadata\"")),
        }
        // apiVersion, kind and metadata are implicit in every CRD schema; the rest is the CRD's.
        let mut rest = obj.clone();
        for k in ["apiVersion", "kind", "metadata"] {
            rest.remove(k);
        }
        check(&schema, &Value::Object(rest), "$", &mut out);
        out
    }
}

fn collect_rules(schema: &Value, rules: &mut BTreeSet<String>) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::Array(vs)) = m.get("x-kubernetes-validations") {
                for r in vs {
                    if let Some(rule) = r.get("rule").and_then(Value::as_str) {
                        rules.insert(rule.to_string());
                    }
                }
            }
            for (k, sub) in m {
                if k != "x-kubernetes-validations" && k != "enum" && k != "default" {
                    collect_rules(sub, rules);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_rules(i, rules)),
        _ => {}
    }
}

fn str_at(value: &Value, path: &[&str]) -> Option<String> {
    let mut cur = value;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::to_string)
}

fn v(path: &str, message: &str) -> Violation {
    Violation {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// `$.a.b` for identifier-like keys, `$.a["x/y"]` otherwise.
pub fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_string()))
    }
}

fn check_metadata(meta: &Value, out: &mut Vec<Violation>) {
    let path = "$.metadata";
    let Some(m) = meta.as_object() else {
        out.push(v(path, "must be an object"));
        return;
    };
    const KNOWN: &[&str] = &[
        "name",
        "generateName",
        "namespace",
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
    ];
    for (k, val) in m {
        let p = child(path, k);
        if !KNOWN.contains(&k.as_str()) {
            out.push(v(&p, "unknown field"));
            continue;
        }
        match k.as_str() {
            "name" | "namespace" | "generateName" => match val.as_str() {
                None => out.push(v(&p, "must be a string")),
                Some(s) if k == "namespace" && !is_dns_label(s) => {
                    out.push(v(&p, "must be a DNS-1123 label"))
                }
                Some(s) if k == "name" && !is_dns_subdomain(s) => {
                    out.push(v(&p, "must be a DNS-1123 subdomain"))
                }
                _ => {}
            },
            "labels" | "annotations" => match val.as_object() {
                None => out.push(v(&p, "must be a map of strings")),
                Some(map) => {
                    for (lk, lv) in map {
                        if !lv.is_string() {
                            out.push(v(&child(&p, lk), "must be a string"));
                        }
                    }
                }
            },
            _ => {}
        }
    }
    if !m.contains_key("name") && !m.contains_key("generateName") {
        out.push(v(path, "missing required field \"name\""));
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    let actual = type_name(value);
    actual == expected || (expected == "number" && actual == "integer")
}

fn flag(schema: &Map<String, Value>, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn num(schema: &Map<String, Value>, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

/// Validates `value` at `path` against `schema`, appending every violation found.
pub fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(s) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        if !flag(s, "nullable") && (s.contains_key("type") || flag(s, "x-kubernetes-int-or-string"))
        {
            out.push(v(path, "must not be null"));
        }
        return;
    }
    if flag(s, "x-kubernetes-int-or-string") {
        if !matches!(type_name(value), "integer" | "string") {
            out.push(v(
                path,
                &format!("must be an integer or a string, found {}", type_name(value)),
            ));
            return;
        }
    } else if let Some(t) = s.get("type").and_then(Value::as_str) {
        if !type_matches(t, value) {
            out.push(v(
                path,
                &format!("must be of type {t}, found {}", type_name(value)),
            ));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum") {
        if !allowed.contains(value) {
            out.push(v(
                path,
                &format!("{value} is not one of {}", Value::Array(allowed.clone())),
            ));
        }
    }
    match value {
        Value::String(text) => check_string(s, text, path, out),
        Value::Number(n) => check_number(s, n, path, out),
        Value::Array(items) => check_array(s, items, path, out),
        Value::Object(map) => check_object(s, map, path, out),
        _ => {}
    }
    check_combinators(s, value, path, out);
    if let Some(Value::Array(rules)) = s.get("x-kubernetes-validations") {
        for rule in rules {
            let text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
            if let Some(false) = cel::evaluate(text, value) {
                let message = rule
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("failed rule: {text}"));
                out.push(v(path, &message));
            }
        }
    }
}

fn check_string(s: &Map<String, Value>, text: &str, path: &str, out: &mut Vec<Violation>) {
    let chars = text.chars().count() as f64;
    if let Some(max) = num(s, "maxLength") {
        if chars > max {
            out.push(v(path, &format!("longer than {max} characters")));
        }
    }
    if let Some(min) = num(s, "minLength") {
        if chars < min {
            out.push(v(path, &format!("shorter than {min} characters")));
        }
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(p) {
            Ok(re) if !re.is_match(text) => {
                out.push(v(path, &format!("{text:?} does not match pattern {p}")))
            }
            Ok(_) => {}
            Err(e) => out.push(v(
                path,
                &format!("schema pattern {p} does not compile: {e}"),
            )),
        }
    }
    if s.get("format").and_then(Value::as_str) == Some("date-time") && !is_date_time(text) {
        out.push(v(path, "not an RFC 3339 date-time"));
    }
}

fn is_date_time(text: &str) -> bool {
    let re = regex::Regex::new(
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
    );
    re.map(|re| re.is_match(text)).unwrap_or(false)
}

fn check_number(
    s: &Map<String, Value>,
    n: &serde_json::Number,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let x = n.as_f64().unwrap_or(f64::NAN);
    let exclusive_max = flag(s, "exclusiveMaximum");
    let exclusive_min = flag(s, "exclusiveMinimum");
    if let Some(max) = num(s, "maximum") {
        if x > max || (exclusive_max && x == max) {
            out.push(v(path, &format!("{n} is above the maximum {max}")));
        }
    }
    if let Some(min) = num(s, "minimum") {
        if x < min || (exclusive_min && x == min) {
            out.push(v(path, &format!("{n} is below the minimum {min}")));
        }
    }
    let range = match s.get("format").and_then(Value::as_str) {
        Some("int32") => Some((i32::MIN as f64, i32::MAX as f64, "int32")),
        Some("int64") => Some((i64::MIN as f64, i64::MAX as f64, "int64")),
        _ => None,
    };
    if let Some((lo, hi, name)) = range {
        if x < lo || x > hi {
            out.push(v(path, &format!("{n} does not fit {name}")));
        }
    }
}

fn check_array(s: &Map<String, Value>, items: &[Value], path: &str, out: &mut Vec<Violation>) {
    let len = items.len() as f64;
    if let Some(max) = num(s, "maxItems") {
        if len > max {
            out.push(v(path, &format!("more than {max} items")));
        }
    }
    if let Some(min) = num(s, "minItems") {
        if len < min {
            out.push(v(path, &format!("fewer than {min} items")));
        }
    }
    if let Some(item_schema) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), out);
        }
    }
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items.iter().take(i).any(|earlier| earlier == item) {
                    out.push(v(&format!("{path}[{i}]"), "duplicate entry in a set"));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|ks| ks.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of = |item: &Value| -> Vec<Value> {
                keys.iter()
                    .map(|k| item.get(k).cloned().unwrap_or(Value::Null))
                    .collect()
            };
            for (i, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items.iter().take(i).any(|earlier| key_of(earlier) == key) {
                    out.push(v(
                        &format!("{path}[{i}]"),
                        &format!("duplicate entry for map keys {keys:?}"),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    s: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) {
    if let Some(Value::Array(required)) = s.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                out.push(v(path, &format!("missing required field {r:?}")));
            }
        }
    }
    let count = map.len() as f64;
    if let Some(max) = num(s, "maxProperties") {
        if count > max {
            out.push(v(path, &format!("more than {max} properties")));
        }
    }
    if let Some(min) = num(s, "minProperties") {
        if count < min {
            out.push(v(path, &format!("fewer than {min} properties")));
        }
    }
    let properties = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    // A structural schema prunes (and strict field validation refuses) fields it does not name,
    // unless it preserves unknown fields or allows additional properties.
    let closed = properties.is_some()
        || additional == Some(&Value::Bool(false))
        || (s.get("type").and_then(Value::as_str) == Some("object") && additional.is_none());
    for (k, val) in map {
        let p = child(path, k);
        if let Some(sub) = properties.and_then(|ps| ps.get(k)) {
            check(sub, val, &p, out);
        } else if let Some(add @ Value::Object(_)) = additional {
            check(add, val, &p, out);
        } else if additional == Some(&Value::Bool(true)) || preserve {
            // allowed and not described
        } else if closed {
            out.push(v(&p, "unknown field"));
        }
    }
}

fn check_combinators(s: &Map<String, Value>, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let passes = |sub: &Value| {
        let mut tmp = Vec::new();
        check(sub, value, path, &mut tmp);
        tmp
    };
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            out.extend(passes(sub));
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        let results: Vec<Vec<Violation>> = any.iter().map(passes).collect();
        if !results.iter().any(Vec::is_empty) {
            let alternatives: Vec<String> = any.iter().map(describe).collect();
            out.push(v(
                path,
                &format!("matches none of anyOf: {}", alternatives.join(" | ")),
            ));
        }
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        let matched: Vec<String> = one
            .iter()
            .filter(|sub| passes(sub).is_empty())
            .map(describe)
            .collect();
        if matched.len() != 1 {
            let alternatives: Vec<String> = one.iter().map(describe).collect();
            out.push(v(
                path,
                &format!(
                    "must match exactly one of oneOf [{}], matched {} [{}]",
                    alternatives.join(" | "),
                    matched.len(),
                    matched.join(" | ")
                ),
            ));
        }
    }
    if let Some(not) = s.get("not") {
        if passes(not).is_empty() {
            out.push(v(path, &format!("must not match {}", describe(not))));
        }
    }
}

/// A short human text for a combinator branch; Istio's are mostly `required` lists.
fn describe(schema: &Value) -> String {
    let Some(m) = schema.as_object() else {
        return "schema".into();
    };
    if let (1, Some(Value::Array(req))) = (m.len(), m.get("required")) {
        let names: Vec<&str> = req.iter().filter_map(Value::as_str).collect();
        return format!("has {}", names.join(", "));
    }
    if let (1, Some(inner)) = (m.len(), m.get("not")) {
        return format!("not ({})", describe(inner));
    }
    if let (1, Some(Value::Array(any))) = (m.len(), m.get("anyOf")) {
        let parts: Vec<String> = any.iter().map(describe).collect();
        return format!("any of ({})", parts.join(" | "));
    }
    if let Some(t) = m.get("type").and_then(Value::as_str) {
        return format!("type {t}");
    }
    "schema".into()
}
