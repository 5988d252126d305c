//! The plugin configuration of audit-log, and its validation into the runtime form.
//! Unknown fields are refused; every error names its field path.

use serde::Deserialize;
use shieldwall_core::config::parse_json;
use shieldwall_core::ConfigError;

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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub access_log: bool,
    pub mask: MaskConfig,
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    /// The chain key's bytes, read from the VM's environment.
    pub chain_key: Option<Vec<u8>>,
    /// The share of allowed requests recorded, in millionths (1_000_000: all).
    pub sample_allowed_ppm: u32,
    pub xff_trusted_hops: u32,
    pub decisions: Vec<String>,
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
        if let Some(http) = &file.sinks.http {
            validate_http(http)?;
            return Err(ConfigError::new(
                "sinks.http",
                "this build ships records through Envoy's access log only (sinks.access_log); \
                 the HTTP sink is not available yet",
            ));
        }
        if !file.sinks.access_log {
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
            mask,
            request_headers: included("include.request_headers", &file.include.request_headers)?,
            response_headers: included("include.response_headers", &file.include.response_headers)?,
            chain_key,
            sample_allowed_ppm,
            xff_trusted_hops: file.client_ip.xff_trusted_hops,
            decisions,
        })
    }
}

fn validate_http(http: &HttpSinkFile) -> Result<(), ConfigError> {
    if http.cluster.is_empty() {
        return Err(ConfigError::new("sinks.http.cluster", "empty cluster name"));
    }
    shieldwall_core::config::split_http_uri(&http.uri)
        .map_err(|e| ConfigError::new("sinks.http.uri", e))?;
    for (i, h) in http.headers.iter().enumerate() {
        let at = format!("sinks.http.headers[{i}]");
        if !valid_header_name(&h.name) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                "not a lower-case header name",
            ));
        }
        if h.value.is_some() == h.value_env.is_some() {
            return Err(ConfigError::new(
                at,
                "exactly one of `value` and `value_env`",
            ));
        }
    }
    for (field, value) in [
        ("batch_max_records", http.batch_max_records),
        ("batch_max_bytes", http.batch_max_bytes),
        ("flush_interval_ms", http.flush_interval_ms),
        ("buffer_max_records", http.buffer_max_records),
        ("timeout_ms", http.timeout_ms),
    ] {
        if value == Some(0) {
            return Err(ConfigError::new(
                format!("sinks.http.{field}"),
                "must be at least 1",
            ));
        }
    }
    Ok(())
}
