//! audit-log over the real release module, in front of scope-authz: one record per request in the
//! filter state the access loggers read, for requests the upstream answered and for those
//! scope-authz refused; masked; two workers keep two chains that verify, and break when a record
//! goes missing; the configuration refused with its field path. The HTTP sink over the real
//! module with two workers and a scripted SIEM cluster: records batched and received once each,
//! retried with backoff while the SIEM fails, dropped and counted exactly when it is down longer
//! than the buffer lasts, shipping resumed when it is back, and the sender lease taken over by
//! the other worker when the sender's worker goes away; and the sink as a stage of the one module.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p audit-log -p scope-authz -p shieldwall
//! (and `-p noop` for the ignored timing loop)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use audit_log::chain::verify;
use host_tests::{
    wasm_path, CalloutRequest, Cluster, Envoy, Outcome, Plugin, Reply, Request, Response, Worker,
};
use serde_json::{json, Value};

const KEY: &str = "host-test chain key of 32 bytes or more";

fn audit(config: &Value) -> Plugin {
    Plugin::new(wasm_path("audit-log"))
        .name("audit")
        .vm_id("audit")
        .env("AUDIT_CHAIN_KEY", KEY)
        .json(config)
}

fn policy() -> Plugin {
    Plugin::new(wasm_path("scope-authz"))
        .name("authz")
        .vm_id("authz")
        .json(&json!({"rules": [{"match": {"prefix": "/public/"}, "public": true}], "default": "deny"}))
}

/// One request; a 200 from the upstream when it gets there. Returns (status, the record line).
fn call(worker: &Worker, req: Request) -> (u16, Option<String>) {
    let mut s = worker.stream(req);
    let status = match s.send_request() {
        Outcome::Upstream(_) => match s.send_response(Response::ok().header("x-upstream", "ok")) {
            Outcome::Response(m) => m.status(),
            other => panic!("unexpected {other:?}"),
        },
        Outcome::LocalReply(r) => r.status(),
        other => panic!("unexpected {other:?}"),
    };
    let record = s
        .finish_logged("shieldwall.audit")
        .map(|b| String::from_utf8(b).unwrap());
    (status, record)
}

#[test]
fn two_workers_record_every_request_masked_in_two_chains() {
    let envoy = Envoy::new();
    let config = json!({"chain": {"key_env": "AUDIT_CHAIN_KEY"},
                        "include": {"request_headers": ["x-note"], "response_headers": ["x-upstream"]}});
    let workers: Vec<Worker> = (0..2)
        .map(|_| envoy.worker(&[audit(&config), policy()]).unwrap())
        .collect();
    let mut lines = Vec::new();
    for i in 0..6 {
        let w = &workers[i % 2];
        let (status, record) = call(
            w,
            Request::get(&format!(
                "/public/{i}?card=4111-1111-1111-1111&mail=a.b%40example.com"
            ))
            .header("x-note", "iban GB82 WEST 1234 5698 7654 32")
            .source("198.51.100.7:4000"),
        );
        assert_eq!(status, 200);
        lines.push(record.expect("a record for an allowed request"));
        let (status, record) = call(w, Request::get(&format!("/private/{i}?token=abc")));
        assert_eq!(status, 403);
        lines.push(record.expect("a record for a refused request"));
    }
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (line, r) in lines.iter().zip(&records) {
        for planted in [
            "4111-1111",
            "a.b%40example.com",
            "a.b@example.com",
            "GB82 WEST",
            "abc",
        ] {
            assert!(!line.contains(planted), "{planted} in {line}");
        }
        assert_eq!(r["ecs"]["version"], "8.11.0");
    }
    let allowed = &records[0];
    assert_eq!(allowed["http"]["response"]["status_code"], 200);
    assert_eq!(allowed["event"]["outcome"], "success");
    assert_eq!(allowed["client"]["ip"], "198.51.100.7");
    assert_eq!(
        allowed["url"]["query"].as_str().unwrap().split('&').next(),
        Some("card=411111******1111")
    );
    assert_eq!(
        allowed["http"]["request"]["headers"]["x-note"],
        "iban GB****************5432"
    );
    assert_eq!(allowed["http"]["response"]["headers"]["x-upstream"], "ok");
    assert_eq!(
        allowed["shieldwall"]["response_code_details"],
        "via_upstream"
    );
    let refused = &records[1];
    assert_eq!(refused["http"]["response"]["status_code"], 403);
    assert_eq!(refused["event"]["outcome"], "failure");
    assert_eq!(refused["event"]["type"], json!(["access", "denied"]));
    assert_eq!(refused["shieldwall"]["denied_by"], "scope_authz");
    assert_eq!(
        refused["shieldwall"]["decisions"]["scope_authz"],
        json!({"decision": "deny", "reason": "no_matching_rule", "status": 403})
    );
    assert_eq!(refused["event"]["reason"], "scope_authz: no_matching_rule");
    assert_eq!(
        allowed["shieldwall"]["decisions"]["scope_authz"]["decision"],
        "allow"
    );
    assert!(refused["url"]["query"]
        .as_str()
        .unwrap()
        .starts_with("token=[token:"));

    // Two workers, two chains of six records each.
    let summary = verify(lines.iter().map(String::as_str), KEY.as_bytes(), false).unwrap();
    assert_eq!(summary.records, 12);
    assert_eq!(summary.chains.len(), 2);
    assert!(summary
        .chains
        .values()
        .all(|&(first, last)| (first, last) == (1, 6)));
    let mut gap = lines.clone();
    gap.remove(4);
    let e = verify(gap.iter().map(String::as_str), KEY.as_bytes(), false).unwrap_err();
    assert!(e.reason.contains("missing"), "{e:?}");
    assert_eq!(envoy.metric("shieldwall.audit_log.records"), Some(12));
    assert_eq!(
        envoy.metric("shieldwall.audit_log.masked.card_number"),
        Some(6)
    );
}

#[test]
fn a_missing_chain_key_refuses_the_configuration() {
    let envoy = Envoy::new();
    let plugin = Plugin::new(wasm_path("audit-log"))
        .name("audit")
        .json(&json!({"chain": {"key_env": "AUDIT_CHAIN_KEY"}}));
    let refused = envoy.worker(&[plugin]).err().expect("refused");
    assert!(
        format!("{refused:#}")
            .contains("chain.key_env: the VM has no environment variable `AUDIT_CHAIN_KEY`"),
        "{refused:#}"
    );
}

/// How the scripted SIEM answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Up,
    /// 503 to every batch.
    Failing,
    /// Connection reset: Envoy's failure callback.
    Down,
    /// Answers after 300 ms (the sink's timeout is 500 ms).
    Slow,
}

#[derive(Default)]
struct Siem {
    mode: Option<Mode>,
    /// Record lines of the batches answered 2xx.
    accepted: Vec<String>,
    /// Every batch that arrived, answered or not: (records, content-type).
    attempts: Vec<(usize, String)>,
}

fn siem_cluster(siem: &Rc<RefCell<Siem>>) -> Cluster {
    let siem = Rc::clone(siem);
    Cluster::scripted(move |req: &CalloutRequest| {
        let mut s = siem.borrow_mut();
        let body = req.body_str();
        let lines: Vec<String> = body.lines().map(str::to_string).collect();
        s.attempts.push((
            lines.len(),
            req.header("content-type").unwrap_or("").to_string(),
        ));
        assert_eq!(req.method(), "POST");
        assert_eq!(req.path(), "/ingest");
        assert_eq!(req.header("authorization"), Some("Bearer siem-token"));
        match s.mode.unwrap_or(Mode::Up) {
            Mode::Up => {
                s.accepted.extend(lines);
                Reply::ok(200, "")
            }
            Mode::Slow => {
                s.accepted.extend(lines);
                Reply::ok(200, "").after(Duration::from_millis(300))
            }
            Mode::Failing => Reply::ok(503, "busy"),
            Mode::Down => Reply::reset(),
        }
    })
}

fn http_sink_plugin() -> Plugin {
    Plugin::new(wasm_path("audit-log"))
        .name("audit")
        .vm_id("audit")
        .env("AUDIT_CHAIN_KEY", KEY)
        .env("SIEM_TOKEN", "Bearer siem-token")
        .json(&json!({
            "sinks": {"access_log": false, "http": {
                "cluster": "siem", "uri": "http://siem.test/ingest", "format": "json_lines",
                "headers": [{"name": "authorization", "value_env": "SIEM_TOKEN"}],
                "batch_max_records": 5, "flush_interval_ms": 100, "buffer_max_records": 20,
                "timeout_ms": 500, "retry_initial_backoff_ms": 200, "retry_max_backoff_ms": 800}},
            "chain": {"key_env": "AUDIT_CHAIN_KEY"}
        }))
}

/// One request, answered 200 by the upstream, ended (its record goes to the queue).
fn pass(worker: &Worker, path: &str) {
    let mut s = worker.stream(Request::get(path).source("192.0.2.10:4000"));
    match s.send_request() {
        Outcome::Upstream(_) => {
            s.send_response(Response::ok());
        }
        other => panic!("unexpected {other:?}"),
    }
    s.finish();
}

fn paths_of(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["url"]["path"].as_str().unwrap().to_string()
        })
        .collect()
}

fn metric(envoy: &Envoy, event: &str) -> u64 {
    envoy
        .metric(&format!("shieldwall.audit_log.{event}"))
        .unwrap_or(0)
}

#[test]
fn http_sink_batches_retries_drops_exactly_and_resumes_with_two_workers() {
    let envoy = Envoy::new();
    let siem = Rc::new(RefCell::new(Siem::default()));
    envoy.cluster("siem", siem_cluster(&siem));
    let workers: Vec<Worker> = (0..2)
        .map(|_| envoy.worker(&[http_sink_plugin()]).unwrap())
        .collect();
    assert_eq!(
        workers[0].tick_period("audit"),
        Some(Duration::from_millis(100))
    );

    // 1. Batching: 12 records from both workers, batches of at most 5, each record once.
    for i in 0..12 {
        pass(&workers[i % 2], &format!("/a/{i}"));
    }
    assert!(
        siem.borrow().attempts.is_empty(),
        "nothing is sent on the request path"
    );
    envoy.advance(Duration::from_millis(1000));
    {
        let s = siem.borrow();
        let mut got = paths_of(&s.accepted);
        got.sort();
        let mut want: Vec<String> = (0..12).map(|i| format!("/a/{i}")).collect();
        want.sort();
        assert_eq!(got, want, "every record once");
        assert!(s
            .attempts
            .iter()
            .all(|(n, ct)| *n <= 5 && ct == "application/x-ndjson"));
        assert_eq!(s.attempts.len(), 3, "{:?}", s.attempts);
        // Both workers' chains arrive whole and verify.
        let summary = verify(s.accepted.iter().map(String::as_str), KEY.as_bytes(), false).unwrap();
        assert_eq!((summary.records, summary.chains.len()), (12, 2));
    }
    assert_eq!(metric(&envoy, "shipped"), 12);
    assert_eq!(metric(&envoy, "batches"), 3);
    let senders = workers
        .iter()
        .filter(|w| w.log_text().contains("is now the HTTP sink's sender"))
        .count();
    assert_eq!(senders, 1, "one sender for the two workers");

    // 2. The SIEM fails: the batch is retried with backoff (200, 400, 800, 800 ms) until it is back.
    siem.borrow_mut().mode = Some(Mode::Failing);
    for i in 0..3 {
        pass(&workers[i % 2], &format!("/b/{i}"));
    }
    envoy.advance(Duration::from_millis(100));
    let first = siem.borrow().attempts.len();
    envoy.advance(Duration::from_millis(150));
    assert_eq!(
        siem.borrow().attempts.len(),
        first,
        "no retry before the backoff"
    );
    envoy.advance(Duration::from_millis(1500));
    let attempts = siem.borrow().attempts.len() - first + 1;
    assert_eq!(
        attempts, 4,
        "the first send and retries after 200, 400 and 800 ms"
    );
    // Each failed send counts one retry: the fourth failure waits for its retry.
    assert_eq!(metric(&envoy, "retries"), 4);
    siem.borrow_mut().mode = Some(Mode::Up);
    envoy.advance(Duration::from_millis(1000));
    assert_eq!(
        paths_of(&siem.borrow().accepted[12..]),
        vec!["/b/0", "/b/1", "/b/2"],
        "retried in order, accepted once"
    );
    assert_eq!(metric(&envoy, "shipped"), 15);

    // 3. The SIEM is down longer than the buffer lasts: the oldest beyond 20 are dropped, counted.
    siem.borrow_mut().mode = Some(Mode::Down);
    for i in 0..50 {
        pass(&workers[i % 2], &format!("/c/{i}"));
    }
    envoy.advance(Duration::from_millis(2000));
    assert_eq!(metric(&envoy, "dropped"), 30);
    assert_eq!(metric(&envoy, "buffer"), 20);
    for i in 50..60 {
        pass(&workers[i % 2], &format!("/c/{i}"));
    }
    envoy.advance(Duration::from_millis(2000));
    assert_eq!(metric(&envoy, "dropped"), 40);
    let log: String = workers.iter().map(Worker::log_text).collect();
    assert!(log.contains("buffer is full"), "{log}");
    assert_eq!(
        siem.borrow().accepted.len(),
        15,
        "nothing accepted while down"
    );

    // 4. Back: shipping resumes with the 20 records kept, each once.
    siem.borrow_mut().mode = Some(Mode::Up);
    envoy.advance(Duration::from_millis(3000));
    let s = siem.borrow();
    let resumed = paths_of(&s.accepted[15..]);
    assert_eq!(resumed.len(), 20);
    let unique: BTreeSet<&String> = resumed.iter().collect();
    assert_eq!(unique.len(), 20, "no record twice");
    assert!(resumed.iter().all(|p| p.starts_with("/c/")));
    // The newest ten came after the drops began and are never the ones dropped.
    for i in 50..60 {
        assert!(resumed.contains(&format!("/c/{i}")), "/c/{i} missing");
    }
    assert_eq!(metric(&envoy, "shipped"), 35);
    assert_eq!(
        metric(&envoy, "shipped") + metric(&envoy, "dropped"),
        75,
        "every record shipped or counted as dropped"
    );
    assert_eq!(metric(&envoy, "buffer"), 0);
}

#[test]
fn a_slow_siem_within_the_timeout_gets_each_record_once() {
    let envoy = Envoy::new();
    let siem = Rc::new(RefCell::new(Siem {
        mode: Some(Mode::Slow),
        ..Default::default()
    }));
    envoy.cluster("siem", siem_cluster(&siem));
    let workers: Vec<Worker> = (0..2)
        .map(|_| envoy.worker(&[http_sink_plugin()]).unwrap())
        .collect();
    // 18 records: fewer than the buffer holds, more than three batches.
    for i in 0..18 {
        pass(&workers[i % 2], &format!("/s/{i}"));
    }
    envoy.advance(Duration::from_millis(3000));
    let s = siem.borrow();
    let log: String = workers.iter().map(Worker::log_text).collect();
    assert_eq!(s.accepted.len(), 18, "{:?} {log}", s.attempts);
    assert_eq!(
        paths_of(&s.accepted).iter().collect::<BTreeSet<_>>().len(),
        18
    );
    assert_eq!(metric(&envoy, "retries"), 0);
    assert_eq!(metric(&envoy, "dropped"), 0);
    assert_eq!(metric(&envoy, "batches"), 4);
}

#[test]
fn the_other_worker_takes_over_when_the_senders_worker_goes_away() {
    let envoy = Envoy::new();
    let siem = Rc::new(RefCell::new(Siem::default()));
    envoy.cluster("siem", siem_cluster(&siem));
    let mut workers: Vec<Worker> = (0..2)
        .map(|_| envoy.worker(&[http_sink_plugin()]).unwrap())
        .collect();
    pass(&workers[0], "/d/0");
    pass(&workers[1], "/d/1");
    envoy.advance(Duration::from_millis(500));
    assert_eq!(siem.borrow().accepted.len(), 2);
    let sender = workers
        .iter()
        .position(|w| w.log_text().contains("is now the HTTP sink's sender"))
        .unwrap();
    drop(workers.remove(sender));
    let other = &workers[0];
    pass(other, "/d/2");
    pass(other, "/d/3");
    // The lease lasts 2 s without renewal; the records wait in the proxy's queue meanwhile.
    envoy.advance(Duration::from_millis(1500));
    assert_eq!(siem.borrow().accepted.len(), 2);
    assert_eq!(
        envoy.queue_len("audit", "shieldwall/audit_log/audit/records"),
        2
    );
    envoy.advance(Duration::from_millis(1000));
    assert!(other.log_text().contains("is now the HTTP sink's sender"));
    assert_eq!(
        paths_of(&siem.borrow().accepted),
        vec!["/d/0", "/d/1", "/d/2", "/d/3"]
    );
}

#[test]
fn the_http_sink_without_its_token_refuses_the_configuration() {
    let envoy = Envoy::new();
    let plugin = Plugin::new(wasm_path("audit-log"))
        .name("audit")
        .json(&json!({
            "sinks": {"http": {"cluster": "siem", "uri": "http://siem.test/ingest",
                               "headers": [{"name": "authorization", "value_env": "SIEM_TOKEN"}]}}
        }));
    let refused = envoy.worker(&[plugin]).err().expect("refused");
    assert!(
        format!("{refused:#}").contains(
            "sinks.http.headers[0].value_env: the VM has no environment variable `SIEM_TOKEN`"
        ),
        "{refused:#}"
    );
}

/// The cost of a request through audit-log with the access-log sink on this harness (wasmtime),
/// against the same request through the empty module: a timing loop, not a pass/fail check (run
/// with `--ignored --nocapture`; the figures depend on the machine and its load). With
/// `AUDIT_LOG_BASELINE_WASM` naming another build of the module (the one before a change), that
/// build is timed in the same interleaved passes, so the two are compared under the same load.
#[test]
#[ignore]
fn timing_loop_access_log_sink_against_the_empty_module() {
    const N: usize = 1000;
    let envoy = Envoy::new();
    let bench_config = json!({"sinks": {"access_log": true},
                              "include": {"request_headers": ["user-agent"]}});
    let variants: Vec<(&str, Plugin)> = vec![
        (
            "noop",
            Plugin::new(wasm_path("noop")).name("noop").json(&json!({})),
        ),
        (
            "audit-log (the benchmark's configuration)",
            Plugin::new(wasm_path("audit-log"))
                .name("audit")
                .json(&bench_config),
        ),
        (
            "audit-log, the benchmark's configuration without decisions to read",
            Plugin::new(wasm_path("audit-log"))
                .name("audit-nodec")
                .json(&json!({"sinks": {"access_log": true}, "decisions": [],
                        "include": {"request_headers": ["user-agent"]}})),
        ),
        (
            "audit-log, chained (key from the environment)",
            audit(&json!({"chain": {"key_env": "AUDIT_CHAIN_KEY"},
                          "include": {"request_headers": ["user-agent"]}})),
        ),
    ];
    let mut variants = variants;
    if let Some(path) = std::env::var_os("AUDIT_LOG_BASELINE_WASM") {
        variants.push((
            "baseline module, the benchmark's configuration",
            Plugin::new(std::path::PathBuf::from(path))
                .name("baseline")
                .json(&bench_config),
        ));
    }
    let workers: Vec<(&str, Worker)> = variants
        .into_iter()
        .map(|(name, plugin)| (name, envoy.worker(&[plugin]).unwrap()))
        .collect();
    let run = |worker: &Worker, n: usize| {
        for i in 0..n {
            let mut s = worker.stream(
                Request::get(&format!("/orders/{i}?page=2&q=shoes"))
                    .header("user-agent", "wrk/4.2")
                    .source("198.51.100.7:4000"),
            );
            if let Outcome::Upstream(_) = s.send_request() {
                s.send_response(Response::ok());
            }
            s.finish();
        }
    };
    // Interleaved passes, the fastest of each kept: the machine is shared.
    let mut best = vec![f64::MAX; workers.len()];
    for _ in 0..7 {
        for (i, (_, worker)) in workers.iter().enumerate() {
            run(worker, 100);
            let start = std::time::Instant::now();
            run(worker, N);
            let us = start.elapsed().as_secs_f64() * 1e6 / N as f64;
            best[i] = best[i].min(us);
        }
    }
    for (i, (name, _)) in workers.iter().enumerate() {
        println!(
            "timing: {name}: {:.1} µs per request ({:+.1} over the empty module)",
            best[i],
            best[i] - best[0]
        );
    }
}

/// The HTTP sink as a stage of the one module (`shieldwall.wasm`): the chain forwards the queue
/// calls, the tick and the batches' answers to audit-log's stage, and scope-authz's refusals are
/// shipped like the rest.
#[test]
fn the_http_sink_works_inside_the_one_module() {
    let envoy = Envoy::new();
    let siem = Rc::new(RefCell::new(Siem::default()));
    envoy.cluster("siem", siem_cluster(&siem));
    let chain = json!({"chain": [
        {"filter": "audit-log", "config": {
            "sinks": {"access_log": false, "http": {
                "cluster": "siem", "uri": "http://siem.test/ingest",
                "headers": [{"name": "authorization", "value_env": "SIEM_TOKEN"}],
                "batch_max_records": 4, "flush_interval_ms": 100}},
            "chain": {"key_env": "AUDIT_CHAIN_KEY"}}},
        {"filter": "scope-authz", "config": {
            "rules": [{"match": {"prefix": "/public/"}, "public": true}], "default": "deny"}}
    ]});
    let plugin = || {
        Plugin::new(wasm_path("shieldwall"))
            .name("gw")
            .vm_id("gw")
            .env("AUDIT_CHAIN_KEY", KEY)
            .env("SIEM_TOKEN", "Bearer siem-token")
            .json(&chain)
    };
    let workers: Vec<Worker> = (0..2).map(|_| envoy.worker(&[plugin()]).unwrap()).collect();
    for i in 0..6 {
        pass(&workers[i % 2], &format!("/public/{i}"));
        let mut s = workers[i % 2].stream(Request::get(&format!("/private/{i}")));
        match s.send_request() {
            Outcome::LocalReply(r) => assert_eq!(r.status(), 403),
            other => panic!("unexpected {other:?}"),
        }
        s.finish();
    }
    envoy.advance(Duration::from_millis(1000));
    let s = siem.borrow();
    let mut got = paths_of(&s.accepted);
    got.sort();
    let mut want: Vec<String> = (0..6)
        .flat_map(|i| [format!("/public/{i}"), format!("/private/{i}")])
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(s.attempts.iter().all(|(n, _)| *n <= 4));
    let summary = verify(s.accepted.iter().map(String::as_str), KEY.as_bytes(), false).unwrap();
    assert_eq!((summary.records, summary.chains.len()), (12, 2));
    let refused = s
        .accepted
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["shieldwall"]["denied_by"] == "scope_authz")
        .count();
    assert_eq!(refused, 6);
    assert_eq!(metric(&envoy, "shipped"), 12);
}
