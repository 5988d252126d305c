//! A filter on shieldwall-core's adapter that does a configured share of the work every
//! shieldwall filter does on a request before its own rule, and lets the request through.
//! `scripts/bench.sh` runs one module per rung, next to the empty module (`noop`) and jwt-auth on
//! a public route: the step from one rung to the next is what that piece of work costs in Envoy.
//!
//! The plugin configuration is the rung's name (also as a JSON string). Each rung does what the
//! one before it does, and one thing more:
//! - `adapter`: nothing but the adapter's own work: a stream object per context, the callbacks
//!   routed to it (the exports are the ones every filter has: context creation, request headers,
//!   stream end);
//! - `line`: the request line (`:path` and `:method`, one read of the request header map, the
//!   path normalised), as every filter with routes reads it;
//! - `route`: the line matched against one rule (`prefix: /`), as jwt-auth's rules are;
//! - `record`: the filter's decision recorded (`allow`, one property write), as the adapter
//!   records it for a filter that lets a request through;
//! - `metric`: one counter incremented, as jwt-auth counts `allowed.public`.
//!
//! jwt-auth on a public route does all of these; what it costs above `metric` is its own.

#[cfg(target_arch = "wasm32")]
mod wasm;

use shieldwall_core::decision::{self, Decision};
use shieldwall_core::{
    Action, ConfigError, Host, MetricKind, PathOptions, RequestLine, RootFilter, RouteMatch,
    RouteMatchConfig, StreamFilter,
};

/// How much of a filter's per-request work to do: each rung includes those before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rung {
    Adapter,
    Line,
    Route,
    Record,
    Metric,
}

impl Rung {
    pub const ALL: [(&'static str, Rung); 5] = [
        ("adapter", Rung::Adapter),
        ("line", Rung::Line),
        ("route", Rung::Route),
        ("record", Rung::Record),
        ("metric", Rung::Metric),
    ];

    fn parse(config: &[u8]) -> Result<Rung, ConfigError> {
        let text = std::str::from_utf8(config)
            .map_err(|_| ConfigError::new("", "the rung's name must be UTF-8"))?
            .trim()
            .trim_matches('"');
        Rung::ALL
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, rung)| *rung)
            .ok_or_else(|| {
                ConfigError::new(
                    "",
                    "one of `adapter`, `line`, `route`, `record` or `metric` is required",
                )
            })
    }
}

/// The filter's name in its decision record and its counter.
const NAME: &str = "ladder";

pub struct Ladder {
    rung: Rung,
    route: std::rc::Rc<RouteMatch>,
    /// The counter `metric` increments (defined at configuration, as filters define theirs).
    counter: Option<u32>,
}

impl RootFilter for Ladder {
    type Stream = LadderStream;
    const NAME: &'static str = NAME;
    // The `record` rung writes the record itself, so the rungs below it write none.
    const RECORDS_DECISIONS: bool = false;

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Ladder, ConfigError> {
        let rung = Rung::parse(config)?;
        let route = RouteMatch::compile(&RouteMatchConfig {
            path: None,
            prefix: Some("/".to_owned()),
            template: None,
            methods: Vec::new(),
        })?;
        let counter = if rung >= Rung::Metric {
            host.define_metric(MetricKind::Counter, "shieldwall_ladder.allowed.public")
                .ok()
        } else {
            None
        };
        Ok(Ladder {
            rung,
            route: std::rc::Rc::new(route),
            counter,
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> LadderStream {
        LadderStream {
            rung: self.rung,
            route: self.route.clone(),
            counter: self.counter,
        }
    }
}

pub struct LadderStream {
    rung: Rung,
    route: std::rc::Rc<RouteMatch>,
    counter: Option<u32>,
}

impl StreamFilter for LadderStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        if self.rung < Rung::Line {
            return Action::Continue;
        }
        let Ok(line) = RequestLine::from_host(host, PathOptions::default()) else {
            return Action::Continue;
        };
        if self.rung < Rung::Route || self.route.matches(&line).is_none() {
            return Action::Continue;
        }
        if self.rung < Rung::Record {
            return Action::Continue;
        }
        if let Some((key, value)) = decision::encoded(NAME, &Decision::allow("")) {
            let _ = host.set_property(&[&key], &value);
        }
        if let Some(id) = self.counter {
            host.increment_metric(id, 1);
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shieldwall_core::testing::CountingHost;
    use shieldwall_core::testing::MockHost;

    fn calls(rung: &str) -> Vec<&'static str> {
        let mut host = CountingHost::new(MockHost::new());
        let mut root = Ladder::configure(&mut host, rung.as_bytes()).unwrap();
        host.header_calls_when_warm(&mut root, "/orders", &[], |_| {})
    }

    /// Each rung adds the calls of its piece of work, and nothing else.
    #[test]
    fn each_rung_adds_its_calls() {
        assert_eq!(calls("adapter"), Vec::<&str>::new());
        assert_eq!(calls("line"), ["request_header", "request_header"]);
        assert_eq!(calls("\"route\""), ["request_header", "request_header"]);
        assert_eq!(
            calls("record"),
            ["request_header", "request_header", "set_property"]
        );
        // The increment is counted in the VM (flushed on the tick): no call of its own.
        assert_eq!(
            calls("metric"),
            ["request_header", "request_header", "set_property"]
        );
    }

    #[test]
    fn an_unknown_rung_is_refused() {
        let mut host = MockHost::new();
        let err = Ladder::configure(&mut host, b"everything").err().unwrap();
        assert!(err.to_string().contains("`adapter`"), "{err}");
    }
}
