//! The plugin configuration of scope-authz, and its validation into the runtime form.
//! Unknown fields are refused; a rule that cannot work is refused at load with its field path.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use shieldwall_core::config::Within;
use shieldwall_core::route::{PathOptions, RouteMatch, RouteMatchConfig};
use shieldwall_core::{ConfigError, IdentityFrom};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub rules: Vec<RuleFile>,
    /// What a request that matches no rule gets: `deny` (the default) or `allow` (only if written).
    #[serde(default)]
    pub default: DefaultAction,
    /// Log and count what would be refused, and let it through.
    #[serde(default)]
    pub shadow: bool,
    /// Where the caller's identity comes from: shieldwall's authenticators (the default) or
    /// Envoy's own `jwt_authn` (`"jwt_authn"`, see `shieldwall_core::IdentityFrom`).
    #[serde(default)]
    pub identity_from: IdentityFrom,
    /// The `realm` of `WWW-Authenticate` (default `shieldwall`).
    #[serde(default)]
    pub realm: Option<String>,
    /// A method-override header the upstream honours (`x-http-method-override`); unset, no such
    /// header is trusted, and the well-known ones are removed from requests.
    #[serde(default)]
    pub method_override_header: Option<String>,
    /// Hand the upstream the normalised path the rules decided on (default true).
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
    #[serde(default)]
    pub require: Option<RequireFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequireFile {
    pub scopes: Option<Vec<String>>,
    pub any_scopes: Option<Vec<String>>,
    pub tenant: Option<String>,
    pub claims: Option<BTreeMap<String, Vec<Value>>>,
    pub principals: Option<Vec<String>>,
}

// ------------------------------------------------------------------ runtime form

/// An allowed mTLS caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// This SPIFFE ID exactly.
    Exact(String),
    /// Any SPIFFE ID below this prefix (kept with its trailing `/`).
    Under(String),
}

impl Principal {
    pub fn allows(&self, spiffe_id: &str) -> bool {
        match self {
            Principal::Exact(id) => id == spiffe_id,
            Principal::Under(prefix) => {
                spiffe_id.len() > prefix.len() && spiffe_id.starts_with(prefix.as_str())
            }
        }
    }
}

/// One claim condition: the claim (a name, or a dotted path into nested objects) and its
/// allowed values (JSON strings, numbers or booleans, compared by type and value).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRule {
    pub claim: String,
    pub allowed: Vec<Value>,
}

/// What a non-public rule requires; every part that is given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Require {
    pub scopes: Vec<String>,
    pub any_scopes: Vec<String>,
    /// A template of path parameters (`{tenant}`) that must equal the identity's tenant.
    pub tenant: Option<String>,
    pub claims: Vec<ClaimRule>,
    pub principals: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// No identity needed.
    Public,
    Require(Require),
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name in logs.
    pub label: String,
    pub route: RouteMatch,
    pub access: Access,
}

#[derive(Debug)]
pub struct Config {
    pub rules: Vec<Rule>,
    pub default: DefaultAction,
    pub shadow: bool,
    pub identity_from: IdentityFrom,
    pub realm: String,
    pub method_override_header: Option<String>,
    pub rewrite_path: bool,
    pub path: PathOptions,
}

/// Headers that frameworks commonly honour as a method override. Unless one is configured as
/// `method_override_header`, they are removed so an upstream never runs a method nobody authorized.
pub const KNOWN_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let file: ConfigFile = shieldwall_core::config::parse_json(bytes)?;
        Config::from_file(file)
    }

    pub fn from_file(file: ConfigFile) -> Result<Config, ConfigError> {
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.into_iter().enumerate() {
            rules.push(build_rule(i, r).within(&format!("rules[{i}]"))?);
        }
        let realm = file.realm.unwrap_or_else(|| "shieldwall".to_string());
        if realm.is_empty() || realm.contains(|c: char| c == '"' || c == '\\' || c.is_control()) {
            return Err(ConfigError::new(
                "realm",
                "must be non-empty, without quotes, backslashes or control characters",
            ));
        }
        let method_override_header = match file.method_override_header {
            Some(h) => {
                let h = h.to_ascii_lowercase();
                if !valid_header_name(&h) {
                    return Err(ConfigError::new(
                        "method_override_header",
                        "not a usable header name",
                    ));
                }
                Some(h)
            }
            None => None,
        };
        Ok(Config {
            rules,
            default: file.default,
            shadow: file.shadow,
            identity_from: file.identity_from,
            realm,
            method_override_header,
            rewrite_path: file.rewrite_path,
            path: file.path,
        })
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && !matches!(
            name,
            "host" | "content-length" | "transfer-encoding" | "connection" | "authorization"
        )
}

fn build_rule(index: usize, r: RuleFile) -> Result<Rule, ConfigError> {
    let label = shieldwall_core::config::rule_label(r.name, index)?;
    let route = RouteMatch::compile(&r.route).within("match")?;
    let access = match (r.public, r.require) {
        (Some(true), Some(_)) => {
            return Err(ConfigError::new(
                "",
                "`public: true` and `require` exclude each other: a public route needs no identity",
            ))
        }
        (Some(true), None) => Access::Public,
        (_, Some(req)) => {
            Access::Require(build_require(req, &r.route).within("require")?)
        }
        (Some(false), None) => {
            return Err(ConfigError::new(
                "public",
                "`public: false` needs a `require` (use `require: {}` for any authenticated caller)",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                "",
                "a rule needs `public: true` or `require` (use `require: {}` for any authenticated caller)",
            ))
        }
    };
    Ok(Rule {
        label,
        route,
        access,
    })
}

/// RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`.
fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn scope_list(list: Vec<String>, field: &str) -> Result<Vec<String>, ConfigError> {
    if list.is_empty() {
        return Err(ConfigError::new(
            field,
            "must list at least one scope (leave the field out instead)",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, s) in list.into_iter().enumerate() {
        if !valid_scope(&s) {
            return Err(ConfigError::new(
                format!("{field}[{i}]"),
                "not a scope (one token: no spaces, quotes or backslashes)",
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// The parameter names a `match.template` captures (`{tenant}`, `{path=**}`).
pub fn template_params(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|inner| inner.split('=').next().unwrap_or(inner).to_string())
        .collect()
}

/// The `{name}` references of a `tenant` template, or why it is not one.
fn tenant_refs(tenant: &str) -> Result<Vec<String>, String> {
    let mut refs = Vec::new();
    let mut rest = tenant;
    while let Some(start) = rest.find(['{', '}']) {
        let after = rest.get(start + 1..).unwrap_or("");
        if rest.get(start..start + 1) == Some("}") {
            return Err("a `}` without its `{`".into());
        }
        let end = after.find('}').ok_or("a `{` without its `}`")?;
        let name = after.get(..end).unwrap_or("");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("`{{{name}}}` is not a parameter reference"));
        }
        refs.push(name.to_string());
        rest = after.get(end + 1..).unwrap_or("");
    }
    Ok(refs)
}

fn build_require(r: RequireFile, route: &RouteMatchConfig) -> Result<Require, ConfigError> {
    let scopes = match r.scopes {
        Some(list) => scope_list(list, "scopes")?,
        None => Vec::new(),
    };
    let any_scopes = match r.any_scopes {
        Some(list) => scope_list(list, "any_scopes")?,
        None => Vec::new(),
    };
    let tenant = match r.tenant {
        Some(t) => {
            if t.is_empty() || t.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    "tenant",
                    "must be a non-empty template such as `{tenant}`",
                ));
            }
            let refs = tenant_refs(&t).map_err(|e| ConfigError::new("tenant", e))?;
            let params = route
                .template
                .as_deref()
                .map(template_params)
                .unwrap_or_default();
            for name in refs {
                if !params.contains(&name) {
                    let why = if route.template.is_none() {
                        format!(
                            "`{{{name}}}` needs a `match.template` that captures it (this match has none)"
                        )
                    } else {
                        format!("`{{{name}}}` is not a parameter of `match.template`")
                    };
                    return Err(ConfigError::new("tenant", why));
                }
            }
            Some(t)
        }
        None => None,
    };
    let mut claims = Vec::new();
    if let Some(map) = r.claims {
        if map.is_empty() {
            return Err(ConfigError::new(
                "claims",
                "must name at least one claim (leave the field out instead)",
            ));
        }
        for (claim, allowed) in map {
            if claim.is_empty() || claim.split('.').any(str::is_empty) {
                return Err(ConfigError::new(
                    format!("claims.{claim}"),
                    "not a claim name or dotted path",
                ));
            }
            if allowed.is_empty() {
                return Err(ConfigError::new(
                    format!("claims.{claim}"),
                    "must list at least one allowed value",
                ));
            }
            for (i, v) in allowed.iter().enumerate() {
                if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err(ConfigError::new(
                        format!("claims.{claim}[{i}]"),
                        "allowed values are strings, numbers or booleans",
                    ));
                }
            }
            claims.push(ClaimRule { claim, allowed });
        }
    }
    let mut principals = Vec::new();
    if let Some(list) = r.principals {
        if list.is_empty() {
            return Err(ConfigError::new(
                "principals",
                "must list at least one SPIFFE ID (leave the field out instead)",
            ));
        }
        for (i, p) in list.into_iter().enumerate() {
            principals.push(
                build_principal(&p).map_err(|e| ConfigError::new(format!("principals[{i}]"), e))?,
            );
        }
    }
    Ok(Require {
        scopes,
        any_scopes,
        tenant,
        claims,
        principals,
    })
}

fn build_principal(p: &str) -> Result<Principal, String> {
    let rest = p
        .strip_prefix("spiffe://")
        .ok_or("not a SPIFFE ID (`spiffe://<trust domain>/<path>`)")?;
    let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
    if domain.is_empty()
        || !domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
    {
        return Err("the trust domain must be lower-case letters, digits, `-`, `.` or `_`".into());
    }
    if p.bytes().any(|b| b <= 0x20 || b >= 0x7f) {
        return Err("must not contain spaces or control characters".into());
    }
    if let Some(prefix) = p.strip_suffix("/*") {
        if prefix.contains('*') {
            return Err("`*` is allowed only as a trailing `/*`".into());
        }
        return Ok(Principal::Under(format!("{prefix}/")));
    }
    if p.contains('*') {
        return Err("`*` is allowed only as a trailing `/*`".into());
    }
    if path.is_empty()
        || path.ends_with('/')
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(
            "the path must be non-empty segments without `.` or `..` (or end with `/*`)".into(),
        );
    }
    Ok(Principal::Exact(p.to_string()))
}
