//! Metrics by name, shared by every VM of one Envoy like Envoy's stats store.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn from_abi(v: u32) -> Option<MetricKind> {
        match v {
            0 => Some(MetricKind::Counter),
            1 => Some(MetricKind::Gauge),
            2 => Some(MetricKind::Histogram),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Metric {
    pub kind: MetricKind,
    /// Counters and gauges; Envoy gauges are unsigned, a negative result wraps like Envoy's would.
    pub value: u64,
    /// Every value recorded into a histogram, in order.
    pub samples: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub by_name: BTreeMap<String, Metric>,
}

impl Metrics {
    /// Defining an existing name returns the same stat, as Envoy's scope does.
    pub fn define(&mut self, kind: MetricKind, name: &str) {
        self.by_name.entry(name.to_string()).or_insert(Metric {
            kind,
            value: 0,
            samples: Vec::new(),
        });
    }
}
