//! The audit record: what the filter gathered about one request, and its JSON text in Elastic
//! Common Schema (ECS) names. Fields ECS has no name for are under `shieldwall.*`.
//!
//! Every string that came from the request or the caller goes through the [`Masker`] here; the
//! values the filter or Envoy produced (status, sizes, durations, decisions) are written as is.

use serde_json::{json, Map, Value};
use shieldwall_core::decision::Decision;
use shieldwall_core::Identity;

use crate::mask::{Hits, Masker};

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
    pub identity: Option<Identity>,
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

    /// The record as a JSON object text, without the chain's `audit` member.
    pub fn to_json(&self, masker: &Masker, hits: &mut Hits) -> String {
        let mut record = Map::new();
        record.insert("@timestamp".into(), json!(rfc3339_millis(self.start_ns)));
        record.insert("ecs".into(), json!({"version": ECS_VERSION}));

        let denied_by = self.denied_by().map(str::to_string);
        let outcome = self.outcome();
        let mut event = Map::new();
        event.insert("kind".into(), json!("event"));
        event.insert("category".into(), json!(["web"]));
        let verdict = if denied_by.is_some() {
            "denied"
        } else {
            "allowed"
        };
        event.insert("type".into(), json!(["access", verdict]));
        event.insert("outcome".into(), json!(outcome.as_str()));
        if let Some(id) = &self.request_id {
            event.insert("id".into(), json!(masker.text(id, hits)));
        }
        if let Some(d) = self.duration_ns {
            event.insert("duration".into(), json!(d));
        }
        if let Some(filter) = &denied_by {
            let reason = self
                .decisions
                .iter()
                .find(|d| &d.filter == filter)
                .and_then(|d| d.reason.clone());
            event.insert(
                "reason".into(),
                json!(match reason {
                    Some(r) => format!("{filter}: {r}"),
                    None => filter.clone(),
                }),
            );
        }
        record.insert("event".into(), Value::Object(event));

        if let Some(t) = &self.trace_id {
            record.insert("trace".into(), json!({"id": t}));
        }
        if let Some(ip) = &self.client_ip {
            record.insert("client".into(), json!({"ip": ip}));
        }
        if let Some(ip) = &self.source_ip {
            record.insert("source".into(), json!({"ip": ip}));
        }

        let mut request = Map::new();
        if let Some(method) = &self.method {
            request.insert("method".into(), json!(masker.text(method, hits)));
        }
        if let Some(b) = self.request_bytes {
            request.insert("bytes".into(), json!(b));
        }
        if !self.request_headers.is_empty() {
            let headers: Map<String, Value> = self
                .request_headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(masker.header(k, v, hits))))
                .collect();
            request.insert("headers".into(), Value::Object(headers));
        }
        let mut response = Map::new();
        if let Some(s) = self.status {
            response.insert("status_code".into(), json!(s));
        }
        if let Some(b) = self.response_bytes {
            response.insert("bytes".into(), json!(b));
        }
        if !self.response_headers.is_empty() {
            let headers: Map<String, Value> = self
                .response_headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(masker.header(k, v, hits))))
                .collect();
            response.insert("headers".into(), Value::Object(headers));
        }
        record.insert(
            "http".into(),
            json!({"request": Value::Object(request), "response": Value::Object(response)}),
        );

        let mut url = Map::new();
        if let Some(p) = &self.path {
            url.insert("path".into(), json!(masker.path(p, hits)));
        }
        if let Some(q) = self.query.as_deref().filter(|q| !q.is_empty()) {
            url.insert("query".into(), json!(masker.query(q, hits)));
        }
        if !url.is_empty() {
            record.insert("url".into(), Value::Object(url));
        }

        if let Some(ua) = &self.user_agent {
            record.insert(
                "user_agent".into(),
                json!({"original": masker.text(ua, hits)}),
            );
        }

        let mut tls = Map::new();
        if let Some(v) = &self.tls_version {
            let (protocol, version) = split_tls_version(v);
            tls.insert("version_protocol".into(), json!(protocol));
            tls.insert("version".into(), json!(version));
        }
        let cert = self
            .identity
            .as_ref()
            .and_then(|i| i.cert_sha256.clone())
            .or_else(|| self.peer_cert_sha256.clone());
        if let Some(c) = cert {
            // ECS writes certificate hashes in upper-case hex.
            tls.insert(
                "client".into(),
                json!({"hash": {"sha256": c.to_ascii_uppercase()}}),
            );
        }
        if !tls.is_empty() {
            record.insert("tls".into(), Value::Object(tls));
        }

        let mut sw = Map::new();
        if let Some(id) = &self.identity {
            if let Some(sub) = &id.sub {
                record.insert("user".into(), json!({"id": masker.text(sub, hits)}));
            }
            if let Some(c) = &id.client_id {
                sw.insert("client_id".into(), json!(masker.text(c, hits)));
            }
            if let Some(t) = &id.tenant {
                sw.insert("tenant".into(), json!(masker.text(t, hits)));
            }
            if let Some(s) = &id.spiffe_id {
                sw.insert("spiffe_id".into(), json!(masker.text(s, hits)));
            }
            if !id.auth.is_empty() {
                sw.insert("auth".into(), json!(id.auth));
            }
        }
        let mut decisions = Map::new();
        for d in &self.decisions {
            let mut one = Map::new();
            one.insert("decision".into(), json!(d.decision));
            if let Some(r) = &d.reason {
                one.insert("reason".into(), json!(r));
            }
            if let Some(s) = d.status {
                one.insert("status".into(), json!(s));
            }
            decisions.insert(d.filter.clone(), Value::Object(one));
        }
        if let Some(filter) = &denied_by {
            if !decisions.contains_key(filter) {
                // The filter answered but recorded nothing (an older module): what Envoy knows.
                let mut one = Map::new();
                one.insert("decision".into(), json!("deny"));
                if let Some(s) = self.status {
                    one.insert("status".into(), json!(s));
                }
                decisions.insert(filter.clone(), Value::Object(one));
            }
            sw.insert("denied_by".into(), json!(filter));
        }
        if !decisions.is_empty() {
            sw.insert("decisions".into(), Value::Object(decisions));
        }
        if let Some(r) = &self.route {
            sw.insert("route".into(), json!(r));
        }
        if let Some(c) = &self.cluster {
            sw.insert("cluster".into(), json!(c));
        }
        if let Some(d) = &self.code_details {
            sw.insert("response_code_details".into(), json!(d));
        }
        if !sw.is_empty() {
            record.insert("shieldwall".into(), Value::Object(sw));
        }
        Value::Object(record).to_string()
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
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
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
