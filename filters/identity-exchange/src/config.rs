//! The plugin configuration of identity-exchange and its validation into the runtime form.
//! Unknown fields are refused; keys, templates and rules that cannot work are refused at load,
//! with the field path (`token.keys[0].private_key_env: …`).

use std::collections::BTreeMap;

use serde_json::Value;
use shieldwall_core::config::Within;
use shieldwall_core::json_config::{
    array, boolean, choice, invalid_type, object, parse_document, string, u64_value, u8_value,
    usize_value,
};
use shieldwall_core::route::{PathOptions, RouteMatch, RouteMatchConfig};
use shieldwall_core::{ConfigError, Host, Identity, IdentityFrom};

use crate::keys::{check_public_jwk, published_jwk, Alg, PrivateKey};
use crate::template::{SegmentRule, SpiffeTemplate, Template};

/// The longest `ttl_s`: a day. Internal tokens are meant to be short-lived.
pub const MAX_TTL_S: u64 = 86_400;
/// The most entries the cache of minted tokens may be given, per worker.
pub const MAX_CACHE_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub struct ConfigFile {
    /// The SPIFFE ID template (`spiffe://{tenant}.bank.example/user/{sub}`).
    pub spiffe_id: String,
    /// `reject` (default) or `escape` a value that is not a plain SPIFFE path segment.
    pub spiffe_segments: SegmentRule,
    /// A caller whose identity already has a `spiffe_id` (mtls-identity) keeps it (default true).
    pub keep_spiffe_id: bool,
    /// Where the caller's identity comes from: shieldwall's authenticators (the default) or
    /// Envoy's own `jwt_authn` (`"jwt_authn"`, see `shieldwall_core::IdentityFrom`).
    pub identity_from: IdentityFrom,
    pub token: TokenFile,
    pub spiffe_header: String,
    /// Where the filter answers with the JWKS of its keys (unset: not served).
    pub jwks_path: Option<String>,
    /// `cache-control: max-age` of the JWKS reply.
    pub jwks_max_age_s: u64,
    pub rules: Vec<RuleFile>,
    pub realm: Option<String>,
    pub path: PathOptions,
    pub cache: CacheFile,
}

#[derive(Debug)]
pub struct TokenFile {
    pub issuer: String,
    pub audience: String,
    pub ttl_s: u64,
    pub alg: Alg,
    pub profile: Profile,
    pub keys: Vec<KeyFile>,
    /// Claim name → identity field (`scopes`, `sub`, `iss`, `client_id`, `tenant`,
    /// `claims.<name>`).
    pub claims: Option<BTreeMap<String, String>>,
    pub act: bool,
    pub header: HeaderFile,
}

#[derive(Debug)]
pub struct KeyFile {
    pub kid: String,
    pub private_key_env: Option<String>,
    pub private_key: Option<String>,
    pub public_jwk: Option<Value>,
}

#[derive(Debug)]
pub struct HeaderFile {
    pub name: String,
    pub value_prefix: String,
}

impl Default for HeaderFile {
    fn default() -> Self {
        HeaderFile {
            name: default_header_name(),
            value_prefix: default_prefix(),
        }
    }
}

#[derive(Debug)]
pub struct RuleFile {
    pub route: RouteMatchConfig,
    pub exchange: Exchange,
    pub audience: Option<String>,
    pub ttl_s: Option<u64>,
}

#[derive(Debug)]
pub struct CacheFile {
    /// Minted tokens kept per worker (0: every request mints).
    pub max_entries: usize,
    /// A cached token is reused until this share of its lifetime has passed (1–90).
    pub reuse_percent: u8,
}

impl Default for CacheFile {
    fn default() -> Self {
        CacheFile {
            max_entries: 1024,
            reuse_percent: 50,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exchange {
    /// A token is minted; a request without an identity gets 401.
    #[default]
    Required,
    /// A token is minted when there is an identity; the request passes without one.
    Optional,
    /// Nothing is minted (the client's copies of the headers are still removed).
    Skip,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// JWT-SVID: header `alg`, `kid`, `typ: JWT`; exactly one audience.
    #[default]
    JwtSvid,
    /// RFC 9068 access token: `typ: at+jwt`, `client_id` and `jti` required.
    Rfc9068,
}

impl ConfigFile {
    /// The document, read by hand (`shieldwall_core::json_config`) rather than by serde's
    /// derived code: the same fields, defaults and messages, in less of the module.
    pub fn parse(bytes: &[u8]) -> Result<ConfigFile, ConfigError> {
        ConfigFile::from_json(&parse_document(bytes)?)
    }

    pub fn from_json(v: &Value) -> Result<ConfigFile, ConfigError> {
        let o = object(
            v,
            &[
                "spiffe_id",
                "spiffe_segments",
                "keep_spiffe_id",
                "identity_from",
                "token",
                "spiffe_header",
                "jwks_path",
                "jwks_max_age_s",
                "rules",
                "realm",
                "path",
                "cache",
            ],
        )?;
        Ok(ConfigFile {
            spiffe_id: o.need("spiffe_id", string)?,
            spiffe_segments: o.or("spiffe_segments", SegmentRule::Reject, |v| {
                choice(
                    v,
                    &[
                        ("reject", SegmentRule::Reject),
                        ("escape", SegmentRule::Escape),
                    ],
                )
            })?,
            keep_spiffe_id: o.or("keep_spiffe_id", true, boolean)?,
            identity_from: o.or("identity_from", IdentityFrom::Shieldwall, |v| {
                IdentityFrom::try_from(v.clone()).map_err(|e| ConfigError::new("", e))
            })?,
            token: o.need("token", TokenFile::from_json)?,
            spiffe_header: o.or("spiffe_header", default_spiffe_header(), string)?,
            jwks_path: o.optional("jwks_path", string)?,
            jwks_max_age_s: o.or("jwks_max_age_s", default_jwks_max_age(), u64_value)?,
            rules: o.need("rules", |v| array(v, RuleFile::from_json))?,
            realm: o.optional("realm", string)?,
            path: o.or("path", PathOptions::default(), PathOptions::from_json)?,
            cache: o.or("cache", CacheFile::default(), CacheFile::from_json)?,
        })
    }
}

impl TokenFile {
    fn from_json(v: &Value) -> Result<TokenFile, ConfigError> {
        let o = object(
            v,
            &[
                "issuer", "audience", "ttl_s", "alg", "profile", "keys", "claims", "act", "header",
            ],
        )?;
        Ok(TokenFile {
            issuer: o.need("issuer", string)?,
            audience: o.or("audience", default_audience(), string)?,
            ttl_s: o.or("ttl_s", default_ttl(), u64_value)?,
            alg: o.or("alg", Alg::ES256, |v| {
                choice(v, &[("ES256", Alg::ES256), ("EdDSA", Alg::EdDSA)])
            })?,
            profile: o.or("profile", Profile::JwtSvid, |v| {
                choice(
                    v,
                    &[
                        ("jwt-svid", Profile::JwtSvid),
                        ("rfc9068", Profile::Rfc9068),
                    ],
                )
            })?,
            keys: o.need("keys", |v| array(v, KeyFile::from_json))?,
            claims: o.optional("claims", |v| {
                let Some(map) = v.as_object() else {
                    return Err(invalid_type(v, "a map"));
                };
                let mut out = BTreeMap::new();
                for (name, field) in map {
                    out.insert(name.clone(), string(field).map_err(|e| e.within(name))?);
                }
                Ok(out)
            })?,
            act: o.or("act", false, boolean)?,
            header: o.or("header", HeaderFile::default(), HeaderFile::from_json)?,
        })
    }
}

impl KeyFile {
    fn from_json(v: &Value) -> Result<KeyFile, ConfigError> {
        let o = object(v, &["kid", "private_key_env", "private_key", "public_jwk"])?;
        Ok(KeyFile {
            kid: o.need("kid", string)?,
            private_key_env: o.optional("private_key_env", string)?,
            private_key: o.optional("private_key", string)?,
            public_jwk: o.get("public_jwk").cloned(),
        })
    }
}

impl HeaderFile {
    fn from_json(v: &Value) -> Result<HeaderFile, ConfigError> {
        let o = object(v, &["name", "value_prefix"])?;
        Ok(HeaderFile {
            name: o.or("name", default_header_name(), string)?,
            value_prefix: o.or("value_prefix", default_prefix(), string)?,
        })
    }
}

impl RuleFile {
    fn from_json(v: &Value) -> Result<RuleFile, ConfigError> {
        let o = object(v, &["match", "exchange", "audience", "ttl_s"])?;
        Ok(RuleFile {
            route: o.need("match", RouteMatchConfig::from_json)?,
            exchange: o.or("exchange", Exchange::Required, |v| {
                choice(
                    v,
                    &[
                        ("required", Exchange::Required),
                        ("optional", Exchange::Optional),
                        ("skip", Exchange::Skip),
                    ],
                )
            })?,
            audience: o.optional("audience", string)?,
            ttl_s: o.optional("ttl_s", u64_value)?,
        })
    }
}

impl CacheFile {
    fn from_json(v: &Value) -> Result<CacheFile, ConfigError> {
        let o = object(v, &["max_entries", "reuse_percent"])?;
        let defaults = CacheFile::default();
        Ok(CacheFile {
            max_entries: o.or("max_entries", defaults.max_entries, usize_value)?,
            reuse_percent: o.or("reuse_percent", defaults.reuse_percent, u8_value)?,
        })
    }
}
fn default_spiffe_header() -> String {
    "x-spiffe-id".to_string()
}
fn default_jwks_max_age() -> u64 {
    300
}
fn default_audience() -> String {
    "{tenant}".to_string()
}
fn default_ttl() -> u64 {
    300
}
fn default_header_name() -> String {
    "authorization".to_string()
}
fn default_prefix() -> String {
    "Bearer ".to_string()
}

// ------------------------------------------------------------------ runtime form

/// Where a claim's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimSource {
    /// The scopes, space-separated.
    Scopes,
    /// A field of the identity (`tenant`, `claims.dept`): a claim keeps its JSON type.
    Field(String),
}

#[derive(Debug)]
pub struct Rule {
    pub route: RouteMatch,
    pub exchange: Exchange,
    pub audience: Option<Template>,
    pub ttl_s: Option<u64>,
}

#[derive(Debug)]
pub struct Config {
    pub spiffe_id: SpiffeTemplate,
    pub keep_spiffe_id: bool,
    pub identity_from: IdentityFrom,
    pub issuer: String,
    pub audience: Template,
    pub ttl_s: u64,
    pub alg: Alg,
    pub profile: Profile,
    pub kid: String,
    pub signer: PrivateKey,
    /// The JWKS document served at `jwks_path`.
    pub jwks: String,
    pub claims: Vec<(String, ClaimSource)>,
    pub act: bool,
    pub header_name: String,
    pub value_prefix: String,
    pub spiffe_header: String,
    pub jwks_path: Option<String>,
    pub jwks_max_age_s: u64,
    pub rules: Vec<Rule>,
    pub realm: String,
    pub path: PathOptions,
    pub cache_entries: usize,
    pub reuse_percent: u8,
}

/// Claims the filter sets itself; a mapping may not name them.
const RESERVED_CLAIMS: [&str; 9] = [
    "iss", "sub", "aud", "iat", "nbf", "exp", "jti", "act", "cnf",
];

/// Header names that must never carry the internal token or the SPIFFE ID.
const FORBIDDEN_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "cookie",
    "te",
];

fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    let ok = !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && !FORBIDDEN_HEADERS.contains(&lower.as_str());
    if !ok {
        return Err(ConfigError::new(path, "not a usable header name"));
    }
    Ok(lower)
}

impl Config {
    /// Parses the configuration; `env` reads the VM's environment (for `private_key_env`).
    pub fn parse(
        bytes: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::from_file(ConfigFile::parse(bytes)?, env)
    }

    pub fn from_host(host: &dyn Host, bytes: &[u8]) -> Result<Config, ConfigError> {
        Config::parse(bytes, &|name| host.env_var(name))
    }

    pub fn from_file(
        file: ConfigFile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let spiffe_id =
            SpiffeTemplate::parse(&file.spiffe_id, file.spiffe_segments).within("spiffe_id")?;
        let t = file.token;
        if t.issuer.is_empty() || t.issuer.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "token.issuer",
                "must not be empty or hold control characters",
            ));
        }
        let audience = Template::parse(&t.audience).within("token.audience")?;
        if t.audience.is_empty() {
            return Err(ConfigError::new("token.audience", "must not be empty"));
        }
        check_ttl(t.ttl_s).within("token.ttl_s")?;
        let (kid, signer, jwks) = build_keys(t.keys, t.alg, env).within("token.keys")?;
        let claims = build_claims(t.claims, t.profile).within("token.claims")?;
        let header_name = header_name("token.header.name", &t.header.name)?;
        if t.header.value_prefix.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "token.header.value_prefix",
                "must not hold control characters",
            ));
        }
        let spiffe_header = header_name_or_same(&file.spiffe_header, &header_name)?;
        let jwks_path = match file.jwks_path {
            None => None,
            Some(p) => {
                let normal = shieldwall_core::route::normalize_path(&p, PathOptions::default())
                    .map_err(|_| ConfigError::new("jwks_path", "not an absolute, plain path"))?;
                if normal != p || p.contains(['?', '#', '%']) {
                    return Err(ConfigError::new(
                        "jwks_path",
                        "must be a normalised absolute path without query or escapes",
                    ));
                }
                Some(p)
            }
        };
        if file.jwks_max_age_s > MAX_TTL_S {
            return Err(ConfigError::new("jwks_max_age_s", "must be at most 86400"));
        }
        if file.rules.is_empty() {
            return Err(ConfigError::new(
                "rules",
                "at least one rule is required (a request matching no rule is refused)",
            ));
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.into_iter().enumerate() {
            rules.push(build_rule(r).within(&format!("rules[{i}]"))?);
        }
        if file.cache.max_entries > MAX_CACHE_ENTRIES {
            return Err(ConfigError::new(
                "cache.max_entries",
                format!("must be at most {MAX_CACHE_ENTRIES}"),
            ));
        }
        if !(1..=90).contains(&file.cache.reuse_percent) {
            return Err(ConfigError::new(
                "cache.reuse_percent",
                "must be between 1 and 90",
            ));
        }
        Ok(Config {
            spiffe_id,
            keep_spiffe_id: file.keep_spiffe_id,
            identity_from: file.identity_from,
            issuer: t.issuer,
            audience,
            ttl_s: t.ttl_s,
            alg: t.alg,
            profile: t.profile,
            kid,
            signer,
            jwks,
            claims,
            act: t.act,
            header_name,
            value_prefix: t.header.value_prefix,
            spiffe_header,
            jwks_path,
            jwks_max_age_s: file.jwks_max_age_s,
            rules,
            realm: shieldwall_core::authn::realm(file.realm)?,
            path: file.path,
            cache_entries: file.cache.max_entries,
            reuse_percent: file.cache.reuse_percent,
        })
    }

    /// The first rule that matches, and its index.
    pub fn rule_for(&self, line: &shieldwall_core::RequestLine) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.route.matches(line).is_some())
    }
}

fn header_name_or_same(spiffe_header: &str, token_header: &str) -> Result<String, ConfigError> {
    let name = header_name("spiffe_header", spiffe_header)?;
    if name == token_header {
        return Err(ConfigError::new(
            "spiffe_header",
            "must differ from token.header.name",
        ));
    }
    Ok(name)
}

fn check_ttl(ttl: u64) -> Result<(), ConfigError> {
    if ttl == 0 || ttl > MAX_TTL_S {
        return Err(ConfigError::new("", "must be between 1 and 86400 seconds"));
    }
    Ok(())
}

fn build_rule(r: RuleFile) -> Result<Rule, ConfigError> {
    let route = RouteMatch::compile(&r.route).within("match")?;
    if r.exchange == Exchange::Skip && (r.audience.is_some() || r.ttl_s.is_some()) {
        return Err(ConfigError::new(
            "exchange",
            "a `skip` rule mints nothing: `audience` and `ttl_s` have no effect",
        ));
    }
    let audience = match r.audience {
        Some(a) if a.is_empty() => return Err(ConfigError::new("audience", "must not be empty")),
        Some(a) => Some(Template::parse(&a).within("audience")?),
        None => None,
    };
    if let Some(ttl) = r.ttl_s {
        check_ttl(ttl).within("ttl_s")?;
    }
    Ok(Rule {
        route,
        exchange: r.exchange,
        audience,
        ttl_s: r.ttl_s,
    })
}

fn build_claims(
    claims: Option<BTreeMap<String, String>>,
    profile: crate::config::Profile,
) -> Result<Vec<(String, ClaimSource)>, ConfigError> {
    let claims = claims.unwrap_or_else(|| {
        [
            ("scope", "scopes"),
            ("tenant", "tenant"),
            ("client_id", "client_id"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    });
    let mut out = Vec::with_capacity(claims.len());
    for (name, source) in claims {
        if name.is_empty() || RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(ConfigError::new(
                name.as_str(),
                "the filter sets this claim itself (or the name is empty)",
            ));
        }
        let source = match source.as_str() {
            "scopes" => ClaimSource::Scopes,
            s if Identity::is_field_name(s) => ClaimSource::Field(s.to_string()),
            _ => {
                return Err(ConfigError::new(
                    name.as_str(),
                    "not an identity field (scopes, sub, iss, client_id, tenant, spiffe_id, cert_sha256, claims.<name>)",
                ))
            }
        };
        out.push((name, source));
    }
    if profile == Profile::Rfc9068
        && !out
            .iter()
            .any(|(n, s)| n == "client_id" && *s == ClaimSource::Field("client_id".into()))
    {
        return Err(ConfigError::new(
            "client_id",
            "the rfc9068 profile needs `client_id` mapped from `client_id`",
        ));
    }
    Ok(out)
}

/// The one signing key, its kid, and the JWKS of every configured key.
fn build_keys(
    keys: Vec<KeyFile>,
    alg: Alg,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, PrivateKey, String), ConfigError> {
    let mut signer: Option<(String, PrivateKey)> = None;
    let mut published: Vec<Value> = Vec::with_capacity(keys.len());
    let mut kids: Vec<String> = Vec::new();
    for (i, k) in keys.into_iter().enumerate() {
        let at = format!("[{i}]");
        if k.kid.is_empty()
            || k.kid.len() > 128
            || !k
                .kid
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::new(
                format!("{at}.kid"),
                "must be 1-128 printable ASCII characters without quotes or backslashes",
            ));
        }
        if kids.contains(&k.kid) {
            return Err(ConfigError::new(
                format!("{at}.kid"),
                "repeats another key's kid",
            ));
        }
        kids.push(k.kid.clone());
        let given = [
            k.private_key_env.is_some(),
            k.private_key.is_some(),
            k.public_jwk.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ConfigError::new(
                at,
                "give exactly one of `private_key_env`, `private_key` or `public_jwk`",
            ));
        }
        if let Some(jwk) = &k.public_jwk {
            let key_alg = check_public_jwk(jwk)
                .map_err(|e| ConfigError::new(format!("{at}.public_jwk"), e))?;
            let mut public = serde_json::Map::new();
            if let Value::Object(m) = jwk {
                public = m.clone();
            }
            published.push(published_jwk(&public, &k.kid, key_alg));
            continue;
        }
        let (field, text) = match (k.private_key_env, k.private_key) {
            (Some(var), _) => {
                let field = format!("{at}.private_key_env");
                if var.is_empty() {
                    return Err(ConfigError::new(field, "must not be empty"));
                }
                match env(&var) {
                    Some(text) => (field, text),
                    None => {
                        return Err(ConfigError::new(
                            field,
                            format!("the VM has no environment variable `{var}` (set it in vm_config.environment_variables)"),
                        ))
                    }
                }
            }
            (None, Some(text)) => (format!("{at}.private_key"), text),
            (None, None) => continue,
        };
        let key = PrivateKey::parse(&text).map_err(|e| ConfigError::new(field.as_str(), e))?;
        if key.alg() != alg {
            return Err(ConfigError::new(
                field,
                format!("the key is not a {} key (token.alg)", alg.as_str()),
            ));
        }
        if signer.is_some() {
            return Err(ConfigError::new(
                at,
                "a second private key: exactly one key signs, the others are published as `public_jwk`",
            ));
        }
        published.push(published_jwk(&key.public_jwk(), &k.kid, key.alg()));
        signer = Some((k.kid, key));
    }
    let Some((kid, key)) = signer else {
        return Err(ConfigError::new(
            "",
            "no signing key: exactly one key needs `private_key_env` (or `private_key`)",
        ));
    };
    let jwks = serde_json::json!({ "keys": published }).to_string();
    Ok((kid, key, jwks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{ED25519_PEM, P256_PEM};
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "SIGNING_KEY" => Some(P256_PEM.to_string()),
            "ED_KEY" => Some(ED25519_PEM.to_string()),
            "GARBAGE" => Some("not a key".to_string()),
            _ => None,
        }
    }

    fn public_p256() -> Value {
        let k = PrivateKey::parse(P256_PEM).unwrap();
        Value::Object(k.public_jwk())
    }

    pub fn issue_example() -> Value {
        json!({
          "spiffe_id": "spiffe://{tenant}.bank.example/user/{sub}",
          "token": {
            "issuer": "https://gateway.bank.example",
            "audience": "{tenant}",
            "ttl_s": 300,
            "alg": "ES256",
            "keys": [ { "kid": "2026-11", "private_key_env": "SIGNING_KEY" },
                      { "kid": "2026-10", "public_jwk": public_p256() } ],
            "claims": { "scope": "scopes", "tenant": "tenant", "client_id": "client_id" },
            "act": true,
            "header": { "name": "authorization", "value_prefix": "Bearer " }
          },
          "spiffe_header": "x-spiffe-id",
          "jwks_path": "/.well-known/internal-jwks.json",
          "rules": [ { "match": { "prefix": "/healthz" }, "exchange": "skip" },
                     { "match": { "prefix": "/public/" }, "exchange": "optional" },
                     { "match": { "prefix": "/payments/" }, "audience": "payments", "ttl_s": 60 } ]
        })
    }

    fn parse(v: &Value) -> Result<Config, ConfigError> {
        Config::parse(v.to_string().as_bytes(), &env)
    }

    #[test]
    fn the_issue_example_parses() {
        let c = parse(&issue_example()).unwrap();
        assert_eq!(c.kid, "2026-11");
        assert_eq!(c.rules.len(), 3);
        assert_eq!(c.rules[2].ttl_s, Some(60));
        let jwks: Value = serde_json::from_str(&c.jwks).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][0]["kid"], "2026-11");
        assert_eq!(jwks["keys"][1]["alg"], "ES256");
        assert!(!c.jwks.contains("\"d\""));
        assert_eq!(c.profile, Profile::JwtSvid);
        assert_eq!(c.claims.len(), 3);
    }

    fn refused(edit: impl FnOnce(&mut Value), path: &str, reason: &str) {
        let mut v = issue_example();
        edit(&mut v);
        let e = parse(&v).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }

    #[test]
    fn bad_configurations_name_the_field() {
        refused(
            |v| v["token"]["keys"][0]["private_key_env"] = json!("NOPE"),
            "token.keys[0].private_key_env",
            "no environment variable `NOPE`",
        );
        refused(
            |v| v["token"]["keys"][0]["private_key_env"] = json!("GARBAGE"),
            "token.keys[0].private_key_env",
            "neither",
        );
        refused(
            |v| v["token"]["keys"][0] = json!({"kid": "a", "private_key": "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----"}),
            "token.keys[0].private_key",
            "PKCS#8",
        );
        refused(
            |v| v["token"]["keys"][0]["private_key_env"] = json!("ED_KEY"),
            "token.keys[0].private_key_env",
            "not a ES256 key",
        );
        refused(
            |v| {
                v["token"]["keys"][1]["public_jwk"]["y"] =
                    v["token"]["keys"][1]["public_jwk"]["x"].clone()
            },
            "token.keys[1].public_jwk",
            "not a point of P-256",
        );
        refused(
            |v| v["token"]["keys"][1] = json!({"kid": "b", "private_key": P256_PEM}),
            "token.keys[1]",
            "a second private key",
        );
        refused(
            |v| v["token"]["keys"] = json!([{"kid": "b", "public_jwk": public_p256()}]),
            "token.keys",
            "no signing key",
        );
        refused(
            |v| v["token"]["keys"][1]["kid"] = json!("2026-11"),
            "token.keys[1].kid",
            "repeats",
        );
        refused(
            |v| v["token"]["keys"][1]["private_key_env"] = json!("X"),
            "token.keys[1]",
            "exactly one of",
        );
        refused(
            |v| v["token"]["keys"][0]["kid"] = json!(""),
            "token.keys[0].kid",
            "printable",
        );
        refused(
            |v| v["spiffe_id"] = json!("spiffe://x/{password}"),
            "spiffe_id",
            "not an identity field",
        );
        refused(
            |v| v["spiffe_id"] = json!("https://x/{sub}"),
            "spiffe_id",
            "spiffe://",
        );
        refused(|v| v["token"]["ttl_s"] = json!(0), "token.ttl_s", "between");
        refused(
            |v| v["rules"][2]["ttl_s"] = json!(100_000),
            "rules[2].ttl_s",
            "between",
        );
        refused(
            |v| v["rules"][0]["audience"] = json!("x"),
            "rules[0].exchange",
            "skip",
        );
        refused(
            |v| v["rules"][1]["exchange"] = json!("maybe"),
            "rules[1].exchange",
            "unknown variant",
        );
        refused(|v| v["rules"] = json!([]), "rules", "at least one");
        refused(
            |v| v["token"]["claims"]["sub"] = json!("tenant"),
            "token.claims.sub",
            "sets this claim",
        );
        refused(
            |v| v["token"]["claims"]["x"] = json!("password"),
            "token.claims.x",
            "not an identity field",
        );
        refused(
            |v| v["token"]["alg"] = json!("RS256"),
            "token.alg",
            "unknown variant",
        );
        refused(
            |v| v["spiffe_header"] = json!("Authorization"),
            "spiffe_header",
            "differ",
        );
        refused(
            |v| v["token"]["header"]["name"] = json!("bad header"),
            "token.header.name",
            "header name",
        );
        refused(
            |v| v["jwks_path"] = json!("/a/../jwks"),
            "jwks_path",
            "normalised",
        );
        refused(
            |v| v["token"]["issuer"] = json!(""),
            "token.issuer",
            "empty",
        );
        refused(
            |v| v["token"]["extra"] = json!(1),
            "token.extra",
            "unknown field",
        );
        refused(
            |v| v["cache"] = json!({"reuse_percent": 0}),
            "cache.reuse_percent",
            "between",
        );
    }

    #[test]
    fn rfc9068_needs_client_id_and_eddsa_keys_load() {
        let mut v = issue_example();
        v["token"]["profile"] = json!("rfc9068");
        let c = parse(&v).unwrap();
        assert_eq!(c.profile, Profile::Rfc9068);
        v["token"]["claims"] = json!({"scope": "scopes"});
        let e = parse(&v).unwrap_err();
        assert_eq!(e.path, "token.claims.client_id");
        let mut v = issue_example();
        v["token"]["alg"] = json!("EdDSA");
        v["token"]["keys"][0]["private_key_env"] = json!("ED_KEY");
        let c = parse(&v).unwrap();
        assert_eq!(c.signer.alg(), Alg::EdDSA);
        let jwks: Value = serde_json::from_str(&c.jwks).unwrap();
        assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
        assert_eq!(
            jwks["keys"][1]["alg"], "ES256",
            "an old key of another algorithm stays published"
        );
    }
}
