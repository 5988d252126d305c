//! The jwt-auth filter: which rule applies, which credential, which provider, and what the
//! stream does with the answer (continue with an identity, deny, or wait for keys).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value};
use shieldwall_core::authn::{
    self, identity_from_claims, remove_owned_headers, route_decision, set_claim_headers,
    RouteDecision,
};
use shieldwall_core::binding::{check_certificate_binding, BindingError};
use shieldwall_core::budget::Charge;
use shieldwall_core::credential::{extract_from_request, remove_credential, Extracted};
use shieldwall_core::hash::IdMap;
use shieldwall_core::identity::{Identity, IDENTITY_PROPERTY};
use shieldwall_core::metrics::Metrics;
use shieldwall_core::{shared, slots};
use shieldwall_core::{
    Action, CalloutResponse, ConfigError, Host, Reply, RequestLine, RootFilter, StreamFilter,
};

use crate::cache::{TokenCache, TokenHash, Verified};
use crate::claims::{validate, ClaimRules};
use crate::config::{Budget, Config, KeySource, NonJwtTokens, Provider, Requirement};
use crate::keys::{self, FetchReason, FetchResult};
use shieldwall_jose::{candidate_keys, parse_compact, Header, Jwks, JwsError};

/// The name of this filter in shared-data keys and metrics.
pub const FILTER: &str = "jwt_auth";
/// How often each worker looks at the shared key sets (refresh due? another worker fetched?)
/// and times out waiting requests.
pub const TICK: Duration = Duration::from_millis(200);

/// Per-provider state of one worker.
#[derive(Default)]
struct ProviderKeys {
    keys: Option<Rc<Jwks>>,
    version: u64,
}

/// A stream paused until a key set arrives.
struct Waiter {
    context_id: u32,
    provider: usize,
    deadline_ms: u64,
}

/// What one worker (VM) knows, shared by its root context and its streams.
pub struct Worker {
    plugin: String,
    keys: Vec<ProviderKeys>,
    cache: TokenCache,
    metrics: Metrics,
    /// Callout token → provider, for JWKS fetches in flight from this worker.
    fetches: IdMap<u32, usize>,
    waiters: Vec<Waiter>,
    /// The seed of the failure budget's key hash (one per Envoy, from shared data).
    budget_seed: u64,
}

impl Worker {
    fn keys_of(&self, config: &Config, p: usize) -> Option<(Rc<Jwks>, u64)> {
        match &config.providers.get(p)?.keys {
            KeySource::Local(jwks) => Some((jwks.clone(), 0)),
            KeySource::Remote(_) => {
                let k = self.keys.get(p)?;
                k.keys.clone().map(|j| (j, k.version))
            }
        }
    }

    /// Installs a new key set: drops cached tokens whose key left, wakes the streams waiting for it.
    fn install(
        &mut self,
        host: &mut dyn Host,
        config: &Config,
        p: usize,
        jwks: Rc<Jwks>,
        version: u64,
    ) {
        let kids: Vec<Option<String>> = jwks.keys.iter().map(|k| k.kid.clone()).collect();
        self.cache.retain_keys(p, &kids);
        if let Some(name) = config.providers.get(p).map(|pr| pr.name.clone()) {
            self.metrics
                .gauge(host, &format!("jwks.{name}.keys"), jwks.keys.len() as u64);
        }
        if let Some(slot) = self.keys.get_mut(p) {
            slot.keys = Some(jwks);
            slot.version = version;
        }
        self.wake(host, |w| w.provider == p);
    }

    fn wake(&mut self, host: &mut dyn Host, which: impl Fn(&Waiter) -> bool) {
        let (woken, kept): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(which);
        self.waiters = kept;
        for w in woken {
            host.wake_stream(w.context_id);
        }
    }

    /// A JWKS callout came back (to the root or to a stream of this worker).
    fn fetch_done(
        &mut self,
        host: &mut dyn Host,
        config: &Config,
        token: u32,
        response: &CalloutResponse,
    ) -> bool {
        let Some(p) = self.fetches.remove(&token) else {
            return false;
        };
        let Some(provider) = config.providers.get(p) else {
            return true;
        };
        let (result, installed) = keys::complete_fetch(host, &self.plugin, provider, response);
        match result {
            FetchResult::Updated { keys, skipped } => {
                self.metrics.inc(host, "jwks.fetch.ok");
                let h: &dyn Host = host;
                h.info(&format!(
                    "provider {}: key set fetched, {keys} usable keys",
                    provider.name
                ));
                for (kid, reason) in &skipped {
                    h.warn(&format!(
                        "provider {}: key {} skipped: {reason}",
                        provider.name,
                        kid.as_deref().unwrap_or("(no kid)")
                    ));
                }
                // Reasons are the import's static codes: a bounded set of metric names.
                for (_, reason) in &skipped {
                    self.metrics
                        .inc(host, &format!("jwks.key_skipped.{reason}"));
                }
            }
            FetchResult::Failed(code) => {
                self.metrics.inc(host, &format!("jwks.fetch.failed.{code}"));
                let stale = self.keys.get(p).is_some_and(|k| k.keys.is_some());
                let h: &dyn Host = host;
                h.warn(&format!(
                    "provider {}: key set fetch failed ({code}){}",
                    provider.name,
                    if stale {
                        "; keeping the last good key set"
                    } else {
                        ""
                    }
                ));
            }
        }
        match installed {
            Some((jwks, version)) => self.install(host, config, p, jwks, version),
            // Failed: the waiters of this provider decide (they fail at their deadline or retry).
            None => self.wake(host, |w| w.provider == p),
        }
        true
    }

    fn start_fetch(
        &mut self,
        host: &mut dyn Host,
        config: &Config,
        p: usize,
        reason: FetchReason,
    ) -> bool {
        let Some(provider) = config.providers.get(p) else {
            return false;
        };
        match keys::start_fetch(host, &self.plugin, provider, reason) {
            Some(token) => {
                self.fetches.insert(token, p);
                self.metrics
                    .inc(host, &format!("jwks.fetch.started.{}", reason.as_str()));
                true
            }
            None => false,
        }
    }

    /// Takes a newer key set another worker stored, if any.
    fn sync(&mut self, host: &mut dyn Host, config: &Config, p: usize) -> bool {
        let (Some(provider), Some(have)) =
            (config.providers.get(p), self.keys.get(p).map(|k| k.version))
        else {
            return false;
        };
        match keys::load_shared(host, &self.plugin, provider, have) {
            Some((jwks, version)) => {
                self.install(host, config, p, jwks, version);
                true
            }
            None => false,
        }
    }
}

/// The root context: configuration and the worker's state.
pub struct JwtAuth {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
}

impl RootFilter for JwtAuth {
    type Stream = JwtStream;
    const NAME: &'static str = FILTER;

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(config)?;
        let plugin = (host as &dyn Host).plugin_name();
        let mut worker = Worker {
            plugin,
            keys: config
                .providers
                .iter()
                .map(|_| ProviderKeys::default())
                .collect(),
            cache: TokenCache::new(config.token_cache_entries),
            metrics: Metrics::new(FILTER),
            fetches: IdMap::default(),
            waiters: Vec::new(),
            budget_seed: 0,
        };
        if config.budget.is_some() {
            worker.budget_seed =
                slots::load_seed(host, FILTER, &worker.plugin, shared::worker_id());
        }
        if config
            .providers
            .iter()
            .any(|p| matches!(p.keys, KeySource::Remote(_)))
        {
            // The first tick fetches the key sets (or finds them fetched by another worker).
            host.set_tick_period(TICK);
        }
        Ok(JwtAuth {
            config: Rc::new(config),
            worker: Rc::new(RefCell::new(worker)),
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, context_id: u32) -> JwtStream {
        JwtStream {
            config: self.config.clone(),
            worker: self.worker.clone(),
            context_id,
            waiting: None,
        }
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        let config = &self.config;
        let Ok(mut worker) = self.worker.try_borrow_mut() else {
            return;
        };
        for (p, provider) in config.providers.iter().enumerate() {
            if !matches!(provider.keys, KeySource::Remote(_)) {
                continue;
            }
            worker.sync(host, config, p);
            let has_keys = worker.keys.get(p).is_some_and(|k| k.keys.is_some());
            let reason = if has_keys {
                FetchReason::Refresh
            } else {
                FetchReason::Missing
            };
            worker.start_fetch(host, config, p, reason);
        }
        let now = host.now_millis();
        worker.wake(host, |w| w.deadline_ms <= now);
    }

    fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) {
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.fetch_done(host, &self.config, token, &response);
        }
    }
}

/// Why a requirement could not be decided yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitFor {
    /// The provider has no key set yet.
    Keys(usize),
    /// The token's `kid` is not in the provider's key set; a refetch may bring it.
    Kid(usize),
}

/// The result of evaluating a requirement against the request's credential.
type Eval = authn::Eval<Rc<Verified>, WaitFor>;

/// A parsed token, owning its parts; the signing input is a prefix of the token text.
struct Parsed {
    header: Header,
    claims: Map<String, Value>,
    signing_len: usize,
    signature: Vec<u8>,
}

/// The credential of one request, parsed at most once.
struct Credential {
    token: String,
    location: usize,
    hash: TokenHash,
    parsed: Option<Result<Parsed, JwsError>>,
    /// The client's slot in the failure budget (shared-data key, key fingerprint), looked up at
    /// most once per request; `Some(None)` when there is no budget or no client address.
    budget_slot: Option<Option<(String, u64)>>,
}

/// The budget slot of the request's client address.
fn budget_slot(host: &dyn Host, worker: &Worker, budget: &Budget) -> Option<(String, u64)> {
    shieldwall_core::budget::client_slot(host, FILTER, &worker.plugin, worker.budget_seed, budget)
}

pub struct JwtStream {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
    context_id: u32,
    /// Set while paused for keys: when to give up.
    waiting: Option<(WaitFor, u64)>,
}

fn description(code: &str) -> &'static str {
    match code {
        "expired" => "the token has expired",
        "not_yet_valid" => "the token is not valid yet",
        "bad_issuer" => "the token was not issued by an accepted issuer",
        "bad_audience" => "the token is not meant for this audience",
        "bad_signature" => "the token signature is not valid",
        "unknown_kid" => "the token was signed with an unknown key",
        "no_matching_key" => "no key can verify the token",
        "alg_not_allowed" => "the token algorithm is not allowed for its key",
        "token_too_large" | "too_large" => "the token is too large",
        "missing_exp" => "the token has no expiry",
        "bad_claim_type" => "a token claim has the wrong type",
        "cnf_unsupported" => BindingError::Unsupported.description(),
        "bad_cnf" => BindingError::Malformed.description(),
        "cnf_no_certificate" => BindingError::NoCertificate.description(),
        "cnf_mismatch" => BindingError::Mismatch.description(),
        _ => "the token is malformed",
    }
}

impl JwtStream {
    fn rules_for<'a>(
        &self,
        provider: &'a Provider,
        audiences: Option<&'a [String]>,
        now_s: u64,
    ) -> ClaimRules<'a> {
        ClaimRules {
            issuer: Some(&provider.issuer),
            audiences: audiences.unwrap_or(&provider.audiences),
            now_s,
            skew_s: provider.skew_s,
            require_exp: provider.require_exp,
        }
    }

    fn check_provider(
        &self,
        host: &mut dyn Host,
        worker: &mut Worker,
        cred: &mut Option<Credential>,
        p: usize,
        audiences: Option<&[String]>,
    ) -> Eval {
        let config = &*self.config;
        let Some(provider) = config.providers.get(p) else {
            return Eval::Fail("malformed");
        };
        let Some(cred) = cred
            .as_mut()
            .filter(|c| provider.locations.contains(&c.location))
        else {
            return Eval::Missing;
        };
        if cred.token.len() > provider.max_token_bytes {
            return Eval::Fail("token_too_large");
        }
        let now_s = (host as &dyn Host).now_secs();
        let rules = self.rules_for(provider, audiences, now_s);
        if let Some(hit) = worker
            .cache
            .get(&cred.hash, &cred.token, now_s)
            .filter(|v| v.provider == p)
        {
            worker.metrics.inc(host, "cache.hit");
            if let Err(e) = validate(&hit.identity.claims, &rules) {
                return Eval::Fail(e.code());
            }
            // The binding is to the connection, so it is checked on every request, hit or not.
            return match check_certificate_binding(host, &hit.identity.claims) {
                Ok(()) => Eval::Ok(vec![hit]),
                Err(e) => Eval::Fail(e.code()),
            };
        }
        // Parse once per request, whichever provider asks first.
        if cred.parsed.is_none() {
            cred.parsed = Some(
                parse_compact(&cred.token, provider.max_token_bytes).map(|j| Parsed {
                    signing_len: j.signing_input.len(),
                    header: j.header,
                    claims: j.claims,
                    signature: j.signature,
                }),
            );
        }
        let jws = match cred.parsed.as_ref() {
            Some(Ok(jws)) => jws,
            Some(Err(e)) => return Eval::Fail(e.code()),
            None => return Eval::Fail("malformed"),
        };
        // Claims before signatures: an expired or foreign token costs no signature work.
        if let Err(e) = validate(&jws.claims, &rules) {
            return Eval::Fail(e.code());
        }
        let Some((jwks, version)) = worker.keys_of(config, p) else {
            return Eval::Wait(WaitFor::Keys(p));
        };
        // A client whose failures spent its budget gets no signature work (one shared read).
        if let Some(budget) = &config.budget {
            let slot = cred
                .budget_slot
                .get_or_insert_with(|| budget_slot(host, worker, budget));
            if let Some((key, fp)) = slot {
                let now_ms = (host as &dyn Host).now_millis();
                if let Err(wait_ms) = slots::peek(host, key, *fp, &budget.limit, now_ms) {
                    return Eval::Throttled(wait_ms);
                }
            }
        }
        worker.metrics.inc(host, "cache.miss");
        let mut tried = 0usize;
        let mut last = "no_matching_key";
        let mut candidates = candidate_keys(&jwks, &jws.header);
        // The kid of the key that verified the token (itself optional).
        let mut verified_by: Option<Option<String>> = None;
        for key in candidates.by_ref().take(provider.max_key_tries) {
            tried += 1;
            let signing_input = cred
                .token
                .as_bytes()
                .get(..jws.signing_len)
                .unwrap_or_default();
            match key.verify(jws.header.alg, signing_input, &jws.signature) {
                Ok(()) => {
                    verified_by = Some(key.kid.clone());
                    break;
                }
                Err(e) => last = e.code(),
            }
        }
        if let Some(kid) = verified_by {
            // The parsed token is not needed any more: its claims move into the identity,
            // one map for the cache entry, the identity and the checks below.
            drop(candidates);
            let Some(Ok(parsed)) = cred.parsed.take() else {
                return Eval::Fail("malformed");
            };
            let payload_b64 = cred.token.split('.').nth(1).unwrap_or_default().to_string();
            let identity = identity_from_claims(parsed.claims, "jwt", &provider.tenant_claim);
            let identity_json = serde_json::to_vec(&identity).unwrap_or_default();
            let verified = Rc::new(Verified {
                provider: p,
                identity: Rc::new(identity),
                identity_json,
                payload_b64,
                kid,
                key_version: version,
            });
            let exp = verified
                .identity
                .exp
                .unwrap_or_else(|| now_s.saturating_add(300));
            worker
                .cache
                .insert(cred.hash, &cred.token, verified.clone(), exp);
            if let Err(e) = check_certificate_binding(host, &verified.identity.claims) {
                return Eval::Fail(e.code());
            }
            return Eval::Ok(vec![verified]);
        }
        if tried == 0 {
            if let Some(kid) = &jws.header.kid {
                // The kid is known but its key refuses this alg: a refetch cannot help.
                if jwks
                    .keys
                    .iter()
                    .any(|k| k.kid.as_deref() == Some(kid.as_str()))
                {
                    return Eval::Fail("alg_not_allowed");
                }
                if matches!(provider.keys, KeySource::Remote(_)) {
                    return Eval::Wait(WaitFor::Kid(p));
                }
                return Eval::Fail("unknown_kid");
            }
        }
        if candidates.next().is_some() {
            // Keys were left untried: a token signed by one of them is refused. Counted so an
            // operator sees that `max_key_tries` is below the number of kid-less keys in use.
            worker.metrics.inc(host, "key_tries_exhausted");
        }
        if tried > 0 {
            self.charge_budget(host, worker, cred);
        }
        Eval::Fail(last)
    }

    /// Takes one failure from the client's budget (a CAS on its shared slot).
    fn charge_budget(&self, host: &mut dyn Host, worker: &mut Worker, cred: &Credential) {
        let (Some(budget), Some(Some(slot))) = (&self.config.budget, &cred.budget_slot) else {
            return;
        };
        match shieldwall_core::budget::charge(host, budget, slot) {
            Charge::Spent => worker.metrics.inc(host, "budget.spent"),
            Charge::Charged => worker.metrics.inc(host, "budget.charged"),
            Charge::Failed => {
                (host as &dyn Host).warn("could not update the failed-verification budget")
            }
        }
    }

    fn eval(
        &self,
        host: &mut dyn Host,
        worker: &mut Worker,
        cred: &mut Option<Credential>,
        req: &Requirement,
    ) -> Eval {
        req.evaluate(&mut |p, audiences| self.check_provider(host, worker, cred, p, audiences))
    }

    fn deny(&self, host: &mut dyn Host, worker: &mut Worker, reply: Reply) -> Action {
        worker.metrics.inc(host, &format!("denied.{}", reply.error));
        reply.send(host);
        Action::Pause
    }

    /// The whole decision; run on request headers and again after a wait.
    fn decide(&mut self, host: &mut dyn Host) -> Action {
        let config = self.config.clone();
        let worker_rc = self.worker.clone();
        let Ok(mut worker) = worker_rc.try_borrow_mut() else {
            // Cannot happen (callbacks do not nest); if it did, never let the request through.
            let reply =
                Reply::unavailable("internal", 1, "the gateway cannot verify tokens right now");
            reply.send(host);
            return Action::Pause;
        };
        let worker = &mut *worker;

        let line = match RequestLine::from_host(host, config.path) {
            Ok(line) => line,
            Err(e) => {
                return self.deny(host, worker, Reply::bad_request(e.code(), e.description()))
            }
        };
        let requirement = match route_decision(&config.rules, config.unmatched, &line) {
            RouteDecision::Allow(event) => {
                worker.metrics.inc(host, event);
                return Action::Continue;
            }
            RouteDecision::Deny(reply) => return self.deny(host, worker, reply),
            RouteDecision::Check(requirement) => requirement,
        };

        let mut cred =
            match extract_from_request(host, &config.locations, config.authorization_only, &line) {
                Extracted::None => None,
                Extracted::Several => {
                    return self.deny(host, worker, authn::several_credentials(&config.realm));
                }
                Extracted::One { token, location } => {
                    // Not a JWT at all: left to the next authenticator when configured so. The
                    // token stays in the request and no identity is written.
                    if config.non_jwt_tokens == NonJwtTokens::Pass
                        && token.bytes().filter(|b| *b == b'.').count() != 2
                    {
                        worker.metrics.inc(host, "passed.not_jwt");
                        return Action::Continue;
                    }
                    if token.len() > config.max_token_bytes {
                        let reply = Reply::invalid_token(
                            &config.realm,
                            "token_too_large",
                            description("token_too_large"),
                        );
                        return self.deny(host, worker, reply);
                    }
                    let hash = worker.cache.key(&token);
                    Some(Credential {
                        token,
                        location,
                        hash,
                        parsed: None,
                        budget_slot: None,
                    })
                }
            };

        let mut result = self.eval(host, worker, &mut cred, requirement);
        // Keys another worker fetched meanwhile: take them and evaluate once more.
        if let Eval::Wait(WaitFor::Keys(p) | WaitFor::Kid(p)) = result {
            if worker.sync(host, &config, p) {
                result = self.eval(host, worker, &mut cred, requirement);
            }
        }
        match result {
            Eval::Ok(verified) => {
                worker.waiters.retain(|w| w.context_id != self.context_id);
                self.waiting = None;
                self.admit(host, worker, &verified, cred.as_ref());
                Action::Continue
            }
            Eval::Missing => {
                self.waiting = None;
                self.deny(
                    host,
                    worker,
                    Reply::missing_credential(&config.realm, "a bearer token is required"),
                )
            }
            Eval::Fail(code) => {
                self.waiting = None;
                self.deny(
                    host,
                    worker,
                    Reply::invalid_token(&config.realm, code, description(code)),
                )
            }
            Eval::Wait(what) => self.wait(host, worker, what),
            Eval::Throttled(wait_ms) => {
                self.waiting = None;
                worker.waiters.retain(|w| w.context_id != self.context_id);
                let reply = Reply::new(
                    429,
                    "too_many_failed_verifications",
                    "too many invalid tokens from this client; retry later",
                )
                .with_header("retry-after", wait_ms.div_ceil(1000).max(1).to_string());
                self.deny(host, worker, reply)
            }
        }
    }

    /// Pauses for keys, or gives up if the wait is over or cannot help.
    fn wait(&mut self, host: &mut dyn Host, worker: &mut Worker, what: WaitFor) -> Action {
        let config = self.config.clone();
        let now = host.now_millis();
        let (p, reason) = match what {
            WaitFor::Keys(p) => (p, FetchReason::Missing),
            WaitFor::Kid(p) => (p, FetchReason::UnknownKid),
        };
        let remote = match config.providers.get(p).map(|pr| &pr.keys) {
            Some(KeySource::Remote(remote)) => remote.clone(),
            // Local keys never make a request wait; refuse rather than pass if that changes.
            _ => {
                return self.deny(
                    host,
                    worker,
                    Reply::invalid_token(&config.realm, "unknown_kid", description("unknown_kid")),
                )
            }
        };
        let provider_name = config
            .providers
            .get(p)
            .map(|pr| pr.name.clone())
            .unwrap_or_default();
        let expired = self.waiting.is_some_and(|(_, deadline)| now >= deadline);
        if !expired {
            let started = worker.start_fetch(host, &self.config, p, reason);
            let in_flight =
                keys::read_meta(host, &worker.plugin, &provider_name).fetching_until_ms > now;
            if started || in_flight {
                let deadline = self
                    .waiting
                    .map_or(now.saturating_add(remote.timeout_ms), |(_, d)| d);
                self.waiting = Some((what, deadline));
                worker.waiters.retain(|w| w.context_id != self.context_id);
                worker.waiters.push(Waiter {
                    context_id: self.context_id,
                    provider: p,
                    deadline_ms: deadline,
                });
                worker.metrics.inc(host, "waiting");
                return Action::Pause;
            }
        }
        self.waiting = None;
        worker.waiters.retain(|w| w.context_id != self.context_id);
        match what {
            WaitFor::Kid(_) => {
                let reply =
                    Reply::invalid_token(&config.realm, "unknown_kid", description("unknown_kid"));
                self.deny(host, worker, reply)
            }
            WaitFor::Keys(_) => {
                let retry = (remote.refetch_min_interval_ms / 1000).max(1);
                let reply = Reply::unavailable(
                    "jwks_unavailable",
                    retry,
                    "the gateway cannot verify tokens right now",
                );
                self.deny(host, worker, reply)
            }
        }
    }

    /// The request passes: identity context, upstream headers, credential removal.
    fn admit(
        &self,
        host: &mut dyn Host,
        worker: &mut Worker,
        verified: &[Rc<Verified>],
        cred: Option<&Credential>,
    ) {
        let config = &*self.config;
        let Some(first) = verified.first() else {
            worker.metrics.inc(host, "allowed.no_token");
            return;
        };
        // The common case, one verification and no earlier authenticator: write the identity
        // serialised once at verification (a cache hit then costs no JSON work).
        let earlier = host
            .property(&[IDENTITY_PROPERTY])
            .is_some_and(|b| !b.is_empty());
        let written = if verified.len() == 1 && !earlier && !first.identity_json.is_empty() {
            host.write_identity(&first.identity, &first.identity_json)
        } else {
            let mut identity = Identity::clone(&first.identity);
            for v in verified.iter().skip(1) {
                identity.merge(Identity::clone(&v.identity));
            }
            identity.merge_and_write(host).map(|_| ())
        };
        if written.is_err() {
            (host as &dyn Host).warn("could not write the identity context");
        }
        for v in verified {
            let Some(provider) = config.providers.get(v.provider) else {
                continue;
            };
            set_claim_headers(host, &v.identity.claims, &provider.claim_to_headers);
            if let Some(h) = &provider.forward_payload_header {
                host.set_request_header(h, Some(&v.payload_b64));
            }
        }
        let forward = verified
            .iter()
            .all(|v| config.providers.get(v.provider).is_some_and(|p| p.forward));
        if let (false, Some(cred)) = (forward, cred) {
            if let Some(loc) = config.locations.get(cred.location) {
                remove_credential(host, loc);
            }
        }
        worker.metrics.inc(host, "allowed");
    }
}

impl StreamFilter for JwtStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        // A client must never be able to send what this filter asserts upstream.
        remove_owned_headers(host, &self.config.owned_headers);
        self.decide(host)
    }

    fn on_wake(&mut self, host: &mut dyn Host) -> Action {
        self.decide(host)
    }

    fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) -> Action {
        // A JWKS fetch this stream started: store it for everyone, then decide.
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.fetch_done(host, &self.config, token, &response);
            worker.waiters.retain(|w| w.context_id != self.context_id);
        }
        if self.waiting.is_some() {
            return self.decide(host);
        }
        Action::Continue
    }

    fn on_done(&mut self, _host: &mut dyn Host) {
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.waiters.retain(|w| w.context_id != self.context_id);
        }
    }
}

/// Shared-data key of one provider's key set (for tests and operators).
pub fn jwks_key(plugin: &str, provider: &str) -> String {
    keys::keys_key(plugin, provider)
}
