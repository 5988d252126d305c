//! The plugin configuration of jwt-auth, and its validation into the runtime form.
//! Unknown fields are refused; every error names its field path.
//!
//! The document is read by hand from a parsed JSON value (`shieldwall_core::json_config`), not
//! by serde's derived code, which was the largest part of the module after the filter itself:
//! the same fields, defaults and messages, in less code.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;
use shieldwall_core::authn::{build_rules, claim_headers, usable_header_name};
use shieldwall_core::config::{split_http_uri, Within};
use shieldwall_core::credential::{authorization_only, token_locations, TokenLocationsFile};
use shieldwall_core::json_config::{
    array, boolean, choice, object, parse_document, string, strings, u64_value, usize_value,
};
use shieldwall_core::route::PathOptions;
use shieldwall_core::ConfigError;

use shieldwall_jose::{parse_jwks, Jwks, JwksOptions};

pub use shieldwall_core::authn::{
    ClaimToHeader, Requirement, RequirementFile, Rule, RuleFile, Unmatched,
};
pub use shieldwall_core::budget::{
    build_budget, Budget, BudgetFile, DEFAULT_BUDGET_SLOTS, MAX_BUDGET_SLOTS,
};
pub use shieldwall_core::credential::{FromHeader, Location};

#[derive(Debug)]
pub struct ConfigFile {
    pub providers: BTreeMap<String, ProviderFile>,
    pub rules: Vec<RuleFile>,
    /// What a request that matches no rule gets: `deny` (401, the default) or `allow`.
    pub unmatched: Unmatched,
    /// The `realm` of `WWW-Authenticate` (default `shieldwall`).
    pub realm: Option<String>,
    /// How many verified tokens each worker caches (0 disables the cache).
    pub token_cache_entries: usize,
    pub path: PathOptions,
    /// Failed signature verifications each client address may cause; once spent, a token that
    /// would need a signature check is refused with 429 before any signature work.
    pub failed_verification_budget: Option<BudgetFile>,
    /// A token that is not a compact JWS (not three dot-separated parts): `refuse` (401
    /// `malformed`, the default) or `pass` (the request goes on untouched, for an authenticator
    /// after this one, such as token-introspection for opaque tokens).
    pub non_jwt_tokens: NonJwtTokens,
}

impl ConfigFile {
    pub fn from_json(v: &Value) -> Result<ConfigFile, ConfigError> {
        let o = object(
            v,
            &[
                "providers",
                "rules",
                "unmatched",
                "realm",
                "token_cache_entries",
                "path",
                "failed_verification_budget",
                "non_jwt_tokens",
            ],
        )?;
        Ok(ConfigFile {
            providers: o.need("providers", providers)?,
            rules: o.need("rules", |v| array(v, RuleFile::from_json))?,
            unmatched: o.or("unmatched", Unmatched::Deny, Unmatched::from_json)?,
            realm: o.optional("realm", string)?,
            token_cache_entries: o.or(
                "token_cache_entries",
                default_cache_entries(),
                usize_value,
            )?,
            path: o.or("path", PathOptions::default(), PathOptions::from_json)?,
            failed_verification_budget: o
                .optional("failed_verification_budget", BudgetFile::from_json)?,
            non_jwt_tokens: o.or("non_jwt_tokens", NonJwtTokens::Refuse, |v| {
                choice(
                    v,
                    &[
                        ("refuse", NonJwtTokens::Refuse),
                        ("pass", NonJwtTokens::Pass),
                    ],
                )
            })?,
        })
    }
}

/// `providers`: an object of provider names.
fn providers(v: &Value) -> Result<BTreeMap<String, ProviderFile>, ConfigError> {
    let Some(map) = v.as_object() else {
        return Err(shieldwall_core::json_config::invalid_type(v, "a map"));
    };
    let mut out = BTreeMap::new();
    for (name, p) in map {
        out.insert(
            name.clone(),
            ProviderFile::from_json(p).map_err(|e| e.within(name))?,
        );
    }
    Ok(out)
}

/// What jwt-auth does with a token that is not a JWT.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum NonJwtTokens {
    #[default]
    Refuse,
    Pass,
}

fn default_cache_entries() -> usize {
    4096
}

#[derive(Debug)]
pub struct ProviderFile {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub local_jwks: Option<Value>,
    pub remote_jwks: Option<RemoteJwksFile>,
    pub from_headers: Option<Vec<FromHeader>>,
    pub from_params: Vec<String>,
    pub from_cookies: Vec<String>,
    pub forward: bool,
    pub forward_payload_header: Option<String>,
    pub claim_to_headers: Vec<ClaimToHeader>,
    pub tenant_claim: String,
    pub clock_skew_s: u64,
    pub max_token_bytes: usize,
    /// Refuse tokens without `exp` (default true).
    pub require_exp: bool,
    /// How many of the provider's keys one token may be tried against (default 4): a token
    /// without `kid` is tried against every key that accepts its `alg`, up to this many.
    pub max_key_tries: usize,
}

impl ProviderFile {
    pub fn from_json(v: &Value) -> Result<ProviderFile, ConfigError> {
        let o = object(
            v,
            &[
                "issuer",
                "audiences",
                "local_jwks",
                "remote_jwks",
                "from_headers",
                "from_params",
                "from_cookies",
                "forward",
                "forward_payload_header",
                "claim_to_headers",
                "tenant_claim",
                "clock_skew_s",
                "max_token_bytes",
                "require_exp",
                "max_key_tries",
            ],
        )?;
        Ok(ProviderFile {
            issuer: o.need("issuer", string)?,
            audiences: o.or("audiences", Vec::new(), strings)?,
            local_jwks: o.get("local_jwks").cloned(),
            remote_jwks: o.optional("remote_jwks", RemoteJwksFile::from_json)?,
            from_headers: o.optional("from_headers", |v| array(v, FromHeader::from_json))?,
            from_params: o.or("from_params", Vec::new(), strings)?,
            from_cookies: o.or("from_cookies", Vec::new(), strings)?,
            forward: o.or("forward", false, boolean)?,
            forward_payload_header: o.optional("forward_payload_header", string)?,
            claim_to_headers: o.or("claim_to_headers", Vec::new(), |v| {
                array(v, ClaimToHeader::from_json)
            })?,
            tenant_claim: o.or("tenant_claim", default_tenant_claim(), string)?,
            clock_skew_s: o.or("clock_skew_s", default_skew(), u64_value)?,
            max_token_bytes: o.or("max_token_bytes", default_max_token_bytes(), usize_value)?,
            require_exp: o.or("require_exp", true, boolean)?,
            max_key_tries: o.or("max_key_tries", default_max_key_tries(), usize_value)?,
        })
    }
}

fn default_tenant_claim() -> String {
    "tenant".into()
}
fn default_skew() -> u64 {
    60
}
fn default_max_token_bytes() -> usize {
    8192
}
fn default_max_key_tries() -> usize {
    4
}
/// A key set holds at most this many keys (see `LOCAL_JWKS` and `remote_jwks_options`).
const MAX_KEYS: usize = 64;

#[derive(Debug)]
pub struct RemoteJwksFile {
    pub cluster: String,
    pub uri: String,
    pub timeout_ms: u64,
    pub cache_duration_s: u64,
    pub refetch_min_interval_s: u64,
    /// A JWKS document larger than this is refused (default 64 KiB).
    pub max_bytes: usize,
}

impl RemoteJwksFile {
    pub fn from_json(v: &Value) -> Result<RemoteJwksFile, ConfigError> {
        let o = object(
            v,
            &[
                "cluster",
                "uri",
                "timeout_ms",
                "cache_duration_s",
                "refetch_min_interval_s",
                "max_bytes",
            ],
        )?;
        Ok(RemoteJwksFile {
            cluster: o.need("cluster", string)?,
            uri: o.need("uri", string)?,
            timeout_ms: o.or("timeout_ms", default_timeout_ms(), u64_value)?,
            cache_duration_s: o.or("cache_duration_s", default_cache_duration(), u64_value)?,
            refetch_min_interval_s: o.or(
                "refetch_min_interval_s",
                default_refetch_min(),
                u64_value,
            )?,
            max_bytes: o.or("max_bytes", default_jwks_max_bytes(), usize_value)?,
        })
    }
}

fn default_timeout_ms() -> u64 {
    2000
}
fn default_cache_duration() -> u64 {
    600
}
fn default_refetch_min() -> u64 {
    10
}
fn default_jwks_max_bytes() -> usize {
    64 * 1024
}

// ------------------------------------------------------------------ runtime form

#[derive(Debug, Clone)]
pub struct RemoteJwks {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    pub cache_duration_ms: u64,
    pub refetch_min_interval_ms: u64,
    pub max_bytes: usize,
}

#[derive(Debug)]
pub enum KeySource {
    Local(Rc<Jwks>),
    Remote(RemoteJwks),
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: KeySource,
    /// Indexes into `Config::locations`.
    pub locations: Vec<usize>,
    pub forward: bool,
    pub forward_payload_header: Option<String>,
    pub claim_to_headers: Vec<ClaimToHeader>,
    pub tenant_claim: String,
    pub skew_s: u64,
    pub max_token_bytes: usize,
    pub require_exp: bool,
    pub max_key_tries: usize,
}

#[derive(Debug)]
pub struct Config {
    pub providers: Vec<Provider>,
    pub rules: Vec<Rule>,
    /// Every distinct token location of every provider.
    pub locations: Vec<Location>,
    /// Headers this filter sets upstream; a client's copies are removed from every request.
    pub owned_headers: Vec<String>,
    pub unmatched: Unmatched,
    pub realm: String,
    pub token_cache_entries: usize,
    pub path: PathOptions,
    /// The largest `max_token_bytes` of any provider: nothing longer is even hashed.
    pub max_token_bytes: usize,
    pub budget: Option<Budget>,
    pub non_jwt_tokens: NonJwtTokens,
    /// Every token location is the `authorization` header. Envoy keeps that header as one entry
    /// (repeated copies joined by ","), so reading its one value sees every copy and the whole
    /// header map need not be read.
    pub authorization_only: bool,
}

/// JWKS documents given inline may hold symmetric (`oct`) keys; remote ones may not.
pub const LOCAL_JWKS: JwksOptions = JwksOptions {
    allow_symmetric: true,
    max_bytes: 256 * 1024,
    max_keys: MAX_KEYS,
};

pub fn remote_jwks_options(max_bytes: usize) -> JwksOptions {
    JwksOptions {
        allow_symmetric: false,
        max_bytes,
        max_keys: MAX_KEYS,
    }
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let document = parse_document(bytes)?;
        Config::from_file(ConfigFile::from_json(&document)?)
    }

    pub fn from_file(file: ConfigFile) -> Result<Config, ConfigError> {
        if file.providers.is_empty() {
            return Err(ConfigError::new(
                "providers",
                "at least one provider is required",
            ));
        }
        let mut locations: Vec<Location> = Vec::new();
        let mut owned_headers: Vec<String> = Vec::new();
        let mut providers = Vec::with_capacity(file.providers.len());
        let names: Vec<String> = file.providers.keys().cloned().collect();
        for (name, p) in file.providers {
            let provider = build_provider(&name, p, &mut locations, &mut owned_headers)
                .within(&format!("providers.{name}"))?;
            providers.push(provider);
        }
        let rules = build_rules(file.rules, &names)?;
        let realm = shieldwall_core::authn::realm(file.realm)?;
        let max_token_bytes = providers
            .iter()
            .map(|p| p.max_token_bytes)
            .max()
            .unwrap_or(0);
        let authorization_only = authorization_only(&locations);
        Ok(Config {
            authorization_only,
            providers,
            rules,
            locations,
            owned_headers,
            unmatched: file.unmatched,
            realm,
            token_cache_entries: file.token_cache_entries.min(1 << 20),
            path: file.path,
            max_token_bytes,
            non_jwt_tokens: file.non_jwt_tokens,
            budget: match &file.failed_verification_budget {
                Some(b) => Some(build_budget(b).within("failed_verification_budget")?),
                None => None,
            },
        })
    }
}

fn build_provider(
    name: &str,
    p: ProviderFile,
    locations: &mut Vec<Location>,
    owned: &mut Vec<String>,
) -> Result<Provider, ConfigError> {
    shieldwall_core::authn::provider_name(name)?;
    if p.issuer.is_empty() {
        return Err(ConfigError::new("issuer", "must not be empty"));
    }
    shieldwall_core::authn::audiences(&p.audiences)?;
    let keys = match (p.local_jwks, p.remote_jwks) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "",
                "give `local_jwks` or `remote_jwks`, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                "",
                "one of `local_jwks` or `remote_jwks` is required",
            ))
        }
        (Some(local), None) => {
            let text = match local {
                Value::String(s) => s.into_bytes(),
                v @ Value::Object(_) => serde_json::to_vec(&v)
                    .map_err(|e| ConfigError::new("local_jwks", e.to_string()))?,
                _ => {
                    return Err(ConfigError::new(
                        "local_jwks",
                        "must be a JWKS object or its JSON text",
                    ))
                }
            };
            let jwks = parse_jwks(&text, LOCAL_JWKS)
                .map_err(|e| ConfigError::new("local_jwks", e.to_string()))?;
            if let Some(s) = jwks.skipped.first() {
                return Err(ConfigError::new(
                    format!("local_jwks.keys[{}]", s.index),
                    format!("unusable key: {}", s.reason),
                ));
            }
            KeySource::Local(Rc::new(jwks))
        }
        (None, Some(r)) => KeySource::Remote(build_remote(r).within("remote_jwks")?),
    };
    let locs = token_locations(
        TokenLocationsFile {
            from_headers: p.from_headers,
            from_params: p.from_params,
            from_cookies: p.from_cookies,
        },
        locations,
    )?;
    let forward_payload_header = match p.forward_payload_header {
        Some(h) => {
            let h = h.to_ascii_lowercase();
            if !usable_header_name(&h) {
                return Err(ConfigError::new(
                    "forward_payload_header",
                    "not a usable header name",
                ));
            }
            owned.push(h.clone());
            Some(h)
        }
        None => None,
    };
    let claim_to_headers = claim_headers(p.claim_to_headers, owned)?;
    if !(64..=1 << 20).contains(&p.max_token_bytes) {
        return Err(ConfigError::new(
            "max_token_bytes",
            "must be between 64 and 1048576",
        ));
    }
    if !(1..=MAX_KEYS).contains(&p.max_key_tries) {
        return Err(ConfigError::new(
            "max_key_tries",
            format!("must be between 1 and {MAX_KEYS}"),
        ));
    }
    shieldwall_core::authn::claim_settings(p.clock_skew_s, &p.tenant_claim)?;
    Ok(Provider {
        name: name.to_string(),
        issuer: p.issuer,
        audiences: p.audiences,
        keys,
        locations: locs,
        forward: p.forward,
        forward_payload_header,
        claim_to_headers,
        tenant_claim: p.tenant_claim,
        skew_s: p.clock_skew_s,
        max_token_bytes: p.max_token_bytes,
        require_exp: p.require_exp,
        max_key_tries: p.max_key_tries,
    })
}

fn build_remote(r: RemoteJwksFile) -> Result<RemoteJwks, ConfigError> {
    if r.cluster.is_empty() {
        return Err(ConfigError::new(
            "cluster",
            "must name the Envoy cluster of the JWKS server",
        ));
    }
    let (authority, path) = split_http_uri(&r.uri).map_err(|e| ConfigError::new("uri", e))?;
    if !(1..=60_000).contains(&r.timeout_ms) {
        return Err(ConfigError::new(
            "timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    if r.cache_duration_s == 0 {
        return Err(ConfigError::new("cache_duration_s", "must be at least 1"));
    }
    if r.refetch_min_interval_s == 0 || r.refetch_min_interval_s > r.cache_duration_s {
        return Err(ConfigError::new(
            "refetch_min_interval_s",
            "must be between 1 and cache_duration_s",
        ));
    }
    if !(1024..=4 << 20).contains(&r.max_bytes) {
        return Err(ConfigError::new(
            "max_bytes",
            "must be between 1024 and 4194304",
        ));
    }
    Ok(RemoteJwks {
        cluster: r.cluster,
        authority,
        path,
        timeout_ms: r.timeout_ms,
        cache_duration_ms: r.cache_duration_s.saturating_mul(1000),
        refetch_min_interval_ms: r.refetch_min_interval_s.saturating_mul(1000),
        max_bytes: r.max_bytes,
    })
}
