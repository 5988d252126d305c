//! Metrics with one naming scheme: `shieldwall.<filter>.<event>[.<reason>]`, e.g.
//! `shieldwall.jwt_auth.denied.expired`. Envoy shows them in `/stats` under these names and in
//! `/stats/prometheus` with dots as underscores (`shieldwall_jwt_auth_denied_expired`).
//!
//! Metrics are defined lazily, once per VM, and cached by name, so a reason code can be a metric
//! without declaring every reason up front. The set of names is bounded by the filter's code
//! (reasons are `&'static str`), never by request data.
//!
//! In the wasm modules, counters are counted in the VM and handed to the proxy on the tick
//! ([`Pending`]): once a second by default, or as [`FLUSH_ENV`] sets it. The same tick serves
//! the filter's own period ([`crate::tick`]).

use crate::hash::IdMap;
use crate::host::{Host, MetricKind};

pub fn name(filter: &str, event: &str) -> String {
    format!("shieldwall.{filter}.{event}")
}

/// A per-VM cache of metric ids.
#[derive(Default)]
pub struct Metrics {
    filter: &'static str,
    /// Metric ids by event name (names the code makes: [`IdMap`]).
    ids: IdMap<String, u32>,
}

impl Metrics {
    pub fn new(filter: &'static str) -> Metrics {
        Metrics {
            filter,
            ids: IdMap::default(),
        }
    }

    fn id(&mut self, host: &mut dyn Host, kind: MetricKind, event: &str) -> Option<u32> {
        // Keyed by the event: the filter is fixed, and a hit (every request) formats no name.
        if let Some(id) = self.ids.get(event) {
            return Some(*id);
        }
        let id = host.define_metric(kind, &name(self.filter, event)).ok()?;
        self.ids.insert(event.to_string(), id);
        Some(id)
    }

    /// Adds one to the counter `shieldwall.<filter>.<event>`.
    pub fn inc(&mut self, host: &mut dyn Host, event: &str) {
        self.add(host, event, 1);
    }

    pub fn add(&mut self, host: &mut dyn Host, event: &str, n: i64) {
        if let Some(id) = self.id(host, MetricKind::Counter, event) {
            host.increment_metric(id, n);
        }
    }

    /// Sets the gauge `shieldwall.<filter>.<event>`.
    pub fn gauge(&mut self, host: &mut dyn Host, event: &str, value: u64) {
        if let Some(id) = self.id(host, MetricKind::Gauge, event) {
            host.record_metric(id, value);
        }
    }

    /// Records a value in the histogram `shieldwall.<filter>.<event>`.
    pub fn histogram(&mut self, host: &mut dyn Host, event: &str, value: u64) {
        if let Some(id) = self.id(host, MetricKind::Histogram, event) {
            host.record_metric(id, value);
        }
    }
}

/// The environment variable (Envoy `vm_config.environment_variables`, Istio `vmConfig.env`) that
/// sets how often a VM hands its counted increments to the proxy, in milliseconds; `0` hands each
/// one over at once.
pub const FLUSH_ENV: &str = "SHIELDWALL_METRICS_FLUSH_MS";

/// Flush period when [`FLUSH_ENV`] is unset: Envoy's own stats sinks flush every 5 s and
/// Prometheus scrapes every 15 s or more, so a second's delay is not seen.
pub const DEFAULT_FLUSH_MS: u64 = 1000;

/// The flush period [`FLUSH_ENV`]'s value asks for: `Err` names a value that is not a number of
/// milliseconds (the caller keeps the default and says so).
pub fn flush_ms(value: Option<&str>) -> Result<u64, String> {
    match value {
        None => Ok(DEFAULT_FLUSH_MS),
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            format!("{FLUSH_ENV}={v:?} is not a number of milliseconds; using {DEFAULT_FLUSH_MS}")
        }),
    }
}

/// Counter increments kept in the VM until the next flush. Handing an increment to the proxy is
/// a call out of the VM (about 0.9 µs in Envoy 1.40, bench/RESULTS.md); counted here it is an
/// add to a short list, and each counter crosses once per flush however many requests it counted.
/// A VM's counters are few (bounded by the filters' code), so the list is searched linearly.
#[derive(Default, Debug)]
pub struct Pending {
    counts: Vec<(u32, i64)>,
}

impl Pending {
    pub fn add(&mut self, id: u32, delta: i64) {
        match self.counts.iter_mut().find(|(i, _)| *i == id) {
            Some((_, n)) => *n = n.saturating_add(delta),
            None => self.counts.push((id, delta)),
        }
    }

    /// Hands every non-zero count to `to` and sets it to zero (the counters stay listed, so a
    /// busy VM does not allocate again).
    pub fn flush(&mut self, mut to: impl FnMut(u32, i64)) {
        for (id, n) in self.counts.iter_mut() {
            if *n != 0 {
                to(*id, *n);
                *n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;

    #[test]
    fn counters_are_defined_once_and_counted() {
        let mut host = MockHost::new();
        let mut m = Metrics::new("jwt_auth");
        m.inc(&mut host, "allowed");
        m.inc(&mut host, "allowed");
        m.add(&mut host, "denied.expired", 3);
        m.gauge(&mut host, "jwks.keys", 4);
        assert_eq!(host.metric("shieldwall.jwt_auth.allowed"), 2);
        assert_eq!(host.metric("shieldwall.jwt_auth.denied.expired"), 3);
        assert_eq!(host.metric("shieldwall.jwt_auth.jwks.keys"), 4);
        assert_eq!(host.metric_definitions("shieldwall.jwt_auth.allowed"), 1);
    }

    #[test]
    fn pending_counts_add_up_per_counter_and_flush_once() {
        let mut p = Pending::default();
        p.add(7, 1);
        p.add(9, 2);
        p.add(7, 1);
        let mut out = Vec::new();
        p.flush(|id, n| out.push((id, n)));
        assert_eq!(out, vec![(7, 2), (9, 2)]);
        out.clear();
        p.flush(|id, n| out.push((id, n)));
        assert!(out.is_empty(), "a flushed count is not handed over twice");
        p.add(9, 5);
        p.flush(|id, n| out.push((id, n)));
        assert_eq!(out, vec![(9, 5)]);
    }

    #[test]
    fn the_flush_period_comes_from_the_environment() {
        assert_eq!(flush_ms(None), Ok(DEFAULT_FLUSH_MS));
        assert_eq!(flush_ms(Some("50")), Ok(50));
        assert_eq!(flush_ms(Some("0")), Ok(0));
        assert!(flush_ms(Some("1s")).unwrap_err().contains(FLUSH_ENV));
        assert!(flush_ms(Some("-5")).is_err());
    }
}
