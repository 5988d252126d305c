//! Several filters run as one: a [`Chain`] holds the root filters of its stages and creates one
//! [`ChainStream`] per request, which runs the stages' stream filters in order inside one VM
//! context, the way Envoy runs separate filters one after another.
//!
//! - Request headers: stage 1, then, on `Continue`, stage 2, and so on. A stage that sends a
//!   local reply stops the walk; a stage that pauses holds it, and the walk resumes from that
//!   stage when it is woken or gets its callout reply and answers `Continue`.
//! - Response headers: every stage that saw the request, last one first (Envoy's encoder order).
//!   Stages the walk never reached are skipped, as Envoy skips a module whose stream context
//!   never ran.
//! - Log and done: every stage, as Envoy logs every filter of the chain.
//! - Callouts (HTTP and gRPC) are routed by token to the stage that started them, in the stream
//!   or, when the stream is gone or a root started them, to that stage's root. A wake-up is
//!   delivered only to the stage whose root (or stream) asked for it, and only while the walk
//!   is paused at that stage.
//! - Ticks: each stage keeps its own period; the chain ticks at the shortest and serves each stage
//!   on the ticks its period asks for, never later ([`crate::tick`]).
//! - Request headers are read from the proxy once per request: the stages share what one of them
//!   read, and their own writes (set, remove) update that copy. So is the request line: parsed
//!   and normalised by the first stage that reads it, taken as it is by the later ones with the
//!   same path options, parsed again after a stage rewrites `:path` or `:method`.
//! - The identity context (`shieldwall.identity`) a stage writes is still written to the proxy
//!   (access logs, later modules), and kept in memory for the later stages of the same request,
//!   which then read it without a call to the proxy, and, when written as a value
//!   (`Identity::merge_and_write`, or an authenticator's cached identity), without parsing it
//!   either: they share that value (`Rc<Identity>`), claims included, without a copy each.
//! - So are the decisions the stages record (`shieldwall.decision.<filter>`): written to the
//!   proxy once each, and read back by later stages (audit-log's record) from memory.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::decision::{self, Decision};
use crate::filter::{Action, RootFilter, StreamFilter};
use crate::hash::{IdMap, IdSet};
use crate::host::{CalloutResponse, GrpcResponse, Host, HostError, LogLevel, MetricKind};
use crate::identity::{Identity, IDENTITY_PROPERTY};
use crate::route::{PathOptions, RequestLine};

/// The root side of one stage, object-safe; every [`RootFilter`] is one.
pub trait Stage {
    /// The filter's name (`jwt_auth`).
    fn name(&self) -> &'static str;
    fn new_stream(&mut self, host: &mut dyn Host, context_id: u32) -> Box<dyn StreamFilter>;
    fn on_tick(&mut self, host: &mut dyn Host);
    fn on_http_call_response(&mut self, host: &mut dyn Host, token: u32, response: CalloutResponse);
    fn on_grpc_call_response(&mut self, host: &mut dyn Host, token: u32, response: GrpcResponse);
}

impl<F: RootFilter> Stage for F {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn new_stream(&mut self, host: &mut dyn Host, context_id: u32) -> Box<dyn StreamFilter> {
        Box::new(RootFilter::new_stream(self, host, context_id))
    }
    fn on_tick(&mut self, host: &mut dyn Host) {
        RootFilter::on_tick(self, host)
    }
    fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) {
        RootFilter::on_http_call_response(self, host, token, response)
    }
    fn on_grpc_call_response(&mut self, host: &mut dyn Host, token: u32, response: GrpcResponse) {
        RootFilter::on_grpc_call_response(self, host, token, response)
    }
}

/// What the root and the streams of one chain share (one worker): who started which callout,
/// who asked to wake which stream, each stage's tick period.
#[derive(Default)]
struct Routing {
    /// Callouts not yet answered → the stage that started them.
    callouts: IdMap<u32, usize>,
    /// Streams alive in this worker (wake-ups for others are dropped).
    live: IdSet<u32>,
    /// Stream → the stages that asked to wake it (bit i = stage i).
    wakes: IdMap<u32, u64>,
    /// Per stage: its tick period (zero: none).
    periods: Vec<Duration>,
    /// Per stage: every how many chain ticks it is served (0: never).
    every: Vec<u64>,
    /// Per stage: chain ticks left until its next tick.
    countdown: Vec<u64>,
    /// The chain's tick period (the shortest of the stages' periods; [`crate::tick::plan`]).
    base: Duration,
    /// Per stage: the local-reply details naming it (`shieldwall_jwt_auth`), made once when the
    /// stage is added, so the access log names the filter that answered, as with separate modules.
    details: Vec<&'static str>,
    /// Per stage: its name in decision records (`jwt_auth`).
    names: Vec<&'static str>,
}

impl Routing {
    fn wake_mask(stage: usize) -> u64 {
        u32::try_from(stage)
            .ok()
            .and_then(|s| 1u64.checked_shl(s))
            .unwrap_or(0)
    }
}

/// The most stages a chain holds (wake-ups are kept as a bit per stage).
pub const MAX_STAGES: usize = 64;

/// The identity context a stage wrote in this request: its bytes (also written to the proxy) and,
/// when it was written as a value, that value, which later stages get without parsing the bytes.
struct StageIdentity {
    bytes: Vec<u8>,
    parsed: Option<Rc<Identity>>,
}

/// The decisions the stages of one request recorded: property name → the value written.
type KeptDecisions = Vec<(String, Vec<u8>)>;

/// The request lines the stages of one request parsed, one per set of path options (nearly
/// always one): a later stage with the same options takes the first stage's.
type KeptLines = Vec<(PathOptions, Rc<RequestLine>)>;

/// The request headers the stages of one request read or wrote (`None`: known to be absent).
/// A short list searched by name, ignoring ASCII case as header names do: a request's stages
/// touch a handful of headers, and a lookup then neither hashes nor allocates.
#[derive(Default)]
struct HeaderCopy(Vec<(String, Option<String>)>);

impl HeaderCopy {
    fn position(&self, name: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The copy's value: `Some(None)` when the header is known to be absent.
    fn get(&self, name: &str) -> Option<Option<String>> {
        self.position(name)
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v.clone())
    }

    fn set(&mut self, name: &str, value: Option<String>) {
        match self.position(name).and_then(|i| self.0.get_mut(i)) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_ascii_lowercase(), value)),
        }
    }

    fn forget(&mut self, name: &str) {
        if let Some(i) = self.position(name) {
            self.0.swap_remove(i);
        }
    }
}

/// `Host` for one stage: records its callouts, wake-ups and tick period in the chain's routing,
/// notices its local reply, and keeps the identity context, the request headers and the
/// decisions in memory for later stages.
struct StageHost<'a> {
    inner: &'a mut dyn Host,
    stage: usize,
    routing: &'a RefCell<Routing>,
    /// The stream's identity context, as last written (streams only).
    identity: Option<&'a mut Option<StageIdentity>>,
    /// The stream's request headers as the stages read and wrote them (streams only).
    headers: Option<&'a RefCell<HeaderCopy>>,
    /// The decisions the stages recorded in this request (streams only).
    decisions: Option<&'a RefCell<KeptDecisions>>,
    /// The request lines the stages parsed in this request (streams only).
    lines: Option<&'a RefCell<KeptLines>>,
    /// The clock as first read in this callback of the stream (streams only): the stages of one
    /// callback run within microseconds, so they share one read.
    clock: Option<&'a Cell<Option<u64>>>,
    replied: bool,
    /// The stage recorded its decision in this callback.
    decided: bool,
}

impl<'a> StageHost<'a> {
    fn new(inner: &'a mut dyn Host, stage: usize, routing: &'a RefCell<Routing>) -> Self {
        StageHost {
            inner,
            stage,
            routing,
            identity: None,
            headers: None,
            decisions: None,
            lines: None,
            clock: None,
            replied: false,
            decided: false,
        }
    }

    fn is_identity(path: &[&str]) -> bool {
        path == [IDENTITY_PROPERTY]
    }

    /// A write of `:path` or `:method` makes the request lines kept so far stale.
    fn request_line_written(&self, name: &str) {
        if name.eq_ignore_ascii_case(":path") || name.eq_ignore_ascii_case(":method") {
            if let Some(Ok(mut lines)) = self.lines.map(RefCell::try_borrow_mut) {
                lines.clear();
            }
        }
    }

    fn record_callout(&self, token: u32) {
        if let Ok(mut r) = self.routing.try_borrow_mut() {
            r.callouts.insert(token, self.stage);
        }
    }
}

impl Host for StageHost<'_> {
    fn now_nanos(&self) -> u64 {
        let Some(clock) = self.clock else {
            return self.inner.now_nanos();
        };
        if let Some(now) = clock.get() {
            return now;
        }
        let now = self.inner.now_nanos();
        clock.set(Some(now));
        now
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, message)
    }
    fn log_enabled(&self, level: LogLevel) -> bool {
        self.inner.log_enabled(level)
    }
    fn request_header(&self, name: &str) -> Option<String> {
        // Each header is asked of the proxy once per request, whichever stages read it; the
        // stages' own writes keep the copy current (every write of the chain passes here).
        let Some(cache) = self.headers else {
            return self.inner.request_header(name);
        };
        if let Some(known) = cache.try_borrow().ok().and_then(|c| c.get(name)) {
            return known;
        }
        let value = self.inner.request_header(name);
        if let Ok(mut c) = cache.try_borrow_mut() {
            c.set(name, value.clone());
        }
        value
    }
    fn request_headers(&self) -> Vec<(String, String)> {
        self.inner.request_headers()
    }
    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        self.inner.set_request_header(name, value);
        self.request_line_written(name);
        if let Some(Ok(mut c)) = self.headers.map(RefCell::try_borrow_mut) {
            c.set(name, value.map(str::to_string));
        }
    }
    fn add_request_header(&mut self, name: &str, value: &str) {
        self.inner.add_request_header(name, value);
        self.request_line_written(name);
        // Several values now: the next read asks the proxy how it joins them.
        if let Some(Ok(mut c)) = self.headers.map(RefCell::try_borrow_mut) {
            c.forget(name);
        }
    }
    fn response_header(&self, name: &str) -> Option<String> {
        self.inner.response_header(name)
    }
    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        self.inner.set_response_header(name, value)
    }
    fn add_response_header(&mut self, name: &str, value: &str) {
        self.inner.add_response_header(name, value)
    }
    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        self.inner.request_body(start, max)
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        if Self::is_identity(path) {
            if let Some(Some(kept)) = self.identity.as_deref() {
                return Some(kept.bytes.clone());
            }
        }
        // A decision a stage of this chain recorded in this request (one it has not recorded
        // may come from a module before the chain: that is asked of the proxy).
        if let ([key], Some(Ok(kept))) = (path, self.decisions.map(RefCell::try_borrow)) {
            if let Some((_, value)) = kept.iter().find(|(k, _)| k == key) {
                return Some(value.clone());
            }
        }
        self.inner.property(path)
    }
    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        self.inner.set_property(path, value)?;
        // A kept decision written again another way stays what the proxy holds.
        if let ([key], Some(Ok(mut kept))) = (path, self.decisions.map(RefCell::try_borrow_mut)) {
            if let Some(slot) = kept.iter_mut().find(|(k, _)| k == key) {
                slot.1 = value.to_vec();
            }
        }
        if Self::is_identity(path) {
            if let Some(slot) = self.identity.as_deref_mut() {
                // Written as bytes: a later reader parses them.
                *slot = Some(StageIdentity {
                    bytes: value.to_vec(),
                    parsed: None,
                });
            }
        }
        Ok(())
    }
    fn send_local_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.replied = true;
        let details = self
            .routing
            .try_borrow()
            .ok()
            .and_then(|r| r.details.get(self.stage).copied());
        match details {
            Some(details) => self
                .inner
                .send_local_reply_as(details, status, headers, body),
            None => self.inner.send_local_reply(status, headers, body),
        }
    }
    fn kept_request_line(&self, opts: PathOptions) -> Option<Rc<RequestLine>> {
        let lines = self.lines?.try_borrow().ok()?;
        lines
            .iter()
            .find(|(o, _)| *o == opts)
            .map(|(_, line)| Rc::clone(line))
    }
    fn keep_request_line(&self, opts: PathOptions, line: &Rc<RequestLine>) {
        if let Some(Ok(mut lines)) = self.lines.map(RefCell::try_borrow_mut) {
            if !lines.iter().any(|(o, _)| *o == opts) {
                lines.push((opts, Rc::clone(line)));
            }
        }
    }
    fn known_identity(&self) -> Option<Rc<Identity>> {
        self.identity.as_deref()?.as_ref()?.parsed.clone()
    }
    fn write_identity(&mut self, identity: &Rc<Identity>, bytes: &[u8]) -> Result<(), HostError> {
        self.inner.set_property(&[IDENTITY_PROPERTY], bytes)?;
        if let Some(slot) = self.identity.as_deref_mut() {
            *slot = Some(StageIdentity {
                bytes: bytes.to_vec(),
                parsed: Some(Rc::clone(identity)),
            });
        }
        Ok(())
    }
    fn filter_name(&self) -> &'static str {
        self.routing
            .try_borrow()
            .ok()
            .and_then(|r| r.names.get(self.stage).copied())
            .unwrap_or("")
    }
    fn record_decision(&mut self, decision: &Decision) {
        if let Some((key, value)) = decision::encoded(self.filter_name(), decision) {
            self.decided = true;
            if self.inner.set_property(&[&key], &value).is_ok() {
                if let Some(Ok(mut kept)) = self.decisions.map(RefCell::try_borrow_mut) {
                    match kept.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value,
                        None => kept.push((key, value)),
                    }
                }
            }
        }
    }
    fn wake_stream(&mut self, context_id: u32) {
        if let Ok(mut r) = self.routing.try_borrow_mut() {
            if !r.live.contains(&context_id) {
                return;
            }
            let mask = Routing::wake_mask(self.stage);
            *r.wakes.entry(context_id).or_insert(0) |= mask;
        }
        self.inner.wake_stream(context_id)
    }
    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
        self.inner.shared_get(key)
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        self.inner.shared_set(key, value, cas)
    }
    fn queue_register(&mut self, name: &str) -> Result<u32, HostError> {
        self.inner.queue_register(name)
    }
    fn queue_resolve(&self, vm_id: &str, name: &str) -> Result<Option<u32>, HostError> {
        self.inner.queue_resolve(vm_id, name)
    }
    fn queue_enqueue(&mut self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        self.inner.queue_enqueue(queue, value)
    }
    fn queue_dequeue(&mut self, queue: u32) -> Result<Option<Vec<u8>>, HostError> {
        self.inner.queue_dequeue(queue)
    }
    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let token = self.inner.http_call(cluster, headers, body, timeout)?;
        self.record_callout(token);
        Ok(token)
    }
    fn grpc_call(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        metadata: &[(&str, &[u8])],
        message: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let token = self
            .inner
            .grpc_call(cluster, service, method, metadata, message, timeout)?;
        self.record_callout(token);
        Ok(token)
    }
    fn set_tick_period(&mut self, period: Duration) {
        let base = {
            let Ok(mut r) = self.routing.try_borrow_mut() else {
                return;
            };
            let stages = r.periods.len().max(self.stage.saturating_add(1));
            r.periods.resize(stages, Duration::ZERO);
            r.countdown.resize(stages, 0);
            if let Some(p) = r.periods.get_mut(self.stage) {
                *p = period;
            }
            let periods_ms: Vec<u64> = r
                .periods
                .iter()
                .map(|p| u64::try_from(p.as_millis()).unwrap_or(u64::MAX))
                .collect();
            let (base_ms, every) = crate::tick::plan(&periods_ms);
            r.every = every;
            let base = Duration::from_millis(base_ms);
            if base == r.base {
                return;
            }
            r.base = base;
            // Periods are counted afresh in the new unit: every stage ticks on the next tick.
            for c in r.countdown.iter_mut() {
                *c = 0;
            }
            base
        };
        self.inner.set_tick_period(base)
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.inner.env_var(name)
    }
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        self.inner.define_metric(kind, name)
    }
    fn increment_metric(&mut self, id: u32, delta: i64) {
        self.inner.increment_metric(id, delta)
    }
    fn record_metric(&mut self, id: u32, value: u64) {
        self.inner.record_metric(id, value)
    }
}

/// The root of a chain: its stages, in order.
pub struct Chain {
    stages: Vec<Box<dyn Stage>>,
    routing: Rc<RefCell<Routing>>,
}

/// Builds a chain stage by stage; each stage is configured with a host that already routes its
/// tick period and callouts.
pub struct ChainBuilder {
    chain: Chain,
}

impl ChainBuilder {
    pub fn new() -> ChainBuilder {
        ChainBuilder {
            chain: Chain {
                stages: Vec::new(),
                routing: Rc::new(RefCell::new(Routing::default())),
            },
        }
    }

    /// How many stages were added.
    pub fn len(&self) -> usize {
        self.chain.stages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chain.stages.is_empty()
    }

    /// Configures the next stage with `configure` (given the stage's host) and appends it.
    /// Refused (`None`) past [`MAX_STAGES`].
    pub fn add<E>(
        &mut self,
        host: &mut dyn Host,
        configure: impl FnOnce(&mut dyn Host) -> Result<Box<dyn Stage>, E>,
    ) -> Option<Result<(), E>> {
        let index = self.chain.stages.len();
        if index >= MAX_STAGES {
            return None;
        }
        let routing = self.chain.routing.clone();
        let mut h = StageHost::new(host, index, &routing);
        Some(configure(&mut h).map(|stage| {
            // Leaked once per stage and configuration (a handful per VM), never per request.
            let details: &'static str =
                Box::leak(format!("shieldwall_{}", stage.name()).into_boxed_str());
            if let Ok(mut r) = routing.try_borrow_mut() {
                r.details.push(details);
                r.names.push(stage.name());
            }
            self.chain.stages.push(stage)
        }))
    }

    pub fn build(self) -> Chain {
        self.chain
    }
}

impl Default for ChainBuilder {
    fn default() -> Self {
        ChainBuilder::new()
    }
}

impl Chain {
    /// The stages' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    pub fn new_stream(&mut self, host: &mut dyn Host, context_id: u32) -> ChainStream {
        if let Ok(mut r) = self.routing.try_borrow_mut() {
            r.live.insert(context_id);
        }
        let routing = self.routing.clone();
        let streams = self
            .stages
            .iter_mut()
            .enumerate()
            .map(|(i, stage)| {
                let mut h = StageHost::new(host, i, &routing);
                stage.new_stream(&mut h, context_id)
            })
            .collect();
        ChainStream {
            streams,
            routing,
            context_id,
            seen: 0,
            paused: false,
            replied: false,
            end_of_stream: false,
            identity: None,
            decided: 0,
            headers: RefCell::new(HeaderCopy::default()),
            decisions: RefCell::new(Vec::new()),
            lines: RefCell::new(Vec::new()),
            clock: Cell::new(None),
        }
    }

    pub fn on_tick(&mut self, host: &mut dyn Host) {
        let due: Vec<usize> = {
            let Ok(mut r) = self.routing.try_borrow_mut() else {
                return;
            };
            let mut due = Vec::new();
            let Routing {
                every, countdown, ..
            } = &mut *r;
            for (i, (&every, left)) in every.iter().zip(countdown.iter_mut()).enumerate() {
                if every == 0 {
                    continue;
                }
                if *left == 0 {
                    due.push(i);
                    *left = every;
                }
                *left -= 1;
            }
            due
        };
        for i in due {
            let routing = self.routing.clone();
            if let Some(stage) = self.stages.get_mut(i) {
                let mut h = StageHost::new(host, i, &routing);
                stage.on_tick(&mut h);
            }
        }
    }

    fn owner(&self, token: u32) -> Option<usize> {
        self.routing.try_borrow_mut().ok()?.callouts.remove(&token)
    }

    pub fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) {
        let Some(i) = self.owner(token) else { return };
        let routing = self.routing.clone();
        if let Some(stage) = self.stages.get_mut(i) {
            let mut h = StageHost::new(host, i, &routing);
            stage.on_http_call_response(&mut h, token, response);
        }
    }

    pub fn on_grpc_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: GrpcResponse,
    ) {
        let Some(i) = self.owner(token) else { return };
        let routing = self.routing.clone();
        if let Some(stage) = self.stages.get_mut(i) {
            let mut h = StageHost::new(host, i, &routing);
            stage.on_grpc_call_response(&mut h, token, response);
        }
    }
}

/// One request through the chain.
pub struct ChainStream {
    streams: Vec<Box<dyn StreamFilter>>,
    routing: Rc<RefCell<Routing>>,
    context_id: u32,
    /// How many stages the walk has reached (those that saw the request headers).
    seen: usize,
    /// The walk waits at stage `seen - 1`.
    paused: bool,
    /// A stage sent a local reply: the walk is over.
    replied: bool,
    end_of_stream: bool,
    /// The identity context as the stages last wrote it in this request.
    identity: Option<StageIdentity>,
    /// Bit i: stage i's decision is recorded (by the stage, or as `allow` by the chain).
    decided: u64,
    /// Request headers read or written by the stages in this request (name → value, `None`:
    /// absent), so that each is read from the proxy once, not once per stage.
    headers: RefCell<HeaderCopy>,
    /// The decisions recorded by the stages in this request (property name → value).
    decisions: RefCell<KeptDecisions>,
    /// The request lines parsed by the stages in this request, so that each stage after the
    /// first takes the parsed line instead of parsing and normalising it again.
    lines: RefCell<KeptLines>,
    /// The clock as first read in the current callback, shared by its stages (reset as each
    /// callback begins).
    clock: Cell<Option<u64>>,
}

/// Which callback a stage gets.
enum Call {
    Wake,
    Http(u32, CalloutResponse),
    Grpc(u32, GrpcResponse),
}

impl ChainStream {
    /// Runs one stage's stream callback with its host; returns its action and whether it replied.
    /// In the request phase (`request`), a stage that lets the request go on without having
    /// recorded a decision is recorded as `allow`, once, as the adapter does for a module.
    fn run(
        &mut self,
        host: &mut dyn Host,
        i: usize,
        request: bool,
        f: impl FnOnce(&mut dyn StreamFilter, &mut dyn Host) -> Action,
    ) -> (Action, bool) {
        let routing = self.routing.clone();
        let Some(stream) = self.streams.get_mut(i) else {
            return (Action::Continue, false);
        };
        let mut h = StageHost::new(host, i, &routing);
        h.identity = Some(&mut self.identity);
        h.headers = Some(&self.headers);
        h.decisions = Some(&self.decisions);
        h.lines = Some(&self.lines);
        h.clock = Some(&self.clock);
        let action = f(stream.as_mut(), &mut h);
        let bit = Routing::wake_mask(i);
        if h.decided {
            self.decided |= bit;
        }
        if request && action == Action::Continue && !h.replied && self.decided & bit == 0 {
            self.decided |= bit;
            h.record_decision(&Decision::allow(""));
        }
        (action, h.replied)
    }

    /// What the walk asks of the proxy now.
    fn state(&self) -> Action {
        if self.paused || self.replied {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// Applies stage `i`'s answer (the stage the walk is at) and walks on from `i + 1`.
    fn step(&mut self, host: &mut dyn Host, action: Action, replied: bool) -> Action {
        if replied {
            self.replied = true;
            self.paused = false;
            return Action::Pause;
        }
        if action == Action::Pause {
            self.paused = true;
            return Action::Pause;
        }
        self.paused = false;
        self.walk(host)
    }

    /// Runs request headers through the stages not yet reached.
    fn walk(&mut self, host: &mut dyn Host) -> Action {
        while self.seen < self.streams.len() {
            let i = self.seen;
            self.seen += 1;
            let eos = self.end_of_stream;
            let (action, replied) = self.run(host, i, true, |s, h| s.on_request_headers(h, eos));
            if replied || action == Action::Pause {
                return self.step(host, action, replied);
            }
        }
        Action::Continue
    }

    /// A wake-up or a callout reply for stage `i`: resumes the walk if it waits there.
    fn deliver(&mut self, host: &mut dyn Host, i: usize, call: Call) -> Action {
        if self.replied {
            return Action::Pause;
        }
        let waiting_here = self.paused && self.seen == i.saturating_add(1);
        let (action, replied) = self.run(host, i, true, |s, h| match call {
            Call::Wake => s.on_wake(h),
            Call::Http(token, r) => s.on_http_call_response(h, token, r),
            Call::Grpc(token, r) => s.on_grpc_call_response(h, token, r),
        });
        if replied || waiting_here {
            return self.step(host, action, replied);
        }
        self.state()
    }

    fn owner(&self, token: u32) -> Option<usize> {
        self.routing.try_borrow_mut().ok()?.callouts.remove(&token)
    }
}

impl StreamFilter for ChainStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        self.clock.set(None);
        self.end_of_stream = end_of_stream;
        self.walk(host)
    }

    fn on_request_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        self.clock.set(None);
        // The stages that passed the request headers see the body, in order; one that buffers
        // (`Pause`) holds it from the later ones until the end of the stream.
        let passed = if self.paused {
            self.seen.saturating_sub(1)
        } else {
            self.seen
        };
        for i in 0..passed {
            let (action, replied) = self.run(host, i, true, |s, h| {
                s.on_request_body(h, body_size, end_of_stream)
            });
            if replied {
                self.replied = true;
                return Action::Pause;
            }
            if action == Action::Pause {
                return Action::Pause;
            }
        }
        self.state()
    }

    fn on_request_trailers(&mut self, host: &mut dyn Host) -> Action {
        self.clock.set(None);
        // As the body: the stages that passed the headers, in order, until one holds or replies.
        let passed = if self.paused {
            self.seen.saturating_sub(1)
        } else {
            self.seen
        };
        for i in 0..passed {
            let (action, replied) = self.run(host, i, true, |s, h| s.on_request_trailers(h));
            if replied {
                self.replied = true;
                return Action::Pause;
            }
            if action == Action::Pause {
                return Action::Pause;
            }
        }
        self.state()
    }

    fn on_response_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        self.clock.set(None);
        for i in (0..self.seen).rev() {
            let _ = self.run(host, i, false, |s, h| {
                s.on_response_headers(h, end_of_stream)
            });
        }
        Action::Continue
    }

    fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) -> Action {
        self.clock.set(None);
        match self.owner(token) {
            Some(i) => self.deliver(host, i, Call::Http(token, response)),
            None => self.state(),
        }
    }

    fn on_grpc_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: GrpcResponse,
    ) -> Action {
        self.clock.set(None);
        match self.owner(token) {
            Some(i) => self.deliver(host, i, Call::Grpc(token, response)),
            None => self.state(),
        }
    }

    fn on_wake(&mut self, host: &mut dyn Host) -> Action {
        self.clock.set(None);
        let mask = self
            .routing
            .try_borrow_mut()
            .ok()
            .and_then(|mut r| r.wakes.remove(&self.context_id))
            .unwrap_or(0);
        let Some(at) = self.seen.checked_sub(1) else {
            return self.state();
        };
        if !self.paused || mask & Routing::wake_mask(at) == 0 {
            return self.state();
        }
        self.deliver(host, at, Call::Wake)
    }

    fn on_log(&mut self, host: &mut dyn Host) {
        self.clock.set(None);
        for i in 0..self.streams.len() {
            let _ = self.run(host, i, false, |s, h| {
                s.on_log(h);
                Action::Continue
            });
        }
    }

    fn on_done(&mut self, host: &mut dyn Host) {
        self.clock.set(None);
        for i in 0..self.streams.len() {
            let _ = self.run(host, i, false, |s, h| {
                s.on_done(h);
                Action::Continue
            });
        }
        if let Ok(mut r) = self.routing.try_borrow_mut() {
            r.live.remove(&self.context_id);
            r.wakes.remove(&self.context_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::config::ConfigError;
    use crate::testing::MockHost;

    /// What the reading stages saw, in the order they ran.
    type Seen = Rc<RefCell<Vec<Rc<RequestLine>>>>;

    /// A stage that reads the request line with its path options and notes it; it may then
    /// rewrite `:path`, as a filter that routes on a normalised path does.
    struct Reader {
        seen: Seen,
        opts: PathOptions,
        rewrite: Option<&'static str>,
    }

    impl RootFilter for Reader {
        type Stream = Reader;
        const NAME: &'static str = "reader";
        fn configure(_host: &mut dyn Host, _config: &[u8]) -> Result<Self, ConfigError> {
            Err(ConfigError::new("", "built by the test"))
        }
        fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> Reader {
            Reader {
                seen: Rc::clone(&self.seen),
                opts: self.opts,
                rewrite: self.rewrite,
            }
        }
    }

    impl StreamFilter for Reader {
        fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
            if let Ok(line) = RequestLine::from_host(host, self.opts) {
                self.seen.borrow_mut().push(line);
            }
            if let Some(path) = self.rewrite {
                host.set_request_header(":path", Some(path));
            }
            Action::Continue
        }
    }

    /// A chain of readers, each `(options, rewrite)`, and what they see.
    fn readers(
        host: &mut MockHost,
        stages: &[(PathOptions, Option<&'static str>)],
    ) -> (Chain, Seen) {
        let seen = Seen::default();
        let mut builder = ChainBuilder::new();
        for &(opts, rewrite) in stages {
            let reader = Reader {
                seen: Rc::clone(&seen),
                opts,
                rewrite,
            };
            let added = builder.add(host, |_| {
                Ok::<_, ConfigError>(Box::new(reader) as Box<dyn Stage>)
            });
            assert!(matches!(added, Some(Ok(()))));
        }
        (builder.build(), seen)
    }

    fn encoded_slashes() -> PathOptions {
        PathOptions {
            allow_encoded_slashes: true,
        }
    }

    #[test]
    fn later_stages_take_the_request_line_the_first_one_parsed() {
        let plain = PathOptions::default();
        let mut host = MockHost::request("get", "/a//b/./c?x=1", &[]);
        let (mut chain, seen) = readers(&mut host, &[(plain, None), (plain, None), (plain, None)]);
        let mut stream = chain.new_stream(&mut host, 1);
        assert_eq!(stream.on_request_headers(&mut host, true), Action::Continue);
        let seen = seen.borrow();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].path, "/a/b/c");
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].query.as_deref(), Some("x=1"));
        // One parse: the later stages hold the very value the first one made.
        assert!(Rc::ptr_eq(&seen[0], &seen[1]) && Rc::ptr_eq(&seen[1], &seen[2]));
    }

    #[test]
    fn stages_with_other_path_options_parse_their_own_line() {
        let plain = PathOptions::default();
        let mut host = MockHost::request("GET", "/files/a%2Fb", &[]);
        let (mut chain, seen) = readers(
            &mut host,
            &[
                (encoded_slashes(), None),
                (plain, None),
                (encoded_slashes(), None),
            ],
        );
        let mut stream = chain.new_stream(&mut host, 1);
        stream.on_request_headers(&mut host, true);
        let seen = seen.borrow();
        // The stage that refuses encoded slashes found no line; it was not handed the other one.
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].path, "/files/a%2Fb");
        assert!(Rc::ptr_eq(&seen[0], &seen[1]));
    }

    #[test]
    fn a_rewritten_path_is_parsed_again_and_a_new_request_starts_afresh() {
        let plain = PathOptions::default();
        let mut host = MockHost::request("GET", "/v1/orders", &[]);
        let (mut chain, seen) = readers(
            &mut host,
            &[(plain, Some("/internal/orders")), (plain, None)],
        );
        let mut first = chain.new_stream(&mut host, 1);
        first.on_request_headers(&mut host, true);
        host.new_stream("POST", "/v2/orders", &[]);
        let mut second = chain.new_stream(&mut host, 2);
        second.on_request_headers(&mut host, true);
        let paths: Vec<(String, String)> = seen
            .borrow()
            .iter()
            .map(|l| (l.method.clone(), l.path.clone()))
            .collect();
        let expected = [
            ("GET", "/v1/orders"),
            ("GET", "/internal/orders"),
            ("POST", "/v2/orders"),
            ("POST", "/internal/orders"),
        ]
        .map(|(m, p)| (m.to_string(), p.to_string()));
        assert_eq!(paths, expected);
    }

    /// A stage that notes each tick it gets (the test sets its period as the chain adds it).
    struct Ticker {
        index: usize,
        ticks: Rc<RefCell<Vec<usize>>>,
    }

    /// A stream of a ticking stage: nothing to do per request.
    struct Idle;

    impl StreamFilter for Idle {}

    impl RootFilter for Ticker {
        type Stream = Idle;
        const NAME: &'static str = "ticker";
        fn configure(_host: &mut dyn Host, _config: &[u8]) -> Result<Self, ConfigError> {
            Err(ConfigError::new("", "built by the test"))
        }
        fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> Idle {
            Idle
        }
        fn on_tick(&mut self, _host: &mut dyn Host) {
            self.ticks.borrow_mut().push(self.index);
        }
    }

    #[test]
    fn stages_with_unrelated_periods_tick_at_the_shortest_never_late() {
        // jwt-auth's 200 ms, an audit sink's 137 ms, token-introspection's 100 ms and a stage
        // without a tick: their common divisor would be 1 ms, a tick a millisecond.
        let mut host = MockHost::new();
        let ticks = Rc::new(RefCell::new(Vec::new()));
        let mut builder = ChainBuilder::new();
        for (index, ms) in [200u64, 137, 100, 0].into_iter().enumerate() {
            let ticker = Ticker {
                index,
                ticks: Rc::clone(&ticks),
            };
            let added = builder.add(&mut host, |h| {
                if ms > 0 {
                    h.set_tick_period(Duration::from_millis(ms));
                }
                Ok::<_, ConfigError>(Box::new(ticker) as Box<dyn Stage>)
            });
            assert!(matches!(added, Some(Ok(()))));
        }
        let mut chain = builder.build();
        assert_eq!(host.tick_period, Some(Duration::from_millis(100)));
        for _ in 0..4 {
            chain.on_tick(&mut host);
        }
        // Every 100 ms tick: the 100 ms stage, and the 137 ms stage (on time or early, never
        // later than it asked); every second one the 200 ms stage; never the stage without one.
        assert_eq!(*ticks.borrow(), [0, 1, 2, 1, 2, 0, 1, 2, 1, 2]);
    }
}
