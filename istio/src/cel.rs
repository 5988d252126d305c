//! The CEL rules of Istio's CRDs, evaluated by recognising their text.
//!
//! This is not a CEL interpreter. Each rule that Istio's CRDs carry is matched by its exact text (or
//! one fixed shape, the "at most one of these fields" sum) and evaluated by a Rust function with the
//! same meaning. [`evaluate`] returns `None` for any other rule: the caller must treat it as not
//! checked, and the tests fail when the CRD file holds such a rule.

use serde_json::Value;

/// Whether [`evaluate`] knows this rule.
pub fn is_known(rule: &str) -> bool {
    evaluate(rule, &Value::Null).is_some() || at_most_one_of(rule).is_some()
}

/// `Some(true)` when `value` satisfies `rule`, `Some(false)` when it does not (or when CEL would
/// fail to evaluate, which Kubernetes also refuses), `None` when the rule is not known.
pub fn evaluate(rule: &str, value: &Value) -> Option<bool> {
    let rule = normalise(rule);
    if let Some(fields) = at_most_one_of(&rule) {
        return Some(fields.iter().filter(|f| has(value, f)).count() <= 1);
    }
    let keys = || {
        value
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
    };
    let string = || value.as_str().unwrap_or("");
    Some(match rule.as_str() {
        "has(self.wasm) != has(self.lua)" => has(value, "wasm") != has(value, "lua"),
        r#"self.all(key, !key.contains("*"))"# => {
            keys().unwrap_or_default().iter().all(|k| !k.contains('*'))
        }
        "self.all(key, key.size() != 0)" => keys().unwrap_or_default().iter().all(|k| !k.is_empty()),
        r#"!self.contains("*")"# => !string().contains('*'),
        "self.size() == 0" => match value {
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.is_empty(),
            _ => true,
        },
        r#"(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)"# => {
            value.get("valueFrom").and_then(Value::as_str) != Some("HOST") || !has(value, "value")
        }
        "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) && !has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true" => {
            if has(value, "serviceAccounts") || has(value, "notServiceAccounts") {
                ["principals", "notPrincipals", "namespaces", "notNamespaces"]
                    .iter()
                    .all(|f| !has(value, f))
            } else {
                true
            }
        }
        "has(self.portLevelMtls) ? (((has(self.selector) && has(self.selector.matchLabels)) ? self.selector.matchLabels : {}).size() > 0) : true" => {
            if has(value, "portLevelMtls") {
                value
                    .get("selector")
                    .and_then(|s| s.get("matchLabels"))
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
            } else {
                true
            }
        }
        "self.all(key, 0 < int(key) && int(key) <= 65535)" => keys()
            .unwrap_or_default()
            .iter()
            .all(|k| go_int(k).is_some_and(|n| 0 < n && n <= 65535)),
        r#"url(self).getScheme() in ["http", "https"]"# => {
            request_uri_scheme(string()).is_some_and(|s| s == "http" || s == "https")
        }
        "duration(self) >= duration('1ms')" => {
            go_duration_ns(string()).is_some_and(|ns| ns >= 1_000_000)
        }
        r#"isURL(self) ? (url(self).getScheme() in ["", "http", "https", "file", "oci"]) : (isURL("http://" + self) && url("http://" + self).getScheme() in ["", "http", "https", "file", "oci"])"#
        | r#"isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) && url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])"# => {
            let s = string();
            match request_uri_scheme(s) {
                Some(scheme) => ["", "http", "https", "file", "oci"].contains(&scheme.as_str()),
                None => request_uri_scheme(&format!("http://{s}")).is_some(),
            }
        }
        _ => return None,
    })
}

/// CRD YAML folds long rules over lines; CEL does not care about that whitespace.
fn normalise(rule: &str) -> String {
    rule.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) ... <= 1` → `["a", "b", ...]`.
fn at_most_one_of(rule: &str) -> Option<Vec<String>> {
    let rule = normalise(rule);
    let sum = rule.strip_suffix(" <= 1")?;
    sum.split(" + ")
        .map(|term| {
            let field = term
                .strip_prefix("(has(self.")?
                .strip_suffix(") ? 1 : 0)")?;
            field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| field.to_string())
        })
        .collect()
}

fn has(value: &Value, field: &str) -> bool {
    value.get(field).is_some_and(|v| !v.is_null())
}

/// CEL's `int(string)`: a decimal integer with an optional sign.
fn go_int(s: &str) -> Option<i64> {
    s.parse::<i64>().ok()
}

/// The scheme (lower-cased) that Go's `url.ParseRequestURI` — which CEL's `isURL`/`url` use — gives
/// `s`, or `None` where it refuses `s`. An approximation: it requires an absolute URI whose rest
/// starts with `/`, or an absolute path, without spaces or control characters, and a numeric port.
fn request_uri_scheme(s: &str) -> Option<String> {
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    if s.starts_with('/') {
        return Some(String::new());
    }
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        || !rest.starts_with('/')
    {
        return None;
    }
    if let Some(after) = rest.strip_prefix("//") {
        let authority = after.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if !host_port.starts_with('[') {
            if let Some((_, port)) = host_port.rsplit_once(':') {
                if !port.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
            }
        }
    }
    Some(scheme.to_ascii_lowercase())
}

/// Go's `time.ParseDuration` (which CEL's `duration()` follows): a sign, then one or more decimal
/// numbers each with a unit (ns, us, µs, ms, s, m, h). Returns nanoseconds.
fn go_duration_ns(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(num_len);
        if number.is_empty() || number == "." {
            return None;
        }
        let n: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = next;
    }
    let ns = total as i128;
    Some(if negative { -ns } else { ns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_follow_go() {
        assert_eq!(go_duration_ns("1ms"), Some(1_000_000));
        assert_eq!(go_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_ns("1h2m"), Some(3_720_000_000_000));
        assert_eq!(go_duration_ns("0"), Some(0));
        assert_eq!(go_duration_ns("5"), None);
        assert_eq!(go_duration_ns("5 s"), None);
        assert_eq!(go_duration_ns(""), None);
    }

    #[test]
    fn urls_follow_parse_request_uri() {
        assert_eq!(
            request_uri_scheme("oci://ghcr.io/a/b:1").as_deref(),
            Some("oci")
        );
        assert_eq!(
            request_uri_scheme("file:///opt/x.wasm").as_deref(),
            Some("file")
        );
        assert_eq!(request_uri_scheme("/opt/x.wasm").as_deref(), Some(""));
        assert_eq!(request_uri_scheme("HTTPS://a/b").as_deref(), Some("https"));
        assert_eq!(request_uri_scheme("ghcr.io/a/b:1"), None);
        assert_eq!(request_uri_scheme("registry:5000/a"), None);
        assert_eq!(request_uri_scheme("http://a:port/"), None);
    }

    #[test]
    fn wasm_url_rule() {
        let rule = r#"isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) &&
url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])"#;
        assert_eq!(evaluate(rule, &json!("oci://ghcr.io/x/y:1")), Some(true));
        assert_eq!(evaluate(rule, &json!("ghcr.io/x/y:1")), Some(true));
        assert_eq!(evaluate(rule, &json!("ftp://x/y.wasm")), Some(false));
    }

    #[test]
    fn at_most_one() {
        let rule = "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 :\n0) <= 1";
        assert!(is_known(rule));
        assert_eq!(evaluate(rule, &json!({"selector": {}})), Some(true));
        assert_eq!(
            evaluate(rule, &json!({"selector": {}, "targetRefs": []})),
            Some(false)
        );
        assert_eq!(evaluate("self.foo()", &json!({})), None);
    }
}
