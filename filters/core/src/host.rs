//! The `Host` trait: everything a filter may ask of the proxy. Filters are written against it so
//! their logic runs natively in unit tests (with [`crate::testing::MockHost`]) and in wasm through
//! the one proxy-wasm adapter in [`crate::wasm`].

use std::rc::Rc;
use std::time::Duration;

use crate::decision::Decision;
use crate::identity::{Identity, IDENTITY_PROPERTY};
use crate::route::{PathOptions, RequestLine};

/// Log levels, as proxy-wasm numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

/// The three metric kinds of proxy-wasm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Why a host operation failed. The proxy's status codes, reduced to what filters act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// Shared data: the value changed since it was read (the CAS did not match).
    CasMismatch,
    /// Not found (a missing key, an unknown cluster for some hosts).
    NotFound,
    /// The host refused the arguments (an unknown cluster in Envoy, missing pseudo-headers).
    BadArgument,
    /// Anything else the host reported.
    Failed,
}

/// The reply to an HTTP callout. A callout that failed (timeout, reset, no healthy upstream) is
/// delivered with `status == None`: Envoy gives such a callback no `:status` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CalloutResponse {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CalloutResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The end of a gRPC callout: the gRPC status code (0 = OK; 4 = deadline exceeded, 14 = unavailable)
/// and, for OK, the response message bytes (protobuf, without the gRPC frame).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcResponse {
    pub status: u32,
    pub message: Option<Vec<u8>>,
}

/// What the proxy offers a filter. One trait for root and stream contexts: a stream-only call
/// made from the root (request headers, say) returns `None` or does nothing.
pub trait Host {
    // ---- time and logging
    /// Wall-clock time in nanoseconds since the Unix epoch, as the proxy reports it.
    fn now_nanos(&self) -> u64;
    fn log(&self, level: LogLevel, message: &str);
    /// Whether a message at `level` would be written, so that a caller need not build one the
    /// proxy would drop (see [`debug_with`](#method.debug_with)). A proxy answers from its log
    /// level; the default writes everything.
    fn log_enabled(&self, _level: LogLevel) -> bool {
        true
    }

    // ---- the request and response of the current stream
    /// The first value of a request header (names are lower-case in HTTP/2 and in Envoy).
    fn request_header(&self, name: &str) -> Option<String>;
    /// Every request header, repeated ones as separate pairs, in order.
    fn request_headers(&self) -> Vec<(String, String)>;
    /// Replaces every value of the header with `value`; `None` removes it.
    fn set_request_header(&mut self, name: &str, value: Option<&str>);
    fn add_request_header(&mut self, name: &str, value: &str);
    fn response_header(&self, name: &str) -> Option<String>;
    fn set_response_header(&mut self, name: &str, value: Option<&str>);
    fn add_response_header(&mut self, name: &str, value: &str);
    /// Bytes of the buffered request body (in `on_request_body`).
    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>>;

    // ---- properties and filter state
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), HostError>;

    // ---- replies and flow control
    /// Answers the client without the upstream. Headers are extra reply headers.
    fn send_local_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]);
    /// [`Host::send_local_reply`] naming the filter that answers in Envoy's response code details
    /// (`shieldwall_<filter>`, in the access log's `%RESPONSE_CODE_DETAILS%`): the one-module chain
    /// answers for its stages. A host that has no such details answers as `send_local_reply`.
    fn send_local_reply_as(
        &mut self,
        details: &'static str,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let _ = details;
        self.send_local_reply(status, headers, body)
    }
    /// Asks the adapter to call `StreamFilter::on_wake` on a paused stream of this worker
    /// (used by a root context when what the stream waited for has arrived).
    fn wake_stream(&mut self, context_id: u32);

    // ---- shared data (one store per vm_id, shared by all workers)
    /// The value and its CAS, or `Ok((None, 0))` when the key is absent.
    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError>;
    /// Sets the value if `cas` still matches (0 sets unconditionally).
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError>;

    // ---- shared queues (one set per vm_id, shared by all workers)
    /// Registers the queue `name` of this plugin's vm_id (or finds it, if registered already)
    /// and returns its id. Registering makes this VM the one the host notifies of new items.
    fn queue_register(&mut self, _name: &str) -> Result<u32, HostError> {
        Err(HostError::Failed)
    }
    /// The id of the queue `name` of `vm_id`, `Ok(None)` when nobody registered it yet.
    fn queue_resolve(&self, _vm_id: &str, _name: &str) -> Result<Option<u32>, HostError> {
        Err(HostError::Failed)
    }
    /// Appends an item; any worker may enqueue.
    fn queue_enqueue(&mut self, _queue: u32, _value: &[u8]) -> Result<(), HostError> {
        Err(HostError::Failed)
    }
    /// Takes the oldest item, `Ok(None)` when the queue is empty; any worker may dequeue.
    fn queue_dequeue(&mut self, _queue: u32) -> Result<Option<Vec<u8>>, HostError> {
        Err(HostError::Failed)
    }

    // ---- callouts
    /// Starts an HTTP call to an upstream cluster; the answer arrives in `on_http_call_response`.
    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError>;
    /// Starts a unary gRPC call; the answer arrives in `on_grpc_call_response`.
    fn grpc_call(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        metadata: &[(&str, &[u8])],
        message: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError>;

    // ---- timers (root context only)
    fn set_tick_period(&mut self, period: Duration);

    // ---- the VM's environment
    /// An environment variable of the VM (Envoy `vm_config.environment_variables`, Istio
    /// `vmConfig.env`), read through WASI; `None` when unset or not UTF-8. Secrets can come from
    /// here instead of the plugin configuration.
    fn env_var(&self, _name: &str) -> Option<String> {
        None
    }

    // ---- the request line, where a host keeps it
    /// The request line already parsed in this request with these path options (the one-module
    /// chain keeps the first stage's for the later ones); `None`: parse it
    /// ([`RequestLine::from_host`] does).
    fn kept_request_line(&self, opts: PathOptions) -> Option<Rc<RequestLine>> {
        let _ = opts;
        None
    }
    /// Offers a request line just parsed with `opts` for later readers of the same request; a
    /// host that does not keep request lines ignores it.
    fn keep_request_line(&self, opts: PathOptions, line: &Rc<RequestLine>) {
        let _ = (opts, line);
    }

    // ---- the identity context, where a host keeps it as a value
    /// The identity context of this stream when the host holds it as a value (the one-module
    /// chain keeps what an earlier stage wrote); `None`: read the property.
    fn known_identity(&self) -> Option<Rc<Identity>> {
        None
    }
    /// Writes the identity context: its JSON as the property (for access logs and later
    /// modules), and, where the host keeps it, the value itself.
    fn write_identity(&mut self, identity: &Rc<Identity>, bytes: &[u8]) -> Result<(), HostError> {
        let _ = identity;
        self.set_property(&[IDENTITY_PROPERTY], bytes)
    }

    // ---- decisions (for the audit log and access logs)
    /// The filter's name in decision records (`jwt_auth`); empty where decisions are not
    /// recorded (the one-module chain's outer context, which records per stage instead).
    fn filter_name(&self) -> &'static str {
        ""
    }
    /// Records this filter's decision about the current request as filter state
    /// `shieldwall.decision.<filter>` (see [`crate::decision`]).
    fn record_decision(&mut self, decision: &Decision) {
        if let Some((key, value)) = crate::decision::encoded(self.filter_name(), decision) {
            let _ = self.set_property(&[&key], &value);
        }
    }

    // ---- metrics
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Result<u32, HostError>;
    fn increment_metric(&mut self, id: u32, delta: i64);
    fn record_metric(&mut self, id: u32, value: u64);
}

impl dyn Host + '_ {
    pub fn now_secs(&self) -> u64 {
        self.now_nanos() / 1_000_000_000
    }
    pub fn now_millis(&self) -> u64 {
        self.now_nanos() / 1_000_000
    }
    /// The property as UTF-8 text (properties that are strings in Envoy).
    pub fn property_str(&self, path: &[&str]) -> Option<String> {
        self.property(path).and_then(|b| String::from_utf8(b).ok())
    }
    /// The name the proxy gave this plugin (`config.name` in Envoy's Wasm filter).
    pub fn plugin_name(&self) -> String {
        self.property_str(&["plugin_name"]).unwrap_or_default()
    }
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message)
    }
    /// A debug message built only when the proxy would write it (messages on every request).
    pub fn debug_with(&self, message: impl FnOnce() -> String) {
        if self.log_enabled(LogLevel::Debug) {
            self.log(LogLevel::Debug, &message())
        }
    }
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message)
    }
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message)
    }
    pub fn error(&self, message: &str) {
        self.log(LogLevel::Error, message)
    }
}
