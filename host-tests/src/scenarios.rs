//! Probe scenarios as data: each names the probe plugins (in chain order), the clusters, the
//! request, what the upstream answers and how far the clock moves, and the observations
//! expected. [`run`] plays one on this harness; an Envoy runner plays the same list (it is
//! serializable) and compares the same [`Observed`] shape.

use crate::{wasm_path, Cluster, Envoy, GrpcReply, Outcome, Plugin, Reply, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbePlugin {
    pub name: String,
    pub vm_id: String,
    pub config: Value,
}

/// A scripted cluster: an HTTP reply (status, body, delay or never) or a gRPC reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub grpc: bool,
    pub status: u32,
    pub body: String,
    /// None: never answers.
    pub delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestSpec {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub trailers: Vec<(String, String)>,
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub plugins: Vec<ProbePlugin>,
    pub clusters: Vec<ClusterSpec>,
    /// Clock moves before the request (ticks).
    pub advance_before_ms: u64,
    pub request: RequestSpec,
    /// Clock moves after the request (callout delays, timeouts).
    pub advance_after_ms: u64,
    /// The upstream's status, if the request reaches it.
    pub upstream_status: u32,
    /// (plugin, key, value) that must be observed; plugin "" matches any.
    pub expect: Vec<(String, String, String)>,
    /// (plugin, key) that must not be observed.
    pub absent: Vec<(String, String)>,
    /// Status the client receives.
    pub client_status: u32,
    /// Headers the upstream must receive (name, first value).
    pub upstream_headers: Vec<(String, String)>,
    pub upstream_body: Option<String>,
}

/// What a run observed: the same shape from this harness and from Envoy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observed {
    /// (plugin, key, value) from `probe: key=value` log lines, in order.
    pub observations: Vec<(String, String, String)>,
    pub client_status: u32,
    pub upstream_headers: Vec<(String, String)>,
    pub upstream_body: Option<String>,
    pub log: Vec<String>,
}

/// Parses one log message into (key, value) if it is a probe observation.
pub fn parse_observation(message: &str) -> Option<(String, String)> {
    let rest = message.split("probe: ").nth(1)?;
    let (k, v) = rest.split_once('=')?;
    Some((k.to_string(), v.to_string()))
}

fn plugin(name: &str, config: Value) -> ProbePlugin {
    ProbePlugin {
        name: name.into(),
        vm_id: "probe".into(),
        config,
    }
}

fn get(path: &str) -> RequestSpec {
    RequestSpec {
        method: "GET".into(),
        path: path.into(),
        headers: vec![],
        body: None,
        trailers: vec![],
        source: None,
    }
}

fn http(name: &str, status: u32, body: &str, delay_ms: Option<u64>) -> ClusterSpec {
    ClusterSpec {
        name: name.into(),
        grpc: false,
        status,
        body: body.into(),
        delay_ms,
    }
}

fn e(plugin: &str, k: &str, v: &str) -> (String, String, String) {
    (plugin.into(), k.into(), v.into())
}

fn base(name: &str, plugins: Vec<ProbePlugin>, request: RequestSpec) -> Scenario {
    Scenario {
        name: name.into(),
        plugins,
        clusters: vec![],
        advance_before_ms: 0,
        request,
        advance_after_ms: 0,
        upstream_status: 200,
        expect: vec![],
        absent: vec![],
        client_status: 200,
        upstream_headers: vec![],
        upstream_body: None,
    }
}

/// Every scenario.
pub fn all() -> Vec<Scenario> {
    let one = |s: &str| vec![plugin("p", json!({ "scenario": s }))];
    let mut v = Vec::new();

    let mut s = base("logging", one("log"), get("/"));
    s.expect = vec![e("p", "log_level", "2")];
    v.push(s);

    let mut s = base(
        "config",
        vec![plugin("p", json!({"scenario": "config", "pad": "xyz"}))],
        get("/"),
    );
    s.expect = vec![
        e(
            "p",
            "config_size",
            &json!({"scenario": "config", "pad": "xyz"})
                .to_string()
                .len()
                .to_string(),
        ),
        e("p", "vm_config", "none"),
    ];
    v.push(s);

    let mut r = get("/h");
    r.headers = vec![
        ("x-multi".into(), "a".into()),
        ("x-multi".into(), "b".into()),
        ("x-replace".into(), "old".into()),
        ("x-remove".into(), "gone".into()),
    ];
    let mut s = base("headers", one("headers"), r);
    s.expect = vec![
        e("p", "method", "GET"),
        e("p", "x_multi_first", "a"),
        e("p", "x_multi_count", "2"),
        e("p", "missing", "absent"),
        e("p", "end_of_stream", "true"),
        e("p", "pseudo_first", "true"),
    ];
    s.upstream_headers = vec![
        ("x-replace".into(), "new".into()),
        ("x-added".into(), "1".into()),
    ];
    v.push(s);

    let mut r = get("/b");
    r.method = "POST".into();
    r.body = Some("hello body".into());
    let mut s = base("body_buffering", one("body"), r);
    s.expect = vec![e("p", "body", "hello body"), e("p", "body_size", "10")];
    s.upstream_body = Some("HELLO BODY".into());
    v.push(s);

    let mut r = get("/t");
    r.method = "POST".into();
    r.body = Some("x".into());
    r.trailers = vec![("x-t".into(), "tv".into())];
    let mut s = base("trailers", one("trailers"), r);
    s.expect = vec![e("p", "trailer", "tv"), e("p", "trailer_count", "1")];
    v.push(s);

    let mut s = base(
        "local_reply_stops_chain",
        vec![
            plugin("first", json!({"scenario": "local_reply"})),
            plugin("second", json!({"scenario": "observe"})),
        ],
        get("/deny"),
    );
    s.expect = vec![
        e("first", "response_status", "403"),
        e("second", "logged", "true"),
    ];
    s.absent = vec![
        ("second".into(), "saw_request".into()),
        ("second".into(), "saw_response".into()),
    ];
    s.client_status = 403;
    v.push(s);

    let mut s = base(
        "callout_pause_resume",
        vec![plugin(
            "p",
            json!({"scenario": "callout", "cluster": "idp"}),
        )],
        get("/c"),
    );
    s.clusters = vec![http("idp", 200, "callout-ok", Some(0))];
    s.expect = vec![
        e("p", "dispatch", "ok"),
        e("p", "callout_status", "200"),
        e("p", "callout_body", "callout-ok"),
    ];
    s.upstream_headers = vec![("x-callout".into(), "200".into())];
    v.push(s);

    let mut s = base(
        "callout_delayed",
        vec![plugin(
            "p",
            json!({"scenario": "callout", "cluster": "idp"}),
        )],
        get("/c"),
    );
    s.clusters = vec![http("idp", 201, "late", Some(50))];
    s.advance_after_ms = 60;
    s.expect = vec![e("p", "callout_status", "201")];
    s.upstream_headers = vec![("x-callout".into(), "201".into())];
    v.push(s);

    let mut s = base(
        "callout_unknown_cluster",
        vec![plugin(
            "p",
            json!({"scenario": "callout", "cluster": "nope"}),
        )],
        get("/c"),
    );
    s.expect = vec![e("p", "dispatch_error", "BadArgument")];
    v.push(s);

    let mut s = base(
        "callout_missing_authority",
        vec![plugin(
            "p",
            json!({"scenario": "callout", "cluster": "idp", "no_authority": true}),
        )],
        get("/c"),
    );
    s.clusters = vec![http("idp", 200, "", Some(0))];
    s.expect = vec![e("p", "dispatch_error", "BadArgument")];
    v.push(s);

    let mut s = base(
        "callout_timeout",
        vec![plugin(
            "p",
            json!({"scenario": "callout", "cluster": "slow", "timeout_ms": 50}),
        )],
        get("/c"),
    );
    s.clusters = vec![http("slow", 200, "", None)];
    s.advance_after_ms = 100;
    s.expect = vec![
        e("p", "callout_status", "504"),
        e("p", "callout_body", "upstream request timeout"),
    ];
    v.push(s);

    let mut s = base(
        "grpc_ok",
        vec![plugin("p", json!({"scenario": "grpc", "cluster": "grpc"}))],
        get("/g"),
    );
    s.clusters = vec![ClusterSpec {
        name: "grpc".into(),
        grpc: true,
        status: 0,
        body: "pong".into(),
        delay_ms: Some(0),
    }];
    s.expect = vec![e("p", "grpc_status", "0"), e("p", "grpc_message", "pong")];
    v.push(s);

    let mut s = base(
        "grpc_error",
        vec![plugin("p", json!({"scenario": "grpc", "cluster": "grpc"}))],
        get("/g"),
    );
    s.clusters = vec![ClusterSpec {
        name: "grpc".into(),
        grpc: true,
        status: 7,
        body: "denied".into(),
        delay_ms: Some(0),
    }];
    s.expect = vec![e("p", "grpc_status", "7")];
    v.push(s);

    let mut r = get("/props?q=1");
    r.headers = vec![
        ("x-multi".into(), "a".into()),
        ("x-multi".into(), "b".into()),
    ];
    r.source = Some("10.0.0.1:5555".into());
    let mut s = base("properties", one("properties"), r);
    s.expect = vec![
        e("p", "request.path", "/props?q=1"),
        e("p", "request.url_path", "/props"),
        e("p", "request.method", "GET"),
        e("p", "request.scheme", "http"),
        e("p", "source.address", "10.0.0.1:5555"),
        e("p", "source.port", "5555"),
        e("p", "plugin_name", "p"),
        e("p", "plugin_vm_id", "probe"),
        e("p", "connection.mtls", "[0]"),
        e("p", "request.id_present", "true"),
        e("p", "request.headers_is_map", "true"),
        e("p", "request.headers.x-multi", "a,b"),
    ];
    v.push(s);

    let mut s = base(
        "filter_state_across_filters",
        vec![
            plugin(
                "writer",
                json!({"scenario": "fs_write", "identity": {"sub": "alice"}}),
            ),
            plugin("reader", json!({"scenario": "fs_read"})),
        ],
        get("/fs"),
    );
    s.expect = vec![
        e("writer", "fs_set", "Ok(())"),
        e("reader", "identity", r#"{"sub":"alice"}"#),
    ];
    v.push(s);

    let mut s = base("shared_data_cas", one("shared_data"), get("/sd"));
    s.expect = vec![
        e("p", "get_missing", "(None, None)"),
        e("p", "set_plain", "Ok(())"),
        e("p", "value", "v1"),
        e("p", "cas_nonzero", "true"),
        e("p", "set_wrong_cas", "Err(CasMismatch)"),
        e("p", "set_right_cas", "Ok(())"),
        e("p", "value_after", "v2"),
        e("p", "cas_changed", "true"),
        e("p", "set_cas_on_missing", "Ok(())"),
    ];
    v.push(s);

    let mut s = base("queue", one("queue"), get("/q"));
    s.expect = vec![
        e("p", "enqueue", "Ok(())"),
        e("p", "resolve_unknown", "Ok(None)"),
        e("p", "queue_ready_is_registered", "true"),
        e("p", "queue_item", "hello"),
        e("p", "queue_after", "none"),
    ];
    v.push(s);

    let mut s = base("timers", one("tick"), get("/tick"));
    s.advance_before_ms = 250;
    s.expect = vec![
        e("p", "tick", "1"),
        e("p", "tick", "2"),
        e("p", "ticks_seen", "2"),
    ];
    s.absent = vec![];
    v.push(s);

    let mut s = base("metrics", one("metrics"), get("/m"));
    s.expect = vec![
        e("p", "counter", "Ok(1)"),
        e("p", "gauge", "Ok(40)"),
        e("p", "histogram_get", "Err(BadArgument)"),
        e("p", "counter_zero_increment", "Err(BadArgument)"),
    ];
    v.push(s);

    let mut r = get("/o");
    r.method = "POST".into();
    r.body = Some("b".into());
    let mut s = base("callback_order", one("order"), r);
    s.expect = vec![
        e(
            "p",
            "order",
            "request_headers,request_body(1,false),request_body(0,true),response_headers,response_body,response_body,log",
        ),
        e("p", "done_after_log", "true"),
    ];
    v.push(s);

    // A root context's callout wakes a stream paused in on_request_headers: the root sets the
    // stream as the effective context, edits its request headers and continues it.
    let mut s = base(
        "root_resume_effective_context",
        vec![plugin(
            "p",
            json!({"scenario": "root_resume", "cluster": "idp"}),
        )],
        get("/wake"),
    );
    s.clusters = vec![http("idp", 200, "awake", Some(0))];
    s.advance_after_ms = 50;
    s.expect = vec![
        e("p", "root_callout_status", "200"),
        e("p", "set_effective_context", "Ok(())"),
        e("p", "root_sets_header", "Ok(())"),
        e("p", "root_resume", "Ok(())"),
    ];
    s.upstream_headers = vec![("x-root-resumed".into(), "200".into())];
    v.push(s);

    let mut s = base("response_headers", one("response"), get("/r"));
    s.upstream_status = 202;
    s.client_status = 202;
    s.expect = vec![e("p", "upstream_status", "202")];
    v.push(s);

    v
}

/// Plays a scenario on this harness.
pub fn run(s: &Scenario) -> anyhow::Result<Observed> {
    let envoy = Envoy::new();
    for c in &s.clusters {
        let (status, body, delay) = (c.status, c.body.clone(), c.delay_ms);
        let cluster = if c.grpc {
            Cluster::grpc(move |_| {
                let r = if status == 0 {
                    GrpcReply::ok(body.clone())
                } else {
                    GrpcReply::error(status, &body)
                };
                match delay {
                    Some(ms) => r.after(Duration::from_millis(ms)),
                    None => GrpcReply::never(),
                }
            })
        } else {
            Cluster::scripted(move |_| match delay {
                Some(ms) => Reply::ok(status as u16, body.clone()).after(Duration::from_millis(ms)),
                None => Reply::never(),
            })
        };
        envoy.cluster(&c.name, cluster);
    }
    let plugins: Vec<Plugin> = s
        .plugins
        .iter()
        .map(|p| {
            Plugin::new(wasm_path("probe"))
                .name(&p.name)
                .vm_id(&p.vm_id)
                .json(&p.config)
        })
        .collect();
    let worker = envoy.worker(&plugins)?;
    envoy.advance(Duration::from_millis(s.advance_before_ms));
    let mut req = Request::new(&s.request.method, &s.request.path);
    for (k, v) in &s.request.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &s.request.body {
        req = req.body(b.clone());
    }
    for (k, v) in &s.request.trailers {
        req = req.trailer(k, v);
    }
    if let Some(src) = &s.request.source {
        req = req.source(src);
    }
    let mut stream = worker.stream(req);
    stream.try_send_request()?;
    envoy.try_advance(Duration::from_millis(s.advance_after_ms))?;
    let mut observed = Observed::default();
    match stream.outcome() {
        Outcome::Upstream(up) => {
            observed.upstream_headers = up.headers.clone();
            observed.upstream_body = Some(up.body_str());
            let out = stream
                .try_send_response(Response::new(s.upstream_status as u16).body("upstream body"))?;
            if let Outcome::Response(r) = out {
                observed.client_status = r.status() as u32;
            }
        }
        Outcome::LocalReply(r) => observed.client_status = r.status() as u32,
        other => anyhow::bail!(
            "scenario {}: stream ended as {other:?}\n{}",
            s.name,
            worker.log_text()
        ),
    }
    stream.try_finish()?;
    for l in worker.logs() {
        if let Some((k, v)) = parse_observation(&l.message) {
            observed.observations.push((l.plugin.clone(), k, v));
        }
        observed.log.push(format!("[{}] {}", l.plugin, l.message));
    }
    Ok(observed)
}

/// Compares what was observed with what the scenario expects; Err lists every difference.
pub fn check(s: &Scenario, o: &Observed) -> Result<(), String> {
    let mut errs = Vec::new();
    let matches = |p: &str, op: &str| p.is_empty() || p == op;
    for (p, k, v) in &s.expect {
        if !o
            .observations
            .iter()
            .any(|(op, ok, ov)| matches(p, op) && ok == k && ov == v)
        {
            let seen: Vec<_> = o
                .observations
                .iter()
                .filter(|(_, ok, _)| ok == k)
                .map(|(_, _, v)| v.clone())
                .collect();
            errs.push(format!("expected {p}:{k}={v}, observed {seen:?}"));
        }
    }
    for (p, k) in &s.absent {
        if o.observations
            .iter()
            .any(|(op, ok, _)| matches(p, op) && ok == k)
        {
            errs.push(format!("{p}:{k} should not be observed"));
        }
    }
    if o.client_status != s.client_status {
        errs.push(format!(
            "client status {} != expected {}",
            o.client_status, s.client_status
        ));
    }
    for (k, v) in &s.upstream_headers {
        let got = o
            .upstream_headers
            .iter()
            .find(|(hk, _)| hk == k)
            .map(|(_, hv)| hv.as_str());
        if got != Some(v.as_str()) {
            errs.push(format!("upstream header {k}: expected {v}, got {got:?}"));
        }
    }
    if let Some(b) = &s.upstream_body {
        if o.upstream_body.as_ref() != Some(b) {
            errs.push(format!(
                "upstream body: expected {b:?}, got {:?}",
                o.upstream_body
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "scenario {}:\n  {}\n--- log ---\n{}",
            s.name,
            errs.join("\n  "),
            o.log.join("\n")
        ))
    }
}
