//! Unit tests of the HTTP sink over the mock host: the four formats, batching by count, bytes and
//! time, retries with their backoff, drops of the oldest records counted exactly, and the sender
//! lease moving between workers.

use serde_json::{json, Value};
use shieldwall_core::testing::MockHost;
use shieldwall_core::{CalloutResponse, Host, RootFilter, StreamFilter};

use crate::config::{Config, HttpFormat};
use crate::filter::AuditLog;
use crate::sink::{backoff_ms, batch_body, lease_ttl_ms, queue_name, tick_ms, Item};

const KEY: &str = "an audit chain key of 32+ bytes!";

fn root(host: &mut MockHost, http: Value) -> AuditLog {
    host.env.insert("AUDIT_CHAIN_KEY".into(), KEY.into());
    host.env.insert("SIEM_TOKEN".into(), "Splunk s3cret".into());
    let config = json!({"sinks": {"access_log": false, "http": http},
                        "chain": {"key_env": "AUDIT_CHAIN_KEY"}});
    AuditLog::configure(host, config.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn sink(http: Value) -> crate::config::HttpSink {
    let config = json!({"sinks": {"http": http}});
    Config::parse(config.to_string().as_bytes(), &|_| None)
        .unwrap()
        .http
        .unwrap()
}

/// One request through the filter: its record goes to the queue.
fn request(root: &mut AuditLog, host: &mut MockHost, n: usize) {
    host.new_stream("GET", &format!("/r/{n}"), &[]);
    host.properties
        .insert("response\0code".into(), 200i64.to_le_bytes().to_vec());
    let mut s = root.new_stream(host, 2);
    s.on_request_headers(host, true);
    s.on_log(host);
}

/// A worker configured with `http` as its sink, `n` requests (`/r/0` …) already recorded.
fn with_records(http: Value, n: usize) -> (MockHost, AuditLog) {
    let mut host = MockHost::new();
    let mut r = root(&mut host, http);
    for i in 0..n {
        request(&mut r, &mut host, i);
    }
    (host, r)
}

/// Two workers `a` and `b` of one proxy, both with `http` as their sink.
fn two_workers(http: &Value) -> (MockHost, AuditLog, AuditLog) {
    let mut host = MockHost::new();
    let a = root(&mut host, http.clone());
    let b = root(&mut host, http.clone());
    (host, a, b)
}

/// The record paths of the `n`th batch sent.
fn sent(host: &MockHost, n: usize) -> Vec<String> {
    paths(host.callouts[n].body.as_ref().unwrap())
}

fn paths(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["url"]["path"].as_str().unwrap().to_string()
        })
        .collect()
}

fn answer(root: &mut AuditLog, host: &mut MockHost, status: Option<u16>) {
    let token = host.callouts.last().unwrap().token;
    root.on_http_call_response(
        host,
        token,
        CalloutResponse {
            status,
            ..Default::default()
        },
    );
}

fn tick(root: &mut AuditLog, host: &mut MockHost, ms: u64) {
    host.advance_ms(ms);
    root.on_tick(host);
}

const QUEUE: &str = "shieldwall/audit_log/test/records";

#[test]
fn every_format_carries_each_record_unchanged() {
    let items = [
        Item {
            time_ns: 1_700_000_000_123_000_000,
            line: r#"{"a":1,"audit":{"hash":"x"}}"#.into(),
        },
        Item {
            time_ns: 1_700_000_001_000_000_000,
            line: r#"{"b":"q\"uote"}"#.into(),
        },
    ];
    let lines = String::from_utf8(batch_body(HttpFormat::JsonLines, items.iter())).unwrap();
    assert_eq!(lines, format!("{}\n{}\n", items[0].line, items[1].line));

    let bulk = String::from_utf8(batch_body(HttpFormat::EcsBulk, items.iter())).unwrap();
    let l: Vec<&str> = bulk.lines().collect();
    assert_eq!(
        l,
        vec![
            r#"{"create":{}}"#,
            &items[0].line,
            r#"{"create":{}}"#,
            &items[1].line
        ]
    );
    assert!(bulk.ends_with('\n'));

    let hec = String::from_utf8(batch_body(HttpFormat::SplunkHec, items.iter())).unwrap();
    let events: Vec<Value> = hec
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["time"].as_f64(), Some(1_700_000_000.123));
    assert_eq!(events[0]["event"], json!({"a": 1, "audit": {"hash": "x"}}));
    assert_eq!(events[1]["sourcetype"], "_json");
    assert!(
        hec.contains(&items[1].line),
        "the event is the record's own text"
    );

    let otlp: Value =
        serde_json::from_slice(&batch_body(HttpFormat::OtlpJson, items.iter())).unwrap();
    let records = &otlp["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
    assert_eq!(records.as_array().unwrap().len(), 2);
    assert_eq!(records[0]["timeUnixNano"], "1700000000123000000");
    assert_eq!(records[1]["body"]["stringValue"], items[1].line.as_str());
    assert_eq!(
        otlp["resourceLogs"][0]["scopeLogs"][0]["scope"]["name"],
        "shieldwall.audit_log"
    );
}

#[test]
fn the_backoff_doubles_up_to_its_cap_and_the_timings_follow_the_flush_interval() {
    let s = sink(json!({"cluster": "s", "uri": "http://s/"}));
    let schedule: Vec<u64> = (1..=9).map(|a| backoff_ms(&s, a)).collect();
    assert_eq!(
        schedule,
        vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    );
    assert_eq!(backoff_ms(&s, u32::MAX), 30_000);
    assert_eq!(tick_ms(&s), 200);
    assert_eq!(lease_ttl_ms(&s), 2000);
    let fast = sink(
        json!({"cluster": "s", "uri": "http://s/", "flush_interval_ms": 50,
                           "retry_initial_backoff_ms": 100, "retry_max_backoff_ms": 250}),
    );
    assert_eq!(tick_ms(&fast), 50);
    assert_eq!(
        (1..=4).map(|a| backoff_ms(&fast, a)).collect::<Vec<_>>(),
        vec![100, 200, 250, 250]
    );
    assert_eq!(queue_name("edge"), "shieldwall/audit_log/edge/records");
}

#[test]
fn records_are_batched_by_count_and_by_time_and_shipped_once() {
    let mut host = MockHost::new();
    let mut r = root(
        &mut host,
        json!({"cluster": "siem", "uri": "https://siem.example.com/ingest?x=1",
               "headers": [{"name": "authorization", "value_env": "SIEM_TOKEN"}, {"name": "x-tenant", "value": "t1"}],
               "batch_max_records": 3, "flush_interval_ms": 1000, "timeout_ms": 1500}),
    );
    assert_eq!(
        host.tick_period,
        Some(std::time::Duration::from_millis(200))
    );
    for i in 0..7 {
        request(&mut r, &mut host, i);
    }
    // Nothing leaves the worker before the tick: the request path only enqueues.
    assert!(host.callouts.is_empty());
    assert_eq!(host.queue_len(QUEUE), 7);
    assert_eq!(host.metric("shieldwall.audit_log.records"), 7);
    tick(&mut r, &mut host, 200);
    assert_eq!(host.queue_len(QUEUE), 0);
    assert_eq!(host.callouts.len(), 1, "a full batch goes at once");
    let c = &host.callouts[0];
    assert_eq!(c.cluster, "siem");
    assert_eq!(c.header(":method"), Some("POST"));
    assert_eq!(c.header(":path"), Some("/ingest?x=1"));
    assert_eq!(c.header(":authority"), Some("siem.example.com"));
    assert_eq!(c.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(c.header("authorization"), Some("Splunk s3cret"));
    assert_eq!(c.header("x-tenant"), Some("t1"));
    assert_eq!(c.timeout, std::time::Duration::from_millis(1500));
    assert_eq!(
        paths(c.body.as_ref().unwrap()),
        vec!["/r/0", "/r/1", "/r/2"]
    );
    // One batch in flight at a time.
    tick(&mut r, &mut host, 200);
    assert_eq!(host.callouts.len(), 1);
    answer(&mut r, &mut host, Some(200));
    // The next full batch goes as soon as the answer came, not on the next tick.
    assert_eq!(host.callouts.len(), 2);
    assert_eq!(sent(&host, 1), vec!["/r/3", "/r/4", "/r/5"]);
    answer(&mut r, &mut host, Some(204));
    assert_eq!(host.callouts.len(), 2, "one record is not a full batch");
    assert_eq!(host.metric("shieldwall.audit_log.buffer"), 1);
    tick(&mut r, &mut host, 200);
    tick(&mut r, &mut host, 200);
    assert_eq!(host.callouts.len(), 2, "the flush interval has not passed");
    for _ in 0..4 {
        tick(&mut r, &mut host, 200);
    }
    assert_eq!(host.callouts.len(), 3, "flushed after flush_interval_ms");
    assert_eq!(sent(&host, 2), vec!["/r/6"]);
    answer(&mut r, &mut host, Some(200));
    assert_eq!(host.metric("shieldwall.audit_log.shipped"), 7);
    assert_eq!(host.metric("shieldwall.audit_log.batches"), 3);
    assert_eq!(host.metric("shieldwall.audit_log.retries"), 0);
    assert_eq!(host.metric("shieldwall.audit_log.dropped"), 0);
    assert_eq!(host.metric("shieldwall.audit_log.buffer"), 0);
}

#[test]
fn batches_stay_under_batch_max_bytes() {
    let (mut host, mut r) = with_records(
        json!({"cluster": "siem", "uri": "http://siem/", "batch_max_bytes": 1500, "flush_interval_ms": 100}),
        6,
    );
    let mut seen = 0;
    let mut sizes = Vec::new();
    for _ in 0..20 {
        tick(&mut r, &mut host, 100);
        while host.callouts.len() > seen {
            let body = host.callouts[seen].body.clone().unwrap();
            seen += 1;
            assert!(body.len() <= 1500, "{}", body.len());
            sizes.push(paths(&body).len());
            answer(&mut r, &mut host, Some(200));
        }
    }
    assert!(sizes.len() >= 2, "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 6);
    assert_eq!(host.metric("shieldwall.audit_log.shipped"), 6);
}

#[test]
fn failed_sends_are_retried_with_backoff_and_the_records_kept_in_order() {
    let (mut host, mut r) = with_records(
        json!({"cluster": "siem", "uri": "http://siem/", "batch_max_records": 2,
               "flush_interval_ms": 100, "retry_initial_backoff_ms": 400, "retry_max_backoff_ms": 1000}),
        3,
    );
    tick(&mut r, &mut host, 100);
    assert_eq!(host.callouts.len(), 1);
    answer(&mut r, &mut host, Some(503));
    assert_eq!(host.metric("shieldwall.audit_log.retries"), 1);
    assert!(host.logged("answered 503"));
    // 400 ms of backoff: no send before it.
    tick(&mut r, &mut host, 300);
    assert_eq!(host.callouts.len(), 1);
    tick(&mut r, &mut host, 100);
    assert_eq!(host.callouts.len(), 2);
    assert_eq!(sent(&host, 1), vec!["/r/0", "/r/1"]);
    // A timeout (no status) is a failure too; the backoff doubles: 800 ms.
    answer(&mut r, &mut host, None);
    assert!(host.logged("got no answer"));
    tick(&mut r, &mut host, 700);
    assert_eq!(host.callouts.len(), 2);
    tick(&mut r, &mut host, 100);
    assert_eq!(host.callouts.len(), 3);
    // A 504 (Envoy's answer to a callout timeout) too; then capped at 1000 ms.
    answer(&mut r, &mut host, Some(504));
    tick(&mut r, &mut host, 900);
    assert_eq!(host.callouts.len(), 3);
    tick(&mut r, &mut host, 100);
    assert_eq!(host.callouts.len(), 4);
    answer(&mut r, &mut host, Some(200));
    // Success resets the backoff: the last record goes at the flush interval.
    tick(&mut r, &mut host, 100);
    assert_eq!(host.callouts.len(), 5);
    assert_eq!(sent(&host, 4), vec!["/r/2"]);
    answer(&mut r, &mut host, Some(200));
    assert_eq!(host.metric("shieldwall.audit_log.retries"), 3);
    assert_eq!(host.metric("shieldwall.audit_log.shipped"), 3);
    assert_eq!(host.metric("shieldwall.audit_log.batches"), 2);
}

#[test]
fn a_callout_that_cannot_start_is_retried() {
    let (mut host, mut r) = with_records(
        json!({"cluster": "siem", "uri": "http://siem/", "flush_interval_ms": 100,
               "retry_initial_backoff_ms": 300}),
        1,
    );
    host.fail_callouts = true;
    tick(&mut r, &mut host, 100);
    assert_eq!(host.metric("shieldwall.audit_log.retries"), 1);
    assert!(host.logged("could not start a callout"));
    host.fail_callouts = false;
    tick(&mut r, &mut host, 200);
    assert!(host.callouts.is_empty());
    tick(&mut r, &mut host, 100);
    assert_eq!(host.callouts.len(), 1);
    answer(&mut r, &mut host, Some(200));
    assert_eq!(host.metric("shieldwall.audit_log.shipped"), 1);
}

#[test]
fn a_full_buffer_drops_the_oldest_records_and_counts_each() {
    let (mut host, mut r) = with_records(
        json!({"cluster": "siem", "uri": "http://siem/", "batch_max_records": 2,
               "buffer_max_records": 5, "flush_interval_ms": 100, "retry_initial_backoff_ms": 100000}),
        3,
    );
    tick(&mut r, &mut host, 100);
    // /r/0 and /r/1 in flight; /r/2 waits.
    assert_eq!(host.callouts.len(), 1);
    for i in 3..10 {
        request(&mut r, &mut host, i);
    }
    tick(&mut r, &mut host, 100);
    // 10 records, 5 places, 2 of them in flight: the 5 oldest that are not in flight go.
    assert_eq!(host.metric("shieldwall.audit_log.dropped"), 5);
    assert_eq!(host.metric("shieldwall.audit_log.buffer"), 5);
    assert!(host.logged("dropped the 5 oldest record(s)"));
    // The SIEM fails: the batch in flight comes back to the head of the buffer, still counted.
    answer(&mut r, &mut host, Some(500));
    for i in 10..13 {
        request(&mut r, &mut host, i);
    }
    tick(&mut r, &mut host, 100);
    // Nothing in flight now: the 3 oldest (/r/0, /r/1 and /r/7) go.
    assert_eq!(host.metric("shieldwall.audit_log.dropped"), 8);
    assert_eq!(host.metric("shieldwall.audit_log.buffer"), 5);
    // Warnings are at most one per 10 s; the count is in the metric.
    let warnings = host
        .logs
        .borrow()
        .iter()
        .filter(|(_, m)| m.contains("buffer is full"))
        .count();
    assert_eq!(warnings, 1);
    // What is left is the 5 newest, shipped in order once the SIEM answers.
    host.advance_ms(100_000);
    root_tick_and_ship(&mut r, &mut host);
    let shipped: Vec<String> = host.callouts[1..]
        .iter()
        .flat_map(|c| paths(c.body.as_ref().unwrap()))
        .collect();
    assert_eq!(shipped, vec!["/r/8", "/r/9", "/r/10", "/r/11", "/r/12"]);
    assert_eq!(host.metric("shieldwall.audit_log.shipped"), 5);
    assert_eq!(
        host.metric("shieldwall.audit_log.shipped") + host.metric("shieldwall.audit_log.dropped"),
        13,
        "every record is shipped or counted as dropped"
    );
}

/// Ticks and answers 200 to every batch until the worker holds nothing more.
fn root_tick_and_ship(r: &mut AuditLog, host: &mut MockHost) {
    let mut seen = host.callouts.len();
    for _ in 0..20 {
        tick(r, host, 100);
        while host.callouts.len() > seen {
            seen += 1;
            answer(r, host, Some(200));
        }
        if host.metric("shieldwall.audit_log.buffer") == 0 && host.queue_len(QUEUE) == 0 {
            return;
        }
    }
}

#[test]
fn one_worker_sends_and_another_takes_over_when_its_lease_expires() {
    let http = json!({"cluster": "siem", "uri": "http://siem/", "flush_interval_ms": 100,
                      "batch_max_records": 10});
    let (mut host, mut a, mut b) = two_workers(&http);
    request(&mut a, &mut host, 0);
    request(&mut b, &mut host, 1);
    tick(&mut a, &mut host, 100);
    tick(&mut b, &mut host, 0);
    // One queue for both workers; only the lease holder sends.
    assert_eq!(host.callouts.len(), 1);
    assert_eq!(sent(&host, 0), vec!["/r/0", "/r/1"]);
    answer(&mut a, &mut host, Some(200));
    request(&mut b, &mut host, 2);
    // Worker a stops ticking (its VM went away). Until the lease expires b only waits.
    for _ in 0..9 {
        tick(&mut b, &mut host, 200);
    }
    assert_eq!(host.callouts.len(), 1);
    assert_eq!(
        host.queue_len(QUEUE),
        1,
        "the record waits in the proxy's queue"
    );
    tick(&mut b, &mut host, 200);
    assert_eq!(
        host.callouts.len(),
        2,
        "b holds the lease after 2 s without renewal"
    );
    answer(&mut b, &mut host, Some(200));
    assert_eq!(sent(&host, 1), vec!["/r/2"]);
    // a comes back: it is no sender any more, and gives back what it held.
    request(&mut a, &mut host, 3);
    tick(&mut a, &mut host, 0);
    assert_eq!(host.callouts.len(), 2);
    tick(&mut b, &mut host, 100);
    assert_eq!(host.callouts.len(), 3);
    assert_eq!(sent(&host, 2), vec!["/r/3"]);
    answer(&mut b, &mut host, Some(200));
    assert_eq!(host.metric("shieldwall.audit_log.shipped"), 4);
}

/// Worker `a` sent `/r/0` and `/r/1`, the SIEM failed, and `a` holds both records in a long
/// backoff; then `a` stalls past its lease and `b` takes the lease over.
fn stalled_sender() -> (MockHost, AuditLog, AuditLog) {
    let http = json!({"cluster": "siem", "uri": "http://siem/", "flush_interval_ms": 100,
                      "retry_initial_backoff_ms": 100000});
    let (mut host, mut a, mut b) = two_workers(&http);
    request(&mut a, &mut host, 0);
    request(&mut a, &mut host, 1);
    tick(&mut a, &mut host, 100);
    answer(&mut a, &mut host, Some(500));
    tick(&mut b, &mut host, 2100);
    (host, a, b)
}

#[test]
fn a_sender_that_lost_its_lease_hands_its_buffer_back() {
    let (mut host, mut a, mut b) = stalled_sender();
    tick(&mut a, &mut host, 0);
    assert_eq!(host.queue_len(QUEUE), 2, "a gave its records back");
    assert!(host.logged("records handed back to the queue"));
    tick(&mut b, &mut host, 100);
    assert_eq!(host.callouts.len(), 2);
    assert_eq!(sent(&host, 1), vec!["/r/0", "/r/1"]);
    answer(&mut b, &mut host, Some(200));
    assert_eq!(host.metric("shieldwall.audit_log.shipped"), 2);
    assert_eq!(host.metric("shieldwall.audit_log.dropped"), 0);
}

#[test]
fn denied_requests_are_never_sampled_away_from_the_http_sink() {
    let mut host = MockHost::new();
    host.env.insert("AUDIT_CHAIN_KEY".into(), KEY.into());
    let config = json!({"sinks": {"access_log": true, "http": {"cluster": "s", "uri": "http://s/"}},
                        "sample": {"allowed": 0.0}});
    let mut r = AuditLog::configure(&mut host, config.to_string().as_bytes()).unwrap();
    for status in [200i64, 403, 200, 401] {
        host.new_stream("GET", "/x", &[]);
        host.properties
            .insert("response\0code".into(), status.to_le_bytes().to_vec());
        if status >= 400 {
            host.set_property(
                &["shieldwall.decision.scope_authz"],
                br#"{"decision":"deny","reason":"no","status":403}"#,
            )
            .unwrap();
        } else {
            host.properties.retain(|k, _| !k.starts_with("shieldwall."));
        }
        let mut s = r.new_stream(&mut host, 2);
        s.on_request_headers(&mut host, true);
        s.on_log(&mut host);
    }
    assert_eq!(host.queue_len(QUEUE), 2);
    assert_eq!(host.metric("shieldwall.audit_log.sampled_out"), 2);
}

#[test]
fn otlp_batches_stay_under_batch_max_bytes_with_their_escapes() {
    let (mut host, mut r) = with_records(
        json!({"cluster": "siem", "uri": "http://siem/v1/logs", "format": "otlp_json",
               "batch_max_bytes": 2500, "flush_interval_ms": 100}),
        8,
    );
    let mut seen = 0;
    let mut total = 0;
    for _ in 0..20 {
        tick(&mut r, &mut host, 100);
        while host.callouts.len() > seen {
            let body = host.callouts[seen].body.clone().unwrap();
            seen += 1;
            assert!(body.len() <= 2500, "{}", body.len());
            let v: Value = serde_json::from_slice(&body).unwrap();
            total += v["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
                .as_array()
                .unwrap()
                .len();
            answer(&mut r, &mut host, Some(200));
        }
    }
    assert!(seen >= 2);
    assert_eq!(total, 8);
    assert_eq!(
        host.callouts[0].header("content-type"),
        Some("application/json")
    );
}

#[test]
fn records_a_stepping_down_sender_cannot_hand_back_are_counted_as_dropped() {
    let (mut host, mut a, _b) = stalled_sender();
    // The proxy's queue is gone (as if the plugin's vm_id changed under it).
    host.queues.clear();
    tick(&mut a, &mut host, 0);
    assert_eq!(host.metric("shieldwall.audit_log.dropped"), 2);
    assert_eq!(host.metric("shieldwall.audit_log.errors.queue"), 2);
    assert!(host.logged("could not give 2 record(s) back to the queue"));
}
