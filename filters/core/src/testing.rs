//! A host for native unit tests: shared data with Envoy's CAS rules, headers, properties, a clock,
//! recorded replies, callouts and metrics. Filters' logic is tested against it; the real module
//! is tested by host-tests and in Envoy.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::host::{Host, HostError, LogLevel, MetricKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl LocalReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callout {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Callout {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcCallout {
    pub token: u32,
    pub cluster: String,
    pub service: String,
    pub method: String,
    pub message: Vec<u8>,
    pub timeout: Duration,
}

#[derive(Default)]
pub struct MockHost {
    pub now_ns: u64,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    /// The lowest level the host writes (`None`: every message, as by default); a proxy at
    /// Envoy's default writes info and above.
    pub log_level: Option<LogLevel>,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub properties: HashMap<String, Vec<u8>>,
    pub local_reply: Option<LocalReply>,
    pub woken: Vec<u32>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    /// Shared queues by name (one vm_id); a queue's id is its index + 1.
    pub queues: Vec<(String, VecDeque<Vec<u8>>)>,
    next_cas: u32,
    /// Makes the next N conditional sets fail with CasMismatch, as if another worker wrote first.
    pub interfere_with_cas: Option<usize>,
    /// Once: just before a set on a missing key, another worker creates that key with this value
    /// (the race of two workers creating one key).
    pub create_first: Option<Vec<u8>>,
    pub callouts: Vec<Callout>,
    pub grpc_callouts: Vec<GrpcCallout>,
    next_token: u32,
    /// Makes callouts fail at dispatch (as Envoy does for an unknown cluster).
    pub fail_callouts: bool,
    pub tick_period: Option<Duration>,
    /// The VM's environment variables (`Host::env_var`).
    pub env: HashMap<String, String>,
    /// The filter name decisions are recorded under (`Host::filter_name`); empty records none.
    pub filter_name: &'static str,
    /// Every `request_header` call's name, in order (to count what is asked of the proxy).
    pub header_reads: RefCell<Vec<String>>,
    /// Every `property` call's path (segments joined by `.`), in order.
    pub property_reads: RefCell<Vec<String>>,
    metrics: Vec<(String, MetricKind, u64, usize)>,
}

impl MockHost {
    /// A host whose clock reads 2023-11-14T22:13:20Z (1_700_000_000 s) and plugin name `test`.
    pub fn new() -> MockHost {
        let mut h = MockHost {
            now_ns: 1_700_000_000 * 1_000_000_000,
            next_cas: 1,
            next_token: 1,
            ..Default::default()
        };
        h.properties.insert("plugin_name".into(), b"test".to_vec());
        h
    }

    /// A host with a request: `:method`, `:path`, `:authority` and the given headers.
    pub fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> MockHost {
        let mut h = MockHost::new();
        h.request_headers = vec![
            (":method".into(), method.into()),
            (":path".into(), path.into()),
            (":authority".into(), "api.example.com".into()),
            (":scheme".into(), "https".into()),
        ];
        h.request_headers
            .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // Envoy stores `authorization` inline: repeated copies arrive as one value joined by ",".
        let auth: Vec<String> = h
            .request_headers
            .iter()
            .filter(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .collect();
        if auth.len() > 1 {
            let mut first = true;
            h.request_headers
                .retain(|(k, _)| k != "authorization" || std::mem::take(&mut first));
            if let Some(entry) = h
                .request_headers
                .iter_mut()
                .find(|(k, _)| k == "authorization")
            {
                entry.1 = auth.join(",");
            }
        }
        h
    }

    fn queue_mut(&mut self, queue: u32) -> Result<&mut VecDeque<Vec<u8>>, HostError> {
        let index = usize::try_from(queue)
            .ok()
            .and_then(|q| q.checked_sub(1))
            .ok_or(HostError::NotFound)?;
        self.queues
            .get_mut(index)
            .map(|(_, q)| q)
            .ok_or(HostError::NotFound)
    }

    /// The items waiting in the queue `name`.
    pub fn queue_len(&self, name: &str) -> usize {
        self.queues
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, q)| q.len())
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.now_ns = self.now_ns.saturating_add(ms.saturating_mul(1_000_000));
    }

    pub fn set_now_secs(&mut self, secs: u64) {
        self.now_ns = secs.saturating_mul(1_000_000_000);
    }

    pub fn property_value(&self, path: &str) -> Option<Vec<u8>> {
        self.properties.get(path).cloned()
    }

    pub fn metric(&self, name: &str) -> u64 {
        self.metrics
            .iter()
            .find(|m| m.0 == name)
            .map(|m| m.2)
            .unwrap_or(0)
    }

    /// How many times a metric was defined (should be once per VM).
    pub fn metric_definitions(&self, name: &str) -> usize {
        self.metrics
            .iter()
            .find(|m| m.0 == name)
            .map(|m| m.3)
            .unwrap_or(0)
    }

    /// A token for a new callout, or the dispatch failure `fail_callouts` asks for.
    fn next_callout_token(&mut self) -> Result<u32, HostError> {
        if self.fail_callouts {
            return Err(HostError::BadArgument);
        }
        let token = self.next_token;
        self.next_token += 1;
        Ok(token)
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.0.clone()).collect()
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.logs.borrow().iter().any(|(_, m)| m.contains(needle))
    }

    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.request_headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Clears what one stream left behind so the host can serve the next request.
    pub fn new_stream(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) {
        let fresh = MockHost::request(method, path, headers);
        self.request_headers = fresh.request_headers;
        self.response_headers.clear();
        self.request_body.clear();
        self.properties.retain(|k, _| k == "plugin_name");
        self.local_reply = None;
        self.woken.clear();
    }
}

fn set_header(map: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    let name = name.to_ascii_lowercase();
    map.retain(|(k, _)| *k != name);
    if let Some(v) = value {
        map.push((name, v.to_string()));
    }
}

impl Host for MockHost {
    fn now_nanos(&self) -> u64 {
        self.now_ns
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
    fn log_enabled(&self, level: LogLevel) -> bool {
        self.log_level.is_none_or(|lowest| level >= lowest)
    }
    fn request_header(&self, name: &str) -> Option<String> {
        self.header_reads.borrow_mut().push(name.to_string());
        self.request_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    fn request_headers(&self) -> Vec<(String, String)> {
        self.request_headers.clone()
    }
    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        set_header(&mut self.request_headers, name, value)
    }
    fn add_request_header(&mut self, name: &str, value: &str) {
        self.request_headers
            .push((name.to_ascii_lowercase(), value.to_string()));
    }
    fn response_header(&self, name: &str) -> Option<String> {
        self.response_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        set_header(&mut self.response_headers, name, value)
    }
    fn add_response_header(&mut self, name: &str, value: &str) {
        self.response_headers
            .push((name.to_ascii_lowercase(), value.to_string()));
    }
    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        let end = start.saturating_add(max).min(self.request_body.len());
        self.request_body.get(start..end).map(<[u8]>::to_vec)
    }
    fn filter_name(&self) -> &'static str {
        self.filter_name
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.property_reads.borrow_mut().push(path.join("."));
        self.properties.get(&path.join("\0")).cloned()
    }
    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        self.properties.insert(path.join("\0"), value.to_vec());
        Ok(())
    }
    fn send_local_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.local_reply = Some(LocalReply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        });
    }
    fn wake_stream(&mut self, context_id: u32) {
        self.woken.push(context_id);
    }
    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
        Ok(match self.shared.get(key) {
            Some((v, cas)) => (Some(v.clone()), *cas),
            None => (None, 0),
        })
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        if !self.shared.contains_key(key) {
            if let Some(theirs) = self.create_first.take() {
                let next = self.next_cas;
                self.next_cas = self.next_cas.checked_add(1).unwrap_or(1);
                self.shared.insert(key.to_string(), (theirs, next));
            }
        }
        let next = self.next_cas;
        self.next_cas = self.next_cas.checked_add(1).unwrap_or(1);
        if cas != 0 {
            if let Some(n) = self.interfere_with_cas.as_mut().filter(|n| **n > 0) {
                *n -= 1;
                if let Some(entry) = self.shared.get_mut(key) {
                    entry.1 = entry.1.wrapping_add(1_000_000);
                }
            }
        }
        // Envoy (proxy-wasm-cpp-host): a CAS is checked only against an existing key.
        if let Some((_, current)) = self.shared.get(key) {
            if cas != 0 && cas != *current {
                return Err(HostError::CasMismatch);
            }
        }
        self.shared.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
    fn queue_register(&mut self, name: &str) -> Result<u32, HostError> {
        let index = match self.queues.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.queues.push((name.to_string(), VecDeque::new()));
                self.queues.len() - 1
            }
        };
        u32::try_from(index + 1).map_err(|_| HostError::Failed)
    }
    fn queue_resolve(&self, _vm_id: &str, name: &str) -> Result<Option<u32>, HostError> {
        Ok(self
            .queues
            .iter()
            .position(|(n, _)| n == name)
            .and_then(|i| u32::try_from(i + 1).ok()))
    }
    fn queue_enqueue(&mut self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        let q = self.queue_mut(queue)?;
        q.push_back(value.to_vec());
        Ok(())
    }
    fn queue_dequeue(&mut self, queue: u32) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.queue_mut(queue)?.pop_front())
    }
    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let token = self.next_callout_token()?;
        self.callouts.push(Callout {
            token,
            cluster: cluster.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
            timeout,
        });
        Ok(token)
    }
    fn grpc_call(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        _metadata: &[(&str, &[u8])],
        message: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let token = self.next_callout_token()?;
        self.grpc_callouts.push(GrpcCallout {
            token,
            cluster: cluster.into(),
            service: service.into(),
            method: method.into(),
            message: message.to_vec(),
            timeout,
        });
        Ok(token)
    }
    fn set_tick_period(&mut self, period: Duration) {
        self.tick_period = Some(period);
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        if let Some(i) = self.metrics.iter().position(|m| m.0 == name) {
            if let Some(m) = self.metrics.get_mut(i) {
                m.3 += 1;
            }
            return u32::try_from(i).map_err(|_| HostError::Failed);
        }
        self.metrics.push((name.to_string(), kind, 0, 1));
        u32::try_from(self.metrics.len() - 1).map_err(|_| HostError::Failed)
    }
    fn increment_metric(&mut self, id: u32, delta: i64) {
        if let Some(m) = self.metrics.get_mut(id as usize) {
            m.2 = m.2.saturating_add_signed(delta);
        }
    }
    fn record_metric(&mut self, id: u32, value: u64) {
        if let Some(m) = self.metrics.get_mut(id as usize) {
            m.2 = value;
        }
    }
}

/// A host that records which of its calls a filter makes (each is a call out of the VM in a
/// proxy), over a [`MockHost`]: tests pin the calls a hot path makes, since each costs a crossing
/// between the VM and the proxy (bench/RESULTS.md prices them).
pub struct CountingHost {
    pub inner: MockHost,
    /// The calls made, in order, by the name of the `Host` method.
    pub calls: std::cell::RefCell<Vec<&'static str>>,
}

impl CountingHost {
    pub fn new(inner: MockHost) -> CountingHost {
        CountingHost {
            inner,
            calls: Default::default(),
        }
    }

    /// Adds `call` to the list: each host call notes itself; a test may note a marker between
    /// callbacks.
    pub fn note(&self, call: &'static str) {
        self.calls.borrow_mut().push(call);
    }

    /// The calls the third of three like requests makes, the first two having warmed what a
    /// worker keeps (its metrics, its caches): `prepare` sets each request up on the mock host,
    /// `run` is the filter's work on it.
    pub fn calls_when_warm(
        &mut self,
        mut prepare: impl FnMut(&mut MockHost),
        mut run: impl FnMut(&mut CountingHost),
    ) -> Vec<&'static str> {
        for _ in 0..2 {
            prepare(&mut self.inner);
            run(self);
        }
        prepare(&mut self.inner);
        self.calls.borrow_mut().clear();
        run(self);
        self.calls.take()
    }

    /// [`CountingHost::calls_when_warm`] for the request-headers callback of `root`'s streams on
    /// `GET path` with `headers`, each request going on upstream; `extra` adds to every request
    /// on the mock host (a property, for one).
    pub fn header_calls_when_warm<R: crate::RootFilter>(
        &mut self,
        root: &mut R,
        path: &str,
        headers: &[(&str, &str)],
        mut extra: impl FnMut(&mut MockHost),
    ) -> Vec<&'static str> {
        use crate::StreamFilter;
        self.calls_when_warm(
            |mock| {
                mock.new_stream("GET", path, headers);
                extra(mock);
            },
            |host| {
                let mut s = root.new_stream(host, 7);
                let action = s.on_request_headers(host, true);
                assert_eq!(
                    action,
                    crate::Action::Continue,
                    "{:?}",
                    host.inner.local_reply
                );
            },
        )
    }
}

impl crate::Host for CountingHost {
    fn now_nanos(&self) -> u64 {
        self.note("now");
        self.inner.now_nanos()
    }
    fn log(&self, level: crate::LogLevel, message: &str) {
        self.note("log");
        self.inner.log(level, message)
    }
    fn log_enabled(&self, level: crate::LogLevel) -> bool {
        // In a proxy, a question of the cached level: no call out of the VM (see WasmHost).
        self.inner.log_enabled(level)
    }
    fn request_header(&self, name: &str) -> Option<String> {
        self.note("request_header");
        self.inner.request_header(name)
    }
    fn request_headers(&self) -> Vec<(String, String)> {
        self.note("request_headers");
        self.inner.request_headers()
    }
    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        self.note(if value.is_some() {
            "replace_header"
        } else {
            "remove_header"
        });
        self.inner.set_request_header(name, value)
    }
    fn add_request_header(&mut self, name: &str, value: &str) {
        self.note("add_header");
        self.inner.add_request_header(name, value)
    }
    fn response_header(&self, name: &str) -> Option<String> {
        self.note("response_header");
        self.inner.response_header(name)
    }
    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        self.note("set_response_header");
        self.inner.set_response_header(name, value)
    }
    fn add_response_header(&mut self, name: &str, value: &str) {
        self.note("add_response_header");
        self.inner.add_response_header(name, value)
    }
    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        self.note("request_body");
        self.inner.request_body(start, max)
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.note("property");
        self.inner.property(path)
    }
    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), crate::HostError> {
        self.note("set_property");
        self.inner.set_property(path, value)
    }
    fn send_local_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.note("send_local_reply");
        self.inner.send_local_reply(status, headers, body)
    }
    fn wake_stream(&mut self, context_id: u32) {
        self.inner.wake_stream(context_id)
    }
    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), crate::HostError> {
        self.note("shared_get");
        self.inner.shared_get(key)
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), crate::HostError> {
        self.note("shared_set");
        self.inner.shared_set(key, value, cas)
    }
    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: std::time::Duration,
    ) -> Result<u32, crate::HostError> {
        self.note("http_call");
        self.inner.http_call(cluster, headers, body, timeout)
    }
    fn grpc_call(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        metadata: &[(&str, &[u8])],
        message: &[u8],
        timeout: std::time::Duration,
    ) -> Result<u32, crate::HostError> {
        self.note("grpc_call");
        self.inner
            .grpc_call(cluster, service, method, metadata, message, timeout)
    }
    fn set_tick_period(&mut self, period: std::time::Duration) {
        self.inner.set_tick_period(period)
    }
    fn filter_name(&self) -> &'static str {
        self.inner.filter_name()
    }
    fn define_metric(
        &mut self,
        kind: crate::MetricKind,
        name: &str,
    ) -> Result<u32, crate::HostError> {
        self.note("define_metric");
        self.inner.define_metric(kind, name)
    }
    fn increment_metric(&mut self, id: u32, delta: i64) {
        // Not noted: the wasm adapter counts increments in the VM and hands them to the proxy on
        // the tick, so an increment is no call out of the VM on the request path.
        self.inner.increment_metric(id, delta)
    }
    fn record_metric(&mut self, id: u32, value: u64) {
        self.note("record_metric");
        self.inner.record_metric(id, value)
    }
}

/// The value after `name` on the command line (`--requests 2000` → `Some("2000")`), for the
/// examples that measure a filter's native cost over this host.
pub fn cli_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
