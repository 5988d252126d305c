//! The plugin configuration of rate-limit, and its validation into the runtime form.
//! Unknown fields are refused; every error names its field path.

use std::collections::BTreeMap;

use serde::Deserialize;
use shieldwall_core::config::{parse_json, Within};
use shieldwall_core::route::{PathOptions, RouteMatch, RouteMatchConfig};
use shieldwall_core::{ConfigError, Identity, IdentityFrom};

use crate::bucket::{limit_from_config, Limit};

/// Slots per rule when a rule does not say.
pub const DEFAULT_SLOTS: u64 = 16_384;
/// The most slots one rule may have.
pub const MAX_SLOTS: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub rules: Vec<RuleFile>,
    #[serde(default)]
    pub client_ip: ClientIpFile,
    #[serde(default)]
    pub global: Option<GlobalFile>,
    #[serde(default)]
    pub headers: HeadersMode,
    #[serde(default)]
    pub shadow: bool,
    /// Where identity keys and tiers come from: shieldwall's authenticators (the default) or
    /// Envoy's own `jwt_authn` (`"jwt_authn"`, see `shieldwall_core::IdentityFrom`).
    #[serde(default)]
    pub identity_from: IdentityFrom,
    /// Slots per rule in the shared table (each rule may override).
    #[serde(default)]
    pub slots: Option<u64>,
    #[serde(default)]
    pub path: PathOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpFile {
    #[serde(default)]
    pub xff_trusted_hops: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFile {
    pub cluster: String,
    pub domain: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub failure_mode: FailureMode,
}

fn default_timeout_ms() -> u64 {
    50
}

/// What a request gets when the rate-limit service cannot answer.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// 503 with `Retry-After` (fail closed, the default).
    #[default]
    Deny,
    /// Let the request through (it passed the local buckets).
    Allow,
}

/// Which rate-limit headers responses carry.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HeadersMode {
    /// `RateLimit-Policy` and `RateLimit` on every response a rule applied to (the default).
    #[default]
    Draft,
    /// Only `Retry-After` on a 429.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matcher: Option<RouteMatchConfig>,
    pub key: KeyFile,
    pub limit: LimitFile,
    #[serde(default)]
    pub tiers: Option<TiersFile>,
    #[serde(default)]
    pub slots: Option<u64>,
    /// Tokens a worker takes from the shared bucket at once and spends locally (1: every
    /// request takes its own token, exact across workers; the default).
    #[serde(default)]
    pub lease_tokens: Option<u64>,
}

/// The most tokens one lease may take.
pub const MAX_LEASE_TOKENS: u64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub source: Option<String>,
    pub header: Option<String>,
    pub identity: Option<String>,
}

pub use shieldwall_core::bucket::Per;

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct LimitFile {
    pub requests: u64,
    pub per: Per,
    #[serde(default)]
    pub burst: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiersFile {
    pub identity: String,
    pub limits: BTreeMap<String, LimitFile>,
}

/// Where a rule's key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    ClientIp,
    /// A request header (lower-case name).
    Header(String),
    /// An identity-context field (`client_id`, `claims.tier`, ...).
    Identity(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tiers {
    pub identity: String,
    pub limits: BTreeMap<String, Limit>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub matcher: RouteMatch,
    pub key: KeySource,
    pub limit: Limit,
    pub tiers: Option<Tiers>,
    pub slots: u64,
    /// Tokens per lease (1: no lease).
    pub lease_tokens: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    pub cluster: String,
    pub domain: String,
    pub timeout_ms: u64,
    pub failure_mode: FailureMode,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub rules: Vec<Rule>,
    pub xff_trusted_hops: u32,
    pub global: Option<Global>,
    pub headers: HeadersMode,
    pub shadow: bool,
    pub identity_from: IdentityFrom,
    pub path: PathOptions,
}

/// Rule names go into metric names, shared-data keys, RLS descriptors and quoted header strings.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn limit(file: &LimitFile) -> Result<Limit, ConfigError> {
    limit_from_config("requests", file.requests, file.per, file.burst)
}

fn key(file: &KeyFile) -> Result<KeySource, ConfigError> {
    match (&file.source, &file.header, &file.identity) {
        (Some(s), None, None) => match s.as_str() {
            "client_ip" => Ok(KeySource::ClientIp),
            _ => Err(ConfigError::new("source", "the only source is `client_ip`")),
        },
        (None, Some(h), None) => {
            if valid_header_name(h) {
                Ok(KeySource::Header(h.to_ascii_lowercase()))
            } else {
                Err(ConfigError::new("header", "not a header name"))
            }
        }
        (None, None, Some(f)) => {
            if Identity::is_field_name(f) {
                Ok(KeySource::Identity(f.clone()))
            } else {
                Err(ConfigError::new("identity", "not an identity field"))
            }
        }
        _ => Err(ConfigError::new(
            "",
            "exactly one of `source`, `header` or `identity` is required",
        )),
    }
}

fn slots(value: Option<u64>) -> Result<u64, ConfigError> {
    let n = value.unwrap_or(DEFAULT_SLOTS);
    if n == 0 || n > MAX_SLOTS {
        return Err(ConfigError::new(
            "slots",
            format!("must be between 1 and {MAX_SLOTS}"),
        ));
    }
    Ok(n)
}

fn rule(file: &RuleFile, default_slots: u64) -> Result<Rule, ConfigError> {
    if !valid_name(&file.name) {
        return Err(ConfigError::new(
            "name",
            "1 to 64 characters of A-Z, a-z, 0-9, `-` and `_`",
        ));
    }
    let matcher = match &file.matcher {
        Some(m) => RouteMatch::compile(m).within("match")?,
        None => RouteMatch::any(),
    };
    let tiers = match &file.tiers {
        None => None,
        Some(t) => {
            if !Identity::is_field_name(&t.identity) {
                return Err(ConfigError::new("tiers.identity", "not an identity field"));
            }
            let mut limits = BTreeMap::new();
            for (name, l) in &t.limits {
                limits.insert(
                    name.clone(),
                    limit(l).within(&format!("tiers.limits.{name}"))?,
                );
            }
            Some(Tiers {
                identity: t.identity.clone(),
                limits,
            })
        }
    };
    let limit = limit(&file.limit).within("limit")?;
    let lease_tokens = file.lease_tokens.unwrap_or(1);
    if lease_tokens == 0 || lease_tokens > MAX_LEASE_TOKENS {
        return Err(ConfigError::new(
            "lease_tokens",
            format!("must be between 1 and {MAX_LEASE_TOKENS}"),
        ));
    }
    let smallest_burst = tiers
        .iter()
        .flat_map(|t| t.limits.values())
        .chain([&limit])
        .map(|l| l.burst)
        .min()
        .unwrap_or(limit.burst);
    if lease_tokens > smallest_burst {
        return Err(ConfigError::new(
            "lease_tokens",
            "must not exceed the burst of the rule's limit (or of any tier)",
        ));
    }
    Ok(Rule {
        name: file.name.clone(),
        matcher,
        key: key(&file.key).within("key")?,
        limit,
        tiers,
        slots: match file.slots {
            Some(n) => slots(Some(n))?,
            None => default_slots,
        },
        lease_tokens,
    })
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let file: ConfigFile = parse_json(bytes)?;
        Config::from_file(&file)
    }

    pub fn from_file(file: &ConfigFile) -> Result<Config, ConfigError> {
        let default_slots = slots(file.slots)?;
        let mut rules: Vec<Rule> = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.iter().enumerate() {
            let parsed = rule(r, default_slots).within(&format!("rules[{i}]"))?;
            if rules.iter().any(|other| other.name == parsed.name) {
                return Err(ConfigError::new(
                    format!("rules[{i}].name"),
                    "two rules have this name",
                ));
            }
            rules.push(parsed);
        }
        if file.client_ip.xff_trusted_hops > 16 {
            return Err(ConfigError::new("client_ip.xff_trusted_hops", "at most 16"));
        }
        let global = match &file.global {
            None => None,
            Some(g) => {
                if g.cluster.is_empty() {
                    return Err(ConfigError::new("global.cluster", "must not be empty"));
                }
                if g.domain.is_empty() {
                    return Err(ConfigError::new("global.domain", "must not be empty"));
                }
                if g.timeout_ms == 0 || g.timeout_ms > 60_000 {
                    return Err(ConfigError::new(
                        "global.timeout_ms",
                        "must be between 1 and 60000",
                    ));
                }
                Some(Global {
                    cluster: g.cluster.clone(),
                    domain: g.domain.clone(),
                    timeout_ms: g.timeout_ms,
                    failure_mode: g.failure_mode,
                })
            }
        };
        Ok(Config {
            rules,
            xff_trusted_hops: file.client_ip.xff_trusted_hops,
            global,
            headers: file.headers,
            shadow: file.shadow,
            identity_from: file.identity_from.clone(),
            path: file.path,
        })
    }
}
