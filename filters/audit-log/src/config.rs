//! The plugin configuration of audit-log, and its validation into the runtime form.
//! Unknown fields are refused; every error names its field path.

use serde::Deserialize;
use shieldwall_core::config::parse_json;
use shieldwall_core::decision;
use shieldwall_core::{ConfigError, IdentityFrom};

/// The shieldwall filters whose decisions a record carries when `decisions` is not set, in the
/// order of the chain.
pub const DEFAULT_DECISIONS: &[&str] = &[
    "mtls_identity",
    "jwt_auth",
    "token_introspection",
    "scope_authz",
    "policy_authz",
    "rate_limit",
    "payload_guard",
    "identity_exchange",
];

/// Query parameters whose values are replaced by a keyed hash when `mask.query_params` is not set.
pub const DEFAULT_QUERY_PARAMS: &[&str] = &[
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "api_key",
    "apikey",
    "client_secret",
    "code",
    "password",
];

/// JSON fields (and `name=value` pairs) whose values are masked when `mask.json_fields` is not set.
pub const DEFAULT_JSON_FIELDS: &[&str] = &[
    "password",
    "secret",
    "client_secret",
    "ssn",
    "account_number",
    "cvv",
];

/// Headers whose whole value is an API key when `mask.headers` is not set.
pub const DEFAULT_SECRET_HEADERS: &[&str] = &["x-api-key", "api-key", "x-auth-token"];

/// Headers that carry credentials: never logged, whatever the configuration says.
pub const NEVER_LOGGED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// The shortest chain key accepted: an HMAC-SHA256 key shorter than the hash weakens it.
pub const MIN_CHAIN_KEY_BYTES: usize = 32;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub sinks: SinksFile,
    #[serde(default)]
    pub mask: MaskFile,
    #[serde(default)]
    pub include: IncludeFile,
    #[serde(default)]
    pub chain: Option<ChainFile>,
    #[serde(default)]
    pub sample: SampleFile,
    #[serde(default)]
    pub client_ip: ClientIpFile,
    /// The filters (their `NAME`s) whose decisions are read; the default lists every shieldwall filter.
    #[serde(default)]
    pub decisions: Option<Vec<String>>,
    /// Where the caller's identity comes from: shieldwall's authenticators (the default) or
    /// Envoy's own `jwt_authn` (`"jwt_authn"`, see `shieldwall_core::IdentityFrom`).
    #[serde(default)]
    pub identity_from: IdentityFrom,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksFile {
    #[serde(default = "yes")]
    pub access_log: bool,
    #[serde(default)]
    pub http: Option<HttpSinkFile>,
}

impl Default for SinksFile {
    fn default() -> Self {
        SinksFile {
            access_log: true,
            http: None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkFile {
    pub cluster: String,
    pub uri: String,
    #[serde(default)]
    pub format: HttpFormat,
    #[serde(default)]
    pub headers: Vec<HttpHeaderFile>,
    #[serde(default)]
    pub batch_max_records: Option<u64>,
    #[serde(default)]
    pub batch_max_bytes: Option<u64>,
    #[serde(default)]
    pub flush_interval_ms: Option<u64>,
    #[serde(default)]
    pub buffer_max_records: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub retry_initial_backoff_ms: Option<u64>,
    #[serde(default)]
    pub retry_max_backoff_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HttpFormat {
    #[default]
    JsonLines,
    SplunkHec,
    OtlpJson,
    EcsBulk,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHeaderFile {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskFile {
    #[serde(default = "yes")]
    pub card_numbers: bool,
    #[serde(default = "yes")]
    pub emails: bool,
    #[serde(default = "yes")]
    pub tokens: bool,
    #[serde(default = "yes")]
    pub ibans: bool,
    #[serde(default)]
    pub json_fields: Option<Vec<String>>,
    #[serde(default)]
    pub query_params: Option<Vec<String>>,
    #[serde(default)]
    pub headers: Option<Vec<String>>,
    #[serde(default)]
    pub patterns: Vec<PatternFile>,
    #[serde(default)]
    pub hash_key_env: Option<String>,
}

impl Default for MaskFile {
    fn default() -> Self {
        MaskFile {
            card_numbers: true,
            emails: true,
            tokens: true,
            ibans: true,
            json_fields: None,
            query_params: None,
            headers: None,
            patterns: Vec::new(),
            hash_key_env: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternFile {
    pub name: String,
    pub regex: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeFile {
    #[serde(default)]
    pub request_headers: Vec<String>,
    #[serde(default)]
    pub response_headers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainFile {
    pub key_env: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleFile {
    #[serde(default = "one")]
    pub allowed: f64,
}

impl Default for SampleFile {
    fn default() -> Self {
        SampleFile { allowed: 1.0 }
    }
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpFile {
    #[serde(default)]
    pub xff_trusted_hops: u32,
}

/// Defaults of `sinks.http`.
pub const DEFAULT_BATCH_MAX_RECORDS: u64 = 200;
pub const DEFAULT_BATCH_MAX_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_BUFFER_MAX_RECORDS: u64 = 20_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_RETRY_INITIAL_BACKOFF_MS: u64 = 500;
pub const DEFAULT_RETRY_MAX_BACKOFF_MS: u64 = 30_000;

/// Headers the sink writes itself (or the proxy does), which a configured header may not replace.
const SINK_OWN_HEADERS: &[&str] = &[
    "content-length",
    "content-type",
    "host",
    "transfer-encoding",
    "connection",
];

/// The HTTP sink, validated.
#[derive(Debug, Clone)]
pub struct HttpSink {
    pub cluster: String,
    /// `:authority` and `:path` of the callout, from `uri`.
    pub authority: String,
    pub path: String,
    pub format: HttpFormat,
    /// Extra headers, their values read from the environment where configured so.
    pub headers: Vec<(String, String)>,
    pub batch_max_records: usize,
    pub batch_max_bytes: usize,
    pub flush_interval_ms: u64,
    pub buffer_max_records: usize,
    pub timeout_ms: u64,
    pub retry_initial_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub access_log: bool,
    pub http: Option<HttpSink>,
    pub mask: MaskConfig,
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    /// The chain key's bytes, read from the VM's environment.
    pub chain_key: Option<Vec<u8>>,
    /// The share of allowed requests recorded, in millionths (1_000_000: all).
    pub sample_allowed_ppm: u32,
    pub xff_trusted_hops: u32,
    pub decisions: Vec<String>,
    /// The property of each of `decisions`, in the same order (named once, not per request).
    pub decision_properties: Vec<String>,
    pub identity_from: IdentityFrom,
}

/// What the masker needs, validated.
#[derive(Debug, Clone)]
pub struct MaskConfig {
    pub card_numbers: bool,
    pub emails: bool,
    pub tokens: bool,
    pub ibans: bool,
    /// Lower-case names.
    pub json_fields: Vec<String>,
    pub query_params: Vec<String>,
    pub headers: Vec<String>,
    /// (name, regex source), each compiled and checked.
    pub patterns: Vec<(String, String)>,
    /// The key of the correlation hash (`None`: a random key made by the filter).
    pub hash_key: Option<Vec<u8>>,
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Pattern names become part of masked values (`[account:1a2b3c4d]`) and metric names.
fn valid_pattern_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn names(
    path: &str,
    given: &Option<Vec<String>>,
    default: &[&str],
    valid: fn(&str) -> bool,
) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = match given {
        Some(list) => list.clone(),
        None => default.iter().map(|s| s.to_string()).collect(),
    };
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, name) in list.iter().enumerate() {
        if !valid(name) {
            return Err(ConfigError::new(format!("{path}[{i}]"), "not a valid name"));
        }
        let lower = name.to_ascii_lowercase();
        if !out.contains(&lower) {
            out.push(lower);
        }
    }
    Ok(out)
}

fn env_secret(
    path: &str,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(path, "empty variable name"));
    }
    let value = env(name).ok_or_else(|| {
        ConfigError::new(path, format!("the VM has no environment variable `{name}`"))
    })?;
    if value.len() < MIN_CHAIN_KEY_BYTES {
        return Err(ConfigError::new(
            path,
            format!(
                "the key in `{name}` has {} bytes; at least {MIN_CHAIN_KEY_BYTES} are needed",
                value.len()
            ),
        ));
    }
    Ok(value.into_bytes())
}

fn included(path: &str, list: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !valid_header_name(name) {
            return Err(ConfigError::new(at, "not a lower-case header name"));
        }
        if NEVER_LOGGED.contains(&name.as_str()) {
            return Err(ConfigError::new(
                at,
                "this header carries credentials and is never logged",
            ));
        }
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    Ok(out)
}

impl Config {
    /// Parses and validates. `env` reads the VM's environment (for the chain and hash keys).
    pub fn parse(
        bytes: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file: ConfigFile = parse_json(bytes)?;
        Config::from_file(file, env)
    }

    pub fn from_file(
        file: ConfigFile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let http = match &file.sinks.http {
            Some(h) => Some(validate_http(h, env)?),
            None => None,
        };
        if !file.sinks.access_log && http.is_none() {
            return Err(ConfigError::new(
                "sinks",
                "no sink is enabled: records would go nowhere",
            ));
        }
        let m = &file.mask;
        let mut patterns = Vec::with_capacity(m.patterns.len());
        for (i, p) in m.patterns.iter().enumerate() {
            let at = format!("mask.patterns[{i}]");
            if !valid_pattern_name(&p.name) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    "1 to 32 of a-z, 0-9, `_`, `-`",
                ));
            }
            let re = regex_lite::Regex::new(&p.regex).map_err(|e| {
                ConfigError::new(format!("{at}.regex"), format!("not a regex: {e}"))
            })?;
            if re.is_match("") {
                return Err(ConfigError::new(
                    format!("{at}.regex"),
                    "matches the empty string",
                ));
            }
            patterns.push((p.name.clone(), p.regex.clone()));
        }
        let chain_key = match &file.chain {
            Some(c) => Some(env_secret("chain.key_env", &c.key_env, env)?),
            None => None,
        };
        let hash_key = match &m.hash_key_env {
            Some(name) => Some(env_secret("mask.hash_key_env", name, env)?),
            None => None,
        };
        let mask = MaskConfig {
            card_numbers: m.card_numbers,
            emails: m.emails,
            tokens: m.tokens,
            ibans: m.ibans,
            json_fields: names(
                "mask.json_fields",
                &m.json_fields,
                DEFAULT_JSON_FIELDS,
                valid_field_name,
            )?,
            query_params: names(
                "mask.query_params",
                &m.query_params,
                DEFAULT_QUERY_PARAMS,
                valid_field_name,
            )?,
            headers: names(
                "mask.headers",
                &m.headers,
                DEFAULT_SECRET_HEADERS,
                valid_header_name,
            )?,
            patterns,
            hash_key,
        };
        let allowed = file.sample.allowed;
        if !allowed.is_finite() || !(0.0..=1.0).contains(&allowed) {
            return Err(ConfigError::new(
                "sample.allowed",
                "a share between 0 and 1",
            ));
        }
        // Rounded to millionths: the comparison on the hot path is an integer one.
        let sample_allowed_ppm = (allowed * 1_000_000.0).round() as u32;
        let decisions = names(
            "decisions",
            &file.decisions,
            DEFAULT_DECISIONS,
            valid_field_name,
        )?;
        Ok(Config {
            access_log: file.sinks.access_log,
            http,
            mask,
            request_headers: included("include.request_headers", &file.include.request_headers)?,
            response_headers: included("include.response_headers", &file.include.response_headers)?,
            chain_key,
            sample_allowed_ppm,
            xff_trusted_hops: file.client_ip.xff_trusted_hops,
            decision_properties: decisions.iter().map(|f| decision::property(f)).collect(),
            decisions,
            identity_from: file.identity_from,
        })
    }
}

fn validate_http(
    http: &HttpSinkFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HttpSink, ConfigError> {
    if http.cluster.is_empty() || http.cluster.chars().any(char::is_control) {
        return Err(ConfigError::new(
            "sinks.http.cluster",
            "empty, or holds control characters",
        ));
    }
    let (authority, path) = shieldwall_core::config::split_http_uri(&http.uri)
        .map_err(|e| ConfigError::new("sinks.http.uri", e))?;
    let mut headers: Vec<(String, String)> = Vec::with_capacity(http.headers.len());
    for (i, h) in http.headers.iter().enumerate() {
        let at = format!("sinks.http.headers[{i}]");
        if !valid_header_name(&h.name) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                "not a lower-case header name",
            ));
        }
        if SINK_OWN_HEADERS.contains(&h.name.as_str()) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                "the sink or the proxy sets this header",
            ));
        }
        if headers.iter().any(|(n, _)| *n == h.name) {
            return Err(ConfigError::new(format!("{at}.name"), "given twice"));
        }
        let value = match (&h.value, &h.value_env) {
            (Some(v), None) => v.clone(),
            (None, Some(var)) => {
                if var.is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.value_env"),
                        "empty variable name",
                    ));
                }
                env(var).ok_or_else(|| {
                    ConfigError::new(
                        format!("{at}.value_env"),
                        format!(
                            "the VM has no environment variable `{var}` (set it in vm_config.environment_variables)"
                        ),
                    )
                })?
            }
            _ => {
                return Err(ConfigError::new(
                    at,
                    "exactly one of `value` and `value_env`",
                ))
            }
        };
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(ConfigError::new(
                at,
                "the value is empty or holds control characters",
            ));
        }
        headers.push((h.name.clone(), value));
    }
    let field = |name: &str, value: Option<u64>, default: u64, max: u64| {
        let v = value.unwrap_or(default);
        if v == 0 || v > max {
            return Err(ConfigError::new(
                format!("sinks.http.{name}"),
                format!("between 1 and {max}"),
            ));
        }
        Ok(v)
    };
    let batch_max_records = field(
        "batch_max_records",
        http.batch_max_records,
        DEFAULT_BATCH_MAX_RECORDS,
        100_000,
    )?;
    let batch_max_bytes = field(
        "batch_max_bytes",
        http.batch_max_bytes,
        DEFAULT_BATCH_MAX_BYTES,
        64 * 1024 * 1024,
    )?;
    let flush_interval_ms = field(
        "flush_interval_ms",
        http.flush_interval_ms,
        DEFAULT_FLUSH_INTERVAL_MS,
        3_600_000,
    )?;
    let buffer_max_records = field(
        "buffer_max_records",
        http.buffer_max_records,
        DEFAULT_BUFFER_MAX_RECORDS,
        10_000_000,
    )?;
    let timeout_ms = field("timeout_ms", http.timeout_ms, DEFAULT_TIMEOUT_MS, 600_000)?;
    let retry_initial_backoff_ms = field(
        "retry_initial_backoff_ms",
        http.retry_initial_backoff_ms,
        DEFAULT_RETRY_INITIAL_BACKOFF_MS,
        3_600_000,
    )?;
    let retry_max_backoff_ms = field(
        "retry_max_backoff_ms",
        http.retry_max_backoff_ms,
        DEFAULT_RETRY_MAX_BACKOFF_MS.max(retry_initial_backoff_ms),
        3_600_000,
    )?;
    if retry_max_backoff_ms < retry_initial_backoff_ms {
        return Err(ConfigError::new(
            "sinks.http.retry_max_backoff_ms",
            "less than retry_initial_backoff_ms",
        ));
    }
    if batch_max_records > buffer_max_records {
        return Err(ConfigError::new(
            "sinks.http.batch_max_records",
            "more than buffer_max_records: a batch could never fill",
        ));
    }
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    Ok(HttpSink {
        cluster: http.cluster.clone(),
        authority,
        path,
        format: http.format,
        headers,
        batch_max_records: size(batch_max_records),
        batch_max_bytes: size(batch_max_bytes),
        flush_interval_ms,
        buffer_max_records: size(buffer_max_records),
        timeout_ms,
        retry_initial_backoff_ms,
        retry_max_backoff_ms,
    })
}
