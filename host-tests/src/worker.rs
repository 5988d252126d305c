//! A worker: one VM per plugin, and the HTTP filter chain that streams run through.
//!
//! The chain follows Envoy's filter manager: request frames (headers, body chunks, trailers)
//! go through filters in order, response frames in reverse order. A filter that pauses holds
//! its frames (and, like cpp-host's StopAllIterationAndWatermark, every later one) until
//! proxy_continue_stream. A local reply ends decoding and is encoded through the filters that
//! had started, in reverse order.

use crate::abi::headers;
use crate::envoy::{EnvoyState, Event, EventKind};
use crate::model::{LocalReply, Message, Outcome, Request, Response};
use crate::state::upstreams::real_http;
use crate::vm::{Access, Deferred, Dir, GuestTrap, LogLine, Plugin, StreamData, Vm};
use crate::Envoy;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Frame {
    Headers { end: bool },
    Data { bytes: Vec<u8>, end: bool },
    Trailers,
}

#[derive(Debug, Default)]
struct Slot {
    inbox: VecDeque<Frame>,
    held: VecDeque<Frame>,
    stopped: bool,
    /// Body kept by a filter that paused on a non-final chunk (StopIterationAndBuffer).
    buffer: Option<Vec<u8>>,
}

pub(crate) struct StreamState {
    data: Rc<RefCell<StreamData>>,
    ctx: Vec<Option<u32>>,
    req: Vec<Slot>,
    resp: Vec<Slot>,
    upstream: Message,
    upstream_done: bool,
    downstream: Message,
    downstream_done: bool,
    response_started: bool,
    local: Option<String>,
    reset: bool,
}

pub(crate) struct WorkerInner {
    id: usize,
    vms: Vec<Vm>,
    streams: BTreeMap<u64, StreamState>,
    owner: HashMap<(usize, u32), u64>,
    log: Rc<RefCell<Vec<LogLine>>>,
    envoy: Rc<RefCell<EnvoyState>>,
    next_stream: u64,
    traps: Vec<GuestTrap>,
}

const OK: i32 = 0;

impl WorkerInner {
    pub fn start(
        envoy: Rc<RefCell<EnvoyState>>,
        id: usize,
        plugins: &[Plugin],
    ) -> anyhow::Result<WorkerInner> {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut vms = Vec::new();
        for (i, p) in plugins.iter().enumerate() {
            vms.push(Vm::start(envoy.clone(), id, i, p.clone(), log.clone())?);
        }
        Ok(WorkerInner {
            id,
            vms,
            streams: BTreeMap::new(),
            owner: HashMap::new(),
            log,
            envoy,
            next_stream: 1,
            traps: Vec::new(),
        })
    }

    pub fn tick_dues(&self) -> Vec<(usize, u64)> {
        self.vms
            .iter()
            .enumerate()
            .filter(|(_, vm)| vm.dead.is_none())
            .filter_map(|(i, vm)| vm.host().next_tick.map(|t| (i, t)))
            .collect()
    }

    /// Calls into a VM; a trap is recorded (the caller decides what the stream sees).
    fn call(&mut self, vi: usize, ctx: u32, name: &str, args: &[i32]) -> Result<Option<i32>, ()> {
        if self.vms[vi].dead.is_some() {
            return Err(());
        }
        match self.vms[vi].call(ctx, name, args) {
            Ok(r) => Ok(r),
            Err(t) => {
                self.traps.push(t);
                self.fail_streams_of(vi);
                Err(())
            }
        }
    }

    fn take_trap(&mut self, before: usize) -> Result<(), GuestTrap> {
        match self.traps.get(before) {
            Some(t) => Err(t.clone()),
            None => Ok(()),
        }
    }

    pub fn tick(&mut self, vi: usize) -> Result<(), GuestTrap> {
        let before = self.traps.len();
        let root = self.vms[vi].root();
        let h = self.vms[vi].host_mut();
        let period = h.tick_period_ms as u64 * 1_000_000;
        h.next_tick = h.next_tick.map(|t| t + period.max(1));
        let _ = self.call(vi, root, "proxy_on_tick", &[root as i32]);
        self.after_callback(vi);
        self.take_trap(before)
    }

    pub fn deliver(&mut self, ev: Event) -> Result<(), GuestTrap> {
        let before = self.traps.len();
        let vi = ev.vm;
        match ev.kind {
            EventKind::Http {
                context_id,
                token,
                response,
            } => self.http_response(vi, context_id, token, response),
            EventKind::RealHttp {
                context_id,
                token,
                addr,
                request,
            } => {
                let response = real_http(addr, &request);
                self.http_response(vi, context_id, token, response)
            }
            EventKind::Grpc {
                context_id,
                token,
                message,
                status,
                status_message,
            } => {
                let h = self.vms[vi].host_mut();
                if status == 0 && message.is_some() {
                    let len = message.as_ref().map_or(0, |m| m.len());
                    h.grpc_buffer = message;
                    let _ = self.call(
                        vi,
                        context_id,
                        "proxy_on_grpc_receive",
                        &[context_id as i32, token as i32, len as i32],
                    );
                    self.vms[vi].host_mut().grpc_buffer = None;
                } else {
                    h.status = (status, status_message);
                    let _ = self.call(
                        vi,
                        context_id,
                        "proxy_on_grpc_close",
                        &[context_id as i32, token as i32, status as i32],
                    );
                    self.vms[vi].host_mut().status = (0, String::new());
                }
            }
            EventKind::QueueReady { context_id, queue } => {
                let _ = self.call(
                    vi,
                    context_id,
                    "proxy_on_queue_ready",
                    &[context_id as i32, queue as i32],
                );
            }
        }
        self.after_callback(vi);
        self.take_trap(before)
    }

    fn http_response(
        &mut self,
        vi: usize,
        ctx: u32,
        token: u32,
        r: crate::state::upstreams::CalloutResponse,
    ) {
        let (nh, nb, nt) = if r.failure.is_some() {
            (0, 0, 0)
        } else {
            (r.headers.len(), r.body.len(), r.trailers.len())
        };
        let h = self.vms[vi].host_mut();
        // Envoy's failure callback: BrokenConnection and "reset" through proxy_get_status.
        h.status = match &r.failure {
            Some(why) => (crate::abi::status::BROKEN_CONNECTION as u32, why.clone()),
            None => (0, String::new()),
        };
        h.callout_response = Some(r);
        let _ = self.call(
            vi,
            ctx,
            "proxy_on_http_call_response",
            &[ctx as i32, token as i32, nh as i32, nb as i32, nt as i32],
        );
        let h = self.vms[vi].host_mut();
        h.callout_response = None;
        h.status = (0, String::new());
    }

    /// Applies what the guest deferred, then moves every stream on as far as it goes.
    fn after_callback(&mut self, vi: usize) {
        self.apply_actions(vi);
        let ids: Vec<u64> = self.streams.keys().copied().collect();
        for sid in ids {
            self.pump(sid);
        }
    }

    fn apply_actions(&mut self, vi: usize) {
        for (ctx, action) in self.vms[vi].take_actions() {
            let Some(&sid) = self.owner.get(&(vi, ctx)) else {
                continue;
            };
            match action {
                Deferred::Continue(dir) => self.resume(sid, dir, vi),
                Deferred::Reset => {
                    if let Some(s) = self.streams.get_mut(&sid) {
                        s.reset = true;
                    }
                }
                Deferred::LocalReply {
                    status,
                    details,
                    body,
                    headers,
                    ..
                } => self.local_reply(sid, status, details, body, headers),
            }
        }
    }

    fn set_access(&mut self, vi: usize, ctx: u32, f: impl FnOnce(&mut Access)) {
        f(self.vms[vi].host_mut().access.entry(ctx).or_default());
    }

    fn resume(&mut self, sid: u64, dir: Dir, vi: usize) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        let ctx = s.ctx[vi];
        let slot = match dir {
            Dir::Request => &mut s.req[vi],
            Dir::Response => &mut s.resp[vi],
        };
        // Continuing a stream that is not stopped does nothing, as in Envoy.
        if !slot.stopped && slot.buffer.is_none() {
            return;
        }
        slot.stopped = false;
        let mut out: Vec<Frame> = slot.held.drain(..).collect();
        if let Some(b) = slot.buffer.take() {
            if !out.iter().any(|f| matches!(f, Frame::Data { .. })) {
                out.insert(
                    0,
                    Frame::Data {
                        bytes: b,
                        end: false,
                    },
                );
            }
        }
        // A body the guest rewrote while paused is what moves on.
        for f in out.iter_mut() {
            if let Frame::Data { bytes, .. } = f {
                let d = s.data.borrow();
                *bytes = match dir {
                    Dir::Request => d.request_body.clone(),
                    Dir::Response => d.response_body.clone(),
                };
            }
        }
        if let Some(ctx) = ctx {
            self.set_access(vi, ctx, |a| match dir {
                Dir::Request => {
                    a.request_headers = false;
                    a.request_body = false;
                    a.request_trailers = false;
                }
                Dir::Response => {
                    a.response_headers = false;
                    a.response_body = false;
                    a.response_trailers = false;
                }
            });
        }
        for f in out {
            self.forward(sid, dir, vi, f);
        }
    }

    fn forward(&mut self, sid: u64, dir: Dir, i: usize, f: Frame) {
        let n = self.vms.len();
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        match dir {
            Dir::Request if i + 1 < n => s.req[i + 1].inbox.push_back(f),
            Dir::Response if i > 0 => s.resp[i - 1].inbox.push_back(f),
            Dir::Request => {
                let d = s.data.borrow();
                match f {
                    Frame::Headers { end } => {
                        s.upstream.headers = d.request_headers.clone();
                        s.upstream_done |= end;
                    }
                    Frame::Data { bytes, end } => {
                        s.upstream.body.extend_from_slice(&bytes);
                        s.upstream_done |= end;
                    }
                    Frame::Trailers => {
                        s.upstream.trailers = d.request_trailers.clone();
                        s.upstream_done = true;
                    }
                }
            }
            Dir::Response => {
                let d = s.data.borrow();
                match f {
                    Frame::Headers { end } => {
                        s.downstream.headers = d.response_headers.clone();
                        s.downstream_done |= end;
                    }
                    Frame::Data { bytes, end } => {
                        s.downstream.body.extend_from_slice(&bytes);
                        s.downstream_done |= end;
                    }
                    Frame::Trailers => {
                        s.downstream.trailers = d.response_trailers.clone();
                        s.downstream_done = true;
                    }
                }
            }
        }
    }

    /// Envoy's sendLocalReply: decoding stops; the reply is encoded through the filters that
    /// saw the request (the ones after the sender never started and are skipped).
    fn local_reply(
        &mut self,
        sid: u64,
        status: u32,
        details: String,
        body: Vec<u8>,
        extra: Vec<(String, String)>,
    ) {
        let n = self.vms.len();
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.local.is_some() || !s.downstream.headers.is_empty() {
            // A second local reply, or one after the client got headers: Envoy resets.
            s.reset = true;
            return;
        }
        for slot in s.req.iter_mut().chain(s.resp.iter_mut()) {
            *slot = Slot::default();
        }
        s.local = Some(details.clone());
        s.data.borrow_mut().local_reply_details = Some(details);
        s.response_started = true;
        let mut h = vec![(":status".to_string(), status.to_string())];
        if !body.is_empty() {
            h.push(("content-length".into(), body.len().to_string()));
            h.push(("content-type".into(), "text/plain".into()));
        }
        for (k, v) in &extra {
            headers::add(&mut h, k, v);
        }
        {
            let mut d = s.data.borrow_mut();
            d.response_headers = h;
            d.response_trailers.clear();
        }
        let last = n - 1;
        s.resp[last].inbox.push_back(Frame::Headers {
            end: body.is_empty(),
        });
        if !body.is_empty() {
            s.resp[last].inbox.push_back(Frame::Data {
                bytes: body,
                end: true,
            });
        }
    }

    /// A VM died: streams it was holding fail like Envoy's failStream (503, wasm_fail_stream).
    fn fail_streams_of(&mut self, vi: usize) {
        let ids: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| s.ctx[vi].is_some() && !s.downstream_done && !s.reset)
            .map(|(id, _)| *id)
            .collect();
        for sid in ids {
            let responding = self
                .streams
                .get(&sid)
                .is_some_and(|s| s.response_started && s.local.is_none());
            if responding {
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.reset = true;
                }
            } else {
                self.local_reply(sid, 503, "wasm_fail_stream".into(), vec![], vec![]);
            }
        }
    }

    fn ensure_ctx(&mut self, sid: u64, vi: usize) -> Option<u32> {
        let s = self.streams.get(&sid)?;
        if let Some(c) = s.ctx[vi] {
            return Some(c);
        }
        if self.vms[vi].dead.is_some() {
            return None;
        }
        let data = s.data.clone();
        let ctx = self.vms[vi].new_context(Some(data));
        let root = self.vms[vi].root();
        self.owner.insert((vi, ctx), sid);
        if let Some(s) = self.streams.get_mut(&sid) {
            s.ctx[vi] = Some(ctx);
        }
        self.call(
            vi,
            ctx,
            "proxy_on_context_create",
            &[ctx as i32, root as i32],
        )
        .ok()?;
        Some(ctx)
    }

    fn pump(&mut self, sid: u64) {
        loop {
            let Some(s) = self.streams.get_mut(&sid) else {
                return;
            };
            if s.reset {
                return;
            }
            let n = s.req.len();
            let work = (0..n)
                .find(|&i| !s.req[i].stopped && !s.req[i].inbox.is_empty())
                .map(|i| (Dir::Request, i))
                .or_else(|| {
                    (0..n)
                        .rev()
                        .find(|&i| !s.resp[i].stopped && !s.resp[i].inbox.is_empty())
                        .map(|i| (Dir::Response, i))
                });
            let Some((dir, i)) = work else { return };
            let frame = match dir {
                Dir::Request => s.req[i].inbox.pop_front(),
                Dir::Response => s.resp[i].inbox.pop_front(),
            };
            if let Some(f) = frame {
                self.process(sid, dir, i, f);
            }
        }
    }

    fn process(&mut self, sid: u64, dir: Dir, vi: usize, frame: Frame) {
        let Some(s) = self.streams.get(&sid) else {
            return;
        };
        let data = s.data.clone();
        let started = s.ctx[vi].is_some();
        if dir == Dir::Response && (!started || self.vms[vi].dead.is_some()) {
            // Envoy skips a filter that never saw the request, and a failed VM.
            return self.forward(sid, dir, vi, frame);
        }
        if dir == Dir::Request && self.vms[vi].dead.is_some() {
            // Fail closed: the plugin's VM is gone.
            return self.local_reply(sid, 503, "wasm_fail_stream".into(), vec![], vec![]);
        }
        let Some(ctx) = self.ensure_ctx(sid, vi) else {
            return;
        };
        let c = ctx as i32;
        let (fname, args, keep): (&str, Vec<i32>, Frame) = match (&frame, dir) {
            (Frame::Headers { end }, Dir::Request) => {
                self.set_access(vi, ctx, |a| a.request_headers = true);
                let n = data.borrow().request_headers.len() as i32;
                (
                    "proxy_on_request_headers",
                    vec![c, n, *end as i32],
                    frame.clone(),
                )
            }
            (Frame::Headers { end }, Dir::Response) => {
                self.set_access(vi, ctx, |a| a.response_headers = true);
                let n = data.borrow().response_headers.len() as i32;
                (
                    "proxy_on_response_headers",
                    vec![c, n, *end as i32],
                    frame.clone(),
                )
            }
            (Frame::Data { bytes, end }, _) => {
                let slot = self.slot(sid, dir, vi);
                let mut buf = slot.buffer.take().unwrap_or_default();
                buf.extend_from_slice(bytes);
                let len = buf.len() as i32;
                {
                    let mut d = data.borrow_mut();
                    match dir {
                        Dir::Request => d.request_body = buf,
                        Dir::Response => d.response_body = buf,
                    }
                }
                self.set_access(vi, ctx, |a| match dir {
                    Dir::Request => a.request_body = true,
                    Dir::Response => a.response_body = true,
                });
                let name = if dir == Dir::Request {
                    "proxy_on_request_body"
                } else {
                    "proxy_on_response_body"
                };
                (name, vec![c, len, *end as i32], frame.clone())
            }
            (Frame::Trailers, _) => {
                let n = {
                    let d = data.borrow();
                    match dir {
                        Dir::Request => d.request_trailers.len(),
                        Dir::Response => d.response_trailers.len(),
                    }
                } as i32;
                self.set_access(vi, ctx, |a| match dir {
                    Dir::Request => a.request_trailers = true,
                    Dir::Response => a.response_trailers = true,
                });
                let name = if dir == Dir::Request {
                    "proxy_on_request_trailers"
                } else {
                    "proxy_on_response_trailers"
                };
                (name, vec![c, n], frame.clone())
            }
        };
        let Ok(result) = self.call(vi, ctx, fname, &args) else {
            return;
        };
        // Frames the stream no longer wants (it was reset or answered locally) are dropped.
        let superseded = self.streams.get(&sid).is_none_or(|s| s.reset)
            || self.vms[vi]
                .host()
                .actions
                .iter()
                .any(|(_, a)| matches!(a, Deferred::LocalReply { .. }))
                && dir == Dir::Request;
        let cont = result.unwrap_or(OK) == OK;
        if !superseded {
            match keep {
                Frame::Data { end, .. } => {
                    let body = {
                        let d = data.borrow();
                        match dir {
                            Dir::Request => d.request_body.clone(),
                            Dir::Response => d.response_body.clone(),
                        }
                    };
                    if cont {
                        self.set_access(vi, ctx, |a| match dir {
                            Dir::Request => a.request_body = false,
                            Dir::Response => a.response_body = false,
                        });
                        self.forward(sid, dir, vi, Frame::Data { bytes: body, end });
                    } else if end {
                        let slot = self.slot(sid, dir, vi);
                        slot.stopped = true;
                        slot.held.push_back(Frame::Data { bytes: body, end });
                    } else {
                        self.slot(sid, dir, vi).buffer = Some(body);
                    }
                }
                other => {
                    if cont {
                        self.set_access(vi, ctx, |a| match (&other, dir) {
                            (Frame::Headers { .. }, Dir::Request) => a.request_headers = false,
                            (Frame::Headers { .. }, Dir::Response) => a.response_headers = false,
                            (_, Dir::Request) => a.request_trailers = false,
                            (_, Dir::Response) => a.response_trailers = false,
                        });
                        if matches!(other, Frame::Trailers) {
                            if let Some(b) = self.slot(sid, dir, vi).buffer.take() {
                                self.forward(
                                    sid,
                                    dir,
                                    vi,
                                    Frame::Data {
                                        bytes: b,
                                        end: false,
                                    },
                                );
                            }
                        }
                        self.forward(sid, dir, vi, other);
                    } else {
                        let slot = self.slot(sid, dir, vi);
                        slot.stopped = true;
                        if matches!(other, Frame::Trailers) {
                            if let Some(b) = slot.buffer.take() {
                                slot.held.push_back(Frame::Data {
                                    bytes: b,
                                    end: false,
                                });
                            }
                        }
                        slot.held.push_back(other);
                    }
                }
            }
        }
        self.apply_actions(vi);
    }

    fn slot(&mut self, sid: u64, dir: Dir, vi: usize) -> &mut Slot {
        let s = self
            .streams
            .get_mut(&sid)
            .expect("stream exists while processed");
        match dir {
            Dir::Request => &mut s.req[vi],
            Dir::Response => &mut s.resp[vi],
        }
    }

    fn outcome(&self, sid: u64) -> Outcome {
        let Some(s) = self.streams.get(&sid) else {
            return Outcome::Reset;
        };
        if s.reset {
            Outcome::Reset
        } else if s.downstream_done {
            match &s.local {
                Some(details) => Outcome::LocalReply(LocalReply {
                    message: s.downstream.clone(),
                    details: details.clone(),
                }),
                None => Outcome::Response(s.downstream.clone()),
            }
        } else if s.upstream_done && !s.response_started {
            Outcome::Upstream(s.upstream.clone())
        } else {
            Outcome::Paused
        }
    }
}

/// A worker of an [`Envoy`]: its VMs, their log, and the streams it runs.
#[derive(Clone)]
pub struct Worker {
    inner: Rc<RefCell<WorkerInner>>,
    envoy: Envoy,
}

/// The address part of `ip:port` or `[ip6]:port`.
fn source_ip(source: &str) -> String {
    match source.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        _ => source.to_string(),
    }
}

/// Request headers Envoy stores inline, so that copies are joined into one value.
const JOINED_REQUEST_HEADERS: &[&str] = &["authorization"];

impl Worker {
    pub(crate) fn new(inner: Rc<RefCell<WorkerInner>>, envoy: Envoy) -> Worker {
        Worker { inner, envoy }
    }

    /// A new stream on this worker's filter chain; nothing runs until `send_request`.
    pub fn stream(&self, req: Request) -> Stream {
        let mut w = self.inner.borrow_mut();
        let id = w.next_stream;
        w.next_stream += 1;
        let now = w.envoy.borrow().clock.now_nanos;
        // What Envoy's connection manager (use_remote_address, an external client) adds before
        // the filters run, in its order: x-forwarded-for, x-forwarded-proto,
        // x-envoy-external-address, x-request-id (checked against Envoy 1.40: headers).
        let mut hdrs = req.headers.clone();
        // Envoy keeps one entry for a repeated inline header, the values joined with "," (checked
        // for `authorization` in a real Envoy: envoy/tests/jwt_auth.rs, two credentials).
        for name in JOINED_REQUEST_HEADERS {
            let values: Vec<String> = hdrs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect();
            if values.len() > 1 {
                // The first entry keeps its place and takes every value.
                let mut first = true;
                hdrs.retain(|(k, _)| k != name || std::mem::take(&mut first));
                if let Some(entry) = hdrs.iter_mut().find(|(k, _)| k == name) {
                    entry.1 = values.join(",");
                }
            }
        }
        let ip = source_ip(&req.conn.source);
        match headers::get(&hdrs, "x-forwarded-for").map(str::to_string) {
            Some(xff) => headers::replace(&mut hdrs, "x-forwarded-for", &format!("{xff},{ip}")),
            None => headers::add(&mut hdrs, "x-forwarded-for", &ip),
        }
        let scheme = headers::get(&hdrs, ":scheme").unwrap_or("http").to_string();
        headers::replace(&mut hdrs, "x-forwarded-proto", &scheme);
        headers::replace(&mut hdrs, "x-envoy-external-address", &ip);
        if let Some(rid) = headers::get(&hdrs, "x-request-id").map(str::to_string) {
            headers::replace(&mut hdrs, "x-request-id", &rid);
        } else {
            let rid = format!("00000000-0000-4000-8000-{:06x}{:06x}", w.id, id);
            headers::add(&mut hdrs, "x-request-id", &rid);
        }
        let data = StreamData {
            request_headers: hdrs,
            request_trailers: req.trailers.clone(),
            conn: req.conn.clone(),
            start_nanos: now,
            ..Default::default()
        };
        let n = w.vms.len();
        w.streams.insert(
            id,
            StreamState {
                data: Rc::new(RefCell::new(data)),
                ctx: vec![None; n],
                req: (0..n).map(|_| Slot::default()).collect(),
                resp: (0..n).map(|_| Slot::default()).collect(),
                upstream: Message::default(),
                upstream_done: false,
                downstream: Message::default(),
                downstream_done: false,
                response_started: false,
                local: None,
                reset: false,
            },
        );
        Stream {
            worker: self.clone(),
            id,
            request: Some(req),
            finished: false,
            logged_key: None,
            logged: None,
        }
    }

    /// Everything the plugins of this worker logged, in order.
    pub fn logs(&self) -> Vec<LogLine> {
        self.inner.borrow().log.borrow().clone()
    }

    /// The log as text, one `[plugin] [Level] message` per line (for assertion messages).
    pub fn log_text(&self) -> String {
        self.logs()
            .iter()
            .map(|l| format!("[{}] [{:?}] {}", l.plugin, l.level, l.message))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether a plugin's VM on this worker died (trapped).
    pub fn is_dead(&self, plugin: &str) -> bool {
        self.inner
            .borrow()
            .vms
            .iter()
            .any(|vm| vm.plugin.name == plugin && vm.dead.is_some())
    }

    /// Every trap on this worker so far.
    pub fn traps(&self) -> Vec<GuestTrap> {
        self.inner.borrow().traps.clone()
    }

    /// The plugin's current tick period (None when no tick is set).
    pub fn tick_period(&self, plugin: &str) -> Option<Duration> {
        let w = self.inner.borrow();
        let vm = w.vms.iter().find(|vm| vm.plugin.name == plugin)?;
        let ms = vm.host().tick_period_ms;
        (ms > 0).then(|| Duration::from_millis(ms as u64))
    }

    pub fn envoy(&self) -> &Envoy {
        &self.envoy
    }

    /// The plugin's linear memory on this worker, in bytes (it only grows, so this is the most
    /// the module has ever held).
    pub fn memory_bytes(&self, plugin: &str) -> Option<usize> {
        let mut w = self.inner.borrow_mut();
        let vm = w.vms.iter_mut().find(|vm| vm.plugin.name == plugin)?;
        Some(vm.memory_bytes())
    }

    fn run<T>(&self, f: impl FnOnce(&mut WorkerInner) -> T) -> Result<T, GuestTrap> {
        let before = self.inner.borrow().traps.len();
        let out = f(&mut self.inner.borrow_mut());
        // Replies due now (immediate callouts, queue notifications) come in the next turn.
        let now = self.envoy.now_nanos();
        let later = self.envoy.run_until(now);
        let w = self.inner.borrow();
        if let Some(t) = w.traps.get(before) {
            return Err(t.clone());
        }
        later.map(|_| out)
    }
}

/// One HTTP stream through a worker's chain.
pub struct Stream {
    worker: Worker,
    id: u64,
    request: Option<Request>,
    finished: bool,
    /// The filter state [`Stream::finish_logged`] reads after on_log, and what it read.
    logged_key: Option<String>,
    logged: Option<Vec<u8>>,
}

impl Stream {
    /// Sends the whole request (headers, body chunks, trailers) and delivers whatever is due
    /// now. Panics on a guest trap, with the guest's log.
    pub fn send_request(&mut self) -> Outcome {
        self.try_send_request().unwrap_or_else(|t| panic!("{t}"))
    }

    pub fn try_send_request(&mut self) -> Result<Outcome, GuestTrap> {
        let req = self.request.take().expect("send_request called twice");
        let id = self.id;
        self.worker.run(|w| {
            if let Some(s) = w.streams.get_mut(&id) {
                let has_body = !req.body.is_empty();
                let has_trailers = !req.trailers.is_empty();
                s.req[0].inbox.push_back(Frame::Headers {
                    end: !has_body && !has_trailers,
                });
                // Like Envoy's HTTP/1.1 codec: every chunk without end_stream, then an
                // empty end_stream frame (checked against Envoy 1.40: callback_order).
                for chunk in req.body {
                    s.req[0].inbox.push_back(Frame::Data {
                        bytes: chunk,
                        end: false,
                    });
                }
                if has_body && !has_trailers {
                    s.req[0].inbox.push_back(Frame::Data {
                        bytes: vec![],
                        end: true,
                    });
                }
                if has_trailers {
                    s.req[0].inbox.push_back(Frame::Trailers);
                }
            }
            w.pump(id);
        })?;
        Ok(self.outcome())
    }

    /// Sends only the request headers (the body is to follow with [`Stream::send_chunk`]), as a
    /// client streaming a body of unknown length does. The request's own body and trailers are
    /// not sent.
    pub fn send_headers(&mut self) -> Outcome {
        let req = self.request.take().expect("send_headers called twice");
        let _ = req;
        let id = self.id;
        self.worker
            .run(|w| {
                if let Some(s) = w.streams.get_mut(&id) {
                    s.req[0].inbox.push_back(Frame::Headers { end: false });
                }
                w.pump(id);
            })
            .unwrap_or_else(|t| panic!("{t}"));
        self.outcome()
    }

    /// Sends one body chunk after [`Stream::send_headers`] (`end` ends the request). Once the
    /// stream was answered locally or reset, the chunk is dropped, as Envoy stops decoding.
    pub fn send_chunk(&mut self, bytes: Vec<u8>, end: bool) -> Outcome {
        let id = self.id;
        self.worker
            .run(|w| {
                if let Some(s) = w.streams.get_mut(&id) {
                    if s.local.is_some() || s.reset {
                        return;
                    }
                    s.req[0].inbox.push_back(Frame::Data { bytes, end });
                }
                w.pump(id);
            })
            .unwrap_or_else(|t| panic!("{t}"));
        self.outcome()
    }

    /// The upstream answers; the response runs through the chain in reverse order.
    pub fn send_response(&mut self, resp: Response) -> Outcome {
        self.try_send_response(resp)
            .unwrap_or_else(|t| panic!("{t}"))
    }

    pub fn try_send_response(&mut self, resp: Response) -> Result<Outcome, GuestTrap> {
        let id = self.id;
        self.worker.run(|w| {
            let Some(s) = w.streams.get_mut(&id) else {
                return;
            };
            if s.local.is_some() || s.reset {
                return;
            }
            s.response_started = true;
            {
                let mut d = s.data.borrow_mut();
                d.response_headers = resp.headers.clone();
                d.response_trailers = resp.trailers.clone();
            }
            let last = s.resp.len() - 1;
            let has_body = !resp.body.is_empty();
            let has_trailers = !resp.trailers.is_empty();
            s.resp[last].inbox.push_back(Frame::Headers {
                end: !has_body && !has_trailers,
            });
            // As for requests: chunks, then an empty end_stream frame (HTTP/1.1 upstreams).
            for chunk in resp.body {
                s.resp[last].inbox.push_back(Frame::Data {
                    bytes: chunk,
                    end: false,
                });
            }
            if has_body && !has_trailers {
                s.resp[last].inbox.push_back(Frame::Data {
                    bytes: vec![],
                    end: true,
                });
            }
            if has_trailers {
                s.resp[last].inbox.push_back(Frame::Trailers);
            }
            w.pump(id);
        })?;
        Ok(self.outcome())
    }

    pub fn outcome(&self) -> Outcome {
        self.worker.inner.borrow().outcome(self.id)
    }

    /// Filter state a plugin set on this stream (`proxy_set_property(["key"], ..)`).
    pub fn filter_state(&self, key: &str) -> Option<Vec<u8>> {
        let w = self.worker.inner.borrow();
        let s = w.streams.get(&self.id)?;
        let d = s.data.borrow();
        d.filter_state.get(key.as_bytes()).cloned()
    }

    /// Ends the stream as Envoy does: on_log for every filter (creating contexts for filters
    /// that never saw the request), then on_done and on_delete.
    pub fn finish(mut self) {
        if let Err(t) = self.try_finish_inner() {
            panic!("{t}");
        }
    }

    pub fn try_finish(mut self) -> Result<(), GuestTrap> {
        self.try_finish_inner()
    }

    /// Ends the stream as [`Stream::finish`] does and returns the filter state `key` as Envoy's
    /// access loggers see it: after every filter's on_log (`%FILTER_STATE(wasm.<key>:PLAIN)%`).
    pub fn finish_logged(mut self, key: &str) -> Option<Vec<u8>> {
        self.logged_key = Some(key.to_string());
        if let Err(t) = self.try_finish_inner() {
            panic!("{t}");
        }
        self.logged.take()
    }

    fn try_finish_inner(&mut self) -> Result<(), GuestTrap> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let id = self.id;
        let logged_key = self.logged_key.take();
        let mut logged = None;
        self.worker.run(|w| {
            let n = w.vms.len();
            for vi in 0..n {
                if let Some(ctx) = w.ensure_ctx(id, vi) {
                    w.set_access(vi, ctx, |a| {
                        *a = Access {
                            log: true,
                            ..Default::default()
                        }
                    });
                    let _ = w.call(vi, ctx, "proxy_on_log", &[ctx as i32]);
                }
            }
            // The connection manager's access loggers run here, after the filters' on_log.
            if let (Some(key), Some(s)) = (&logged_key, w.streams.get(&id)) {
                logged = s.data.borrow().filter_state.get(key.as_bytes()).cloned();
            }
            for vi in 0..n {
                let ctx = w.streams.get(&id).and_then(|s| s.ctx[vi]);
                if let Some(ctx) = ctx {
                    w.set_access(vi, ctx, |a| *a = Access::default());
                    let _ = w.call(vi, ctx, "proxy_on_done", &[ctx as i32]);
                    let _ = w.call(vi, ctx, "proxy_on_delete", &[ctx as i32]);
                    let h = w.vms[vi].host_mut();
                    h.contexts.remove(&ctx);
                    h.access.remove(&ctx);
                    h.actions.retain(|(c, _)| *c != ctx);
                    w.owner.remove(&(vi, ctx));
                }
            }
            w.streams.remove(&id);
        })?;
        self.logged = logged;
        Ok(())
    }
}
