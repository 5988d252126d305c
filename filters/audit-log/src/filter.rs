//! The root and stream filters of audit-log. The stream notes what the client sent when the
//! request arrives (before later filters normalise the path or remove headers); at the end of the
//! stream (`on_log`, which Envoy runs for every request, also those another filter refused) it
//! reads the response, the identity context and every filter's decision, builds the record, masks
//! it, seals it into the worker's chain and hands it to the sinks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use shieldwall_core::client_ip::{parse_ip, resolve};
use shieldwall_core::decision;
use shieldwall_core::metrics::Metrics;
use shieldwall_core::shared::worker_id;
use shieldwall_core::{Action, CalloutResponse, ConfigError, Host, RootFilter, StreamFilter};

use crate::chain::Chain;
use crate::config::Config;
use crate::mask::{Hits, Masker};
use crate::record::{trace_id, Facts, FilterDecision, Outcome};
use crate::sink::{encode_item, tick_ms, Shipper};
use shieldwall_core::json_text::hex;

/// The property the record is written to: Envoy's filter state `wasm.shieldwall.audit`, which an
/// access log prints with `%FILTER_STATE(wasm.shieldwall.audit:PLAIN)%`.
pub const AUDIT_PROPERTY: &str = "shieldwall.audit";

pub struct AuditLog {
    config: Rc<Config>,
    masker: Rc<Masker>,
    chain: Rc<RefCell<Option<Chain>>>,
    metrics: Rc<RefCell<Metrics>>,
    /// xorshift64 state for sampling allowed requests (statistical, not secret).
    rng: Rc<Cell<u64>>,
    /// The HTTP sink's side in this worker (`None` without `sinks.http`).
    shipper: Option<Shipper>,
}

impl RootFilter for AuditLog {
    type Stream = AuditStream;
    const NAME: &'static str = "audit_log";
    /// audit-log decides nothing: recording an `allow` for it would cost a filter-state write on
    /// every request and tell the record's reader nothing.
    const RECORDS_DECISIONS: bool = false;

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let env = |name: &str| host.env_var(name);
        let config = Config::parse(config, &env)?;
        let random = shieldwall_core::shared::random_bytes();
        // The chain's name: 64 random bits in hex, new each time a worker (re)loads the plugin.
        let name = hex(random.get(..8).unwrap_or_default());
        let chain = config
            .chain_key
            .as_ref()
            .map(|k| Chain::new(name.clone(), k));
        let masker = Masker::new(config.mask.clone(), random.get(8..).unwrap_or(&random));
        let h: &dyn Host = host;
        let sinks = match (config.access_log, &config.http) {
            (true, Some(_)) => "access_log, http",
            (false, Some(_)) => "http",
            _ => "access_log",
        };
        h.info(&format!(
            "audit-log: sinks: {sinks}; chain {}; allowed requests sampled at {}%",
            if chain.is_some() {
                name.as_str()
            } else {
                "off"
            },
            f64::from(config.sample_allowed_ppm) / 10_000.0
        ));
        if config.mask.hash_key.is_none() {
            h.info("audit-log: mask.hash_key_env is not set: masked values correlate within one worker only");
        }
        let shipper = match &config.http {
            Some(sink) => {
                let plugin = h.plugin_name();
                let shipper = Shipper::new(host, Rc::new(sink.clone()), &plugin, worker_id());
                host.set_tick_period(std::time::Duration::from_millis(tick_ms(sink)));
                Some(shipper)
            }
            None => None,
        };
        Ok(AuditLog {
            config: Rc::new(config),
            masker: Rc::new(masker),
            chain: Rc::new(RefCell::new(chain)),
            metrics: Rc::new(RefCell::new(Metrics::new(Self::NAME))),
            rng: Rc::new(Cell::new(worker_id() | 1)),
            shipper,
        })
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        if let (Some(shipper), Ok(mut metrics)) =
            (self.shipper.as_mut(), self.metrics.try_borrow_mut())
        {
            shipper.on_tick(host, &mut metrics);
        }
    }

    fn on_http_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: CalloutResponse,
    ) {
        if let (Some(shipper), Ok(mut metrics)) =
            (self.shipper.as_mut(), self.metrics.try_borrow_mut())
        {
            shipper.on_response(host, &mut metrics, token, &response);
        }
    }

    fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> AuditStream {
        AuditStream {
            config: self.config.clone(),
            masker: self.masker.clone(),
            chain: self.chain.clone(),
            metrics: self.metrics.clone(),
            rng: self.rng.clone(),
            queue: self.shipper.as_ref().and_then(Shipper::queue),
            facts: None,
        }
    }
}

pub struct AuditStream {
    config: Rc<Config>,
    masker: Rc<Masker>,
    chain: Rc<RefCell<Option<Chain>>>,
    metrics: Rc<RefCell<Metrics>>,
    rng: Rc<Cell<u64>>,
    /// The HTTP sink's shared queue (`None` without `sinks.http`, or if it could not be registered).
    queue: Option<u32>,
    facts: Option<Facts>,
}

/// An integer property: Envoy encodes integers as 8 bytes, little-endian.
fn int_property(host: &dyn Host, path: &[&str]) -> Option<u64> {
    let bytes = host.property(path)?;
    let raw: [u8; 8] = bytes.as_slice().try_into().ok()?;
    u64::try_from(i64::from_le_bytes(raw)).ok()
}

fn str_property(host: &dyn Host, path: &[&str]) -> Option<String> {
    host.property(path)
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
}

impl AuditStream {
    /// What the client sent, read once from the request headers.
    fn capture(&self, host: &dyn Host) -> Facts {
        let mut facts = Facts {
            start_ns: host.now_nanos(),
            ..Default::default()
        };
        let mut xff: Vec<String> = Vec::new();
        for (name, value) in host.request_headers() {
            match name.as_str() {
                ":method" => facts.method = Some(value),
                ":path" => match value.split_once('?') {
                    Some((p, q)) => {
                        facts.path = Some(p.to_string());
                        facts.query = Some(q.to_string());
                    }
                    None => facts.path = Some(value),
                },
                "user-agent" => facts.user_agent = Some(value),
                "x-request-id" => facts.request_id = Some(value),
                "traceparent" => facts.trace_id = trace_id(&value),
                "x-forwarded-for" => xff.push(value),
                _ => {
                    if self.config.request_headers.contains(&name) {
                        facts.request_headers.push((name, value));
                    }
                }
            }
        }
        // Headers asked for that the record also has a field for are included as well.
        for name in &self.config.request_headers {
            let value = match name.as_str() {
                "user-agent" => facts.user_agent.clone(),
                "x-request-id" => facts.request_id.clone(),
                _ => None,
            };
            if let Some(v) = value {
                facts.request_headers.push((name.clone(), v));
            }
        }
        let peer = str_property(host, &["source", "address"]).and_then(|s| parse_ip(&s));
        facts.source_ip = peer.map(|ip| ip.to_string());
        let hops = self.config.xff_trusted_hops;
        facts.client_ip = match resolve(peer, if hops == 0 { &[] } else { &xff }, hops) {
            // Most often the peer itself: its text is already written.
            Some(ip) if Some(ip) == peer => facts.source_ip.clone(),
            other => other.map(|ip| ip.to_string()),
        };
        facts
    }

    /// Samples allowed requests; every other outcome is always recorded.
    fn keep(&self, outcome: Outcome) -> bool {
        let ppm = self.config.sample_allowed_ppm;
        if outcome != Outcome::Success || ppm >= 1_000_000 {
            return true;
        }
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        (x % 1_000_000) < u64::from(ppm)
    }

    fn count(&self, host: &mut dyn Host, event: &str, n: u32) {
        if n == 0 {
            return;
        }
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.add(host, event, i64::from(n));
        }
    }

    fn count_hits(&self, host: &mut dyn Host, hits: &Hits) {
        if hits.total() == 0 {
            return;
        }
        self.count(host, "masked.card_number", hits.card_numbers);
        self.count(host, "masked.email", hits.emails);
        self.count(host, "masked.token", hits.tokens);
        self.count(host, "masked.iban", hits.ibans);
        self.count(host, "masked.named", hits.named);
        for (name, n) in self.masker.pattern_names().zip(hits.patterns.iter()) {
            self.count(host, &format!("masked.pattern.{name}"), *n);
        }
    }
}

impl StreamFilter for AuditStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        self.facts = Some(self.capture(host));
        Action::Continue
    }

    fn on_log(&mut self, host: &mut dyn Host) {
        let mut facts = match self.facts.take() {
            Some(f) => f,
            // A stream this filter never saw the headers of (refused before it ran).
            None => self.capture(host),
        };
        let h: &dyn Host = host;
        facts.status = int_property(h, &["response", "code"]).and_then(|c| u16::try_from(c).ok());
        facts.code_details = str_property(h, &["response", "code_details"]);
        // Envoy's own figure; the clock (one more host call) only when it has none.
        facts.duration_ns = int_property(h, &["request", "duration"])
            .or_else(|| Some(h.now_nanos().saturating_sub(facts.start_ns)));
        facts.request_bytes = int_property(h, &["request", "total_size"]);
        facts.response_bytes = int_property(h, &["response", "total_size"]);
        facts.tls_version = str_property(h, &["connection", "tls_version"]);
        // No TLS, no client certificate: one host call saved on plaintext connections.
        if facts.tls_version.is_some() {
            facts.peer_cert_sha256 =
                str_property(h, &["connection", "sha256_peer_certificate_digest"]);
        }
        facts.route = str_property(h, &["xds", "route_name"]);
        facts.cluster = str_property(h, &["xds", "cluster_name"]);
        if facts.request_id.is_none() {
            facts.request_id = str_property(h, &["request", "id"]);
        }
        facts.identity = self.config.identity_from.read(h);
        let decisions = self.config.decisions.iter();
        for (filter, property) in decisions.zip(&self.config.decision_properties) {
            if let Some(d) = decision::read_property(h, property) {
                facts
                    .decisions
                    .push(FilterDecision::from_recorded(filter, &d));
            }
        }
        for name in &self.config.response_headers {
            if let Some(v) = h.response_header(name) {
                facts.response_headers.push((name.clone(), v));
            }
        }
        if !self.keep(facts.outcome()) {
            self.count(host, "sampled_out", 1);
            return;
        }
        let mut hits = self.masker.new_hits();
        let body = facts.to_json(&self.masker, &mut hits);
        let line = match self.chain.try_borrow_mut() {
            Ok(mut chain) => match chain.as_mut() {
                Some(c) => c.seal_owned(body),
                None => body,
            },
            Err(_) => body,
        };
        let mut delivered = false;
        if self.config.access_log {
            match host.set_property(&[AUDIT_PROPERTY], line.as_bytes()) {
                Ok(()) => delivered = true,
                Err(_) => {
                    let h: &dyn Host = host;
                    h.warn("audit-log: the record could not be written to filter state");
                    self.count(host, "errors.filter_state", 1);
                }
            }
        }
        if self.config.http.is_some() {
            let queued = self.queue.is_some_and(|q| {
                host.queue_enqueue(q, &encode_item(facts.start_ns, &line))
                    .is_ok()
            });
            if queued {
                delivered = true;
            } else {
                // Lost before the sender saw it: counted as dropped, never silent.
                let h: &dyn Host = host;
                h.warn("audit-log: the record could not be put in the HTTP sink's queue");
                self.count(host, "errors.queue", 1);
                self.count(host, "dropped", 1);
            }
        }
        if delivered {
            self.count(host, "records", 1);
        }
        self.count_hits(host, &hits);
    }
}
