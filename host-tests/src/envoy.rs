//! One simulated Envoy: shared data, queues, clock, clusters and metrics shared by its
//! workers, and the event loop that delivers callout replies, queue notifications and ticks.

use crate::state::clock::Clock;
use crate::state::metrics::{Metric, Metrics};
use crate::state::queues::Queues;
use crate::state::shared_data::SharedData;
use crate::state::upstreams::{
    CalloutRequest, CalloutResponse, Cluster, GrpcRequest, TimeoutBehavior,
};
use crate::vm::{GuestTrap, LogLevel, Plugin};
use crate::worker::{Worker, WorkerInner};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

pub(crate) enum EventKind {
    Http {
        context_id: u32,
        token: u32,
        response: CalloutResponse,
    },
    RealHttp {
        context_id: u32,
        token: u32,
        addr: SocketAddr,
        request: CalloutRequest,
    },
    Grpc {
        context_id: u32,
        token: u32,
        message: Option<Vec<u8>>,
        status: u32,
        status_message: String,
    },
    QueueReady {
        context_id: u32,
        queue: u32,
    },
}

pub(crate) struct Event {
    pub due: u64,
    pub seq: u64,
    pub worker: usize,
    pub vm: usize,
    pub kind: EventKind,
}

pub(crate) struct EnvoyState {
    pub shared_data: SharedData,
    pub queues: Queues,
    pub clock: Clock,
    pub metrics: Metrics,
    pub clusters: HashMap<String, Cluster>,
    pub events: Vec<Event>,
    seq: u64,
    pub callouts: Vec<CalloutRequest>,
    pub grpc_callouts: Vec<GrpcRequest>,
    pub log_level: LogLevel,
    pub timeout_behavior: TimeoutBehavior,
}

impl EnvoyState {
    /// Schedules work for a VM `delay_nanos` from now; due work runs after the current callback.
    pub fn post(&mut self, worker: usize, vm: usize, delay_nanos: u64, kind: EventKind) {
        self.seq += 1;
        self.events.push(Event {
            due: self.clock.now_nanos + delay_nanos,
            seq: self.seq,
            worker,
            vm,
            kind,
        });
    }

    pub fn cancel(&mut self, worker: usize, vm: usize, f: impl Fn(&EventKind) -> bool) -> bool {
        let before = self.events.len();
        self.events
            .retain(|e| !(e.worker == worker && e.vm == vm && f(&e.kind)));
        before != self.events.len()
    }
}

/// One Envoy process. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Envoy {
    pub(crate) state: Rc<RefCell<EnvoyState>>,
    workers: Rc<RefCell<Vec<Weak<RefCell<WorkerInner>>>>>,
}

impl Default for Envoy {
    fn default() -> Self {
        Envoy::new()
    }
}

impl Envoy {
    pub fn new() -> Envoy {
        Envoy {
            state: Rc::new(RefCell::new(EnvoyState {
                shared_data: SharedData::default(),
                queues: Queues::default(),
                clock: Clock::default(),
                metrics: Metrics::default(),
                clusters: HashMap::new(),
                events: Vec::new(),
                seq: 0,
                callouts: Vec::new(),
                grpc_callouts: Vec::new(),
                log_level: LogLevel::Info,
                timeout_behavior: TimeoutBehavior::default(),
            })),
            workers: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// Declares (or replaces) a cluster that callouts can name.
    pub fn cluster(&self, name: &str, cluster: Cluster) -> &Envoy {
        self.state
            .borrow_mut()
            .clusters
            .insert(name.into(), cluster);
        self
    }

    /// What an HTTP callout timeout delivers (default: Envoy's 504 local reply).
    pub fn set_timeout_behavior(&self, b: TimeoutBehavior) {
        self.state.borrow_mut().timeout_behavior = b;
    }

    /// What proxy_get_log_level answers (default Info, Envoy's default).
    pub fn set_log_level(&self, level: LogLevel) {
        self.state.borrow_mut().log_level = level;
    }

    /// A worker thread: one VM per plugin, each started and configured. Err (with the guest
    /// log) if a module fails to load, traps, or refuses its configuration.
    pub fn worker(&self, plugins: &[Plugin]) -> anyhow::Result<Worker> {
        let id = self.workers.borrow().len();
        let inner = WorkerInner::start(self.state.clone(), id, plugins)?;
        let inner = Rc::new(RefCell::new(inner));
        self.workers.borrow_mut().push(Rc::downgrade(&inner));
        Ok(Worker::new(inner, self.clone()))
    }

    pub fn now_nanos(&self) -> u64 {
        self.state.borrow().clock.now_nanos
    }

    pub fn now_unix_secs(&self) -> u64 {
        self.now_nanos() / 1_000_000_000
    }

    /// Moves the clock; due ticks, callout replies and timeouts fire in time order. Panics on a
    /// guest trap, with the guest's log.
    pub fn advance(&self, by: Duration) {
        if let Err(t) = self.try_advance(by) {
            panic!("{t}");
        }
    }

    pub fn try_advance(&self, by: Duration) -> Result<(), GuestTrap> {
        let target = self.now_nanos() + by.as_nanos() as u64;
        self.run_until(target)
    }

    /// Delivers everything due up to `target`, in order, then sets the clock to it.
    pub(crate) fn run_until(&self, target: u64) -> Result<(), GuestTrap> {
        let mut first_trap = None;
        loop {
            let workers: Vec<_> = self.workers.borrow().iter().map(|w| w.upgrade()).collect();
            let next_event = {
                let s = self.state.borrow();
                s.events
                    .iter()
                    .filter(|e| e.due <= target)
                    .min_by_key(|e| (e.due, e.seq))
                    .map(|e| (e.due, e.seq))
            };
            let mut next_tick: Option<(u64, usize, usize)> = None;
            for (wi, w) in workers.iter().enumerate() {
                let Some(w) = w else { continue };
                for (vi, due) in w.borrow().tick_dues() {
                    if due <= target && next_tick.is_none_or(|(d, _, _)| due < d) {
                        next_tick = Some((due, wi, vi));
                    }
                }
            }
            let r = match (next_event, next_tick) {
                (None, None) => break,
                (Some((due, seq)), tick) if tick.is_none_or(|(t, _, _)| due <= t) => {
                    let ev = {
                        let mut s = self.state.borrow_mut();
                        s.clock.now_nanos = s.clock.now_nanos.max(due);
                        let pos = s.events.iter().position(|e| e.seq == seq).unwrap_or(0);
                        s.events.remove(pos)
                    };
                    match workers.get(ev.worker).cloned().flatten() {
                        Some(w) => w.borrow_mut().deliver(ev),
                        None => Ok(()),
                    }
                }
                (_, Some((due, wi, vi))) => {
                    {
                        let mut s = self.state.borrow_mut();
                        s.clock.now_nanos = s.clock.now_nanos.max(due);
                    }
                    match workers.get(wi).cloned().flatten() {
                        Some(w) => w.borrow_mut().tick(vi),
                        None => Ok(()),
                    }
                }
                (Some(_), None) => unreachable!(),
            };
            if let Err(t) = r {
                first_trap.get_or_insert(t);
            }
        }
        {
            let mut s = self.state.borrow_mut();
            s.clock.now_nanos = s.clock.now_nanos.max(target);
        }
        match first_trap {
            Some(t) => Err(t),
            None => Ok(()),
        }
    }

    /// A counter's or gauge's value, by the name the guest defined.
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.state
            .borrow()
            .metrics
            .by_name
            .get(name)
            .map(|m| m.value)
    }

    /// Every value recorded into a histogram.
    pub fn histogram(&self, name: &str) -> Vec<u64> {
        self.state
            .borrow()
            .metrics
            .by_name
            .get(name)
            .map(|m| m.samples.clone())
            .unwrap_or_default()
    }

    pub fn metrics(&self) -> BTreeMap<String, Metric> {
        self.state.borrow().metrics.by_name.clone()
    }

    pub fn shared_data(&self, vm_id: &str, key: &str) -> Option<Vec<u8>> {
        self.shared_data_with_cas(vm_id, key).map(|(v, _)| v)
    }

    pub fn shared_data_with_cas(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.state.borrow().shared_data.get(vm_id, key)
    }

    pub fn shared_data_keys(&self, vm_id: &str) -> Vec<String> {
        self.state.borrow().shared_data.keys(vm_id)
    }

    /// Seeds shared data as another plugin would (cas 0: always written).
    pub fn set_shared_data(&self, vm_id: &str, key: &str, value: &[u8]) {
        let _ = self
            .state
            .borrow_mut()
            .shared_data
            .set(vm_id, key, value, 0);
    }

    pub fn queue_len(&self, vm_id: &str, name: &str) -> usize {
        self.state.borrow().queues.len(vm_id, name)
    }

    /// Every HTTP callout made so far, in order.
    pub fn callouts(&self) -> Vec<CalloutRequest> {
        self.state.borrow().callouts.clone()
    }

    pub fn grpc_callouts(&self) -> Vec<GrpcRequest> {
        self.state.borrow().grpc_callouts.clone()
    }

    /// Callout replies, timeouts and notifications not delivered yet.
    pub fn pending_events(&self) -> usize {
        self.state.borrow().events.len()
    }
}
