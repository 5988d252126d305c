//! The one adapter from proxy-wasm (ABI 0.2.1) to [`Host`], [`RootFilter`] and [`StreamFilter`].
//! Compiled for wasm32 only; a filter's `wasm.rs` is one line: `shieldwall_core::export_filter!(T);`.
//!
//! It binds the ABI itself ([`abi`]) instead of using the Rust SDK, whose wrappers and dispatcher
//! panic on unexpected host answers (a trap kills the VM for every later request). What it
//! does, once for every filter:
//! - `proxy_on_configure` runs `RootFilter::configure`; an error is logged with its field path
//!   and `false` returned, so Envoy refuses the configuration;
//! - callbacks are routed by the context id the host passes (streams, roots, callouts);
//! - a root context can wake a paused stream (`Host::wake_stream`): the stream runs `on_wake`
//!   with itself as the effective context;
//! - after a local reply the stream stays stopped, whatever a later callback returns;
//! - `Continue` from a callout or wake callback resumes the stream only if it was paused;
//! - a stream whose plugin has no valid configuration is refused with 503 (fail closed);
//! - counter increments are counted in the VM and handed to the proxy on the tick, which every
//!   root context has (combined with its filter's own period): see [`crate::metrics::Pending`].

pub mod abi;

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::decision::{self, Decision};
use crate::filter::{Action, RootFilter, StreamFilter};
use crate::hash::IdMap;
use crate::host::{CalloutResponse, GrpcResponse, Host, HostError, LogLevel, MetricKind};
use crate::metrics::{self, Pending};

/// Every module that links this adapter allocates through the pool (see [`crate::pool`]).
#[global_allocator]
static ALLOCATOR: crate::pool::Pool<std::alloc::System> =
    crate::pool::Pool::new(std::alloc::System);

const ACTION_CONTINUE: u32 = 0;
const ACTION_PAUSE: u32 = 1;

fn level_code(level: LogLevel) -> u32 {
    match level {
        LogLevel::Trace => 0,
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
        LogLevel::Critical => 5,
    }
}

/// How many questions of the log level one answer of the proxy serves: the level is asked again
/// after that many, so a level changed at run time (Envoy's `/logging`) applies within as many
/// debug messages, without a call out of the VM for each.
const LOG_LEVEL_ANSWERS: u32 = 256;

thread_local! {
    /// The proxy's log level as last asked, and how many more questions it answers.
    static LOG_LEVEL: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

thread_local! {
    /// The VM's counter increments not yet handed to the proxy.
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
    /// The flush period in ms (`metrics::FLUSH_ENV`), read once per VM.
    static FLUSH_MS: OnceCell<u64> = const { OnceCell::new() };
}

/// How often this VM hands its counters to the proxy, in ms (0: at once).
fn flush_ms() -> u64 {
    FLUSH_MS.with(|cell| {
        *cell.get_or_init(|| {
            let value = std::env::var(metrics::FLUSH_ENV).ok();
            metrics::flush_ms(value.as_deref()).unwrap_or_else(|message| {
                abi::log(
                    level_code(LogLevel::Warn),
                    &format!("shieldwall: {message}"),
                );
                metrics::DEFAULT_FLUSH_MS
            })
        })
    })
}

/// Hands the VM's counted increments to the proxy.
fn flush_metrics() {
    PENDING.with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            pending.flush(abi::increment_metric);
        }
    });
}

/// The proxy's log level for this plugin, asked once per [`LOG_LEVEL_ANSWERS`] questions (a
/// proxy that cannot say: trace, everything written).
fn proxy_log_level() -> u32 {
    LOG_LEVEL.with(|cached| {
        let (level, left) = cached.get();
        if left > 0 {
            cached.set((level, left - 1));
            return level;
        }
        let level = abi::log_level().unwrap_or(0);
        cached.set((level, LOG_LEVEL_ANSWERS - 1));
        level
    })
}

fn host_error(status: u32) -> HostError {
    match status {
        abi::CAS_MISMATCH => HostError::CasMismatch,
        abi::NOT_FOUND => HostError::NotFound,
        abi::BAD_ARGUMENT => HostError::BadArgument,
        _ => HostError::Failed,
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A header map as the proxy returns it: names and raw values, in order.
type HeaderPairs = crate::wire::Pairs;

/// `Host` over the ABI, for the callback being run.
struct WasmHost {
    /// Local-reply details (`shieldwall_<filter>`), visible in Envoy's access log.
    details: &'static str,
    /// The filter's name in decision records; empty for the one-module chain (its stages
    /// record their own).
    name: &'static str,
    wake: Vec<u32>,
    replied: bool,
    /// The filter recorded its decision in this callback.
    decided: bool,
    /// Callouts started during this callback (HTTP and gRPC tokens).
    tokens: Vec<u32>,
    /// The tick period the filter asked for in this callback (applied by the dispatcher, which
    /// combines it with the metrics flush).
    tick: Option<Duration>,
    /// The request headers, the whole map read once, at the first header this callback asks
    /// for: one call out of the VM costs about as much as one single-header read in Envoy 1.40
    /// (bench/RESULTS.md prices them), so a filter that reads two or more pays for one. Kept as
    /// the host wrote it (a header found allocates only its value's text); a removed header
    /// leaves it too, any other write to the request headers drops it. `None` until read, or where
    /// there is no map (a root context), in which case single reads are made.
    request_map: RefCell<Option<HeaderPairs>>,
}

impl WasmHost {
    /// Runs `f` over the request header map, read from the proxy the first time; `None` when
    /// there is no map to read here (or it is being read already).
    fn with_request_map<R>(&self, f: impl FnOnce(&HeaderPairs) -> R) -> Option<R> {
        let mut slot = self.request_map.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = Some(abi::header_map(abi::MAP_REQUEST_HEADERS).ok()?);
        }
        slot.as_ref().map(f)
    }

    fn new(details: &'static str, name: &'static str) -> WasmHost {
        WasmHost {
            details,
            name,
            wake: Vec::new(),
            replied: false,
            decided: false,
            tokens: Vec::new(),
            tick: None,
            request_map: RefCell::new(None),
        }
    }
}

impl Host for WasmHost {
    fn now_nanos(&self) -> u64 {
        abi::now_nanos()
    }
    fn log(&self, level: LogLevel, message: &str) {
        // Below info (messages a filter may write on every request), only what the proxy
        // would print crosses to it; info and above always do.
        if level < LogLevel::Info && !self.log_enabled(level) {
            return;
        }
        abi::log(level_code(level), message);
    }
    fn log_enabled(&self, level: LogLevel) -> bool {
        level_code(level) >= proxy_log_level()
    }
    fn request_header(&self, name: &str) -> Option<String> {
        // As Envoy answers a single read: the first value of that name.
        let from_map = self.with_request_map(|pairs| pairs.get(name).map(<[u8]>::to_vec));
        let bytes = match from_map {
            Some(found) => found,
            None => abi::header(abi::MAP_REQUEST_HEADERS, name).ok().flatten(),
        };
        bytes.map(lossy)
    }
    fn request_headers(&self) -> Vec<(String, String)> {
        self.with_request_map(HeaderPairs::to_strings)
            .unwrap_or_else(|| {
                abi::header_map(abi::MAP_REQUEST_HEADERS)
                    .map(|pairs| pairs.to_strings())
                    .unwrap_or_default()
            })
    }
    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        let map = self.request_map.get_mut();
        match value {
            Some(v) => {
                *map = None;
                let _ = abi::replace_header(abi::MAP_REQUEST_HEADERS, name, v.as_bytes());
            }
            None => {
                // A header the map read in this callback does not have: nothing to remove, no
                // call out of the VM (filters remove headers a client may have forged, which
                // are usually absent).
                if map.as_ref().is_some_and(|pairs| pairs.get(name).is_none()) {
                    return;
                }
                // Envoy removes every header of that name; the map read stays true without it.
                if abi::remove_header(abi::MAP_REQUEST_HEADERS, name).is_ok() {
                    if let Some(pairs) = map.as_mut() {
                        pairs.remove(name);
                    }
                } else {
                    *map = None;
                }
            }
        }
    }
    fn add_request_header(&mut self, name: &str, value: &str) {
        *self.request_map.get_mut() = None;
        let _ = abi::add_header(abi::MAP_REQUEST_HEADERS, name, value.as_bytes());
    }
    fn response_header(&self, name: &str) -> Option<String> {
        abi::header(abi::MAP_RESPONSE_HEADERS, name)
            .ok()
            .flatten()
            .map(lossy)
    }
    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        let _ = match value {
            Some(v) => abi::replace_header(abi::MAP_RESPONSE_HEADERS, name, v.as_bytes()),
            None => abi::remove_header(abi::MAP_RESPONSE_HEADERS, name),
        };
    }
    fn add_response_header(&mut self, name: &str, value: &str) {
        let _ = abi::add_header(abi::MAP_RESPONSE_HEADERS, name, value.as_bytes());
    }
    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        abi::buffer(abi::BUFFER_REQUEST_BODY, start, max)
            .ok()
            .flatten()
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::property(path).ok().flatten()
    }
    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        abi::set_property(path, value).map_err(host_error)
    }
    fn send_local_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let details = self.details;
        self.send_local_reply_as(details, status, headers, body)
    }
    fn send_local_reply_as(
        &mut self,
        details: &'static str,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        if self.replied {
            return;
        }
        self.replied = true;
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let _ = abi::send_local_response(u32::from(status), details, body, &pairs);
    }
    fn wake_stream(&mut self, context_id: u32) {
        self.wake.push(context_id);
    }
    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
        abi::shared_get(key).map_err(host_error)
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        abi::shared_set(key, value, cas).map_err(host_error)
    }
    fn queue_register(&mut self, name: &str) -> Result<u32, HostError> {
        abi::register_shared_queue(name).map_err(host_error)
    }
    fn queue_resolve(&self, vm_id: &str, name: &str) -> Result<Option<u32>, HostError> {
        abi::resolve_shared_queue(vm_id, name).map_err(host_error)
    }
    fn queue_enqueue(&mut self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        abi::enqueue_shared_queue(queue, value).map_err(host_error)
    }
    fn queue_dequeue(&mut self, queue: u32) -> Result<Option<Vec<u8>>, HostError> {
        abi::dequeue_shared_queue(queue).map_err(host_error)
    }
    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let token = abi::http_call(cluster, &pairs, body, ms).map_err(host_error)?;
        self.tokens.push(token);
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
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let token =
            abi::grpc_call(cluster, service, method, metadata, message, ms).map_err(host_error)?;
        self.tokens.push(token);
        Ok(token)
    }
    fn set_tick_period(&mut self, period: Duration) {
        self.tick = Some(period);
    }
    fn filter_name(&self) -> &'static str {
        self.name
    }
    fn record_decision(&mut self, decision: &Decision) {
        if let Some((key, value)) = decision::encoded(self.name, decision) {
            self.decided = true;
            let _ = self.set_property(&[&key], &value);
        }
    }
    fn env_var(&self, name: &str) -> Option<String> {
        // WASI `environ_get`: Envoy hands the VM the variables of `vm_config.environment_variables`.
        std::env::var(name).ok()
    }
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let kind = match kind {
            MetricKind::Counter => 0,
            MetricKind::Gauge => 1,
            MetricKind::Histogram => 2,
        };
        abi::define_metric(kind, name).map_err(host_error)
    }
    fn increment_metric(&mut self, id: u32, delta: i64) {
        if flush_ms() == 0 {
            abi::increment_metric(id, delta);
            return;
        }
        PENDING.with(|pending| match pending.try_borrow_mut() {
            Ok(mut pending) => pending.add(id, delta),
            Err(_) => abi::increment_metric(id, delta),
        });
    }
    fn record_metric(&mut self, id: u32, value: u64) {
        abi::record_metric(id, value);
    }
}

/// A stream's filter and flow state.
struct StreamState<S> {
    /// `None`: the plugin has no valid configuration; the stream is refused.
    filter: Option<S>,
    /// The root context the stream belongs to.
    root: u32,
    paused: bool,
    replied: bool,
    /// The filter's decision is recorded (by the filter, or as `allow` by [`apply`]).
    decided: bool,
}

/// What the VM-wide dispatcher holds, type-erased over the filter.
trait Dispatch {
    fn create(&self, id: u32, root_id: u32);
    fn configure(&self, root_id: u32) -> bool;
    fn tick(&self, root_id: u32);
    fn request_headers(&self, id: u32, eos: bool) -> u32;
    fn request_body(&self, id: u32, size: usize, eos: bool) -> u32;
    fn request_trailers(&self, id: u32) -> u32;
    fn response_headers(&self, id: u32, eos: bool) -> u32;
    fn log(&self, id: u32);
    fn done(&self, id: u32);
    fn http_response(&self, id: u32, token: u32, response: CalloutResponse);
    fn grpc_response(&self, id: u32, token: u32, response: GrpcResponse);
}

type Shared<T> = Rc<RefCell<T>>;

/// A root context's tick: the period asked of the proxy and which ticks are the filter's.
#[derive(Default)]
struct Timer {
    /// The filter's own period, in ms (0: none), as it last set it.
    period_ms: u64,
    /// The period asked of the proxy, in ms (0: none).
    base_ms: u64,
    /// Every how many ticks the filter's `on_tick` runs (0: never).
    every: u64,
    /// Ticks left until the filter's next one.
    left: u64,
}

struct Dispatcher<F: RootFilter> {
    /// Local-reply details, `shieldwall_<filter>`.
    details: &'static str,
    /// The filter's name in decision records (empty: none are recorded).
    name: &'static str,
    /// By context id (ids the proxy hands out: [`IdMap`]).
    roots: RefCell<IdMap<u32, Shared<Option<F>>>>,
    streams: RefCell<IdMap<u32, Shared<StreamState<F::Stream>>>>,
    /// Callouts not yet answered → the context that started them. Envoy runs every callout on
    /// the plugin's root context and delivers the reply there, whoever started it; the reply is
    /// routed back here. A gRPC reply may come as `receive` then `close`: only the first counts.
    callouts: RefCell<IdMap<u32, u32>>,
    /// Each root context's tick, by its id.
    timers: RefCell<IdMap<u32, Timer>>,
}

impl<F: RootFilter> Dispatcher<F> {
    fn root(&self, id: u32) -> Option<Rc<RefCell<Option<F>>>> {
        self.roots.borrow().get(&id).cloned()
    }

    fn stream(&self, id: u32) -> Option<Rc<RefCell<StreamState<F::Stream>>>> {
        self.streams.borrow().get(&id).cloned()
    }

    /// The root context of context `id` (a root's own id, a stream's root).
    fn root_of(&self, id: u32) -> u32 {
        match self.stream(id) {
            Some(stream) => stream.try_borrow().map(|s| s.root).unwrap_or(id),
            None => id,
        }
    }

    /// Sets the tick of root context `root` for a filter period of `period` (zero: no filter
    /// tick), combined with the metrics flush ([`crate::tick::plan`]). The proxy applies a
    /// period set from a stream context to the stream's root, so this runs with `root` or one of
    /// its streams as the effective context. A period set again changes nothing (as in Envoy: the
    /// timer keeps its phase, and the filter's next tick stays where it was); an unchanged base
    /// period keeps the proxy's timer as it is.
    fn retime(&self, root: u32, period: Duration) {
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        let (base_ms, every) = crate::tick::plan(&[period_ms, flush_ms()]);
        let every = every.first().copied().unwrap_or(0);
        let changed = {
            let mut timers = self.timers.borrow_mut();
            let fresh = !timers.contains_key(&root);
            let timer = timers.entry(root).or_default();
            if !fresh && timer.period_ms == period_ms {
                return;
            }
            timer.period_ms = period_ms;
            timer.every = every;
            timer.left = every;
            let changed = timer.base_ms != base_ms;
            timer.base_ms = base_ms;
            changed
        };
        if changed {
            let _ = abi::set_tick_period_ms(u32::try_from(base_ms).unwrap_or(u32::MAX));
        }
    }

    /// Whether this tick of root context `root` is its filter's.
    fn filter_tick_due(&self, root: u32) -> bool {
        let mut timers = self.timers.borrow_mut();
        let Some(timer) = timers.get_mut(&root) else {
            return false;
        };
        if timer.every == 0 {
            return false;
        }
        timer.left = timer.left.saturating_sub(1);
        if timer.left > 0 {
            return false;
        }
        timer.left = timer.every;
        true
    }

    /// After a callback: remember its callouts, apply the tick period it asked for and run the
    /// wake-ups it asked for.
    fn after(&self, host: WasmHost, current: u32) {
        self.callouts
            .borrow_mut()
            .extend(host.tokens.iter().map(|t| (*t, current)));
        if let Some(period) = host.tick {
            self.retime(self.root_of(current), period);
        }
        if host.wake.is_empty() {
            return;
        }
        for id in host.wake {
            if id == current {
                continue;
            }
            let Some(stream) = self.stream(id) else {
                continue;
            };
            if abi::set_effective_context(id).is_err() {
                continue;
            }
            let borrowed = stream.try_borrow_mut();
            let Ok(mut state) = borrowed else { continue };
            if !state.paused || state.replied {
                continue;
            }
            let mut h = WasmHost::new(self.details, self.name);
            let action = match state.filter.as_mut() {
                Some(f) => f.on_wake(&mut h),
                None => Action::Pause,
            };
            apply(&mut state, &mut h, action, true);
            let root = state.root;
            drop(state);
            self.callouts
                .borrow_mut()
                .extend(h.tokens.iter().map(|t| (*t, id)));
            if let Some(period) = h.tick {
                self.retime(root, period);
            }
        }
        let _ = abi::set_effective_context(current);
    }

    /// Delivers a callout reply to the context that started the callout. Envoy runs every
    /// callout on the root context and replies there (`id`); the owner is found by token.
    /// A stream's reply runs with that stream as the effective context. A reply whose stream is
    /// gone goes to the root, so a shared fetch completes even if its request left.
    fn reply(
        &self,
        id: u32,
        token: u32,
        to_stream: impl FnOnce(&mut F::Stream, &mut WasmHost) -> Action,
        to_root: impl FnOnce(&mut F, &mut WasmHost),
    ) {
        let Some(owner) = self.callouts.borrow_mut().remove(&token) else {
            return;
        };
        if self.stream(owner).is_some() {
            if abi::set_effective_context(owner).is_ok() {
                self.run_stream(owner, true, to_stream);
            }
        } else {
            let root = if self.root(owner).is_some() {
                owner
            } else {
                id
            };
            self.root_callback(root, to_root);
        }
        let _ = abi::set_effective_context(id);
    }

    /// Runs a root-context callback.
    fn root_callback(&self, root_id: u32, f: impl FnOnce(&mut F, &mut WasmHost)) {
        let Some(root) = self.root(root_id) else {
            return;
        };
        let mut host = WasmHost::new(self.details, self.name);
        if let Ok(mut slot) = root.try_borrow_mut() {
            if let Some(filter) = slot.as_mut() {
                f(filter, &mut host);
            }
        }
        self.after(host, root_id);
    }

    /// Runs a stream callback with the flow rules of this adapter.
    fn run_stream(
        &self,
        id: u32,
        resume: bool,
        f: impl FnOnce(&mut F::Stream, &mut WasmHost) -> Action,
    ) -> u32 {
        let Some(stream) = self.stream(id) else {
            return ACTION_CONTINUE;
        };
        let mut host = WasmHost::new(self.details, self.name);
        let result = {
            let borrowed = stream.try_borrow_mut();
            let Ok(mut state) = borrowed else {
                return ACTION_PAUSE;
            };
            if state.replied {
                return ACTION_PAUSE;
            }
            let action = match state.filter.as_mut() {
                Some(filter) => f(filter, &mut host),
                None => {
                    deny_unconfigured(&mut host);
                    Action::Pause
                }
            };
            apply(&mut state, &mut host, action, resume)
        };
        self.after(host, id);
        result
    }
}

fn deny_unconfigured(host: &mut WasmHost) {
    host.record_decision(&Decision::deny("filter_unconfigured", 503));
    let body = br#"{"error":"filter_unconfigured","error_description":"the gateway filter has no valid configuration"}"#;
    host.send_local_reply(503, &[("content-type", "application/json")], body);
}

/// Applies a callback's answer; returns the action for the host.
///
/// A filter that lets the request go on without having recorded a decision is recorded as
/// `allow`, once per stream; a later deny (a refused body) replaces it.
fn apply<S>(state: &mut StreamState<S>, host: &mut WasmHost, action: Action, resume: bool) -> u32 {
    if host.replied {
        state.replied = true;
    }
    if host.decided {
        state.decided = true;
    }
    if action == Action::Continue && !state.replied && !state.decided {
        state.decided = true;
        host.record_decision(&Decision::allow(""));
    }
    if state.replied {
        state.paused = false;
        return ACTION_PAUSE;
    }
    match action {
        Action::Pause => {
            state.paused = true;
            ACTION_PAUSE
        }
        Action::Continue => {
            if resume && state.paused {
                state.paused = false;
                let _ = abi::continue_request();
            }
            ACTION_CONTINUE
        }
    }
}

impl<F: RootFilter> Dispatch for Dispatcher<F> {
    fn create(&self, id: u32, root_id: u32) {
        if root_id == 0 {
            self.roots
                .borrow_mut()
                .insert(id, Rc::new(RefCell::new(None)));
            return;
        }
        let mut host = WasmHost::new(self.details, self.name);
        let filter = self.root(root_id).and_then(|root| {
            let mut slot = root.try_borrow_mut().ok()?;
            Some(slot.as_mut()?.new_stream(&mut host, id))
        });
        let state = StreamState {
            filter,
            root: root_id,
            paused: false,
            replied: false,
            decided: false,
        };
        self.streams
            .borrow_mut()
            .insert(id, Rc::new(RefCell::new(state)));
        self.after(host, id);
    }

    fn configure(&self, root_id: u32) -> bool {
        let Some(root) = self.root(root_id) else {
            return false;
        };
        let config = abi::buffer(abi::BUFFER_PLUGIN_CONFIGURATION, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut host = WasmHost::new(self.details, self.name);
        // The root ticks from the start (the metrics flush), whether or not its filter asks for
        // a period of its own.
        host.tick = Some(Duration::ZERO);
        let ok = match F::configure(&mut host, &config) {
            Ok(filter) => match root.try_borrow_mut() {
                Ok(mut slot) => {
                    *slot = Some(filter);
                    true
                }
                Err(_) => false,
            },
            Err(e) => {
                host.log(
                    LogLevel::Error,
                    &format!("shieldwall {}: invalid configuration: {e}", F::NAME),
                );
                false
            }
        };
        self.after(host, root_id);
        ok
    }

    fn tick(&self, root_id: u32) {
        let Some(root) = self.root(root_id) else {
            return;
        };
        let mut host = WasmHost::new(self.details, self.name);
        if self.filter_tick_due(root_id) {
            if let Ok(mut slot) = root.try_borrow_mut() {
                if let Some(filter) = slot.as_mut() {
                    filter.on_tick(&mut host);
                }
            }
        }
        // After the filter's tick, so what it counted goes out with the rest.
        flush_metrics();
        self.after(host, root_id);
    }

    fn request_headers(&self, id: u32, eos: bool) -> u32 {
        self.run_stream(id, false, |f, h| f.on_request_headers(h, eos))
    }

    fn request_body(&self, id: u32, size: usize, eos: bool) -> u32 {
        self.run_stream(id, false, |f, h| f.on_request_body(h, size, eos))
    }

    fn request_trailers(&self, id: u32) -> u32 {
        self.run_stream(id, false, |f, h| f.on_request_trailers(h))
    }

    fn response_headers(&self, id: u32, eos: bool) -> u32 {
        // Runs for local replies too (Envoy encodes them through the filter chain).
        let Some(stream) = self.stream(id) else {
            return ACTION_CONTINUE;
        };
        let mut host = WasmHost::new(self.details, self.name);
        if let Ok(mut state) = stream.try_borrow_mut() {
            if let Some(f) = state.filter.as_mut() {
                let _ = f.on_response_headers(&mut host, eos);
            }
        }
        self.after(host, id);
        ACTION_CONTINUE
    }

    fn log(&self, id: u32) {
        let Some(stream) = self.stream(id) else {
            return;
        };
        let mut host = WasmHost::new(self.details, self.name);
        if let Ok(mut state) = stream.try_borrow_mut() {
            if let Some(f) = state.filter.as_mut() {
                f.on_log(&mut host);
            }
        }
        self.after(host, id);
    }

    fn done(&self, id: u32) {
        if let Some(stream) = self.streams.borrow_mut().remove(&id) {
            if let Ok(mut state) = stream.try_borrow_mut() {
                let mut host = WasmHost::new(self.details, self.name);
                if let Some(f) = state.filter.as_mut() {
                    f.on_done(&mut host);
                }
            }
            return;
        }
        // A root context ends (the plugin is removed, or the proxy stops): what its VM counted
        // goes out now rather than with a tick that will not come.
        flush_metrics();
        self.roots.borrow_mut().remove(&id);
        self.timers.borrow_mut().remove(&id);
    }

    fn http_response(&self, id: u32, token: u32, response: CalloutResponse) {
        self.reply(
            id,
            token,
            |f, h| f.on_http_call_response(h, token, response.clone()),
            |f, h| f.on_http_call_response(h, token, response.clone()),
        );
    }

    fn grpc_response(&self, id: u32, token: u32, response: GrpcResponse) {
        self.reply(
            id,
            token,
            |f, h| f.on_grpc_call_response(h, token, response.clone()),
            |f, h| f.on_grpc_call_response(h, token, response.clone()),
        );
    }
}

thread_local! {
    static DISPATCH: OnceCell<Box<dyn Dispatch>> = const { OnceCell::new() };
}

fn with<R>(default: R, f: impl FnOnce(&dyn Dispatch) -> R) -> R {
    DISPATCH.with(|d| match d.get() {
        Some(dispatch) => f(dispatch.as_ref()),
        None => default,
    })
}

/// Installs `F` as this module's filter. Called once from `_initialize` by [`crate::export_filter!`].
pub fn initialize<F: RootFilter>() {
    extern "C" {
        fn __wasm_call_ctors();
    }
    // SAFETY: runs the module's static constructors once, before any other export is called,
    // as a WASI reactor must.
    unsafe { __wasm_call_ctors() };
    DISPATCH.with(|d| {
        // One string per VM, for its whole life.
        let details: &'static str = Box::leak(format!("shieldwall_{}", F::NAME).into_boxed_str());
        let _ = d.set(Box::new(Dispatcher::<F> {
            details,
            name: if F::RECORDS_DECISIONS { F::NAME } else { "" },
            roots: RefCell::new(IdMap::default()),
            streams: RefCell::new(IdMap::default()),
            callouts: RefCell::new(IdMap::default()),
            timers: RefCell::new(IdMap::default()),
        }));
    });
}

// ---- the exports the host calls (ABI 0.2.1)

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(id: u32, root_id: u32) {
    with((), |d| d.create(id, root_id));
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _vm_config_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, _config_size: usize) -> u32 {
    u32::from(with(false, |d| d.configure(root_id)))
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(id: u32, _headers: usize, end_of_stream: u32) -> u32 {
    with(ACTION_CONTINUE, |d| {
        d.request_headers(id, end_of_stream != 0)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_done(id: u32) -> u32 {
    with((), |d| d.done(id));
    1
}

// The tick (exported by every module, it flushes the counters) and the optional callbacks: plain
// functions here, the optional ones exported only by the filters that ask for them in
// `export_filter!`. The host skips a callback a module does not export, and every call into
// the VM has a fixed cost, so a filter without response work does not pay for response
// callbacks. Callbacks no filter needs (response trailers, response body, queues, gRPC metadata,
// `on_delete`: streams are dropped at `on_done`) are not exported at all.

#[doc(hidden)]
pub fn on_tick(root_id: u32) {
    with((), |d| d.tick(root_id));
}

#[doc(hidden)]
pub fn on_request_body(id: u32, size: usize, end_of_stream: u32) -> u32 {
    with(ACTION_CONTINUE, |d| {
        d.request_body(id, size, end_of_stream != 0)
    })
}

#[doc(hidden)]
pub fn on_request_trailers(id: u32) -> u32 {
    with(ACTION_CONTINUE, |d| d.request_trailers(id))
}

#[doc(hidden)]
pub fn on_response_headers(id: u32, end_of_stream: u32) -> u32 {
    with(ACTION_CONTINUE, |d| {
        d.response_headers(id, end_of_stream != 0)
    })
}

#[doc(hidden)]
pub fn on_log(id: u32) {
    with((), |d| d.log(id));
}

#[doc(hidden)]
pub fn on_http_call_response(id: u32, token: u32, headers: usize, body_size: usize) {
    let headers = if headers == 0 {
        Vec::new()
    } else {
        abi::header_map(abi::MAP_HTTP_CALL_RESPONSE_HEADERS)
            .map(|pairs| pairs.to_strings())
            .unwrap_or_default()
    };
    let status = headers
        .iter()
        .find(|(k, _)| k == ":status")
        .and_then(|(_, v)| v.parse().ok());
    let body = if body_size == 0 {
        Vec::new()
    } else {
        abi::buffer(abi::BUFFER_HTTP_CALL_RESPONSE_BODY, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    with((), |d| {
        d.http_response(
            id,
            token,
            CalloutResponse {
                status,
                headers,
                body,
            },
        )
    });
}

#[doc(hidden)]
pub fn on_grpc_receive(id: u32, token: u32, size: usize) {
    let message = abi::buffer(abi::BUFFER_GRPC_RECEIVE, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default();
    with((), |d| {
        d.grpc_response(
            id,
            token,
            GrpcResponse {
                status: 0,
                message: Some(message),
            },
        )
    });
}

#[doc(hidden)]
pub fn on_grpc_close(id: u32, token: u32, status: u32) {
    // A close after a delivered reply is ignored (the token is no longer pending).
    // Status 0 without a message (an empty reply) is delivered as OK with no message.
    with((), |d| {
        d.grpc_response(
            id,
            token,
            GrpcResponse {
                status,
                message: None,
            },
        )
    });
}

/// Exports a filter: `shieldwall_core::export_filter!(crate::filter::JwtAuth);` in the filter's
/// `wasm.rs`, with the optional callbacks it needs after the type, e.g.
/// `export_filter!(crate::filter::JwtAuth, http_call_response);`. Always exported: VM and
/// plugin start, configuration, stream creation, request headers, stream end and the tick (the
/// filter's `on_tick` runs on the ticks of the period it sets). Optional: `request_body`,
/// `request_trailers`, `response_headers`, `log`, `http_call_response`, `grpc` (a gRPC call's
/// message and close). A hook the filter implements but does not list here is never called: the
/// host skips callbacks a module does not export.
#[macro_export]
macro_rules! export_filter {
    ($root:ty $(, $callback:ident)* $(,)?) => {
        #[no_mangle]
        pub extern "C" fn _initialize() {
            $crate::wasm::initialize::<$root>();
        }
        // Every module ticks: the tick hands the VM's counters to the proxy.
        #[no_mangle]
        pub extern "C" fn proxy_on_tick(root_id: u32) {
            $crate::wasm::on_tick(root_id)
        }
        $($crate::export_callback!($callback);)*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! export_callback {
    (request_body) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_request_body(id: u32, size: usize, end_of_stream: u32) -> u32 {
            $crate::wasm::on_request_body(id, size, end_of_stream)
        }
    };
    (request_trailers) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_request_trailers(id: u32, _trailers: usize) -> u32 {
            $crate::wasm::on_request_trailers(id)
        }
    };
    (response_headers) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_response_headers(
            id: u32,
            _headers: usize,
            end_of_stream: u32,
        ) -> u32 {
            $crate::wasm::on_response_headers(id, end_of_stream)
        }
    };
    (log) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_log(id: u32) {
            $crate::wasm::on_log(id)
        }
    };
    (http_call_response) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_http_call_response(
            id: u32,
            token: u32,
            headers: usize,
            body_size: usize,
            _trailers: usize,
        ) {
            $crate::wasm::on_http_call_response(id, token, headers, body_size)
        }
    };
    (grpc) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_grpc_receive(id: u32, token: u32, size: usize) {
            $crate::wasm::on_grpc_receive(id, token, size)
        }
        #[no_mangle]
        pub extern "C" fn proxy_on_grpc_close(id: u32, token: u32, status: u32) {
            $crate::wasm::on_grpc_close(id, token, status)
        }
    };
}
