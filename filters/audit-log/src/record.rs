//! The audit record: what the filter gathered about one request, and its JSON text in Elastic
//! Common Schema (ECS) names. Fields ECS has no name for are under `shieldwall.*`.
//!
//! Every string that came from the request or the caller goes through the [`Masker`] here; the
//! values the filter or Envoy produced (status, sizes, durations, decisions) are written as is.

use std::rc::Rc;

use shieldwall_core::decision::Decision;
use shieldwall_core::Identity;

use crate::mask::{Hits, Masker};
use shieldwall_core::json_text::{push_string as json_string, push_u64};

/// The ECS version whose field names the record uses.
pub const ECS_VERSION: &str = "8.11.0";

/// One filter's decision, as the filter recorded it (`shieldwall.decision.<filter>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterDecision {
    pub filter: String,
    /// `allow`, `deny` or `shadow_deny`.
    pub decision: String,
    pub reason: Option<String>,
    pub status: Option<u16>,
}

impl FilterDecision {
    /// What core's decision reader found for `filter`.
    pub fn from_recorded(filter: &str, d: &Decision) -> FilterDecision {
        FilterDecision {
            filter: filter.to_string(),
            decision: d.outcome.as_str().to_string(),
            reason: (!d.reason.is_empty()).then(|| d.reason.to_string()),
            status: (d.status != 0).then_some(d.status),
        }
    }

    fn denied(&self) -> bool {
        self.decision == "deny"
    }
}

/// What the filter knows of one request at its end.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// When the request started (ns since the epoch).
    pub start_ns: u64,
    pub duration_ns: Option<u64>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub client_ip: Option<String>,
    pub source_ip: Option<String>,
    pub method: Option<String>,
    /// The path as the client sent it, without the query.
    pub path: Option<String>,
    pub query: Option<String>,
    pub status: Option<u16>,
    /// Envoy's response code details (`shieldwall_jwt_auth` for a filter's local reply).
    pub code_details: Option<String>,
    pub request_bytes: Option<u64>,
    pub response_bytes: Option<u64>,
    /// `TLSv1.3` as Envoy says it.
    pub tls_version: Option<String>,
    pub peer_cert_sha256: Option<String>,
    pub user_agent: Option<String>,
    pub route: Option<String>,
    pub cluster: Option<String>,
    pub identity: Option<Rc<Identity>>,
    pub decisions: Vec<FilterDecision>,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
}

/// How the request ended, for `event.outcome` and sampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

impl Facts {
    /// The filter that refused the request: the one whose recorded decision is `deny`, else the
    /// one Envoy's response code details name (a filter that recorded nothing).
    pub fn denied_by(&self) -> Option<&str> {
        if let Some(d) = self.decisions.iter().find(|d| d.denied()) {
            return Some(d.filter.as_str());
        }
        self.code_details
            .as_deref()
            .and_then(|d| d.strip_prefix("shieldwall_"))
    }

    pub fn outcome(&self) -> Outcome {
        if self.denied_by().is_some() {
            return Outcome::Failure;
        }
        match self.status {
            Some(s) if s < 400 => Outcome::Success,
            Some(_) => Outcome::Failure,
            None => Outcome::Unknown,
        }
    }

    /// The record as a JSON object text, without the chain's `audit` member. Written directly as
    /// text (no value tree): it is on every request's path.
    pub fn to_json(&self, masker: &Masker, hits: &mut Hits) -> String {
        let mut w = Writer::with_capacity(1024);
        w.open(None);
        w.string("@timestamp", &rfc3339_millis(self.start_ns));
        w.open(Some("ecs"));
        w.string("version", ECS_VERSION);
        w.close();

        let denied_by = self.denied_by();
        w.open(Some("event"));
        w.string("kind", "event");
        w.raw("category", "[\"web\"]");
        w.raw(
            "type",
            if denied_by.is_some() {
                "[\"access\",\"denied\"]"
            } else {
                "[\"access\",\"allowed\"]"
            },
        );
        w.string("outcome", self.outcome().as_str());
        if let Some(id) = &self.request_id {
            w.string("id", &masker.text(id, hits));
        }
        if let Some(d) = self.duration_ns {
            w.number("duration", d);
        }
        if let Some(filter) = denied_by {
            let reason = self
                .decisions
                .iter()
                .find(|d| d.filter == filter)
                .and_then(|d| d.reason.as_deref());
            match reason {
                Some(r) => w.string("reason", &format!("{filter}: {r}")),
                None => w.string("reason", filter),
            }
        }
        w.close();

        if let Some(t) = &self.trace_id {
            w.open(Some("trace"));
            w.string("id", t);
            w.close();
        }
        if let Some(ip) = &self.client_ip {
            w.open(Some("client"));
            w.string("ip", ip);
            w.close();
        }
        if let Some(ip) = &self.source_ip {
            w.open(Some("source"));
            w.string("ip", ip);
            w.close();
        }

        w.open(Some("http"));
        w.open(Some("request"));
        if let Some(method) = &self.method {
            w.string("method", &masker.text(method, hits));
        }
        if let Some(b) = self.request_bytes {
            w.number("bytes", b);
        }
        if !self.request_headers.is_empty() {
            w.open(Some("headers"));
            for (k, v) in &self.request_headers {
                w.string(k, &masker.header(k, v, hits));
            }
            w.close();
        }
        w.close();
        w.open(Some("response"));
        if let Some(s) = self.status {
            w.number("status_code", u64::from(s));
        }
        if let Some(b) = self.response_bytes {
            w.number("bytes", b);
        }
        if !self.response_headers.is_empty() {
            w.open(Some("headers"));
            for (k, v) in &self.response_headers {
                w.string(k, &masker.header(k, v, hits));
            }
            w.close();
        }
        w.close();
        w.close();

        let query = self.query.as_deref().filter(|q| !q.is_empty());
        if self.path.is_some() || query.is_some() {
            w.open(Some("url"));
            if let Some(p) = &self.path {
                w.string("path", &masker.path(p, hits));
            }
            if let Some(q) = query {
                w.string("query", &masker.query(q, hits));
            }
            w.close();
        }

        if let Some(ua) = &self.user_agent {
            w.open(Some("user_agent"));
            w.string("original", &masker.text(ua, hits));
            w.close();
        }

        let cert = self
            .identity
            .as_ref()
            .and_then(|i| i.cert_sha256.as_deref())
            .or(self.peer_cert_sha256.as_deref());
        if self.tls_version.is_some() || cert.is_some() {
            w.open(Some("tls"));
            if let Some(v) = &self.tls_version {
                let (protocol, version) = split_tls_version(v);
                w.string("version_protocol", &protocol);
                w.string("version", &version);
            }
            if let Some(c) = cert {
                // ECS writes certificate hashes in upper-case hex.
                w.open(Some("client"));
                w.open(Some("hash"));
                w.string("sha256", &c.to_ascii_uppercase());
                w.close();
                w.close();
            }
            w.close();
        }

        if let Some(sub) = self.identity.as_ref().and_then(|i| i.sub.as_deref()) {
            w.open(Some("user"));
            w.string("id", &masker.text(sub, hits));
            w.close();
        }

        w.open(Some("shieldwall"));
        if let Some(id) = &self.identity {
            for (name, value) in [
                ("client_id", &id.client_id),
                ("tenant", &id.tenant),
                ("spiffe_id", &id.spiffe_id),
            ] {
                if let Some(v) = value {
                    w.string(name, &masker.text(v, hits));
                }
            }
            if !id.auth.is_empty() {
                w.key("auth");
                w.out.push('[');
                for (i, a) in id.auth.iter().enumerate() {
                    if i > 0 {
                        w.out.push(',');
                    }
                    json_string(&mut w.out, a);
                }
                w.out.push(']');
            }
        }
        // A filter named only by Envoy's response code details: its name becomes a member name,
        // so only a plain one (what every shieldwall filter's is) gets an entry.
        let unrecorded = denied_by.filter(|f| {
            !self.decisions.iter().any(|d| d.filter == *f)
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !self.decisions.is_empty() || unrecorded.is_some() {
            w.open(Some("decisions"));
            for d in &self.decisions {
                w.open(Some(&d.filter));
                w.string("decision", &d.decision);
                if let Some(r) = &d.reason {
                    w.string("reason", r);
                }
                if let Some(s) = d.status {
                    w.number("status", u64::from(s));
                }
                w.close();
            }
            if let Some(filter) = unrecorded {
                // The filter answered but recorded nothing (an older module): what Envoy knows.
                w.open(Some(filter));
                w.string("decision", "deny");
                if let Some(s) = self.status {
                    w.number("status", u64::from(s));
                }
                w.close();
            }
            w.close();
        }
        if let Some(filter) = denied_by {
            w.string("denied_by", filter);
        }
        if let Some(r) = &self.route {
            w.string("route", r);
        }
        if let Some(c) = &self.cluster {
            w.string("cluster", c);
        }
        if let Some(d) = &self.code_details {
            w.string("response_code_details", d);
        }
        w.close();
        w.close();
        w.out
    }
}

/// A JSON object written as text: members in the order written, strings escaped.
struct Writer {
    out: String,
    /// Per open object: whether a member was written yet.
    first: Vec<bool>,
}

impl Writer {
    fn with_capacity(n: usize) -> Writer {
        Writer {
            out: String::with_capacity(n),
            first: Vec::with_capacity(6),
        }
    }

    /// A member's name, written as it is: names are never request data but the record's own ECS
    /// names and the header and filter names the configuration validated (token characters only,
    /// nothing JSON escapes; `names_that_would_need_escaping_are_refused` pins that).
    fn key(&mut self, key: &str) {
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
        }
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn open(&mut self, key: Option<&str>) {
        if let Some(k) = key {
            self.key(k);
        }
        self.out.push('{');
        self.first.push(true);
    }

    fn close(&mut self) {
        self.out.push('}');
        self.first.pop();
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        json_string(&mut self.out, value);
    }

    fn number(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(&mut self.out, value);
    }

    /// A value that is already JSON text.
    fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.push_str(json);
    }
}

/// `TLSv1.3` → (`tls`, `1.3`), as ECS splits it.
fn split_tls_version(v: &str) -> (String, String) {
    match v.strip_prefix("TLSv") {
        Some(version) => ("tls".into(), version.into()),
        None => (v.to_ascii_lowercase(), String::new()),
    }
}

/// A W3C `traceparent` (`00-<32 hex trace id>-<16 hex span id>-<flags>`) → the trace id.
pub fn trace_id(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let version = parts.next()?;
    let id = parts.next()?;
    if version.len() != 2 || id.len() != 32 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if id.bytes().all(|c| c == b'0') {
        return None;
    }
    Some(id.to_ascii_lowercase())
}

/// Nanoseconds since the epoch as `2026-11-30T03:04:05.678Z`.
pub fn rfc3339_millis(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let millis = (ns / 1_000_000) % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    // Digit by digit, not `format!`: every record has one.
    let mut out = String::with_capacity(24);
    let mut push = |n: u64, width: u32, then: char| {
        // Nanoseconds in a u64 end in 2554: four digits hold every year.
        let mut div = 10u64.pow(width - 1);
        while div > 0 {
            out.push(char::from(b'0' + (n / div % 10) as u8));
            div /= 10;
        }
        out.push(then);
    };
    push(y, 4, '-');
    push(mo, 2, '-');
    push(d, 2, 'T');
    push(rem / 3600, 2, ':');
    push((rem / 60) % 60, 2, ':');
    push(rem % 60, 2, '.');
    push(millis, 3, 'Z');
    out
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}
