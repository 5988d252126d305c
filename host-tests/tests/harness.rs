//! The harness's own behaviour: traps, refused configuration, timeouts, chains, workers.

use host_tests::{scenarios, wasm_path, Cluster, Envoy, Outcome, Plugin, Reply, Request, Response};
use serde_json::json;
use std::time::Duration;

fn probe(name: &str, config: serde_json::Value) -> Plugin {
    Plugin::new(wasm_path("probe"))
        .name(name)
        .vm_id("probe")
        .json(&config)
}

fn observed(worker: &host_tests::Worker, key: &str) -> Vec<String> {
    worker
        .logs()
        .iter()
        .filter_map(|l| scenarios::parse_observation(&l.message))
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn scenarios_really_observe_something() {
    let s = scenarios::all()
        .into_iter()
        .find(|s| s.name == "headers")
        .unwrap();
    let o = scenarios::run(&s).unwrap();
    assert!(o.observations.len() >= 6, "{:?}", o.observations);
}

#[test]
fn a_trap_kills_the_vm_and_reports_the_guest_log() {
    let envoy = Envoy::new();
    let worker = envoy
        .worker(&[probe("crashy", json!({"scenario": "trap"}))])
        .unwrap();
    let mut s = worker.stream(Request::get("/").header("x-crash", "1"));
    let trap = s.try_send_request().unwrap_err();
    let text = trap.to_string();
    assert!(text.contains("probe asked to crash"), "{text}");
    assert_eq!(trap.plugin, "crashy");
    assert!(worker.is_dead("crashy"));
    // Envoy fails the stream with a 503 local reply...
    let r = s.outcome();
    assert_eq!(r.local_reply().status(), 503);
    assert_eq!(r.local_reply().details, "wasm_fail_stream");
    // ...and the next request too: the VM stays dead (fail closed).
    let mut next = worker.stream(Request::get("/"));
    assert_eq!(next.send_request().local_reply().status(), 503);
}

#[test]
#[should_panic(expected = "probe asked to crash")]
fn send_request_panics_on_a_trap() {
    let envoy = Envoy::new();
    let worker = envoy
        .worker(&[probe("crashy", json!({"scenario": "trap"}))])
        .unwrap();
    worker
        .stream(Request::get("/").header("x-crash", "1"))
        .send_request();
}

#[test]
fn a_refused_configuration_is_reported_with_the_guest_log() {
    let envoy = Envoy::new();
    let err = envoy
        .worker(&[probe("cfg", json!({"scenario": "config", "refuse": true}))])
        .err()
        .expect("on_configure returned false");
    let text = format!("{err:#}");
    assert!(text.contains("configuration refused"), "{text}");
    assert!(
        text.contains("refusing configuration: refuse is true"),
        "{text}"
    );
}

#[test]
fn a_callout_timeout_fires_on_the_test_clock_only() {
    let envoy = Envoy::new();
    envoy.cluster("slow", Cluster::never());
    let worker = envoy
        .worker(&[probe(
            "p",
            json!({"scenario": "callout", "cluster": "slow", "timeout_ms": 50}),
        )])
        .unwrap();
    let mut s = worker.stream(Request::get("/"));
    assert!(s.send_request().is_paused());
    envoy.advance(Duration::from_millis(49));
    assert!(s.outcome().is_paused());
    envoy.advance(Duration::from_millis(1));
    assert_eq!(s.outcome().upstream().header("x-callout"), Some("504"));
    assert_eq!(envoy.callouts()[0].timeout, Some(Duration::from_millis(50)));
    assert_eq!(
        envoy.callouts()[0].header(":authority"),
        Some("callout.local")
    );
}

#[test]
fn a_reset_callout_gives_zero_headers() {
    let envoy = Envoy::new();
    envoy.cluster("idp", Cluster::scripted(|_| Reply::reset()));
    let worker = envoy
        .worker(&[probe("p", json!({"scenario": "callout", "cluster": "idp"}))])
        .unwrap();
    let mut s = worker.stream(Request::get("/"));
    assert_eq!(
        s.send_request().upstream().header("x-callout"),
        Some("failed")
    );
    assert_eq!(observed(&worker, "callout_headers"), vec!["0"]);
}

#[test]
fn a_real_loopback_upstream_answers_callouts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = c.read(&mut buf);
        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal")
            .unwrap();
    });
    let envoy = Envoy::new();
    envoy.cluster("idp", Cluster::real(&addr.to_string()));
    let worker = envoy
        .worker(&[probe("p", json!({"scenario": "callout", "cluster": "idp"}))])
        .unwrap();
    let mut s = worker.stream(Request::get("/"));
    assert_eq!(s.send_request().upstream().header("x-callout"), Some("200"));
    assert_eq!(observed(&worker, "callout_body"), vec!["real"]);
    server.join().unwrap();
}

#[test]
fn workers_share_shared_data_and_metrics_but_not_vms() {
    let envoy = Envoy::new();
    let a = envoy
        .worker(&[probe("p", json!({"scenario": "metrics"}))])
        .unwrap();
    let b = envoy
        .worker(&[probe("p", json!({"scenario": "metrics"}))])
        .unwrap();
    for w in [&a, &b] {
        let mut s = w.stream(Request::get("/"));
        s.send_request();
        s.send_response(Response::ok());
        s.finish();
    }
    assert_eq!(envoy.metric("probe_requests"), Some(2));
    assert_eq!(envoy.histogram("probe_latency"), vec![7, 7]);
    assert_eq!(observed(&b, "counter"), vec!["Ok(2)"]);
    envoy.set_shared_data("probe", "probe/ticks", b"9");
    let t = envoy
        .worker(&[probe("p", json!({"scenario": "tick"}))])
        .unwrap();
    t.stream(Request::get("/")).send_request();
    assert_eq!(observed(&t, "ticks_seen"), vec!["9"]);
}

#[test]
fn local_reply_goes_back_through_earlier_filters_only() {
    let envoy = Envoy::new();
    let worker = envoy
        .worker(&[
            probe("before", json!({"scenario": "observe"})),
            probe("deny", json!({"scenario": "local_reply"})),
            probe("after", json!({"scenario": "observe"})),
        ])
        .unwrap();
    let mut s = worker.stream(Request::get("/"));
    let out = s.send_request();
    let r = out.local_reply();
    assert_eq!(r.status(), 403);
    assert_eq!(r.header("x-probe"), Some("denied"));
    assert_eq!(r.body_str(), "denied");
    s.finish();
    let logs = worker.logs();
    let seen = |p: &str, k: &str| {
        logs.iter()
            .any(|l| l.plugin == p && l.message.contains(&format!("probe: {k}=")))
    };
    assert!(seen("before", "saw_response"));
    assert!(!seen("after", "saw_request"));
    assert!(seen("after", "logged"));
    assert!(matches!(out, Outcome::LocalReply(_)));
}
