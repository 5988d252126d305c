//! The root and stream filters: match rules, take tokens, reply, ask the rate-limit service.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use shieldwall_core::decision::Decision as Recorded;
use shieldwall_core::hash::IdMap;
use shieldwall_core::metrics::Metrics;
use shieldwall_core::{
    shared, Action, ConfigError, GrpcResponse, Host, Identity, LogLevel, Reply, RequestLine,
    RootFilter, StreamFilter,
};

use crate::bucket::{Decision, Limit};
use crate::client_ip::client_ip;
use crate::config::{Config, FailureMode, HeadersMode, KeySource, Rule};
use crate::headers::{limit_item, policy_item, retry_after_secs};
use crate::rls;
use crate::table::{self, SlotUse};

/// The name of this filter in shared-data keys and metrics.
pub const FILTER: &str = "rate_limit";

pub const RLS_SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const RLS_METHOD: &str = "ShouldRateLimit";

/// Per worker: the plugin name, the hash seed, the metric ids and the leases. (The answer of an
/// RLS call reaches the stream that made it: core's adapter routes callout replies by token.)
pub struct Worker {
    plugin: String,
    seed: u64,
    metrics: Metrics,
    /// Per rule (in the configuration's order), the names its requests use, made once.
    names: Vec<RuleNames>,
    leases: Leases,
}

/// The names a rule's requests use, made at configuration rather than on every request: its
/// `admitted` counter (counted on most requests) and its slots' shared-data keys.
struct RuleNames {
    admitted: String,
    slots: table::SlotKeys,
}

/// The most leases a worker keeps (one per rule and busy key); when they are all live, a rule
/// takes single tokens, exactly, until some end.
pub const MAX_LEASES: usize = 4096;
/// How long a lease lasts at most (and at most its limit's period): then its left-over tokens go
/// back to the shared bucket with the worker's next take for that key, so a worker never sits
/// on tokens another worker could use for longer.
pub const LEASE_MS: u64 = 1000;

/// Tokens a worker took from a key's shared bucket in one update and spends locally, without a
/// shared-data read or write per request (rules with `lease_tokens` above 1).
struct Lease {
    tokens: u64,
    /// The limit they were taken under: a request under another tier's limit does not use them.
    limit: Limit,
    expires_ms: u64,
    /// What the shared bucket held once the lease was taken (for the `RateLimit` header).
    decision: Decision,
}

#[derive(Default)]
struct Leases {
    /// By (rule index, key fingerprint): the fingerprint is keyed by the plugin's random seed,
    /// so no client can choose colliding keys ([`IdMap`]).
    map: IdMap<(usize, u64), Lease>,
}

impl Leases {
    /// Spends a leased token for this rule and key, if a live lease under `limit` has one.
    fn spend(&mut self, rule: usize, fp: u64, limit: &Limit, now_ms: u64) -> Option<Decision> {
        let entry = self.map.get_mut(&(rule, fp))?;
        if entry.expires_ms <= now_ms || entry.limit != *limit || entry.tokens == 0 {
            return None;
        }
        entry.tokens -= 1;
        let mut d = entry.decision;
        d.remaining = d.remaining.saturating_add(entry.tokens);
        Some(d)
    }

    /// Ends the lease of this rule and key: the tokens it had left, to go back to the bucket.
    fn end(&mut self, rule: usize, fp: u64) -> u64 {
        self.map.remove(&(rule, fp)).map_or(0, |l| l.tokens)
    }

    /// Whether a new lease can be kept (ended and empty leases make room first).
    fn room(&mut self, now_ms: u64) -> bool {
        if self.map.len() >= MAX_LEASES {
            self.map
                .retain(|_, l| l.expires_ms > now_ms && l.tokens > 0);
        }
        self.map.len() < MAX_LEASES
    }

    fn keep(&mut self, rule: usize, fp: u64, tokens: u64, limit: Limit, now_ms: u64, d: Decision) {
        let lifetime = LEASE_MS.min(limit.period_ms).max(1);
        self.map.insert(
            (rule, fp),
            Lease {
                tokens,
                limit,
                expires_ms: now_ms.saturating_add(lifetime),
                decision: d,
            },
        );
    }

    /// A leased token a refused request does not use goes back to the lease.
    fn give_back(&mut self, rule: usize, fp: u64) {
        if let Some(l) = self.map.get_mut(&(rule, fp)) {
            l.tokens = l.tokens.saturating_add(1);
        }
    }
}

pub struct RateLimit {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
}

impl RootFilter for RateLimit {
    type Stream = RateLimitStream;
    const NAME: &'static str = "rate_limit";

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(config)?;
        let plugin = (host as &dyn Host).plugin_name();
        let seed = table::load_seed(host, FILTER, &plugin, shared::worker_id());
        let names = config
            .rules
            .iter()
            .map(|r| RuleNames {
                admitted: metric(r, "admitted"),
                slots: table::SlotKeys::new(FILTER, &plugin, &r.name),
            })
            .collect();
        Ok(RateLimit {
            config: Rc::new(config),
            worker: Rc::new(RefCell::new(Worker {
                plugin,
                seed,
                metrics: Metrics::new(FILTER),
                names,
                leases: Leases::default(),
            })),
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> RateLimitStream {
        RateLimitStream {
            config: self.config.clone(),
            worker: self.worker.clone(),
            verdicts: Vec::new(),
            pending: None,
        }
    }
}

/// What one rule decided for this request.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub rule: usize,
    pub key: String,
    pub limit: Limit,
    pub decision: Decision,
    /// The slot a token was taken from (to give it back if the request is refused after all).
    pub slot: Option<String>,
    /// The key's fingerprint when the token came from this worker's lease (given back there).
    pub leased: Option<u64>,
}

pub struct RateLimitStream {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
    verdicts: Vec<Verdict>,
    /// The token of the RLS call in flight.
    pending: Option<u32>,
}

fn metric(rule: &Rule, event: &str) -> String {
    format!("rule.{}.{event}", rule.name)
}

impl RateLimitStream {
    fn rule(&self, i: usize) -> Option<&Rule> {
        self.config.rules.get(i)
    }

    /// The key and limit of a rule for this request, or `None` when the rule does not apply
    /// (a header or identity key the request does not have).
    fn key_and_limit(
        &self,
        host: &dyn Host,
        rule: &Rule,
        identity: &mut Option<Option<Rc<Identity>>>,
    ) -> Option<(String, Limit)> {
        let mut ident = |host: &dyn Host| -> Option<Rc<Identity>> {
            identity
                .get_or_insert_with(|| self.config.identity_from.read(host))
                .clone()
        };
        let key = match &rule.key {
            // Envoy always knows the peer; if a host did not, every such request shares one bucket.
            KeySource::ClientIp => {
                client_ip(host, self.config.xff_trusted_hops).unwrap_or_else(|| "-".to_string())
            }
            KeySource::Header(name) => host.request_header(name)?,
            KeySource::Identity(field) => ident(host)?.field(field)?,
        };
        let limit = match &rule.tiers {
            Some(tiers) => ident(host)
                .and_then(|i| i.field(&tiers.identity))
                .and_then(|tier| tiers.limits.get(&tier).copied())
                .unwrap_or(rule.limit),
            None => rule.limit,
        };
        Some((key, limit))
    }

    fn decide(&mut self, host: &mut dyn Host) -> Action {
        let config = self.config.clone();
        let worker_rc = self.worker.clone();
        let Ok(mut guard) = worker_rc.try_borrow_mut() else {
            Reply::unavailable(
                "internal",
                1,
                "the gateway cannot apply rate limits right now",
            )
            .send(host);
            return Action::Pause;
        };
        let worker = &mut *guard;
        let line = match RequestLine::from_host(host, config.path) {
            Ok(line) => line,
            Err(e) => {
                worker.metrics.inc(host, &format!("denied.{}", e.code()));
                Reply::bad_request(e.code(), e.description()).send(host);
                return Action::Pause;
            }
        };
        let now = (host as &dyn Host).now_millis();
        let mut identity = None;
        let mut refused = false;
        for (i, rule) in config.rules.iter().enumerate() {
            if rule.matcher.matches(&line).is_none() {
                continue;
            }
            let Some((key, limit)) = self.key_and_limit(&*host, rule, &mut identity) else {
                worker.metrics.inc(host, &metric(rule, "skipped"));
                continue;
            };
            let fp = table::fingerprint(worker.seed, &rule.name, &key);
            let leasing = rule.lease_tokens > 1;
            if let Some(d) = leasing
                .then(|| worker.leases.spend(i, fp, &limit, now))
                .flatten()
            {
                // A token this worker leased earlier: no shared-data call.
                self.verdicts.push(Verdict {
                    rule: i,
                    key,
                    limit,
                    decision: d,
                    slot: None,
                    leased: Some(fp),
                });
                continue;
            }
            // An ended lease's left-over tokens go back in the same update.
            let returning = if leasing { worker.leases.end(i, fp) } else { 0 };
            let want = if leasing && worker.leases.room(now) {
                rule.lease_tokens
            } else {
                1
            };
            let index = fp % rule.slots;
            let slot = match worker.names.get(i) {
                Some(names) => names.slots.key(index),
                None => table::slot_key(FILTER, &worker.plugin, &rule.name, index),
            };
            let taken = table::take_up_to(host, &slot, fp, &limit, now, want, returning);
            let (decision, slot) = match taken {
                Ok((mut d, using, taken)) => {
                    match using {
                        SlotUse::Shared => worker.metrics.inc(host, &metric(rule, "slot.shared")),
                        SlotUse::Reclaimed => {
                            worker.metrics.inc(host, &metric(rule, "slot.reclaimed"))
                        }
                        SlotUse::Own | SlotUse::Fresh => {}
                    }
                    if taken > 1 {
                        worker.leases.keep(i, fp, taken - 1, limit, now, d);
                        worker.metrics.inc(host, &metric(rule, "leased"));
                        d.remaining = d.remaining.saturating_add(taken - 1);
                    }
                    let taken = d.admitted.then_some(slot);
                    (d, taken)
                }
                // A slot so contended that every CAS attempt lost is a key under a flood, and a
                // store that fails cannot count: refuse (fail closed) and count it.
                Err(e) => {
                    worker.metrics.inc(host, &metric(rule, "store_error"));
                    host.log(
                        LogLevel::Warn,
                        &format!(
                            "rate-limit: rule {}: shared data update failed: {e:?}",
                            rule.name
                        ),
                    );
                    let d = Decision {
                        admitted: false,
                        remaining: 0,
                        retry_after_ms: 1000,
                        full_in_ms: 1000,
                    };
                    (d, None)
                }
            };
            refused |= !decision.admitted;
            self.verdicts.push(Verdict {
                rule: i,
                key,
                limit,
                decision,
                slot,
                leased: None,
            });
            // Once refused, later rules need not spend a token (unless only watching).
            if refused && !config.shadow {
                break;
            }
        }

        if refused {
            let refusing: Vec<usize> = self
                .verdicts
                .iter()
                .filter(|v| !v.decision.admitted)
                .map(|v| v.rule)
                .collect();
            if config.shadow {
                host.record_decision(&Recorded::shadow_deny("rate_limited", 429));
                for &i in &refusing {
                    if let Some(rule) = self.rule(i) {
                        worker.metrics.inc(host, &metric(rule, "shadow_limited"));
                        host.log(
                            LogLevel::Info,
                            &format!("rate-limit: shadow: rule {} would refuse", rule.name),
                        );
                    }
                }
            } else {
                let retry_ms = self
                    .verdicts
                    .iter()
                    .filter(|v| !v.decision.admitted)
                    .map(|v| v.decision.retry_after_ms)
                    .max()
                    .unwrap_or(1000);
                for &i in &refusing {
                    if let Some(rule) = self.rule(i) {
                        worker.metrics.inc(host, &metric(rule, "limited"));
                    }
                }
                drop_tokens(host, &mut worker.leases, &mut self.verdicts, now);
                let names: Vec<&str> = refusing
                    .iter()
                    .filter_map(|&i| self.rule(i).map(|r| r.name.as_str()))
                    .collect();
                Reply::new(
                    429,
                    "rate_limited",
                    format!("too many requests (rule {})", names.join(", ")),
                )
                .with_header("retry-after", retry_after_secs(retry_ms).to_string())
                .send(host);
                return Action::Pause;
            }
        }

        if let Some(global) = &config.global {
            let descriptors: Vec<Vec<(String, String)>> = self
                .verdicts
                .iter()
                .filter_map(|v| {
                    self.rule(v.rule)
                        .map(|r| vec![(r.name.clone(), v.key.clone())])
                })
                .collect();
            if !descriptors.is_empty() {
                let message = rls::encode_request(&global.domain, &descriptors, 1);
                match host.grpc_call(
                    &global.cluster,
                    RLS_SERVICE,
                    RLS_METHOD,
                    &[],
                    &message,
                    Duration::from_millis(global.timeout_ms),
                ) {
                    Ok(token) => {
                        self.pending = Some(token);
                        return Action::Pause;
                    }
                    Err(e) => {
                        host.log(
                            LogLevel::Warn,
                            &format!("rate-limit: cannot call the rate-limit service: {e:?}"),
                        );
                        drop(guard);
                        return self.global_failed(host);
                    }
                }
            }
        }
        self.admitted(host, worker);
        Action::Continue
    }

    fn admitted(&self, host: &mut dyn Host, worker: &mut Worker) {
        for v in &self.verdicts {
            if let Some(names) = worker.names.get(v.rule) {
                if v.decision.admitted {
                    worker.metrics.inc(host, &names.admitted);
                }
            }
        }
    }

    /// The rate-limit service did not answer usefully: follow `failure_mode`.
    fn global_failed(&mut self, host: &mut dyn Host) -> Action {
        let config = self.config.clone();
        let worker_rc = self.worker.clone();
        let Ok(mut worker) = worker_rc.try_borrow_mut() else {
            return Action::Continue;
        };
        for v in &self.verdicts {
            if let Some(rule) = self.rule(v.rule) {
                worker.metrics.inc(host, &metric(rule, "global_error"));
            }
        }
        let mode = config
            .global
            .as_ref()
            .map(|g| g.failure_mode)
            .unwrap_or_default();
        if mode == FailureMode::Allow || config.shadow {
            host.record_decision(&Recorded::allow("rate_limit_service_unavailable"));
            self.admitted(host, &mut worker);
            return Action::Continue;
        }
        let now = (host as &dyn Host).now_millis();
        drop_tokens(host, &mut worker.leases, &mut self.verdicts, now);
        Reply::unavailable(
            "rate_limit_unavailable",
            1,
            "the rate-limit service is unavailable",
        )
        .send(host);
        Action::Pause
    }

    fn global_answer(&mut self, host: &mut dyn Host, response: GrpcResponse) -> Action {
        let decoded = match (response.status, &response.message) {
            (0, Some(bytes)) => rls::decode_response(bytes).ok(),
            _ => None,
        };
        let Some(decoded) = decoded else {
            return self.global_failed(host);
        };
        let code = decoded.overall_code;
        match code {
            rls::Code::Ok => {
                if let Ok(mut worker) = self.worker.clone().try_borrow_mut() {
                    self.admitted(host, &mut worker);
                }
                Action::Continue
            }
            rls::Code::OverLimit => {
                let config = self.config.clone();
                let worker_rc = self.worker.clone();
                let Ok(mut worker) = worker_rc.try_borrow_mut() else {
                    return Action::Continue;
                };
                let event = if config.shadow {
                    "global_shadow_limited"
                } else {
                    "global_limited"
                };
                // The statuses answer the descriptors in order, one a rule that applied: count
                // the rules the service refused (all of them when it named none).
                let named = decoded.statuses.len() == self.verdicts.len();
                for (i, v) in self.verdicts.iter().enumerate() {
                    let refused = !named
                        || decoded
                            .statuses
                            .get(i)
                            .is_some_and(|s| s.code == rls::Code::OverLimit);
                    if let Some(rule) = self.rule(v.rule).filter(|_| refused) {
                        worker.metrics.inc(host, &metric(rule, event));
                    }
                }
                if config.shadow {
                    host.record_decision(&Recorded::shadow_deny("rate_limited", 429));
                    self.admitted(host, &mut worker);
                    return Action::Continue;
                }
                let now = (host as &dyn Host).now_millis();
                drop_tokens(host, &mut worker.leases, &mut self.verdicts, now);
                Reply::new(429, "rate_limited", "too many requests (global limit)")
                    .with_header("retry-after", global_retry_after(&decoded).to_string())
                    .send(host);
                Action::Pause
            }
            _ => self.global_failed(host),
        }
    }
}

/// `Retry-After` for a global refusal: the longest `duration_until_reset` among the descriptors
/// the service refused (all of them must reset before the request can pass), at least 1; 1 when
/// the service gave none.
fn global_retry_after(response: &rls::RlsResponse) -> u64 {
    response
        .statuses
        .iter()
        .filter(|s| s.code == rls::Code::OverLimit)
        .filter_map(|s| s.duration_until_reset_s)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// Gives back the tokens a refused request took from buckets (or this worker's leases) that had
/// admitted it.
fn drop_tokens(host: &mut dyn Host, leases: &mut Leases, verdicts: &mut [Verdict], now: u64) {
    for v in verdicts.iter_mut() {
        let returned = if let Some(slot) = v.slot.take() {
            table::give_back(host, &slot, &v.limit, now);
            true
        } else if let Some(fp) = v.leased.take() {
            leases.give_back(v.rule, fp);
            true
        } else {
            false
        };
        if returned {
            v.decision.remaining = v.decision.remaining.saturating_add(1).min(v.limit.burst);
        }
    }
}

impl StreamFilter for RateLimitStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        self.decide(host)
    }

    fn on_grpc_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: GrpcResponse,
    ) -> Action {
        (host as &dyn Host).debug_with(|| {
            format!(
                "rate-limit: rate-limit service answered: grpc status {}",
                response.status
            )
        });
        if self.pending != Some(token) {
            // Not our call: stay as we are (paused if our own call is still out).
            return if self.pending.is_some() {
                Action::Pause
            } else {
                Action::Continue
            };
        }
        self.pending = None;
        self.global_answer(host, response)
    }

    fn on_response_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        if self.config.headers != HeadersMode::Draft || self.verdicts.is_empty() {
            return Action::Continue;
        }
        let mut policy = Vec::with_capacity(self.verdicts.len());
        let mut state = Vec::with_capacity(self.verdicts.len());
        for v in &self.verdicts {
            if let Some(rule) = self.rule(v.rule) {
                policy.push(policy_item(&rule.name, &v.limit));
                state.push(limit_item(&rule.name, &v.decision));
            }
        }
        // Replace what an upstream may have sent: these describe this gateway's limits.
        host.set_response_header("ratelimit-policy", Some(&policy.join(", ")));
        host.set_response_header("ratelimit", Some(&state.join(", ")));
        Action::Continue
    }
}
