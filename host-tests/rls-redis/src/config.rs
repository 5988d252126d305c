//! The limits: a JSON file of domains, each a tree of descriptors, as Envoy's reference rate-limit
//! service nests them. A request descriptor `[(k1, v1), (k2, v2)]` walks the tree one entry per
//! level: at each level a node with the same key and value wins over a node with the same key and
//! no value (which matches any value). The limit of the node the last entry reaches applies; when
//! an entry finds no node, or the node has no limit, the descriptor is not limited.
//!
//! ```json
//! {"domains": [{"domain": "edge", "descriptors": [
//!     {"key": "rule", "value": "per-client", "descriptors": [
//!         {"key": "client_id", "rate_limit": {"requests_per_unit": 100, "unit": "minute"}},
//!         {"key": "client_id", "value": "batch", "rate_limit": {"requests_per_unit": 10, "unit": "minute"}}]},
//!     {"key": "rule", "value": "global", "rate_limit": {"requests_per_unit": 1000, "unit": "second"}}]}]}
//! ```

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

use crate::proto;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub domains: Vec<Domain>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub domain: String,
    #[serde(default)]
    pub descriptors: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    pub key: String,
    /// Absent: matches any value of `key`, and each value gets its own counter.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub descriptors: Vec<Descriptor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// 0 refuses every request.
    pub requests_per_unit: u32,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    #[serde(alias = "SECOND")]
    Second,
    #[serde(alias = "MINUTE")]
    Minute,
    #[serde(alias = "HOUR")]
    Hour,
    #[serde(alias = "DAY")]
    Day,
}

impl Unit {
    /// The window length.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
        }
    }

    pub fn to_proto(self) -> proto::Unit {
        match self {
            Unit::Second => proto::Unit::Second,
            Unit::Minute => proto::Unit::Minute,
            Unit::Hour => proto::Unit::Hour,
            Unit::Day => proto::Unit::Day,
        }
    }
}

/// A configuration that cannot be used, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and validates a configuration file's text.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("config: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (i, d) in self.domains.iter().enumerate() {
            let path = format!("domains[{i}]");
            if d.domain.is_empty() {
                return Err(ConfigError(format!("{path}.domain: empty")));
            }
            if !seen.insert(d.domain.as_str()) {
                return Err(ConfigError(format!(
                    "{path}.domain: {:?} appears twice",
                    d.domain
                )));
            }
            validate_level(&d.descriptors, &format!("{path}.descriptors"))?;
        }
        Ok(())
    }

    /// The limit for one request descriptor, if any.
    pub fn limit_for(&self, domain: &str, entries: &[(&str, &str)]) -> Option<RateLimit> {
        let domain = self.domains.iter().find(|d| d.domain == domain)?;
        let mut level = &domain.descriptors;
        let mut node: Option<&Descriptor> = None;
        for (key, value) in entries {
            let exact = level
                .iter()
                .find(|d| d.key == *key && d.value.as_deref() == Some(*value));
            let any = || level.iter().find(|d| d.key == *key && d.value.is_none());
            let found = exact.or_else(any)?;
            node = Some(found);
            level = &found.descriptors;
        }
        node.and_then(|n| n.rate_limit)
    }
}

fn validate_level(level: &[Descriptor], path: &str) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, d) in level.iter().enumerate() {
        let here = format!("{path}[{i}]");
        if d.key.is_empty() {
            return Err(ConfigError(format!("{here}.key: empty")));
        }
        if d.value.as_deref() == Some("") {
            return Err(ConfigError(format!(
                "{here}.value: empty (leave it out to match any value)"
            )));
        }
        if !seen.insert((d.key.as_str(), d.value.as_deref())) {
            return Err(ConfigError(format!(
                "{here}: key {:?} with value {:?} appears twice at this level",
                d.key, d.value
            )));
        }
        if d.rate_limit.is_none() && d.descriptors.is_empty() {
            return Err(ConfigError(format!(
                "{here}: neither rate_limit nor descriptors"
            )));
        }
        validate_level(&d.descriptors, &format!("{here}.descriptors"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"domains": [{"domain": "edge", "descriptors": [
        {"key": "rule", "value": "per-client", "descriptors": [
            {"key": "client_id", "rate_limit": {"requests_per_unit": 100, "unit": "minute"}},
            {"key": "client_id", "value": "batch", "rate_limit": {"requests_per_unit": 10, "unit": "MINUTE"}}]},
        {"key": "rule", "value": "global", "rate_limit": {"requests_per_unit": 1000, "unit": "second"}},
        {"key": "path", "rate_limit": {"requests_per_unit": 5, "unit": "hour"}}]}]}"#;

    fn limit(n: u32, unit: Unit) -> Option<RateLimit> {
        Some(RateLimit {
            requests_per_unit: n,
            unit,
        })
    }

    #[test]
    fn nested_matching_prefers_exact_values() {
        let c = Config::from_json(EXAMPLE).unwrap();
        let per_client = ("rule", "per-client");
        assert_eq!(
            c.limit_for("edge", &[per_client, ("client_id", "alice")]),
            limit(100, Unit::Minute)
        );
        assert_eq!(
            c.limit_for("edge", &[per_client, ("client_id", "batch")]),
            limit(10, Unit::Minute)
        );
        assert_eq!(
            c.limit_for("edge", &[("rule", "global")]),
            limit(1000, Unit::Second)
        );
        assert_eq!(
            c.limit_for("edge", &[("path", "/anything")]),
            limit(5, Unit::Hour)
        );
        // A node without its own limit, an unknown key, a descriptor deeper than the tree, an
        // unknown domain: no limit.
        assert_eq!(c.limit_for("edge", &[per_client]), None);
        assert_eq!(c.limit_for("edge", &[("tenant", "a")]), None);
        assert_eq!(c.limit_for("edge", &[("rule", "global"), ("x", "y")]), None);
        assert_eq!(c.limit_for("other", &[("rule", "global")]), None);
        assert_eq!(c.limit_for("edge", &[]), None);
    }

    #[test]
    fn bad_configs_are_refused_with_a_path() {
        for (text, needle) in [
            (
                r#"{"domains": [{"domain": ""}]}"#,
                "domains[0].domain: empty",
            ),
            (
                r#"{"domains": [{"domain": "a"}, {"domain": "a"}]}"#,
                "domains[1].domain",
            ),
            (
                r#"{"domains": [{"domain": "a", "descriptors": [{"key": "k"}]}]}"#,
                "domains[0].descriptors[0]: neither",
            ),
            (
                r#"{"domains": [{"domain": "a", "descriptors": [{"key": "k", "rate_limit": {"requests_per_unit": 1, "unit": "second"}}, {"key": "k", "rate_limit": {"requests_per_unit": 2, "unit": "second"}}]}]}"#,
                "domains[0].descriptors[1]: key",
            ),
            (
                r#"{"domains": [{"domain": "a", "descriptors": [{"key": "k", "value": "", "rate_limit": {"requests_per_unit": 1, "unit": "second"}}]}]}"#,
                "descriptors[0].value: empty",
            ),
            (
                r#"{"domains": [{"domain": "a", "descriptors": [{"key": "k", "rate_limit": {"requests_per_unit": 1, "unit": "week"}}]}]}"#,
                "unknown variant",
            ),
            (r#"{"domains": [], "extra": 1}"#, "unknown field"),
        ] {
            let err = Config::from_json(text).unwrap_err();
            assert!(err.0.contains(needle), "{text}: {err}");
        }
    }
}
