//! The token-introspection filter: which rule applies, which credential, what the cache and the
//! IdP say of it, and what the stream does with the answer (continue with an identity, deny, or
//! wait for the one introspection of this token in flight).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value};
use shieldwall_core::authn::{
    self, identity_from_claims, remove_owned_headers, route_decision, set_claim_headers,
    RouteDecision,
};
use shieldwall_core::budget::{self, Charge};
use shieldwall_core::credential::{extract_from_request, remove_credential, Extracted};
use shieldwall_core::hash::IdMap;
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::memo::TokenMemo;
use shieldwall_core::metrics::Metrics;
use shieldwall_core::{shared, slots};
use shieldwall_core::{
    Action, CalloutResponse, ConfigError, Host, Identity, Reply, RequestLine, RootFilter,
    StreamFilter,
};

use crate::answer::{self, active_ttl_s, classify, description, Answer};
use crate::cache::{Keyer, Table, TokenKey, FILTER};
use crate::config::{form_encode, Config, Provider, Requirement};
use crate::flight::{self, Claim, State, MARGIN_MS};

/// How often each worker looks again for the answers its waiting requests wait for.
pub const TICK: Duration = Duration::from_millis(100);

/// The stable code of "the IdP did not answer usably" inside an evaluation.
const IDP_UNAVAILABLE: &str = "idp_unavailable";

/// An introspection callout of this worker.
struct Flight {
    provider: usize,
    key: TokenKey,
    flight: u64,
    /// The flight's marker slot (`None`: the slot was busy, no marker).
    slot: Option<String>,
    started_ms: u64,
}

/// The answer caches of one provider: the shared tables, and this worker's memo of the tokens it
/// found there (a hit then needs no HMAC, no shared-data read and no JSON parsing). A memo entry
/// ends when the shared entry it was read from ends, so it never stretches `max_ttl_s`.
struct Tables {
    active: Table,
    inactive: Table,
    memo: TokenMemo<Rc<Known>>,
}

/// An active answer as requests use it: the identity context its members establish (the
/// members themselves are the identity's `claims`), serialised once (a hit from the memo then
/// costs no JSON work).
pub struct Known {
    identity: Rc<Identity>,
    identity_json: Vec<u8>,
}

impl Known {
    fn new(members: Map<String, Value>, provider: &Provider) -> Known {
        let identity = identity_from_claims(members, "introspection", &provider.tenant_claim);
        let identity_json = serde_json::to_vec(&identity).unwrap_or_default();
        Known {
            identity: Rc::new(identity),
            identity_json,
        }
    }

    fn members(&self) -> &Map<String, Value> {
        &self.identity.claims
    }
}

/// Tokens each worker remembers per provider, at most.
const MEMO_ENTRIES: u64 = 4096;

/// What one worker (VM) holds, shared by its root context and its streams.
pub struct Worker {
    plugin: String,
    keyer: Keyer,
    tables: Vec<Tables>,
    metrics: Metrics,
    /// Callout token → flight.
    flights: IdMap<u32, Flight>,
    /// Paused streams waiting for another request's introspection.
    waiters: Vec<u32>,
    next_flight: u64,
    /// The seed of the failure budget's key hash (one per Envoy, from shared data).
    budget_seed: u64,
}

impl Worker {
    fn new_flight_id(&mut self) -> u64 {
        self.next_flight = self.next_flight.wrapping_add(1);
        self.next_flight
    }

    /// Calls the introspection endpoint for `token`. `Err` when the call cannot be made.
    fn start(
        &mut self,
        host: &mut dyn Host,
        provider: &Provider,
        token: &str,
        mut flight: Flight,
    ) -> Result<u32, ()> {
        let e = &provider.endpoint;
        let body = format!(
            "token={}{}{}",
            form_encode(token),
            e.body_hint,
            e.body_credentials
        );
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":path", e.path.as_str()),
            (":authority", e.authority.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
        ];
        if let Some(a) = &e.authorization {
            headers.push(("authorization", a.as_str()));
        }
        let timeout = Duration::from_millis(e.timeout_ms);
        match host.http_call(&e.cluster, &headers, Some(body.as_bytes()), timeout) {
            Ok(token) => {
                self.metrics.inc(host, "callouts");
                flight.started_ms = (host as &dyn Host).now_millis();
                self.flights.insert(token, flight);
                Ok(token)
            }
            Err(err) => {
                self.metrics.inc(host, "callout_errors.dispatch_failed");
                (host as &dyn Host).error(&format!(
                    "provider {}: cannot call cluster {}: {err:?}",
                    provider.name, e.cluster
                ));
                if let Some(slot) = &flight.slot {
                    flight::finish(
                        host,
                        slot,
                        &flight.key,
                        flight.flight,
                        State::Error("dispatch_failed".into()),
                    );
                }
                Err(())
            }
        }
    }

    /// An introspection callout came back (to its stream, or to the root when the stream left):
    /// cache the answer, publish it to the waiters, wake this worker's waiters.
    fn complete(
        &mut self,
        host: &mut dyn Host,
        config: &Config,
        token: u32,
        response: &CalloutResponse,
    ) -> Option<(usize, Answer)> {
        let f = self.flights.remove(&token)?;
        let provider = config.providers.get(f.provider)?;
        let answer = classify(response);
        let now_ms = (host as &dyn Host).now_millis();
        let now_s = now_ms / 1000;
        self.metrics.histogram(
            host,
            "callout.latency_ms",
            now_ms.saturating_sub(f.started_ms),
        );
        let state = match &answer {
            Answer::Active(members) => {
                self.metrics.inc(host, "introspected.active");
                let payload = serde_json::to_string(&**members).unwrap_or_default();
                let ttl = active_ttl_s(members, now_s, provider.max_ttl_s);
                if ttl > 0 {
                    if let Some(t) = self.tables.get(f.provider) {
                        store(
                            host,
                            &mut self.metrics,
                            &t.active,
                            &f.key,
                            now_s + ttl,
                            &payload,
                        );
                    }
                }
                State::Active(payload)
            }
            Answer::Inactive => {
                self.metrics.inc(host, "introspected.inactive");
                if provider.negative_ttl_s > 0 {
                    if let Some(t) = self.tables.get(f.provider) {
                        store(
                            host,
                            &mut self.metrics,
                            &t.inactive,
                            &f.key,
                            now_s + provider.negative_ttl_s,
                            "-",
                        );
                    }
                }
                State::Inactive
            }
            Answer::Error(code) => {
                self.metrics.inc(host, &format!("callout_errors.{code}"));
                (host as &dyn Host).warn(&format!(
                    "provider {}: introspection failed ({code}){}",
                    provider.name,
                    response
                        .status
                        .map(|s| format!(", status {s}"))
                        .unwrap_or_default()
                ));
                State::Error((*code).to_string())
            }
        };
        if let Some(slot) = &f.slot {
            flight::finish(host, slot, &f.key, f.flight, state);
        }
        self.wake_all(host);
        Some((f.provider, answer))
    }

    fn wake_all(&mut self, host: &mut dyn Host) {
        for id in std::mem::take(&mut self.waiters) {
            host.wake_stream(id);
        }
    }
}

fn store(
    host: &mut dyn Host,
    metrics: &mut Metrics,
    table: &Table,
    key: &TokenKey,
    until: u64,
    payload: &str,
) {
    match table.put(host, key, until, payload) {
        Ok(true) => metrics.inc(host, "cache.evicted"),
        Ok(false) => {}
        Err(_) => metrics.inc(host, "cache.store_failed"),
    }
}

/// The root context: configuration and the worker's state.
pub struct TokenIntrospection {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
}

impl TokenIntrospection {
    /// The number of live entries in a provider's caches (active, inactive), for tests.
    pub fn cached(&self, host: &dyn Host, provider: usize) -> Option<(u64, u64)> {
        let worker = self.worker.try_borrow().ok()?;
        let t = worker.tables.get(provider)?;
        let now = host.now_secs();
        Some((t.active.count(host, now), t.inactive.count(host, now)))
    }
}

impl RootFilter for TokenIntrospection {
    type Stream = IntrospectionStream;
    const NAME: &'static str = FILTER;

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::from_host(host, config)?;
        let plugin = (host as &dyn Host).plugin_name();
        let keyer = Keyer::load(host, &plugin, shieldwall_core::shared::random_bytes());
        let tables = config
            .providers
            .iter()
            .map(|p| Tables {
                active: Table::new(&plugin, &p.name, "active", p.positive),
                inactive: Table::new(&plugin, &p.name, "inactive", p.negative),
                memo: TokenMemo::new(
                    usize::try_from(p.positive.entries().min(MEMO_ENTRIES)).unwrap_or(0),
                ),
            })
            .collect();
        let budget_seed = match config.budget {
            Some(_) => slots::load_seed(host, FILTER, &plugin, shared::worker_id()),
            None => 0,
        };
        host.set_tick_period(TICK);
        Ok(TokenIntrospection {
            config: Rc::new(config),
            worker: Rc::new(RefCell::new(Worker {
                plugin,
                keyer,
                tables,
                metrics: Metrics::new(FILTER),
                flights: IdMap::default(),
                waiters: Vec::new(),
                next_flight: shared::worker_id(),
                budget_seed,
            })),
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, context_id: u32) -> IntrospectionStream {
        IntrospectionStream {
            answers: vec![None; self.config.providers.len()],
            config: self.config.clone(),
            worker: self.worker.clone(),
            context_id,
            waiting: None,
            budget_slot: None,
        }
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        // Waiters look again: another worker's answer may be in shared data now.
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.wake_all(host);
        }
    }

    fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) {
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.complete(host, &self.config, token, &response);
        }
    }
}

/// Why a request is paused.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    provider: usize,
    /// `Some(f)`: waiting for flight `f` of another request; `None`: for this stream's callout.
    flight: Option<u64>,
    deadline_ms: u64,
}

/// The credential of one request, with its cache key per provider (computed at most once).
struct Credential {
    token: String,
    location: usize,
    keys: Vec<Option<TokenKey>>,
}

type Accepted = (usize, Rc<Known>);
type Eval = authn::Eval<Accepted, usize>;

/// What a wait step decided.
enum Step {
    Pause,
    /// An answer arrived: evaluate again.
    Again,
    Deny(Reply, &'static str),
}

pub struct IntrospectionStream {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
    context_id: u32,
    /// Answers this request received from the IdP, per provider: fresher than any cache.
    answers: Vec<Option<Answer>>,
    waiting: Option<Waiting>,
    /// The client's slot in the failure budget, looked up at most once per request.
    budget_slot: Option<Option<(String, u64)>>,
}

fn unavailable() -> Reply {
    Reply::unavailable(
        "temporarily_unavailable",
        1,
        "the gateway cannot check the token right now",
    )
}

impl IntrospectionStream {
    fn token_key(
        worker: &Worker,
        provider: &Provider,
        cred: &mut Credential,
        p: usize,
    ) -> TokenKey {
        if let Some(Some(k)) = cred.keys.get(p) {
            return k.clone();
        }
        let k = worker
            .keyer
            .token_key(&provider.endpoint.identity, &cred.token);
        if let Some(slot) = cred.keys.get_mut(p) {
            *slot = Some(k.clone());
        }
        k
    }

    fn check_members(
        &mut self,
        host: &dyn Host,
        known: &Rc<Known>,
        provider: &Provider,
        p: usize,
        audiences: Option<&[String]>,
        now_s: u64,
    ) -> Eval {
        match answer::check(host, known.members(), provider, audiences, now_s) {
            Ok(()) => Eval::Ok(vec![(p, known.clone())]),
            Err(code) => Eval::Fail(code),
        }
    }

    fn check_provider(
        &mut self,
        host: &mut dyn Host,
        worker: &mut Worker,
        cred: &mut Option<Credential>,
        p: usize,
        audiences: Option<&[String]>,
    ) -> Eval {
        let config = self.config.clone();
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
        if cred.token.is_empty() {
            return Eval::Fail("malformed");
        }
        // One clock read for the lookups and the claims' times.
        let now_s = (host as &dyn Host).now_secs();
        match self.answers.get(p).cloned().flatten() {
            Some(Answer::Active(members)) => {
                let known = Rc::new(Known::new((*members).clone(), provider));
                return self.check_members(host, &known, provider, p, audiences, now_s);
            }
            Some(Answer::Inactive) => return Eval::Fail("inactive"),
            Some(Answer::Error(_)) => return Eval::Fail(IDP_UNAVAILABLE),
            None => {}
        }
        let remembered = worker
            .tables
            .get_mut(p)
            .and_then(|t| t.memo.get(&cred.token, now_s));
        if let Some(members) = remembered {
            worker.metrics.inc(host, "cache.hit");
            return self.check_members(host, &members, provider, p, audiences, now_s);
        }
        let key = Self::token_key(worker, provider, cred, p);
        let Some(tables) = worker.tables.get_mut(p) else {
            return Eval::Fail("malformed");
        };
        let hit = tables
            .active
            .get(host, &key, now_s)
            .and_then(
                |(payload, expires_s)| match serde_json::from_str::<Value>(&payload) {
                    Ok(Value::Object(m)) => Some((Rc::new(Known::new(m, provider)), expires_s)),
                    _ => None,
                },
            );
        if let Some((members, expires_s)) = hit {
            tables.memo.insert(&cred.token, members.clone(), expires_s);
            worker.metrics.inc(host, "cache.hit");
            return self.check_members(host, &members, provider, p, audiences, now_s);
        }
        if tables.inactive.get(host, &key, now_s).is_some() {
            worker.metrics.inc(host, "cache.hit_negative");
            return Eval::Fail("inactive");
        }
        if self.waiting.is_none() {
            // A client whose inactive tokens spent its budget gets no introspection.
            if let Some(budget) = &config.budget {
                let slot = self.budget_slot.get_or_insert_with(|| {
                    budget::client_slot(host, FILTER, &worker.plugin, worker.budget_seed, budget)
                });
                if let Some(slot) = slot {
                    if let Err(wait_ms) = budget::check(host, budget, slot) {
                        return Eval::Throttled(wait_ms);
                    }
                }
            }
            worker.metrics.inc(host, "cache.miss");
        }
        Eval::Wait(p)
    }

    /// An answer published for flight `flight` in a marker, as this stream's answer.
    fn take_outcome(&mut self, p: usize, state: State) -> bool {
        let answer = match state {
            State::Pending => return false,
            State::Active(payload) => match serde_json::from_str::<Value>(&payload) {
                Ok(Value::Object(m)) => Answer::Active(Rc::new(m)),
                _ => Answer::Error("malformed_answer"),
            },
            State::Inactive => Answer::Inactive,
            State::Error(_) => Answer::Error("idp_error"),
        };
        if let Some(slot) = self.answers.get_mut(p) {
            *slot = Some(answer);
        }
        self.waiting = None;
        true
    }

    /// The provider's answer is not known: wait for the flight in progress, or start one.
    fn wait(
        &mut self,
        host: &mut dyn Host,
        worker: &mut Worker,
        cred: &mut Option<Credential>,
        p: usize,
    ) -> Step {
        let config = self.config.clone();
        let (Some(provider), Some(c)) = (config.providers.get(p), cred.as_mut()) else {
            return Step::Deny(unavailable(), "internal");
        };
        let key = Self::token_key(worker, provider, c, p);
        let slot = flight::slot_key(&worker.plugin, &provider.name, &key, provider.flight_slots);
        let now = (host as &dyn Host).now_millis();
        if let Some(w) = self.waiting.filter(|w| w.provider == p) {
            match w.flight {
                // This stream's own callout is out; its reply resumes the stream.
                None if now < w.deadline_ms.saturating_add(MARGIN_MS) => return Step::Pause,
                None => return Step::Deny(unavailable(), "timeout"),
                Some(f) => match flight::read(host, &slot).filter(|m| m.id == key.id) {
                    Some(m) if m.flight == f => {
                        if m.state == State::Pending {
                            if now >= m.until_ms {
                                self.waiting = None;
                                return Step::Deny(unavailable(), "timeout");
                            }
                            worker.waiters.push(self.context_id);
                            return Step::Pause;
                        }
                        self.take_outcome(p, m.state);
                        return Step::Again;
                    }
                    // A newer flight for the same token: wait for that one.
                    Some(m) if m.is_live_pending(now) => {
                        self.waiting = Some(Waiting {
                            provider: p,
                            flight: Some(m.flight),
                            deadline_ms: m.until_ms,
                        });
                        worker.waiters.push(self.context_id);
                        return Step::Pause;
                    }
                    _ if now >= w.deadline_ms => {
                        self.waiting = None;
                        return Step::Deny(unavailable(), "timeout");
                    }
                    // The flight's outcome is gone and nothing was cached: ask again.
                    _ => self.waiting = None,
                },
            }
        }
        let id = worker.new_flight_id();
        let until = now
            .saturating_add(provider.endpoint.timeout_ms)
            .saturating_add(MARGIN_MS);
        let (slot, owner) = match flight::claim(host, &slot, &key, id, until) {
            Claim::Owner => (Some(slot), true),
            Claim::Wait(f, until) => {
                self.waiting = Some(Waiting {
                    provider: p,
                    flight: Some(f),
                    deadline_ms: until,
                });
                worker.waiters.push(self.context_id);
                worker.metrics.inc(host, "waiting");
                return Step::Pause;
            }
            Claim::Alone => (None, false),
        };
        if !owner {
            worker.metrics.inc(host, "single_flight_bypassed");
        }
        let flight = Flight {
            provider: p,
            key,
            flight: id,
            slot,
            started_ms: now,
        };
        match worker.start(host, provider, &c.token, flight) {
            Ok(_) => {
                self.waiting = Some(Waiting {
                    provider: p,
                    flight: None,
                    deadline_ms: now.saturating_add(provider.endpoint.timeout_ms),
                });
                Step::Pause
            }
            Err(()) => Step::Deny(unavailable(), "idp_unavailable"),
        }
    }

    fn deny(&self, host: &mut dyn Host, worker: &mut Worker, reply: Reply, reason: &str) -> Action {
        worker.metrics.inc(host, &format!("denied.{reason}"));
        reply.send(host);
        Action::Pause
    }

    /// The whole decision; run on request headers and again after each wait.
    fn decide(&mut self, host: &mut dyn Host) -> Action {
        let config = self.config.clone();
        let worker_rc = self.worker.clone();
        let Ok(mut worker) = worker_rc.try_borrow_mut() else {
            unavailable().send(host);
            return Action::Pause;
        };
        let worker = &mut *worker;

        // A token an earlier filter verified (jwt-auth for JWTs, this filter for opaque ones):
        // nothing to introspect. Clients cannot write the identity context.
        if !config.skip_if_verified_by.is_empty() {
            let verified = Identity::read(host).is_some_and(|id| {
                id.auth
                    .iter()
                    .any(|a| config.skip_if_verified_by.contains(a))
            });
            if verified {
                worker.metrics.inc(host, "skipped.verified_before");
                host.record_decision(&shieldwall_core::Decision::allow("verified_before"));
                return Action::Continue;
            }
        }

        let line = match RequestLine::from_host(host, config.path) {
            Ok(line) => line,
            Err(e) => {
                return self.deny(
                    host,
                    worker,
                    Reply::bad_request(e.code(), e.description()),
                    e.code(),
                )
            }
        };
        let requirement = match route_decision(&config.rules, config.unmatched, &line) {
            RouteDecision::Allow(event) => {
                worker.metrics.inc(host, event);
                return Action::Continue;
            }
            RouteDecision::Deny(reply) => {
                return self.deny(host, worker, reply, "no_matching_rule");
            }
            RouteDecision::Check(requirement) => requirement,
        };

        let mut cred =
            match extract_from_request(host, &config.locations, config.authorization_only, &line) {
                Extracted::None => None,
                Extracted::Several => {
                    let reply = authn::several_credentials(&config.realm);
                    return self.deny(host, worker, reply, "several_credentials");
                }
                Extracted::One { token, location } => {
                    if token.len() > config.max_token_bytes {
                        let reply = Reply::invalid_token(
                            &config.realm,
                            "token_too_large",
                            description("token_too_large"),
                        );
                        return self.deny(host, worker, reply, "token_too_large");
                    }
                    Some(Credential {
                        token,
                        location,
                        keys: vec![None; config.providers.len()],
                    })
                }
            };

        // Each round settles at most one provider's answer; a requirement naming n providers
        // needs at most n + 1 rounds.
        for _ in 0..=config.providers.len() {
            let result = self.eval(host, worker, &mut cred, requirement);
            match result {
                Eval::Ok(accepted) => {
                    self.waiting = None;
                    self.admit(host, worker, &accepted, cred.as_ref());
                    return Action::Continue;
                }
                Eval::Missing => {
                    return self.deny(
                        host,
                        worker,
                        Reply::missing_credential(&config.realm, "a bearer token is required"),
                        "missing_token",
                    )
                }
                Eval::Fail(IDP_UNAVAILABLE) => {
                    return self.deny(host, worker, unavailable(), "idp_unavailable")
                }
                Eval::Fail("inactive") => {
                    let reply = Reply::invalid_token(
                        &config.realm,
                        "invalid_token",
                        description("inactive"),
                    );
                    return self.deny(host, worker, reply, "inactive");
                }
                Eval::Fail(code) => {
                    let reply = Reply::invalid_token(&config.realm, code, description(code));
                    return self.deny(host, worker, reply, code);
                }
                Eval::Throttled(wait_ms) => {
                    self.waiting = None;
                    let reply = Reply::new(
                        429,
                        "too_many_failed_verifications",
                        "too many invalid tokens from this client; retry later",
                    )
                    .with_header("retry-after", wait_ms.div_ceil(1000).max(1).to_string());
                    return self.deny(host, worker, reply, "too_many_failed_verifications");
                }
                Eval::Wait(p) => match self.wait(host, worker, &mut cred, p) {
                    Step::Pause => return Action::Pause,
                    Step::Again => continue,
                    Step::Deny(reply, reason) => return self.deny(host, worker, reply, reason),
                },
            }
        }
        self.deny(host, worker, unavailable(), "internal")
    }

    fn eval(
        &mut self,
        host: &mut dyn Host,
        worker: &mut Worker,
        cred: &mut Option<Credential>,
        req: &Requirement,
    ) -> Eval {
        req.evaluate(&mut |p, audiences| self.check_provider(host, worker, cred, p, audiences))
    }

    /// The request passes: identity context, claim headers, credential removal.
    fn admit(
        &self,
        host: &mut dyn Host,
        worker: &mut Worker,
        accepted: &[Accepted],
        cred: Option<&Credential>,
    ) {
        let config = &*self.config;
        if accepted.is_empty() {
            worker.metrics.inc(host, "allowed.no_token");
            return;
        }
        // The common case, one answer and no earlier authenticator: write the identity
        // serialised once per answer.
        let earlier = host
            .property(&[IDENTITY_PROPERTY])
            .is_some_and(|b| !b.is_empty());
        let written = match accepted {
            [(_, only)] if !earlier && !only.identity_json.is_empty() => {
                host.write_identity(&only.identity, &only.identity_json)
            }
            _ => {
                let mut identity = Identity::default();
                for (_, known) in accepted {
                    identity.merge(Identity::clone(&known.identity));
                }
                identity.merge_and_write(host).map(|_| ())
            }
        };
        if written.is_err() {
            (host as &dyn Host).warn("could not write the identity context");
        }
        for (p, known) in accepted {
            if let Some(provider) = config.providers.get(*p) {
                set_claim_headers(host, known.members(), &provider.claim_to_headers);
            }
        }
        let forward = accepted
            .iter()
            .all(|(p, _)| config.providers.get(*p).is_some_and(|pr| pr.forward));
        if let (false, Some(cred)) = (forward, cred) {
            if let Some(loc) = config.locations.get(cred.location) {
                remove_credential(host, loc);
            }
        }
        worker.metrics.inc(host, "allowed");
    }

    /// The IdP called this client's token inactive: one failure from its budget.
    fn charge_budget(&self, host: &mut dyn Host, worker: &mut Worker) {
        let (Some(budget), Some(Some(slot))) = (&self.config.budget, &self.budget_slot) else {
            return;
        };
        match budget::charge(host, budget, slot) {
            Charge::Spent => worker.metrics.inc(host, "budget.spent"),
            Charge::Charged => worker.metrics.inc(host, "budget.charged"),
            Charge::Failed => {
                (host as &dyn Host).warn("could not update the failed-verification budget")
            }
        }
    }

    fn forget(&mut self) {
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.waiters.retain(|w| *w != self.context_id);
        }
    }
}

impl StreamFilter for IntrospectionStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        // A client must never be able to send what this filter asserts upstream.
        remove_owned_headers(host, &self.config.owned_headers);
        self.decide(host)
    }

    fn on_wake(&mut self, host: &mut dyn Host) -> Action {
        self.forget();
        self.decide(host)
    }

    fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) -> Action {
        let done = match self.worker.try_borrow_mut() {
            Ok(mut worker) => {
                let done = worker.complete(host, &self.config, token, &response);
                if let Some((_, Answer::Inactive)) = &done {
                    self.charge_budget(host, &mut worker);
                }
                done
            }
            Err(_) => None,
        };
        let Some((p, answer)) = done else {
            return Action::Continue;
        };
        let mine = self
            .waiting
            .is_some_and(|w| w.provider == p && w.flight.is_none());
        if !mine {
            return Action::Continue;
        }
        if let Some(slot) = self.answers.get_mut(p) {
            *slot = Some(answer);
        }
        self.waiting = None;
        self.decide(host)
    }

    fn on_done(&mut self, _host: &mut dyn Host) {
        self.forget();
    }
}
