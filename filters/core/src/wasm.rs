//! The one adapter from the proxy-wasm SDK to [`Host`], [`RootFilter`] and [`StreamFilter`].
//! Compiled for wasm32 only; a filter's `wasm.rs` is a single `shieldwall_core::export_filter!`.
//!
//! What it takes care of, once for every filter:
//! - `on_configure` parses the configuration through `RootFilter::configure` and, on error, logs
//!   the field path and returns false (Envoy then refuses the configuration);
//! - streams are registered so a root context can wake a paused one (`Host::wake_stream`);
//! - after a local reply the stream stays stopped, whatever a later callback returns;
//! - `Continue` from a callout or wake callback resumes the stream only if it was paused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{
    Action as SdkAction, ContextType, LogLevel as SdkLevel, MetricType, Status,
};

use crate::filter::{Action, RootFilter, StreamFilter};
use crate::host::{CalloutResponse, GrpcResponse, Host, HostError, LogLevel, MetricKind};

/// Registers `F` as this module's root context. Called by [`crate::export_filter!`].
pub fn register<F: RootFilter>() {
    proxy_wasm::set_log_level(SdkLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(RootAdapter::<F> {
            context_id,
            filter: Rc::new(RefCell::new(None)),
        })
    });
}

fn status_error(s: Status) -> HostError {
    match s {
        Status::CasMismatch => HostError::CasMismatch,
        Status::NotFound => HostError::NotFound,
        Status::BadArgument => HostError::BadArgument,
        _ => HostError::Failed,
    }
}

/// `Host` over the proxy-wasm hostcalls, for one context.
struct WasmHost {
    /// Streams the callback asked to wake.
    wake: Vec<u32>,
    /// A local reply was sent during this callback.
    replied: bool,
}

impl WasmHost {
    fn new() -> WasmHost {
        WasmHost {
            wake: Vec::new(),
            replied: false,
        }
    }
}

fn pairs<'a>(v: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    v.to_vec()
}

impl Host for WasmHost {
    fn now_nanos(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => SdkLevel::Trace,
            LogLevel::Debug => SdkLevel::Debug,
            LogLevel::Info => SdkLevel::Info,
            LogLevel::Warn => SdkLevel::Warn,
            LogLevel::Error => SdkLevel::Error,
            LogLevel::Critical => SdkLevel::Critical,
        };
        let _ = hostcalls::log(level, message);
    }
    fn request_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(proxy_wasm::types::MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }
    fn request_headers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(proxy_wasm::types::MapType::HttpRequestHeaders).unwrap_or_default()
    }
    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        let _ =
            hostcalls::set_map_value(proxy_wasm::types::MapType::HttpRequestHeaders, name, value);
    }
    fn add_request_header(&mut self, name: &str, value: &str) {
        let _ =
            hostcalls::add_map_value(proxy_wasm::types::MapType::HttpRequestHeaders, name, value);
    }
    fn response_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(proxy_wasm::types::MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
    }
    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        let _ =
            hostcalls::set_map_value(proxy_wasm::types::MapType::HttpResponseHeaders, name, value);
    }
    fn add_response_header(&mut self, name: &str, value: &str) {
        let _ =
            hostcalls::add_map_value(proxy_wasm::types::MapType::HttpResponseHeaders, name, value);
    }
    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, start, max)
            .ok()
            .flatten()
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }
    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_property(path.to_vec(), Some(value)).map_err(status_error)
    }
    fn send_local_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        if !self.replied {
            self.replied = true;
            let _ = hostcalls::send_http_response(u32::from(status), pairs(headers), Some(body));
        }
    }
    fn wake_stream(&mut self, context_id: u32) {
        self.wake.push(context_id);
    }
    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
        let (value, cas) = hostcalls::get_shared_data(key).map_err(status_error)?;
        Ok((value, cas.unwrap_or(0)))
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        let cas = if cas == 0 { None } else { Some(cas) };
        hostcalls::set_shared_data(key, Some(value), cas).map_err(status_error)
    }
    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(cluster, pairs(headers), body, Vec::new(), timeout)
            .map_err(status_error)
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
        hostcalls::dispatch_grpc_call(
            cluster,
            service,
            method,
            metadata.to_vec(),
            Some(message),
            timeout,
        )
        .map_err(status_error)
    }
    fn set_tick_period(&mut self, period: Duration) {
        let _ = hostcalls::set_tick_period(period);
    }
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(kind, name).map_err(status_error)
    }
    fn increment_metric(&mut self, id: u32, delta: i64) {
        let _ = hostcalls::increment_metric(id, delta);
    }
    fn record_metric(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
}

/// A stream's filter and its flow state, shared between the SDK's context and the wake registry.
struct StreamState<S> {
    filter: S,
    paused: bool,
    replied: bool,
}

trait Wake {
    fn wake(&mut self);
}

impl<S: StreamFilter> StreamState<S> {
    /// Applies what a callback returned. `resume` is true for callbacks that arrive while the
    /// stream may be paused (callouts, wake-ups): then `Continue` means "resume now".
    fn apply(&mut self, host: WasmHost, action: Action, resume: bool) -> SdkAction {
        if host.replied {
            self.replied = true;
        }
        flush_wakes(host.wake);
        if self.replied {
            self.paused = false;
            return SdkAction::Pause;
        }
        match action {
            Action::Pause => {
                self.paused = true;
                SdkAction::Pause
            }
            Action::Continue => {
                if resume && self.paused {
                    self.paused = false;
                    let _ = hostcalls::resume_http_request();
                }
                SdkAction::Continue
            }
        }
    }
}

impl<S: StreamFilter> Wake for StreamState<S> {
    fn wake(&mut self) {
        if !self.paused || self.replied {
            return;
        }
        let mut host = WasmHost::new();
        let action = self.filter.on_wake(&mut host);
        self.apply(host, action, true);
    }
}

thread_local! {
    /// The live streams of this VM, by context id, for `Host::wake_stream`.
    static STREAMS: RefCell<HashMap<u32, Rc<RefCell<dyn Wake>>>> = RefCell::new(HashMap::new());
}

/// Wakes the streams a callback asked for: each runs with itself as the effective context.
fn flush_wakes(ids: Vec<u32>) {
    for id in ids {
        let stream = STREAMS.with(|s| s.borrow().get(&id).cloned());
        let Some(stream) = stream else { continue };
        if hostcalls::set_effective_context(id).is_err() {
            continue;
        }
        // A stream that is already running a callback (it woke itself) is skipped.
        let borrowed = stream.try_borrow_mut();
        if let Ok(mut s) = borrowed {
            s.wake();
        }
    }
}

struct RootAdapter<F: RootFilter> {
    context_id: u32,
    filter: Rc<RefCell<Option<F>>>,
}

impl<F: RootFilter> RootAdapter<F> {
    fn with_filter(&self, f: impl FnOnce(&mut F, &mut WasmHost)) {
        let mut host = WasmHost::new();
        if let Ok(mut slot) = self.filter.try_borrow_mut() {
            if let Some(filter) = slot.as_mut() {
                f(filter, &mut host);
            }
        }
        if !host.wake.is_empty() {
            flush_wakes(std::mem::take(&mut host.wake));
            let _ = hostcalls::set_effective_context(self.context_id);
        }
    }
}

fn callout_response(num_headers: usize, body_size: usize) -> CalloutResponse {
    let headers = if num_headers == 0 {
        Vec::new()
    } else {
        hostcalls::get_map(proxy_wasm::types::MapType::HttpCallResponseHeaders).unwrap_or_default()
    };
    let status = headers
        .iter()
        .find(|(k, _)| k == ":status")
        .and_then(|(_, v)| v.parse().ok());
    let body = if body_size == 0 {
        Vec::new()
    } else {
        hostcalls::get_buffer(
            proxy_wasm::types::BufferType::HttpCallResponseBody,
            0,
            body_size,
        )
        .ok()
        .flatten()
        .unwrap_or_default()
    };
    CalloutResponse {
        status,
        headers,
        body,
    }
}

fn grpc_response(status_code: u32, response_size: usize) -> GrpcResponse {
    let message = if status_code == 0 {
        hostcalls::get_buffer(
            proxy_wasm::types::BufferType::GrpcReceiveBuffer,
            0,
            response_size,
        )
        .ok()
        .flatten()
        .or(Some(Vec::new()))
    } else {
        None
    };
    GrpcResponse {
        status: status_code,
        message,
    }
}

impl<F: RootFilter> Context for RootAdapter<F> {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let response = callout_response(num_headers, body_size);
        self.with_filter(|f, host| f.on_http_call_response(host, token, response));
    }
    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, response_size: usize) {
        let response = grpc_response(status_code, response_size);
        self.with_filter(|f, host| f.on_grpc_call_response(host, token, response));
    }
}

impl<F: RootFilter> RootContext for RootAdapter<F> {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let mut host = WasmHost::new();
        match F::configure(&mut host, &config) {
            Ok(filter) => {
                if let Ok(mut slot) = self.filter.try_borrow_mut() {
                    *slot = Some(filter);
                }
                true
            }
            Err(e) => {
                host.log(
                    LogLevel::Error,
                    &format!("shieldwall {}: invalid configuration: {e}", F::NAME),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.with_filter(|f, host| f.on_tick(host));
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let mut host = WasmHost::new();
        let stream = {
            let mut slot = self.filter.try_borrow_mut().ok()?;
            slot.as_mut()?.new_stream(&mut host, context_id)
        };
        let state = Rc::new(RefCell::new(StreamState {
            filter: stream,
            paused: false,
            replied: false,
        }));
        let as_wake: Rc<RefCell<dyn Wake>> = state.clone();
        STREAMS.with(|s| s.borrow_mut().insert(context_id, as_wake));
        Some(Box::new(StreamAdapter { context_id, state }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct StreamAdapter<S: StreamFilter> {
    context_id: u32,
    state: Rc<RefCell<StreamState<S>>>,
}

impl<S: StreamFilter> StreamAdapter<S> {
    fn run(&self, resume: bool, f: impl FnOnce(&mut S, &mut WasmHost) -> Action) -> SdkAction {
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return SdkAction::Continue;
        };
        if state.replied {
            return SdkAction::Pause;
        }
        let mut host = WasmHost::new();
        let action = f(&mut state.filter, &mut host);
        state.apply(host, action, resume)
    }
}

impl<S: StreamFilter> Context for StreamAdapter<S> {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let response = callout_response(num_headers, body_size);
        self.run(true, |f, host| {
            f.on_http_call_response(host, token, response)
        });
    }
    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, response_size: usize) {
        let response = grpc_response(status_code, response_size);
        self.run(true, |f, host| {
            f.on_grpc_call_response(host, token, response)
        });
    }
    fn on_done(&mut self) -> bool {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            let mut host = WasmHost::new();
            state.filter.on_done(&mut host);
        }
        STREAMS.with(|s| s.borrow_mut().remove(&self.context_id));
        true
    }
}

impl<S: StreamFilter> HttpContext for StreamAdapter<S> {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> SdkAction {
        self.run(false, |f, host| f.on_request_headers(host, end_of_stream))
    }
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> SdkAction {
        self.run(false, |f, host| {
            f.on_request_body(host, body_size, end_of_stream)
        })
    }
    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> SdkAction {
        // Response callbacks run for local replies too; they must not be suppressed.
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return SdkAction::Continue;
        };
        let mut host = WasmHost::new();
        let _ = state.filter.on_response_headers(&mut host, end_of_stream);
        flush_wakes(host.wake);
        SdkAction::Continue
    }
    fn on_log(&mut self) {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            let mut host = WasmHost::new();
            state.filter.on_log(&mut host);
        }
    }
}

/// Exports a filter: `shieldwall_core::export_filter!(crate::JwtAuth);` in the filter's `wasm.rs`.
#[macro_export]
macro_rules! export_filter {
    ($root:ty) => {
        $crate::__proxy_wasm::main! {{
            $crate::wasm::register::<$root>();
        }}
    };
}
