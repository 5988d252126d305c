//! The internal token: its claims from the identity context, the compact JWS, and the per-worker
//! cache of minted tokens.

use serde_json::{Map, Value};
use shieldwall_core::memo::TokenMemo;
use shieldwall_core::Identity;
use shieldwall_jose::b64url_encode;

use crate::config::{ClaimSource, Config, Profile};
use crate::template::RenderError;

/// How deep an incoming `act` chain may be before it is refused (RFC 8693 §4.1 nests one object
/// per actor; a chain longer than this is not a delegation a gateway should carry on).
pub const MAX_ACT_DEPTH: usize = 8;
/// The largest incoming `act` chain carried, in bytes of JSON.
pub const MAX_ACT_BYTES: usize = 2048;

/// Why no token could be made for an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintError {
    /// A template or claim could not be filled (see [`RenderError`]).
    Render(RenderError),
    /// The identity already has a `spiffe_id` that is not a valid SPIFFE ID.
    BadSpiffeId,
    /// The external credential has expired.
    Expired,
    /// The incoming `act` chain is too deep, too large or not an object.
    BadAct,
    /// The host's random source failed (no `jti` can be made).
    NoRandom,
}

impl MintError {
    pub fn code(&self) -> &'static str {
        match self {
            MintError::Render(e) => e.code(),
            MintError::BadSpiffeId => "invalid_spiffe_id",
            MintError::Expired => "expired",
            MintError::BadAct => "invalid_act",
            MintError::NoRandom => "no_random_source",
        }
    }
}

impl From<RenderError> for MintError {
    fn from(e: RenderError) -> Self {
        MintError::Render(e)
    }
}

/// What the token says, apart from its times and `jti`: the cache key of a minted token.
#[derive(Clone, Debug, PartialEq)]
pub struct Subject {
    pub spiffe_id: String,
    pub audience: String,
    /// `iss`, `sub`, `aud` and the mapped claims and `act`, in order, as JSON members.
    pub claims: Map<String, Value>,
    /// The identity's expiry, if it has one: the token must not outlive it.
    pub not_after: Option<u64>,
}

fn act_depth(v: &Value) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = v;
    loop {
        let Value::Object(m) = at else { return None };
        depth += 1;
        if depth > MAX_ACT_DEPTH {
            return None;
        }
        match m.get("act") {
            None => return Some(depth),
            Some(next) => at = next,
        }
    }
}

/// The claims of the token this identity gets for `audience`.
pub fn subject(config: &Config, identity: &Identity, audience: &str) -> Result<Subject, MintError> {
    let spiffe_id = match (&identity.spiffe_id, config.keep_spiffe_id) {
        (Some(id), true) => {
            crate::template::check_spiffe_id(id).map_err(|_| MintError::BadSpiffeId)?;
            id.clone()
        }
        _ => config.spiffe_id.render(identity)?,
    };
    let mut claims = Map::new();
    claims.insert("iss".into(), Value::from(config.issuer.as_str()));
    claims.insert("sub".into(), Value::from(spiffe_id.as_str()));
    claims.insert("aud".into(), Value::from(audience));
    for (name, source) in &config.claims {
        let value = match source {
            ClaimSource::Scopes => {
                if identity.scopes.is_empty() {
                    None
                } else {
                    Some(Value::from(identity.scopes.join(" ")))
                }
            }
            ClaimSource::Field(field) => match field.strip_prefix("claims.") {
                Some(claim) => identity.claims.get(claim).cloned(),
                None => identity.field(field).map(Value::from),
            },
        };
        match value {
            Some(v) => {
                claims.insert(name.clone(), v);
            }
            None if config.profile == Profile::Rfc9068 && name == "client_id" => {
                return Err(MintError::Render(RenderError::Missing("client_id".into())));
            }
            None => {}
        }
    }
    if config.act {
        let mut act = Map::new();
        if let Some(sub) = &identity.sub {
            act.insert("sub".into(), Value::from(sub.as_str()));
        }
        if let Some(iss) = &identity.iss {
            act.insert("iss".into(), Value::from(iss.as_str()));
        }
        if act.is_empty() {
            return Err(MintError::Render(RenderError::Missing("sub".into())));
        }
        if let Some(prior) = identity.claims.get("act") {
            let size = serde_json::to_vec(prior)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > MAX_ACT_BYTES || act_depth(prior).is_none_or(|d| d >= MAX_ACT_DEPTH) {
                return Err(MintError::BadAct);
            }
            act.insert("act".into(), prior.clone());
        }
        claims.insert("act".into(), Value::Object(act));
    }
    Ok(Subject {
        spiffe_id,
        audience: audience.to_string(),
        claims,
        not_after: identity.exp,
    })
}

/// A minted token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Minted {
    pub token: std::rc::Rc<str>,
    pub spiffe_id: std::rc::Rc<str>,
    pub iat: u64,
    pub exp: u64,
}

/// The protected header of every token this configuration mints, base64url-encoded.
pub fn encoded_header(config: &Config) -> String {
    let typ = match config.profile {
        Profile::JwtSvid => "JWT",
        Profile::Rfc9068 => "at+jwt",
    };
    let header = serde_json::json!({"alg": config.alg.as_str(), "kid": config.kid, "typ": typ});
    b64url_encode(header.to_string().as_bytes())
}

/// A fresh `jti`: 16 bytes of the host's random source (WASI `random_get`), base64url.
pub fn new_jti() -> Result<String, MintError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|_| MintError::NoRandom)?;
    Ok(b64url_encode(&bytes))
}

/// Signs the token for `subject`, valid from `now_s` for `ttl_s` (never past the identity's
/// expiry).
pub fn mint(
    config: &Config,
    header_b64: &str,
    subject: &Subject,
    now_s: u64,
    ttl_s: u64,
    jti: String,
) -> Result<Minted, MintError> {
    let mut exp = now_s.saturating_add(ttl_s);
    if let Some(limit) = subject.not_after {
        if limit <= now_s {
            return Err(MintError::Expired);
        }
        exp = exp.min(limit);
    }
    let mut claims = subject.claims.clone();
    claims.insert("iat".into(), Value::from(now_s));
    claims.insert("nbf".into(), Value::from(now_s));
    claims.insert("exp".into(), Value::from(exp));
    claims.insert("jti".into(), Value::from(jti));
    let payload = Value::Object(claims).to_string();
    let mut token = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 100);
    token.push_str(header_b64);
    token.push('.');
    token.push_str(&b64url_encode(payload.as_bytes()));
    let signature = config.signer.sign(token.as_bytes());
    token.push('.');
    token.push_str(&b64url_encode(&signature));
    Ok(Minted {
        token: token.into(),
        spiffe_id: subject.spiffe_id.as_str().into(),
        iat: now_s,
        exp,
    })
}

/// Minted tokens per worker, by the identity they were minted from (the identity context's whole
/// JSON as the authenticators wrote it, and with `identity_from: jwt_authn` the payload
/// `jwt_authn` put in metadata) and the rule that chose audience and lifetime: a hit costs a hash
/// and a comparison, no parsing. The identity's `exp` is part of the key, so a token never outlives
/// the identity it is reused for. Bounded: the oldest entry leaves first. An entry is reused
/// until `reuse_percent` of its token's lifetime has passed.
pub struct TokenCache {
    memo: TokenMemo<Minted>,
    reuse_percent: u64,
}

impl TokenCache {
    pub fn new(max_entries: usize, reuse_percent: u8) -> TokenCache {
        TokenCache {
            memo: TokenMemo::new(max_entries),
            reuse_percent: u64::from(reuse_percent),
        }
    }

    pub fn len(&self) -> usize {
        self.memo.len()
    }

    pub fn is_empty(&self) -> bool {
        self.memo.is_empty()
    }

    /// The cache key: the rule's index and the identity's bytes, losslessly: text as it is,
    /// other bytes (the metadata `jwt_authn` wrote holds binary numbers) in hex after a
    /// different separator, so two different identities never share a key.
    pub fn key(rule_index: usize, identity: &[u8]) -> String {
        let mut key = rule_index.to_string();
        match std::str::from_utf8(identity) {
            Ok(text) => {
                key.push('\n');
                key.push_str(text);
            }
            Err(_) => {
                let digit = |v: u8| char::from_digit(u32::from(v), 16).unwrap_or('0');
                key.reserve(identity.len() * 2 + 1);
                key.push('#');
                for b in identity {
                    key.push(digit(b >> 4));
                    key.push(digit(b & 15));
                }
            }
        }
        key
    }

    pub fn get(&mut self, key: &str, now_s: u64) -> Option<Minted> {
        self.memo.get(key, now_s)
    }

    pub fn insert(&mut self, key: &str, minted: &Minted) {
        let lifetime = minted.exp.saturating_sub(minted.iat);
        let reuse_until = minted.iat + lifetime.saturating_mul(self.reuse_percent) / 100;
        if reuse_until > minted.iat {
            self.memo.insert(key, minted.clone(), reuse_until);
        }
    }
}
