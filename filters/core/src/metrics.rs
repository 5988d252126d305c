//! Metrics with one naming scheme: `shieldwall.<filter>.<event>[.<reason>]`, e.g.
//! `shieldwall.jwt_auth.denied.expired`. Envoy shows them in `/stats` under these names and in
//! `/stats/prometheus` with dots as underscores (`shieldwall_jwt_auth_denied_expired`).
//!
//! Metrics are defined lazily, once per VM, and cached by name, so a reason code can be a metric
//! without declaring every reason up front. The set of names is bounded by the filter's code
//! (reasons are `&'static str`), never by request data.

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
}
