//! audit-log's HTTP sink in a real Envoy with two workers (`--concurrency 2`), audit-log first and
//! scope-authz after it, shipping `json_lines` batches through Envoy's HTTP callouts to a loopback
//! SIEM receiver that the test makes slow, failing or down:
//!
//! 1. records are batched (at most `batch_max_records` a batch) and every request's record is
//!    received once, allowed and refused ones alike, with intact chains (`scripts/audit-verify`);
//! 2. while the SIEM answers 503 the batch is retried with backoff and nothing is accepted; once it
//!    answers 200 again the records arrive once each;
//! 3. while it is down (connections refused) longer than the buffer lasts, the oldest records
//!    beyond `buffer_max_records` are dropped and counted exactly (Envoy's admin stats), with a
//!    warning in Envoy's log; when it is back the kept records arrive, and shipping goes on.
//!
//! Needs the modules: `cargo build --release --target wasm32-wasip1 -p audit-log -p scope-authz`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shieldwall_e2e::{
    scratch_dir, wasm_path, Cluster, Echo, Envoy, EnvoyConfig, SiemMode, SiemReceiver, WasmFilter,
};

const CHAIN_KEY: &str = "e2e audit chain key, 32 bytes or more";
const SIEM_TOKEN: &str = "Bearer e2e-siem-token";
const BUFFER: u64 = 60;
/// Records sent while the SIEM is down: more than the buffer holds.
const DOWN: u64 = 150;

fn start(echo: &Echo, siem: &SiemReceiver) -> Envoy {
    let audit = json!({
        "sinks": {"access_log": false, "http": {
            "cluster": "siem", "uri": "http://siem.test/ingest", "format": "json_lines",
            "headers": [{"name": "authorization", "value_env": "SIEM_TOKEN"}],
            "batch_max_records": 10, "flush_interval_ms": 200, "buffer_max_records": BUFFER,
            "timeout_ms": 1000, "retry_initial_backoff_ms": 200, "retry_max_backoff_ms": 1000}},
        "chain": {"key_env": "AUDIT_CHAIN_KEY"}
    });
    let policy = json!({"rules": [{"match": {"prefix": "/public/"}, "public": true}],
                        "default": "deny"});
    Envoy::start(
        EnvoyConfig::new(echo.port())
            .concurrency(2)
            .cluster(Cluster::new("siem", siem.port()))
            .filter(
                WasmFilter::new(wasm_path("audit-log"), "audit-log", audit.to_string())
                    .env("AUDIT_CHAIN_KEY", CHAIN_KEY)
                    .env("SIEM_TOKEN", SIEM_TOKEN),
            )
            .filter(WasmFilter::new(
                wasm_path("scope-authz"),
                "scope-authz",
                policy.to_string(),
            )),
    )
}

fn stat(envoy: &Envoy, event: &str) -> u64 {
    envoy
        .stat(&format!("wasmcustom.shieldwall.audit_log.{event}"))
        .unwrap_or(0)
}

fn wait_for_stat(envoy: &Envoy, event: &str, want: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let v = stat(envoy, event);
        if v >= want || Instant::now() >= deadline {
            return v;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn path_of(line: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    v["url"]["path"].as_str().unwrap().to_owned()
}

fn send(envoy: &Envoy, path: &str) -> u16 {
    envoy.get(path, &[]).status
}

fn audit_verify(lines: &[String]) -> (i32, String) {
    let dir = scratch_dir("audit-http-sink");
    let file = dir.join("received.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    shieldwall_e2e::audit_verify(&file, CHAIN_KEY)
}

#[test]
fn batches_retries_exact_drops_and_resumption_against_a_loopback_siem() {
    let echo = Echo::start();
    let mut siem = SiemReceiver::start();
    let envoy = start(&echo, &siem);

    // 1. Batching, allowed and refused requests alike, each record once.
    let mut sent: Vec<String> = Vec::new();
    for i in 0..40 {
        let (path, want) = if i % 4 == 3 {
            (format!("/private/{i}"), 403)
        } else {
            (format!("/public/{i}"), 200)
        };
        assert_eq!(send(&envoy, &path), want, "{path}");
        sent.push(path);
    }
    assert!(
        siem.wait_for_lines(40, Duration::from_secs(20)),
        "{} of 40 records arrived\n{}",
        siem.accepted_lines().len(),
        envoy.log()
    );
    thread::sleep(Duration::from_millis(500));
    let lines = siem.accepted_lines();
    assert_eq!(lines.len(), 40, "no record twice");
    let got: BTreeSet<String> = lines.iter().map(|l| path_of(l)).collect();
    assert_eq!(got, sent.iter().cloned().collect::<BTreeSet<_>>());
    for batch in siem.batches() {
        assert!(batch.lines().len() <= 10, "{} records", batch.lines().len());
        assert_eq!(batch.path, "/ingest");
        assert_eq!(batch.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(batch.header("authorization"), Some(SIEM_TOKEN));
    }
    let refused: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["http"]["response"]["status_code"] == 403)
        .collect();
    assert_eq!(refused.len(), 10);
    assert!(refused
        .iter()
        .all(|v| v["shieldwall"]["denied_by"] == "scope_authz"));
    let (code, out) = audit_verify(&lines);
    assert_eq!(code, 0, "{out}");
    assert_eq!(stat(&envoy, "shipped"), 40);
    assert!(stat(&envoy, "batches") >= 4);

    // 2. Failing: retried with backoff, nothing accepted; then accepted once each.
    siem.set_mode(SiemMode::Failing(503));
    for i in 0..5 {
        let path = format!("/public/retry-{i}");
        assert_eq!(send(&envoy, &path), 200);
        sent.push(path);
    }
    let retries = wait_for_stat(&envoy, "retries", 3, Duration::from_secs(10));
    assert!(retries >= 3, "{retries} retries\n{}", envoy.log());
    let failed = siem.batches().iter().filter(|b| b.status == 503).count();
    assert!(failed >= 3, "{failed} failed attempts");
    assert_eq!(siem.accepted_lines().len(), 40);
    assert!(envoy.log().contains("the SIEM answered 503"));
    siem.set_mode(SiemMode::Up);
    assert!(siem.wait_for_lines(45, Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(500));
    let lines = siem.accepted_lines();
    assert_eq!(lines.len(), 45);
    let retried: Vec<String> = lines[40..].iter().map(|l| path_of(l)).collect();
    assert_eq!(
        retried,
        (0..5)
            .map(|i| format!("/public/retry-{i}"))
            .collect::<Vec<_>>()
    );

    // 3. Down longer than the buffer lasts: every record beyond the buffer is dropped, counted.
    siem.down();
    let mut down: Vec<String> = Vec::new();
    for i in 0..DOWN {
        let path = format!("/public/down-{i}");
        assert_eq!(send(&envoy, &path), 200);
        down.push(path);
    }
    let dropped = wait_for_stat(&envoy, "dropped", DOWN - BUFFER, Duration::from_secs(10));
    // Give a wrong count the time to show: the sender keeps draining and retrying meanwhile.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(dropped, DOWN - BUFFER);
    assert_eq!(stat(&envoy, "dropped"), DOWN - BUFFER);
    assert_eq!(stat(&envoy, "buffer"), BUFFER);
    assert!(envoy.log().contains("buffer is full"), "{}", envoy.log());
    assert_eq!(siem.accepted_lines().len(), 45);

    // 4. Back: the kept records arrive once each, the newest among them; shipping goes on.
    siem.up();
    assert!(
        siem.wait_for_lines(45 + BUFFER as usize, Duration::from_secs(15)),
        "{}",
        envoy.log()
    );
    assert_eq!(send(&envoy, "/public/after"), 200);
    assert!(siem.wait_for_lines(46 + BUFFER as usize, Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(500));
    let lines = siem.accepted_lines();
    assert_eq!(lines.len(), 46 + BUFFER as usize, "no record twice");
    let kept: Vec<String> = lines[45..].iter().map(|l| path_of(l)).collect();
    assert_eq!(kept.last().map(String::as_str), Some("/public/after"));
    let unique: BTreeSet<&String> = kept.iter().collect();
    assert_eq!(unique.len(), kept.len());
    for p in &down[down.len() - 10..] {
        assert!(kept.contains(p), "{p}, one of the newest, was not kept");
    }
    assert!(kept[..BUFFER as usize].iter().all(|p| down.contains(p)));
    assert_eq!(stat(&envoy, "shipped"), 46 + BUFFER);
    assert_eq!(stat(&envoy, "dropped"), DOWN - BUFFER);
    assert_eq!(
        stat(&envoy, "shipped") + stat(&envoy, "dropped"),
        46 + DOWN,
        "every record shipped or counted as dropped"
    );
    // Every record that arrived still verifies: a drop shows as a gap, never as an altered record.
    let (code, out) = audit_verify(&lines);
    assert_ne!(code, 0, "dropped records must show as gaps: {out}");
    assert!(out.contains("missing"), "{out}");
}

#[test]
fn a_slow_siem_gets_every_record_once() {
    let echo = Echo::start();
    let siem = SiemReceiver::start();
    siem.set_mode(SiemMode::Slow(Duration::from_millis(400)));
    let envoy = start(&echo, &siem);
    for i in 0..25 {
        assert_eq!(send(&envoy, &format!("/public/slow-{i}")), 200);
    }
    assert!(
        siem.wait_for_lines(25, Duration::from_secs(20)),
        "{}",
        envoy.log()
    );
    thread::sleep(Duration::from_millis(800));
    let lines = siem.accepted_lines();
    assert_eq!(lines.len(), 25);
    assert_eq!(
        lines
            .iter()
            .map(|l| path_of(l))
            .collect::<BTreeSet<_>>()
            .len(),
        25
    );
    assert_eq!(stat(&envoy, "retries"), 0);
    assert_eq!(stat(&envoy, "dropped"), 0);
    let (code, out) = audit_verify(&lines);
    assert_eq!(code, 0, "{out}");
}
