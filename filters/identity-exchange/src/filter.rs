//! The stream glue of identity-exchange: the JWKS reply, the removal of the client's copies of
//! the internal headers, the rule, then the internal token (cached or minted) and the SPIFFE ID
//! set on the request, or a reply.

use std::cell::RefCell;
use std::rc::Rc;

use shieldwall_core::decision::Decision;
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::metadata::{decode_pairs, JWT_AUTHN_NAMESPACE};
use shieldwall_core::metrics::Metrics;
use shieldwall_core::{
    Action, ConfigError, Host, IdentityFrom, Reply, RequestLine, RootFilter, StreamFilter,
};

use crate::config::{Config, Exchange};
use crate::token::{encoded_header, mint, new_jti, subject, MintError, Minted, TokenCache};

/// The root context: the parsed configuration, the worker's cache of minted tokens and metric ids.
pub struct IdentityExchange {
    config: Rc<Config>,
    header_b64: Rc<str>,
    cache: Rc<RefCell<TokenCache>>,
    metrics: Rc<RefCell<Metrics>>,
}

impl RootFilter for IdentityExchange {
    type Stream = IdentityExchangeStream;
    const NAME: &'static str = "identity_exchange";

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::from_host(host, config)?;
        let h: &dyn Host = host;
        h.info(&format!(
            "identity-exchange: signing {} with kid {}, {} rules, JWKS {}",
            config.alg.as_str(),
            config.kid,
            config.rules.len(),
            config.jwks_path.as_deref().unwrap_or("not served"),
        ));
        Ok(IdentityExchange {
            header_b64: encoded_header(&config).into(),
            cache: Rc::new(RefCell::new(TokenCache::new(
                config.cache_entries,
                config.reuse_percent,
            ))),
            config: Rc::new(config),
            metrics: Rc::new(RefCell::new(Metrics::new(Self::NAME))),
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> IdentityExchangeStream {
        IdentityExchangeStream {
            config: self.config.clone(),
            header_b64: self.header_b64.clone(),
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl IdentityExchange {
    /// How many minted tokens this worker keeps.
    pub fn cache_len(&self) -> usize {
        self.cache.try_borrow().map(|c| c.len()).unwrap_or(0)
    }
}

/// What a request gets (see `IdentityExchangeStream::step`).
enum Step {
    /// The JWKS reply was sent.
    Replied,
    /// The internal token (cached or minted) goes on the request.
    Forward(Minted, &'static str),
    /// The request goes on without a token.
    Pass(&'static str),
    /// Refused with this reply.
    Deny(&'static str, Reply),
    /// No token could be made.
    Refuse(MintError),
}

pub struct IdentityExchangeStream {
    config: Rc<Config>,
    header_b64: Rc<str>,
    cache: Rc<RefCell<TokenCache>>,
    metrics: Rc<RefCell<Metrics>>,
}

impl IdentityExchangeStream {
    fn count(&self, host: &mut dyn Host, event: &str) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.inc(host, event);
        }
    }

    /// Refuses: the reply (which records the decision with `reason`), a metric and a log line.
    fn deny(&self, host: &mut dyn Host, reason: &'static str, reply: Reply) -> Action {
        self.count(host, &format!("denied.{reason}"));
        (host as &dyn Host).info(&format!(
            "identity-exchange: refused with {} ({reason})",
            reply.status
        ));
        reply.with_reason(reason).send(host);
        Action::Pause
    }

    /// Lets the request go on, recording why.
    fn allow(&self, host: &mut dyn Host, reason: &'static str) -> Action {
        self.count(host, reason);
        host.record_decision(&Decision::allow(reason));
        Action::Continue
    }

    /// Answers `GET`/`HEAD` of `jwks_path` with the public keys, if this is that request.
    fn serve_jwks(&self, host: &mut dyn Host, raw_path: Option<&str>, method: &str) -> bool {
        let (Some(jwks_path), Some(raw)) = (&self.config.jwks_path, raw_path) else {
            return false;
        };
        if raw.split(['?', '#']).next() != Some(jwks_path.as_str()) {
            return false;
        }
        let body: &[u8] = match method {
            "GET" => self.config.jwks.as_bytes(),
            "HEAD" => b"",
            _ => return false,
        };
        let cache_control = format!("public, max-age={}", self.config.jwks_max_age_s);
        host.send_local_reply(
            200,
            &[
                ("content-type", "application/json"),
                ("cache-control", &cache_control),
            ],
            body,
        );
        self.count(host, "jwks_served");
        host.record_decision(&Decision::allow("jwks_served"));
        true
    }

    /// The bytes the caller's identity is made of on this request, the cache key's part: the
    /// identity context's JSON and, with `identity_from: jwt_authn`, the payload `jwt_authn` put
    /// in metadata, its members in a fixed order (after the context's length, so two different
    /// pairs never give one key).
    /// `None`: no identity at all. Nothing is parsed here: on a cache hit nothing needs to be.
    fn identity_bytes(&self, host: &dyn Host) -> Option<Vec<u8>> {
        let context = host
            .property(&[IDENTITY_PROPERTY])
            .filter(|b| !b.is_empty());
        let IdentityFrom::JwtAuthn {
            payload_in_metadata,
            ..
        } = &self.config.identity_from
        else {
            return context;
        };
        let payload = host
            .property(&[
                "metadata",
                "filter_metadata",
                JWT_AUTHN_NAMESPACE,
                payload_in_metadata,
            ])
            .filter(|b| !b.is_empty());
        if context.is_none() && payload.is_none() {
            return None;
        }
        let (context, payload) = (context.unwrap_or_default(), payload.unwrap_or_default());
        let mut bytes = Vec::with_capacity(context.len() + payload.len() + 8);
        bytes.extend_from_slice(format!("{}:", context.len()).as_bytes());
        bytes.extend_from_slice(&context);
        // Envoy hands the payload's members over in no fixed order (a protobuf map): the same
        // token can come as different bytes. Its members sorted by name, each length-prefixed,
        // are the same for the same payload and still tell any two payloads apart.
        match decode_pairs(&payload) {
            Some(mut pairs) => {
                pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (k, v) in pairs {
                    for part in [k, v] {
                        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
                        bytes.extend_from_slice(part);
                    }
                }
            }
            None => bytes.extend_from_slice(&payload),
        }
        Some(bytes)
    }

    /// What to do with this request: the JWKS reply, a token to forward, or another outcome.
    fn step(&self, host: &mut dyn Host) -> Step {
        let config = &self.config;
        // The request line, read once for the JWKS path and the rules.
        let raw_path = host.request_header(":path");
        let method = host.request_header(":method").unwrap_or_default();
        if self.serve_jwks(host, raw_path.as_deref(), &method) {
            return Step::Replied;
        }
        let line = match RequestLine::from_read(host, &method, raw_path.as_deref(), config.path) {
            Ok(line) => line,
            Err(e) => {
                return Step::Deny(e.code(), Reply::bad_request(e.code(), e.description()));
            }
        };
        let Some((rule_index, rule)) = config.rule_for(&line) else {
            return Step::Deny(
                "no_matching_rule",
                Reply::forbidden(
                    "no_matching_rule",
                    "no rule of the gateway allows this request",
                ),
            );
        };
        if rule.exchange == Exchange::Skip {
            return Step::Pass("skipped");
        }
        let missing = || {
            if rule.exchange == Exchange::Optional {
                return Step::Pass("passed_without_identity");
            }
            Step::Deny(
                "missing_identity",
                Reply::missing_credential(
                    &config.realm,
                    "this route needs an authenticated caller",
                ),
            )
        };
        // The identity's bytes are the cache key; the identity is parsed only on a miss.
        let Some(raw) = self.identity_bytes(host) else {
            return missing();
        };
        let now_s = (host as &dyn Host).now_secs();
        let key = TokenCache::key(rule_index, &raw);
        let cached = self
            .cache
            .try_borrow_mut()
            .ok()
            .and_then(|mut c| c.get(&key, now_s));
        if let Some(hit) = cached {
            return Step::Forward(hit, "cache_hit");
        }
        let Some(identity) = config.identity_from.read(host) else {
            return missing();
        };
        let audience_template = rule.audience.as_ref().unwrap_or(&config.audience);
        let ttl_s = rule.ttl_s.unwrap_or(config.ttl_s);
        let made = audience_template
            .render_audience(&identity)
            .map_err(MintError::from)
            .and_then(|audience| subject(config, &identity, &audience))
            .and_then(|subject| {
                new_jti()
                    .and_then(|jti| mint(config, &self.header_b64, &subject, now_s, ttl_s, jti))
            });
        match made {
            Ok(m) => {
                if let Ok(mut c) = self.cache.try_borrow_mut() {
                    c.insert(&key, &m);
                }
                Step::Forward(m, "minted")
            }
            Err(e) => Step::Refuse(e),
        }
    }

    fn exchange(&self, host: &mut dyn Host) -> Action {
        let step = self.step(host);
        if !matches!(step, Step::Forward(..) | Step::Replied) {
            // Whatever a client sent under these names never reaches the services, minted or
            // not. (A forwarded request gets both replaced, which removes every copy as well.)
            host.set_request_header(&self.config.header_name, None);
            host.set_request_header(&self.config.spiffe_header, None);
        }
        match step {
            Step::Replied => Action::Pause,
            Step::Forward(minted, reason) => self.forward(host, &minted, reason),
            Step::Pass(reason) => self.allow(host, reason),
            Step::Deny(reason, reply) => self.deny(host, reason, reply),
            Step::Refuse(e) => self.refuse(host, &e),
        }
    }

    /// Puts the internal token and the SPIFFE ID on the request and lets it go on.
    fn forward(&self, host: &mut dyn Host, minted: &Minted, reason: &'static str) -> Action {
        let mut value = String::with_capacity(self.config.value_prefix.len() + minted.token.len());
        value.push_str(&self.config.value_prefix);
        value.push_str(&minted.token);
        host.set_request_header(&self.config.header_name, Some(&value));
        host.set_request_header(&self.config.spiffe_header, Some(&minted.spiffe_id));
        self.allow(host, reason)
    }

    fn refuse(&self, host: &mut dyn Host, e: &MintError) -> Action {
        let code = e.code();
        if let MintError::Render(r) = e {
            (host as &dyn Host).info(&format!(
                "identity-exchange: the identity's `{}` cannot be carried inward ({code})",
                r.field()
            ));
        }
        let reply = match e {
            MintError::Expired => {
                Reply::invalid_token(&self.config.realm, "expired", "the credential has expired")
            }
            MintError::NoRandom => {
                Reply::unavailable("unavailable", 1, "the gateway cannot mint a token now")
            }
            MintError::Render(crate::template::RenderError::Missing(_)) => Reply::forbidden(
                "identity_incomplete",
                "the caller's identity lacks what the internal identity is made of",
            ),
            _ => Reply::forbidden(
                "identity_not_mappable",
                "the caller's identity cannot be carried to the services",
            ),
        };
        self.deny(host, code, reply)
    }
}

impl StreamFilter for IdentityExchangeStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        self.exchange(host)
    }
}
