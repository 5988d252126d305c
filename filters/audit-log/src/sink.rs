//! The HTTP sink: records shipped straight to a SIEM through HTTP callouts.
//!
//! ```text
//!  every worker, per request            one worker (the sender), on its tick
//!  on_log: record ──enqueue──▶ [shared queue] ──dequeue──▶ buffer ──batch──▶ http_call ─▶ SIEM
//!                                                           │ full: oldest dropped, counted
//!                                                           └ failed: kept, retried with backoff
//! ```
//!
//! - **Per request** a worker only enqueues the sealed record (one hostcall) in the proxy's shared
//!   queue `shieldwall/audit_log/<plugin>/records`, which every worker of the plugin's vm_id sees.
//! - **The sender** is the worker that holds the lease `shieldwall/audit_log/<plugin>/sender` in
//!   shared data (core's [`Lease`]: `<worker id> <expiry ms>`, taken and renewed by CAS). Every
//!   worker tries to take it on its tick; the holder renews it on each of its ticks, so it keeps
//!   it while its VM lives. When that VM goes away (a configuration update, a worker that stops),
//!   nobody renews the lease, it expires after [`lease_ttl_ms`], and the next worker whose tick
//!   finds it expired becomes the sender. The queue is the proxy's, not the VM's, so records
//!   enqueued meanwhile wait there for the new sender. What a departed sender held in its VM
//!   (its buffer) is lost with it; a sender that merely lost the lease (it was not scheduled for
//!   longer than the lease lasts) puts its buffer back into the queue.
//! - **The buffer** holds at most `buffer_max_records` records. The sender drains the queue into
//!   it on each tick; when it is full, the oldest records (not those of a batch in flight) are
//!   dropped, each counted in `shieldwall.audit_log.dropped`, with a warning in the proxy's log.
//! - **Batches**: a batch is sent when `batch_max_records` records or `batch_max_bytes` bytes are
//!   waiting, or `flush_interval_ms` after the last send; one batch is in flight at a time, and
//!   after a successful one the next full batch goes at once (throughput is not bound to the tick).
//! - **Retries**: a send fails on a non-2xx status, on the callout's timeout (`timeout_ms`) or when
//!   the callout cannot start or is reset. The batch's records stay at the head of the buffer and
//!   are sent again after `retry_initial_backoff_ms`, doubling per consecutive failure up to
//!   `retry_max_backoff_ms` (defaults 0.5 s, 1 s, 2 s, … 30 s), without limit on the number of
//!   attempts: while the SIEM is down the buffer fills and the drop rule bounds it. Delivery is
//!   at least once: a SIEM that stored a batch but answered after the timeout gets it again.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use shieldwall_core::metrics::Metrics;
use shieldwall_core::shared::{self, Lease};
use shieldwall_core::{CalloutResponse, Host, HostError};

use crate::config::{HttpFormat, HttpSink};
use shieldwall_core::json_text::push_string as json_string;

/// The filter name in shared-data keys and queue names.
const FILTER: &str = "audit_log";

/// The fewest records a tick takes from the queue (more when the buffer is larger).
const DRAIN_PER_TICK: usize = 10_000;

/// The queue's name for a plugin.
pub fn queue_name(plugin: &str) -> String {
    shared::key(FILTER, plugin, "records")
}

/// The sender lease's key for a plugin.
pub fn lease_key(plugin: &str) -> String {
    shared::key(FILTER, plugin, "sender")
}

/// How often every worker ticks: often enough to flush on time and to take over a lost lease.
pub fn tick_ms(sink: &HttpSink) -> u64 {
    sink.flush_interval_ms.clamp(10, 200)
}

/// How long the sender lease lasts without renewal: several ticks, so a busy worker keeps it.
pub fn lease_ttl_ms(sink: &HttpSink) -> u64 {
    (tick_ms(sink) * 10).max(2000)
}

/// The backoff before retry `attempt` (1 for the first retry).
pub fn backoff_ms(sink: &HttpSink, attempt: u32) -> u64 {
    let shift = attempt.saturating_sub(1).min(32);
    sink.retry_initial_backoff_ms
        .saturating_mul(1u64 << shift)
        .min(sink.retry_max_backoff_ms)
}

/// A queue item: the record's time (ns since the epoch, 8 bytes little-endian), then its line.
pub fn encode_item(time_ns: u64, line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + line.len());
    out.extend_from_slice(&time_ns.to_le_bytes());
    out.extend_from_slice(line.as_bytes());
    out
}

/// A record waiting to be shipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub time_ns: u64,
    pub line: String,
}

impl Item {
    pub fn decode(bytes: &[u8]) -> Option<Item> {
        let time: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let line = std::str::from_utf8(bytes.get(8..)?).ok()?;
        Some(Item {
            time_ns: u64::from_le_bytes(time),
            line: line.to_string(),
        })
    }
}

/// The `content-type` of a format's batches.
pub fn content_type(format: HttpFormat) -> &'static str {
    match format {
        HttpFormat::JsonLines | HttpFormat::EcsBulk => "application/x-ndjson",
        HttpFormat::SplunkHec | HttpFormat::OtlpJson => "application/json",
    }
}

const OTLP_HEAD: &str = "{\"resourceLogs\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"shieldwall\"}}]},\"scopeLogs\":[{\"scope\":{\"name\":\"shieldwall.audit_log\"},\"logRecords\":[";
const OTLP_TAIL: &str = "]}]}]}";

/// Appends one record to a batch in `format` (`first`: no record before it in this batch).
fn push_record(out: &mut String, format: HttpFormat, item: &Item, first: bool) {
    match format {
        HttpFormat::JsonLines => {
            out.push_str(&item.line);
            out.push('\n');
        }
        HttpFormat::EcsBulk => {
            // `create`: data streams accept only it; the index comes from the URI path.
            out.push_str("{\"create\":{}}\n");
            out.push_str(&item.line);
            out.push('\n');
        }
        HttpFormat::SplunkHec => {
            // HEC takes several event objects one after the other in one request.
            let secs = item.time_ns / 1_000_000_000;
            let millis = (item.time_ns / 1_000_000) % 1000;
            out.push_str(&format!(
                "{{\"time\":{secs}.{millis:03},\"sourcetype\":\"_json\",\"source\":\"shieldwall:audit_log\",\"event\":"
            ));
            out.push_str(&item.line);
            out.push_str("}\n");
        }
        HttpFormat::OtlpJson => {
            // One log record per record, the record's text as a string body (its bytes stay as
            // sealed).
            if !first {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"timeUnixNano\":\"{t}\",\"observedTimeUnixNano\":\"{t}\",\"severityNumber\":9,\"severityText\":\"INFO\",\"eventName\":\"shieldwall.audit\",\"body\":{{\"stringValue\":",
                t = item.time_ns
            ));
            json_string(out, &item.line);
            out.push_str("}}");
        }
    }
}

/// A batch of at most `max_records` records from the head of `items` whose body, envelope
/// included, is at most `max_bytes` (but always at least one record): the body and the number of
/// records it carries.
pub fn build_batch<'a>(
    format: HttpFormat,
    items: impl Iterator<Item = &'a Item>,
    max_records: usize,
    max_bytes: usize,
) -> (Vec<u8>, usize) {
    let (head, tail) = match format {
        HttpFormat::OtlpJson => (OTLP_HEAD, OTLP_TAIL),
        _ => ("", ""),
    };
    let mut out = String::from(head);
    let mut n = 0usize;
    for item in items.take(max_records) {
        let before = out.len();
        push_record(&mut out, format, item, n == 0);
        if n > 0 && out.len() + tail.len() > max_bytes {
            out.truncate(before);
            break;
        }
        n += 1;
    }
    out.push_str(tail);
    (out.into_bytes(), n)
}

/// A batch's body with every record of `items`. The record's text is carried unchanged (as the
/// event, the log body or the document), so a SIEM that keeps it can still verify the chain.
pub fn batch_body<'a>(format: HttpFormat, items: impl Iterator<Item = &'a Item>) -> Vec<u8> {
    build_batch(format, items, usize::MAX, usize::MAX).0
}

/// What the sender does with a callout's answer.
fn succeeded(response: &CalloutResponse) -> bool {
    matches!(response.status, Some(s) if (200..300).contains(&s))
}

/// One worker's side of the HTTP sink: the queue id for enqueueing (every worker) and, while it
/// holds the lease, the sender's buffer and batch.
pub struct Shipper {
    sink: Rc<HttpSink>,
    queue_name: String,
    queue: Option<u32>,
    lease: Lease,
    sender: bool,
    buffer: VecDeque<Item>,
    /// The callout in flight and how many records of the buffer's head it carries.
    in_flight: Option<(u32, usize)>,
    /// Consecutive failed sends (0: the last one succeeded).
    failures: u32,
    /// No send before this time (ms): the backoff after a failure.
    next_try_ms: u64,
    last_send_ms: u64,
    /// When a drop warning was last logged, and drops since then.
    last_drop_warning_ms: Option<u64>,
    unwarned_drops: u64,
    /// The static part of the callout's headers.
    headers: Vec<(String, String)>,
}

impl Shipper {
    /// Registers the queue (every worker: the id is the same for all of them).
    pub fn new(host: &mut dyn Host, sink: Rc<HttpSink>, plugin: &str, worker: u64) -> Shipper {
        let queue_name = queue_name(plugin);
        let queue = host.queue_register(&queue_name).ok();
        let mut headers: Vec<(String, String)> = vec![
            (":method".into(), "POST".into()),
            (":path".into(), sink.path.clone()),
            (":authority".into(), sink.authority.clone()),
            ("content-type".into(), content_type(sink.format).into()),
        ];
        headers.extend(sink.headers.iter().cloned());
        Shipper {
            queue_name,
            queue,
            lease: Lease::new(lease_key(plugin), worker),
            sender: false,
            buffer: VecDeque::new(),
            in_flight: None,
            failures: 0,
            next_try_ms: 0,
            last_send_ms: 0,
            last_drop_warning_ms: None,
            unwarned_drops: 0,
            headers,
            sink,
        }
    }

    pub fn queue(&self) -> Option<u32> {
        self.queue
    }

    pub fn is_sender(&self) -> bool {
        self.sender
    }

    /// Records held by this worker (waiting or in flight).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The tick: take or renew the lease; as the sender drain the queue, then send if due.
    pub fn on_tick(&mut self, host: &mut dyn Host, metrics: &mut Metrics) {
        let ttl = lease_ttl_ms(&self.sink);
        let held = self.lease.try_acquire(host, ttl);
        if !held {
            if self.sender {
                self.step_down(host, metrics);
            }
            return;
        }
        if !self.sender {
            self.sender = true;
            let h: &dyn Host = host;
            h.info("audit-log: this worker is now the HTTP sink's sender");
        }
        self.drain(host, metrics);
        self.send_if_due(host, metrics);
    }

    /// Gives the buffer back to the queue (another worker holds the lease now).
    fn step_down(&mut self, host: &mut dyn Host, metrics: &mut Metrics) {
        if self.in_flight.is_some() {
            // Its answer decides what happens to the batch; the rest goes back then.
            return;
        }
        self.sender = false;
        let mut lost = 0u64;
        while let Some(item) = self.buffer.pop_front() {
            let ok = self.queue.is_some_and(|q| {
                host.queue_enqueue(q, &encode_item(item.time_ns, &item.line))
                    .is_ok()
            });
            if !ok {
                lost += 1;
            }
        }
        if lost > 0 {
            metrics.add(host, "dropped", i64::try_from(lost).unwrap_or(i64::MAX));
            metrics.add(
                host,
                "errors.queue",
                i64::try_from(lost).unwrap_or(i64::MAX),
            );
            let h: &dyn Host = host;
            h.warn(&format!(
                "audit-log: lost the sender lease and could not give {lost} record(s) back to the queue (counted as dropped)"
            ));
        } else {
            let h: &dyn Host = host;
            h.info("audit-log: another worker holds the HTTP sink's lease; records handed back to the queue");
        }
    }

    /// Moves queued records into the buffer, dropping the oldest beyond `buffer_max_records`.
    fn drain(&mut self, host: &mut dyn Host, metrics: &mut Metrics) {
        let Some(queue) = self.queue else {
            // Registration failed at configuration; try again.
            self.queue = host.queue_register(&self.queue_name).ok();
            return;
        };
        let max = self.sink.buffer_max_records;
        let pinned = self.in_flight.map_or(0, |(_, n)| n);
        let mut dropped = 0u64;
        // A bounded number per tick, so a long backlog cannot stall the worker.
        for _ in 0..max.max(DRAIN_PER_TICK) {
            match host.queue_dequeue(queue) {
                Ok(Some(bytes)) => {
                    let Some(item) = Item::decode(&bytes) else {
                        dropped += 1;
                        continue;
                    };
                    if self.buffer.len() >= max {
                        if self.buffer.len() > pinned {
                            // The oldest record that is not in flight.
                            let _ = self.buffer.remove(pinned);
                            dropped += 1;
                        } else {
                            // Everything held is in flight: the new record cannot be kept.
                            dropped += 1;
                            continue;
                        }
                    }
                    self.buffer.push_back(item);
                }
                Ok(None) => break,
                Err(HostError::NotFound) => {
                    self.queue = host.queue_register(&self.queue_name).ok();
                    break;
                }
                Err(_) => break,
            }
        }
        metrics.gauge(host, "buffer", self.buffer.len() as u64);
        if dropped > 0 {
            self.dropped(host, metrics, dropped);
        }
    }

    fn dropped(&mut self, host: &mut dyn Host, metrics: &mut Metrics, n: u64) {
        metrics.add(host, "dropped", i64::try_from(n).unwrap_or(i64::MAX));
        self.unwarned_drops += n;
        let now = host.now_millis();
        let due = self
            .last_drop_warning_ms
            .is_none_or(|t| now.saturating_sub(t) >= 10_000);
        if due {
            let h: &dyn Host = host;
            h.warn(&format!(
                "audit-log: the HTTP sink's buffer is full ({} records, the SIEM does not take them fast enough): dropped the {} oldest record(s) since the last warning (counted in shieldwall.audit_log.dropped)",
                self.sink.buffer_max_records, self.unwarned_drops
            ));
            self.last_drop_warning_ms = Some(now);
            self.unwarned_drops = 0;
        }
    }

    fn send_if_due(&mut self, host: &mut dyn Host, metrics: &mut Metrics) {
        if self.in_flight.is_some() || self.buffer.is_empty() {
            return;
        }
        let now = host.now_millis();
        if now < self.next_try_ms {
            return;
        }
        let due = now.saturating_sub(self.last_send_ms) >= self.sink.flush_interval_ms;
        if !due && self.failures == 0 && self.buffer.len() < self.sink.batch_max_records {
            // Maybe full by bytes: only then is the batch built before its time.
            let bytes: usize = self.buffer.iter().map(|i| i.line.len()).sum();
            if bytes < self.sink.batch_max_bytes {
                return;
            }
        }
        let (body, n) = build_batch(
            self.sink.format,
            self.buffer.iter(),
            self.sink.batch_max_records,
            self.sink.batch_max_bytes,
        );
        let full = n < self.buffer.len() || n >= self.sink.batch_max_records;
        if !(full || due || self.failures > 0) {
            return;
        }
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.last_send_ms = now;
        match host.http_call(
            &self.sink.cluster,
            &headers,
            Some(&body),
            Duration::from_millis(self.sink.timeout_ms),
        ) {
            Ok(token) => self.in_flight = Some((token, n)),
            Err(e) => {
                let h: &dyn Host = host;
                h.warn(&format!(
                    "audit-log: the HTTP sink could not start a callout to cluster `{}` ({e:?})",
                    self.sink.cluster
                ));
                self.failed(host, metrics);
            }
        }
    }

    fn failed(&mut self, host: &mut dyn Host, metrics: &mut Metrics) {
        self.failures = self.failures.saturating_add(1);
        let wait = backoff_ms(&self.sink, self.failures);
        self.next_try_ms = host.now_millis().saturating_add(wait);
        metrics.inc(host, "retries");
    }

    /// The answer to a batch. Returns false when the token is not this sink's.
    pub fn on_response(
        &mut self,
        host: &mut dyn Host,
        metrics: &mut Metrics,
        token: u32,
        response: &CalloutResponse,
    ) -> bool {
        let Some((sent, n)) = self.in_flight else {
            return false;
        };
        if sent != token {
            return false;
        }
        self.in_flight = None;
        if succeeded(response) {
            let n = n.min(self.buffer.len());
            self.buffer.drain(..n);
            self.failures = 0;
            self.next_try_ms = 0;
            metrics.add(host, "shipped", i64::try_from(n).unwrap_or(i64::MAX));
            metrics.inc(host, "batches");
            if self.sink.format == HttpFormat::EcsBulk && bulk_has_errors(&response.body) {
                metrics.inc(host, "errors.bulk_items");
                let h: &dyn Host = host;
                h.warn("audit-log: Elasticsearch accepted the batch but refused some of its records (`errors: true` in the _bulk answer)");
            }
        } else {
            let h: &dyn Host = host;
            match response.status {
                Some(s) => h.warn(&format!(
                    "audit-log: the SIEM answered {s} to a batch of {n} record(s); retrying"
                )),
                None => h.warn(&format!(
                    "audit-log: a batch of {n} record(s) got no answer (timeout or connection failure); retrying"
                )),
            }
            self.failed(host, metrics);
        }
        if self.sender {
            // Records that came meanwhile, and the next batch at once if one is full.
            self.drain(host, metrics);
            if self.lease.is_held_by_me(host) {
                self.send_if_due(host, metrics);
            } else {
                self.step_down(host, metrics);
            }
        }
        true
    }
}

/// Whether an Elasticsearch `_bulk` answer says some items failed (`"errors":true`).
fn bulk_has_errors(body: &[u8]) -> bool {
    let head = body.get(..body.len().min(256)).unwrap_or(body);
    let text = String::from_utf8_lossy(head);
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("\"errors\":true")
}
