//! The plugin configuration of token-introspection, and its validation into the runtime form.
//! Unknown fields are refused; every error names its field path.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use shieldwall_core::authn::{build_rules, claim_headers};
use shieldwall_core::budget::{build_budget, Budget, BudgetFile};
use shieldwall_core::config::{split_http_uri, Within};
use shieldwall_core::credential::{authorization_only, token_locations, TokenLocationsFile};
use shieldwall_core::route::PathOptions;
use shieldwall_core::{ConfigError, Host};

pub use shieldwall_core::authn::{ClaimToHeader, Requirement, Rule, RuleFile, Unmatched};
pub use shieldwall_core::credential::{FromHeader, Location};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub providers: BTreeMap<String, ProviderFile>,
    pub rules: Vec<RuleFile>,
    /// What a request that matches no rule gets: `deny` (the default) or `allow`.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// The `realm` of `WWW-Authenticate` (default `shieldwall`).
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub path: PathOptions,
    /// Tokens the IdP calls inactive each client address may present; once spent, a token that
    /// would need an introspection is refused with 429 before the call.
    #[serde(default)]
    pub failed_verification_budget: Option<BudgetFile>,
    /// Authentication methods (`jwt`, …) that make this filter pass a request untouched when an
    /// earlier filter already verified it by one of them (the identity context's `auth`).
    #[serde(default)]
    pub skip_if_verified_by: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub introspection: IntrospectionFile,
    /// When set, the answer's `iss` must equal it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When not empty, the answer's `aud` must name one of them.
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub cache: CacheFile,
    pub from_headers: Option<Vec<FromHeader>>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Pass the token upstream (default: removed).
    #[serde(default)]
    pub forward: bool,
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimToHeader>,
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    #[serde(default = "default_skew")]
    pub clock_skew_s: u64,
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the form-encoded client id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionFile {
    pub cluster: String,
    pub uri: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The name of a VM environment variable holding the secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// Sent as `token_type_hint`; empty: no hint.
    #[serde(default = "default_hint")]
    pub token_type_hint: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheFile {
    pub max_entries: u64,
    pub max_ttl_s: u64,
    pub negative_ttl_s: u64,
    /// Entries of the negative cache (inactive answers); default `max_entries / 4`.
    pub negative_max_entries: Option<u64>,
}

impl Default for CacheFile {
    fn default() -> Self {
        CacheFile {
            max_entries: 10_000,
            max_ttl_s: 30,
            negative_ttl_s: 5,
            negative_max_entries: None,
        }
    }
}

fn default_tenant_claim() -> String {
    "tenant".into()
}
fn default_skew() -> u64 {
    60
}
fn default_max_token_bytes() -> usize {
    4096
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_hint() -> String {
    "access_token".into()
}

/// The most entries one cache table may have.
pub const MAX_ENTRIES: u64 = 1 << 20;
/// Entries per shared-data bucket of a cache table: the oldest of a bucket leaves first.
pub const WAYS: u64 = 4;

// ------------------------------------------------------------------ runtime form

/// How to call the introspection endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    /// `Basic …` for `client_secret_basic`.
    pub authorization: Option<String>,
    /// `&client_id=…&client_secret=…` for `client_secret_post` (already form-encoded).
    pub body_credentials: String,
    /// `&token_type_hint=…` or empty.
    pub body_hint: String,
    /// What identifies the endpoint in a token's cache key: cluster, URI, client and hint.
    pub identity: String,
}

/// The shape of one bounded cache table in shared data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSize {
    pub buckets: u64,
    pub ways: u64,
}

impl TableSize {
    /// At most `entries` entries: `WAYS` per bucket (fewer for tiny tables).
    pub fn for_entries(entries: u64) -> TableSize {
        let ways = WAYS.min(entries).max(1);
        TableSize {
            buckets: (entries / ways).max(1),
            ways,
        }
    }
    pub fn entries(&self) -> u64 {
        self.buckets.saturating_mul(self.ways)
    }
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub endpoint: Endpoint,
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub max_ttl_s: u64,
    pub negative_ttl_s: u64,
    pub positive: TableSize,
    pub negative: TableSize,
    /// Slots of the in-flight table (one marker per token being introspected).
    pub flight_slots: u64,
    /// Indexes into `Config::locations`.
    pub locations: Vec<usize>,
    pub forward: bool,
    pub claim_to_headers: Vec<ClaimToHeader>,
    pub tenant_claim: String,
    pub skew_s: u64,
    pub max_token_bytes: usize,
}

#[derive(Debug)]
pub struct Config {
    pub providers: Vec<Provider>,
    pub rules: Vec<Rule>,
    pub locations: Vec<Location>,
    pub owned_headers: Vec<String>,
    pub unmatched: Unmatched,
    pub realm: String,
    pub path: PathOptions,
    pub max_token_bytes: usize,
    pub authorization_only: bool,
    pub budget: Option<Budget>,
    pub skip_if_verified_by: Vec<String>,
}

impl Config {
    /// Parses the configuration; `env` reads the VM's environment (for `client_secret_env`).
    pub fn parse(
        bytes: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file: ConfigFile = shieldwall_core::config::parse_json(bytes)?;
        Config::from_file(file, env)
    }

    pub fn from_host(host: &dyn Host, bytes: &[u8]) -> Result<Config, ConfigError> {
        Config::parse(bytes, &|name| host.env_var(name))
    }

    pub fn from_file(
        file: ConfigFile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        if file.providers.is_empty() {
            return Err(ConfigError::new(
                "providers",
                "at least one provider is required",
            ));
        }
        let mut locations = Vec::new();
        let mut owned_headers = Vec::new();
        let names: Vec<String> = file.providers.keys().cloned().collect();
        let mut providers = Vec::with_capacity(names.len());
        for (name, p) in file.providers {
            providers.push(
                build_provider(&name, p, &mut locations, &mut owned_headers, env)
                    .within(&format!("providers.{name}"))?,
            );
        }
        let rules = build_rules(file.rules, &names)?;
        let realm = shieldwall_core::authn::realm(file.realm)?;
        for (i, method) in file.skip_if_verified_by.iter().enumerate() {
            if method.is_empty() || method == "introspection" {
                return Err(ConfigError::new(
                    format!("skip_if_verified_by[{i}]"),
                    "must name another authentication method (`jwt`, …)",
                ));
            }
        }
        let max_token_bytes = providers
            .iter()
            .map(|p| p.max_token_bytes)
            .max()
            .unwrap_or(0);
        Ok(Config {
            authorization_only: authorization_only(&locations),
            providers,
            rules,
            locations,
            owned_headers,
            unmatched: file.unmatched,
            realm,
            path: file.path,
            max_token_bytes,
            skip_if_verified_by: file.skip_if_verified_by,
            budget: match &file.failed_verification_budget {
                Some(b) => Some(build_budget(b).within("failed_verification_budget")?),
                None => None,
            },
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (every byte but the unreserved
/// characters percent-encoded).
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn build_provider(
    name: &str,
    p: ProviderFile,
    locations: &mut Vec<Location>,
    owned: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, ConfigError> {
    shieldwall_core::authn::provider_name(name)?;
    if p.issuer.as_deref() == Some("") {
        return Err(ConfigError::new(
            "issuer",
            "must not be empty (leave it out)",
        ));
    }
    shieldwall_core::authn::audiences(&p.audiences)?;
    let endpoint = build_endpoint(p.introspection, env).within("introspection")?;
    let cache = p.cache;
    if !(1..=MAX_ENTRIES).contains(&cache.max_entries) {
        return Err(ConfigError::new(
            "cache.max_entries",
            format!("must be between 1 and {MAX_ENTRIES}"),
        ));
    }
    let negative_entries = cache
        .negative_max_entries
        .unwrap_or((cache.max_entries / 4).max(1));
    if negative_entries == 0 || negative_entries > cache.max_entries {
        return Err(ConfigError::new(
            "cache.negative_max_entries",
            "must be between 1 and max_entries",
        ));
    }
    if cache.max_ttl_s > 86_400 {
        return Err(ConfigError::new("cache.max_ttl_s", "must be at most 86400"));
    }
    if cache.negative_ttl_s > 3600 {
        return Err(ConfigError::new(
            "cache.negative_ttl_s",
            "must be at most 3600",
        ));
    }
    let locs = token_locations(
        TokenLocationsFile {
            from_headers: p.from_headers,
            from_params: p.from_params,
            from_cookies: p.from_cookies,
        },
        locations,
    )?;
    let claim_to_headers = claim_headers(p.claim_to_headers, owned)?;
    if !(16..=1 << 16).contains(&p.max_token_bytes) {
        return Err(ConfigError::new(
            "max_token_bytes",
            "must be between 16 and 65536",
        ));
    }
    shieldwall_core::authn::claim_settings(p.clock_skew_s, &p.tenant_claim)?;
    Ok(Provider {
        name: name.to_string(),
        endpoint,
        issuer: p.issuer,
        audiences: p.audiences,
        max_ttl_s: cache.max_ttl_s,
        negative_ttl_s: cache.negative_ttl_s,
        positive: TableSize::for_entries(cache.max_entries),
        negative: TableSize::for_entries(negative_entries),
        flight_slots: (cache.max_entries / 4).clamp(64, 4096),
        locations: locs,
        forward: p.forward,
        claim_to_headers,
        tenant_claim: p.tenant_claim,
        skew_s: p.clock_skew_s,
        max_token_bytes: p.max_token_bytes,
    })
}

fn build_endpoint(
    f: IntrospectionFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Endpoint, ConfigError> {
    if f.cluster.is_empty() {
        return Err(ConfigError::new(
            "cluster",
            "must name the Envoy cluster of the introspection endpoint",
        ));
    }
    let (authority, path) = split_http_uri(&f.uri).map_err(|e| ConfigError::new("uri", e))?;
    if !(1..=60_000).contains(&f.timeout_ms) {
        return Err(ConfigError::new(
            "timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    if f.client_id.is_empty() || f.client_id.chars().any(char::is_control) {
        return Err(ConfigError::new(
            "client_id",
            "must not be empty or hold control characters",
        ));
    }
    let secret = match (f.client_secret, f.client_secret_env) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "",
                "give `client_secret` or `client_secret_env`, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                "",
                "one of `client_secret` or `client_secret_env` is required",
            ))
        }
        (Some(s), None) => s,
        (None, Some(var)) => {
            if var.is_empty() {
                return Err(ConfigError::new("client_secret_env", "must not be empty"));
            }
            match env(&var) {
                Some(s) => s,
                None => {
                    return Err(ConfigError::new(
                        "client_secret_env",
                        format!("the VM has no environment variable `{var}` (set it in vm_config.environment_variables)"),
                    ))
                }
            }
        }
    };
    if secret.is_empty() {
        return Err(ConfigError::new(
            "client_secret",
            "the client secret is empty",
        ));
    }
    let (authorization, body_credentials) = match f.auth_method {
        AuthMethod::ClientSecretBasic => {
            let pair = format!("{}:{}", form_encode(&f.client_id), form_encode(&secret));
            (
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )),
                String::new(),
            )
        }
        AuthMethod::ClientSecretPost => (
            None,
            format!(
                "&client_id={}&client_secret={}",
                form_encode(&f.client_id),
                form_encode(&secret)
            ),
        ),
    };
    let body_hint = if f.token_type_hint.is_empty() {
        String::new()
    } else {
        format!("&token_type_hint={}", form_encode(&f.token_type_hint))
    };
    let identity = format!(
        "{}\n{}\n{}\n{}\n{}",
        f.cluster, authority, path, f.client_id, f.token_type_hint
    );
    Ok(Endpoint {
        cluster: f.cluster,
        authority,
        path,
        timeout_ms: f.timeout_ms,
        authorization,
        body_credentials,
        body_hint,
        identity,
    })
}
