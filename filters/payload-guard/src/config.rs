//! The configuration of payload-guard, as written (serde, unknown fields refused) and as used
//! (validated, the OpenAPI document compiled). Every error names its field path.

use serde::Deserialize;
use serde_json::Value;
use shieldwall_core::config::{parse_json, Within};
use shieldwall_core::route::{PathOptions, RouteMatch, RouteMatchConfig};
use shieldwall_core::ConfigError;

use crate::json::JsonLimits;
use crate::openapi::Api;

/// What to do with a request the document does not describe.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    #[default]
    Deny,
    Allow,
}

/// How to read schemas that say nothing about members they do not list.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AdditionalProperties {
    /// A schema without `additionalProperties` is closed: unlisted members are refused.
    #[default]
    Deny,
    /// Each schema as written (JSON Schema's default: unlisted members are allowed).
    Schema,
}

/// Whether `format` is checked (`date-time`, `uuid`, `email`, `int32`, ...) or only annotates.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Formats {
    #[default]
    Assert,
    Annotate,
}

/// Which strings the SQL and XSS checks read.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Where {
    /// Strings the schema leaves free: no `enum`, `const`, `format` or `pattern`.
    #[default]
    FreeText,
    AllStrings,
    Off,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    pub max_body_bytes: Option<u64>,
    pub max_depth: Option<usize>,
    pub max_array_items: Option<usize>,
    pub max_object_entries: Option<usize>,
    pub max_string_bytes: Option<usize>,
    pub max_key_bytes: Option<usize>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct InjectionFile {
    pub sql: bool,
    pub nosql: bool,
    pub xss: bool,
    #[serde(rename = "where")]
    pub where_: Where,
    pub skip_formats: Vec<String>,
}

impl Default for InjectionFile {
    fn default() -> Self {
        InjectionFile {
            sql: true,
            nosql: true,
            xss: true,
            where_: Where::FreeText,
            skip_formats: vec!["password".into()],
        }
    }
}

/// A rule's `injection`: `false` turns the checks off on its routes, `true` keeps the top-level
/// ones, an object replaces them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RuleInjection {
    Enabled(bool),
    Checks(InjectionFile),
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(rename = "match")]
    pub match_: RouteMatchConfig,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub injection: Option<RuleInjection>,
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
    /// Skip the OpenAPI checks (operation, parameters, schema) on these routes.
    #[serde(default)]
    pub openapi: Option<bool>,
    #[serde(default)]
    pub shadow: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    pub openapi: Option<Value>,
    pub unknown_operations: Policy,
    pub unknown_query_params: Policy,
    pub additional_properties: AdditionalProperties,
    pub formats: Formats,
    pub limits: LimitsFile,
    pub content_types: Option<Vec<String>>,
    pub injection: InjectionFile,
    pub rules: Vec<RuleFile>,
    pub shadow: bool,
    pub path: PathOptions,
}

/// The limits in force on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub json: JsonLimits,
}

pub const DEFAULT_LIMITS: Limits = Limits {
    max_body_bytes: 1_048_576,
    json: JsonLimits {
        max_depth: 32,
        max_array_items: 1000,
        max_object_entries: 256,
        max_string_bytes: 65_536,
        max_key_bytes: 256,
    },
};

/// Upper bounds of the limits themselves: the parser recurses once per level, and a body is
/// held in the VM's memory whole.
const MAX_DEPTH_CEILING: usize = 128;
const MAX_BODY_CEILING: u64 = 64 * 1024 * 1024;

/// The injection checks in force on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub sql: bool,
    pub nosql: bool,
    pub xss: bool,
    pub where_: Where,
    pub skip_formats: Vec<String>,
}

impl Injection {
    pub fn off() -> Injection {
        Injection {
            sql: false,
            nosql: false,
            xss: false,
            where_: Where::Off,
            skip_formats: Vec::new(),
        }
    }
    pub fn any(&self) -> bool {
        self.nosql || ((self.sql || self.xss) && self.where_ != Where::Off)
    }
}

/// What applies to one request: the top level, or a rule's overrides of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub limits: Limits,
    pub injection: Injection,
    /// Media types a body may have (lower case, without parameters).
    pub content_types: Vec<String>,
    pub openapi: bool,
    pub shadow: bool,
}

pub struct Rule {
    pub label: String,
    pub route: RouteMatch,
    pub settings: Settings,
}

pub struct Config {
    pub api: Option<Api>,
    pub unknown_operations: Policy,
    pub unknown_query_params: Policy,
    pub defaults: Settings,
    pub rules: Vec<Rule>,
    pub path: PathOptions,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let file: ConfigFile = parse_json(bytes)?;
        Config::from_file(file)
    }

    pub fn from_file(file: ConfigFile) -> Result<Config, ConfigError> {
        let limits = merge_limits(&DEFAULT_LIMITS, &file.limits).within("limits")?;
        let content_types = match &file.content_types {
            Some(list) => media_types(list).within("content_types")?,
            None => vec!["application/json".to_string()],
        };
        let injection = injection(&file.injection).within("injection")?;
        let defaults = Settings {
            limits,
            injection,
            content_types,
            openapi: true,
            shadow: file.shadow,
        };
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.iter().enumerate() {
            let rule = compile_rule(r, &defaults).within(&format!("rules[{i}]"))?;
            rules.push(rule);
        }
        let api = match &file.openapi {
            None => None,
            Some(doc) => Some(
                Api::compile(doc, file.additional_properties, file.formats).within("openapi")?,
            ),
        };
        Ok(Config {
            api,
            unknown_operations: file.unknown_operations,
            unknown_query_params: file.unknown_query_params,
            defaults,
            rules,
            path: file.path,
        })
    }

    /// The settings of the first rule that matches, else the top level's.
    pub fn settings_for(&self, line: &shieldwall_core::RequestLine) -> (&Settings, &str) {
        for rule in &self.rules {
            if rule.route.matches(line).is_some() {
                return (&rule.settings, &rule.label);
            }
        }
        (&self.defaults, "default")
    }
}

fn compile_rule(r: &RuleFile, defaults: &Settings) -> Result<Rule, ConfigError> {
    let route = RouteMatch::compile(&r.match_).within("match")?;
    let limits = merge_limits(&defaults.limits, &r.limits).within("limits")?;
    let injection = match &r.injection {
        None | Some(RuleInjection::Enabled(true)) => defaults.injection.clone(),
        Some(RuleInjection::Enabled(false)) => Injection::off(),
        Some(RuleInjection::Checks(c)) => injection(c).within("injection")?,
    };
    let content_types = match &r.content_types {
        Some(list) => media_types(list).within("content_types")?,
        None => defaults.content_types.clone(),
    };
    let label = {
        let m = &r.match_;
        let what = m
            .path
            .as_deref()
            .or(m.prefix.as_deref())
            .or(m.template.as_deref())
            .unwrap_or("");
        format!("rule {what}")
    };
    Ok(Rule {
        label,
        route,
        settings: Settings {
            limits,
            injection,
            content_types,
            openapi: r.openapi.unwrap_or(defaults.openapi),
            shadow: r.shadow.unwrap_or(defaults.shadow),
        },
    })
}

fn merge_limits(base: &Limits, file: &LimitsFile) -> Result<Limits, ConfigError> {
    fn positive(v: usize, field: &str) -> Result<usize, ConfigError> {
        if v == 0 {
            return Err(ConfigError::new(field, "must be at least 1"));
        }
        Ok(v)
    }
    let max_body_bytes = file.max_body_bytes.unwrap_or(base.max_body_bytes);
    if max_body_bytes > MAX_BODY_CEILING {
        return Err(ConfigError::new(
            "max_body_bytes",
            format!("at most {MAX_BODY_CEILING} (the body is held in the VM's memory)"),
        ));
    }
    let max_depth = positive(file.max_depth.unwrap_or(base.json.max_depth), "max_depth")?;
    if max_depth > MAX_DEPTH_CEILING {
        return Err(ConfigError::new(
            "max_depth",
            format!("at most {MAX_DEPTH_CEILING}"),
        ));
    }
    Ok(Limits {
        max_body_bytes,
        json: JsonLimits {
            max_depth,
            max_array_items: positive(
                file.max_array_items.unwrap_or(base.json.max_array_items),
                "max_array_items",
            )?,
            max_object_entries: positive(
                file.max_object_entries
                    .unwrap_or(base.json.max_object_entries),
                "max_object_entries",
            )?,
            max_string_bytes: file.max_string_bytes.unwrap_or(base.json.max_string_bytes),
            max_key_bytes: positive(
                file.max_key_bytes.unwrap_or(base.json.max_key_bytes),
                "max_key_bytes",
            )?,
        },
    })
}

fn injection(file: &InjectionFile) -> Result<Injection, ConfigError> {
    for (i, f) in file.skip_formats.iter().enumerate() {
        if f.is_empty() || f.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                format!("skip_formats[{i}]"),
                "not a format name",
            ));
        }
    }
    Ok(Injection {
        sql: file.sql,
        nosql: file.nosql,
        xss: file.xss,
        where_: file.where_,
        skip_formats: file.skip_formats.clone(),
    })
}

/// Checks `type/subtype` names (a `*` subtype allowed) and lower-cases them.
pub fn media_types(list: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let lower = t.trim().to_ascii_lowercase();
        let ok = match lower.split_once('/') {
            Some((ty, sub)) => {
                let token = |s: &str| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                };
                token(ty) && (sub == "*" || token(sub))
            }
            None => false,
        };
        if !ok {
            return Err(ConfigError::new(
                format!("[{i}]"),
                "not a media type (`type/subtype`)",
            ));
        }
        out.push(lower);
    }
    Ok(out)
}

/// A media type names JSON: `application/json` or any `+json` subtype.
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || media_type
            .split_once('/')
            .is_some_and(|(_, sub)| sub.ends_with("+json"))
}
