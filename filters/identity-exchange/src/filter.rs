//! The stream glue of identity-exchange: the JWKS reply, the removal of the client's copies of
//! the internal headers, the rule, then the internal token (cached or minted) and the SPIFFE ID
//! set on the request, or a reply.

use std::cell::RefCell;
use std::rc::Rc;

use shieldwall_core::decision::Decision;
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::metrics::Metrics;
use shieldwall_core::{
    Action, ConfigError, Host, Identity, Reply, RequestLine, RootFilter, StreamFilter,
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
    fn serve_jwks(&self, host: &mut dyn Host) -> bool {
        let Some(jwks_path) = &self.config.jwks_path else {
            return false;
        };
        let Some(raw) = host.request_header(":path") else {
            return false;
        };
        if raw.split(['?', '#']).next() != Some(jwks_path.as_str()) {
            return false;
        }
        let method = host.request_header(":method").unwrap_or_default();
        let body: &[u8] = match method.as_str() {
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

    fn exchange(&self, host: &mut dyn Host) -> Action {
        let config = self.config.clone();
        if self.serve_jwks(host) {
            return Action::Pause;
        }
        // Whatever a client sent under these names never reaches the services, minted or not.
        host.set_request_header(&config.header_name, None);
        host.set_request_header(&config.spiffe_header, None);

        let line = match RequestLine::from_host(host, config.path) {
            Ok(line) => line,
            Err(e) => {
                return self.deny(
                    host,
                    e.code(),
                    Reply::bad_request(e.code(), e.description()),
                )
            }
        };
        let Some((rule_index, rule)) = config.rule_for(&line) else {
            return self.deny(
                host,
                "no_matching_rule",
                Reply::forbidden(
                    "no_matching_rule",
                    "no rule of the gateway allows this request",
                ),
            );
        };
        if rule.exchange == Exchange::Skip {
            return self.allow(host, "skipped");
        }
        // The identity context as the authenticators wrote it: the cache key, parsed only on a miss.
        let raw = host
            .property(&[IDENTITY_PROPERTY])
            .filter(|b| !b.is_empty());
        let identity = raw
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Identity>(b).ok());
        let (Some(raw), Some(identity)) = (raw, identity) else {
            if rule.exchange == Exchange::Optional {
                return self.allow(host, "passed_without_identity");
            }
            return self.deny(
                host,
                "missing_identity",
                Reply::missing_credential(
                    &config.realm,
                    "this route needs an authenticated caller",
                ),
            );
        };
        let now_s = (host as &dyn Host).now_secs();
        let key = TokenCache::key(rule_index, &raw);
        let cached = self
            .cache
            .try_borrow_mut()
            .ok()
            .and_then(|mut c| c.get(&key, now_s));
        if let Some(hit) = cached {
            return self.forward(host, &hit, "cache_hit");
        }
        let audience_template = rule.audience.as_ref().unwrap_or(&config.audience);
        let ttl_s = rule.ttl_s.unwrap_or(config.ttl_s);
        let made = audience_template
            .render_audience(&identity)
            .map_err(MintError::from)
            .and_then(|audience| subject(&config, &identity, &audience));
        let subject = match made {
            Ok(s) => s,
            Err(e) => return self.refuse(host, &e),
        };
        let made =
            new_jti().and_then(|jti| mint(&config, &self.header_b64, &subject, now_s, ttl_s, jti));
        match made {
            Ok(m) => {
                if let Ok(mut c) = self.cache.try_borrow_mut() {
                    c.insert(&key, &m);
                }
                self.forward(host, &m, "minted")
            }
            Err(e) => self.refuse(host, &e),
        }
    }

    /// Puts the internal token and the SPIFFE ID on the request and lets it go on.
    fn forward(&self, host: &mut dyn Host, minted: &Minted, reason: &'static str) -> Action {
        let value = format!("{}{}", self.config.value_prefix, minted.token);
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
