//! The plugin configuration of policy-authz, and its validation into the runtime form.
//! Unknown fields are refused; a rule, a header list or a limit that cannot work is refused at
//! load with its field path. The policies themselves are compiled by [`crate::policy`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use shieldwall_core::config::Within;
use shieldwall_core::route::{PathOptions, RouteMatch, RouteMatchConfig};
use shieldwall_core::ConfigError;

/// The most policy modules one configuration may carry.
pub const MAX_POLICIES: usize = 64;
/// The most bytes of one policy module (the interpreter's own limit per file is the same).
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// The most bytes of every policy module together.
pub const MAX_POLICIES_TOTAL_BYTES: usize = 4 << 20;
/// The most bytes of the `data` document, as JSON.
pub const MAX_DATA_BYTES: usize = 8 << 20;
/// The most request headers a policy can be given.
pub const MAX_INPUT_HEADERS: usize = 32;
/// The default and the greatest request body a policy can be given.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 10;
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The default and the greatest evaluation budget of one request, in milliseconds.
pub const DEFAULT_EVAL_BUDGET_MS: u64 = 50;
pub const MAX_EVAL_BUDGET_MS: u64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Rego modules by file name.
    pub policies: BTreeMap<String, String>,
    /// The static data document, `data` in the policies (beside the packages).
    #[serde(default)]
    pub data: Option<Value>,
    pub rules: Vec<RuleFile>,
    #[serde(default)]
    pub input: InputFile,
    /// What a request that matches no rule gets: `deny` (the default) or `allow` (only if written).
    #[serde(default)]
    pub default: DefaultAction,
    /// Log and count what would be refused, and let it through.
    #[serde(default)]
    pub shadow: bool,
    /// The wall-clock budget of one evaluation, in milliseconds.
    #[serde(default)]
    pub eval_budget_ms: Option<u64>,
    /// Hand the upstream the normalised path the policy decided on (default true).
    #[serde(default = "yes")]
    pub rewrite_path: bool,
    #[serde(default)]
    pub path: PathOptions,
}

fn yes() -> bool {
    true
}

/// What a request that matches no rule gets: `deny` (the default) or `allow`, the same choice as
/// the authenticators' `unmatched`.
pub use shieldwall_core::authn::Unmatched as DefaultAction;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// A name for logs (default `rules[<index>]`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub route: RouteMatchConfig,
    #[serde(default)]
    pub public: Option<bool>,
    /// The rule the policy decides with, as a `data.` reference (`data.gw.orders.allow`).
    #[serde(default)]
    pub query: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// Request headers the policy sees, by name.
    #[serde(default)]
    pub headers: Vec<String>,
    /// `"json"`: the request body, parsed, is `input.body`.
    #[serde(default)]
    pub body: Option<BodyMode>,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// The client address behind trusted proxies, as rate-limit resolves it.
    #[serde(default)]
    pub client_ip: ClientIpFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpFile {
    #[serde(default)]
    pub xff_trusted_hops: u32,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BodyMode {
    Json,
}

// ------------------------------------------------------------------ runtime form

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Allowed without asking the policy.
    Public,
    /// Decided by this rule of the policy (`data.…`), evaluated with the request's input.
    Query(String),
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name in logs.
    pub label: String,
    pub route: RouteMatch,
    pub access: Access,
}

/// What the policies are given besides identity, request line and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// Lower-case header names.
    pub headers: Vec<String>,
    /// `Some(limit)`: a JSON body up to `limit` bytes is parsed into `input.body`.
    pub json_body_limit: Option<usize>,
    pub xff_trusted_hops: u32,
}

#[derive(Debug)]
pub struct Config {
    /// Rego modules by file name, checked for size (compiled by `policy::Policies`).
    pub policies: BTreeMap<String, String>,
    /// The data document as JSON text (an object), or `None`.
    pub data: Option<String>,
    pub rules: Vec<Rule>,
    pub input: InputSpec,
    pub default: DefaultAction,
    pub shadow: bool,
    pub eval_budget_ms: u64,
    pub rewrite_path: bool,
    pub path: PathOptions,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let file: ConfigFile = shieldwall_core::config::parse_json(bytes)?;
        Config::from_file(file)
    }

    pub fn from_file(file: ConfigFile) -> Result<Config, ConfigError> {
        check_policies(&file.policies)?;
        let data = match file.data {
            None => None,
            Some(Value::Object(map)) => {
                let text = serde_json::to_string(&Value::Object(map))
                    .map_err(|e| ConfigError::new("data", e.to_string()))?;
                if text.len() > MAX_DATA_BYTES {
                    return Err(ConfigError::new(
                        "data",
                        format!("{} bytes of JSON, more than {MAX_DATA_BYTES}", text.len()),
                    ));
                }
                Some(text)
            }
            Some(_) => return Err(ConfigError::new(
                "data",
                "must be an object (its members sit beside the policies' packages under `data`)",
            )),
        };
        if file.rules.is_empty() {
            return Err(ConfigError::new(
                "rules",
                "must list at least one rule (without rules every request gets the default)",
            ));
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.into_iter().enumerate() {
            rules.push(build_rule(i, r).within(&format!("rules[{i}]"))?);
        }
        let input = build_input(file.input).within("input")?;
        let eval_budget_ms = file.eval_budget_ms.unwrap_or(DEFAULT_EVAL_BUDGET_MS);
        if eval_budget_ms == 0 || eval_budget_ms > MAX_EVAL_BUDGET_MS {
            return Err(ConfigError::new(
                "eval_budget_ms",
                format!("from 1 to {MAX_EVAL_BUDGET_MS} milliseconds"),
            ));
        }
        Ok(Config {
            policies: file.policies,
            data,
            rules,
            input,
            default: file.default,
            shadow: file.shadow,
            eval_budget_ms,
            rewrite_path: file.rewrite_path,
            path: file.path,
        })
    }
}

fn check_policies(policies: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    if policies.is_empty() {
        return Err(ConfigError::new(
            "policies",
            "must hold at least one Rego module",
        ));
    }
    if policies.len() > MAX_POLICIES {
        return Err(ConfigError::new(
            "policies",
            format!("at most {MAX_POLICIES} modules"),
        ));
    }
    let mut total = 0usize;
    for (name, text) in policies {
        let field = format!("policies.{name}");
        if !shieldwall_core::config::is_plain_name(name, 128, b"-_./") {
            return Err(ConfigError::new(
                field,
                "a file name of 1 to 128 letters, digits, `-`, `_`, `.` or `/`",
            ));
        }
        if text.len() > MAX_POLICY_BYTES {
            return Err(ConfigError::new(
                field,
                format!("{} bytes, more than {MAX_POLICY_BYTES}", text.len()),
            ));
        }
        total = total.saturating_add(text.len());
    }
    if total > MAX_POLICIES_TOTAL_BYTES {
        return Err(ConfigError::new(
            "policies",
            format!("{total} bytes in all, more than {MAX_POLICIES_TOTAL_BYTES}"),
        ));
    }
    Ok(())
}

fn build_rule(index: usize, r: RuleFile) -> Result<Rule, ConfigError> {
    let label = shieldwall_core::config::rule_label(r.name, index)?;
    let route = RouteMatch::compile(&r.route).within("match")?;
    let access = match (r.public, r.query) {
        (Some(true), Some(_)) => {
            return Err(ConfigError::new(
                "",
                "`public: true` and `query` exclude each other: a public route asks no policy",
            ))
        }
        (Some(true), None) => Access::Public,
        (_, Some(q)) => Access::Query(check_query(&q).map_err(|e| ConfigError::new("query", e))?),
        (Some(false), None) => {
            return Err(ConfigError::new(
                "public",
                "`public: false` needs a `query`",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                "",
                "a rule needs `public: true` or a `query` (`data.<package>.<rule>`)",
            ))
        }
    };
    Ok(Rule {
        label,
        route,
        access,
    })
}

/// A query is a reference to one rule: `data.` then dot-separated identifiers. Whether that rule
/// exists is checked when the policies are compiled.
fn check_query(q: &str) -> Result<String, String> {
    let q = q.trim();
    let rest = q
        .strip_prefix("data.")
        .ok_or("must be a rule of the policies, `data.<package>.<rule>`")?;
    let ident = |s: &str| {
        let mut bytes = s.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if rest.split('.').count() < 2 || !rest.split('.').all(ident) {
        return Err(format!(
            "`{q}` is not a rule reference such as `data.gw.orders.allow`"
        ));
    }
    Ok(q.to_string())
}

/// A header name a policy may read. Credentials are not handed to policies: the identity
/// context carries what was verified of them.
pub fn valid_input_header(name: &str) -> Result<(), &'static str> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        return Err("not a lower-case header name");
    }
    if matches!(name, "authorization" | "cookie" | "proxy-authorization") {
        return Err("a credential header: the policy gets the verified identity instead");
    }
    Ok(())
}

fn build_input(file: InputFile) -> Result<InputSpec, ConfigError> {
    if file.headers.len() > MAX_INPUT_HEADERS {
        return Err(ConfigError::new(
            "headers",
            format!("at most {MAX_INPUT_HEADERS} headers"),
        ));
    }
    let mut headers: Vec<String> = Vec::with_capacity(file.headers.len());
    for (i, h) in file.headers.into_iter().enumerate() {
        let h = h.to_ascii_lowercase();
        valid_input_header(&h).map_err(|e| ConfigError::new(format!("headers[{i}]"), e))?;
        if !headers.contains(&h) {
            headers.push(h);
        }
    }
    let json_body_limit = match (file.body, file.max_body_bytes) {
        (Some(BodyMode::Json), limit) => {
            let limit = limit.unwrap_or(DEFAULT_MAX_BODY_BYTES);
            if limit == 0 || limit > MAX_BODY_BYTES {
                return Err(ConfigError::new(
                    "max_body_bytes",
                    format!("from 1 to {MAX_BODY_BYTES} bytes"),
                ));
            }
            Some(limit)
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "max_body_bytes",
                "only with `body: \"json\"` (no body is read otherwise)",
            ))
        }
        (None, None) => None,
    };
    if file.client_ip.xff_trusted_hops > 16 {
        return Err(ConfigError::new("client_ip.xff_trusted_hops", "at most 16"));
    }
    Ok(InputSpec {
        headers,
        json_body_limit,
        xff_trusted_hops: file.client_ip.xff_trusted_hops,
    })
}
