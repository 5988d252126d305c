//! Fidelity is shown, not assumed: every probe scenario of `host_tests::scenarios::all()` is
//! played on the harness and in a real Envoy, and what both observe is compared field by field:
//! the client's status, the headers and body that reach the upstream, and every `probe:
//! key=value` observation (shared-data values and CAS results, property values, callback order,
//! callout replies, metrics...).
//!
//! In Envoy each scenario gets its own Envoy with a listener `probe` (added with
//! `--config-yaml`) whose HTTP filters are the scenario's probe plugins, an echo as the upstream,
//! and one small scripted HTTP/1.1 server per scenario cluster (status and body after a delay, or
//! never an answer; gRPC replies as HTTP/1.1 with trailers). Envoy's clock is real: clock moves
//! become sleeps, and callout timeouts take their real time.
//!
//! A few fields cannot be the same in both by construction; they are listed in [`VOLATILE_KEYS`]
//! and [`VOLATILE_HEADERS`] with the reason, and left out of the comparison.

use host_tests::scenarios::{self, ClusterSpec, Observed, RequestSpec, Scenario};
use host_tests::{Envoy as Harness, Plugin, Request};
use serde_json::{json, Value};
use shieldwall_e2e::{http, wasm_path, DownstreamTls, Echo, Envoy, EnvoyConfig, WasmFilter};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Observation keys whose values depend on the run, not on the host's behaviour.
const VOLATILE_KEYS: &[(&str, &str)] = &[
    (
        "source.address",
        "the harness uses the scenario's source; Envoy sees the real loopback peer",
    ),
    ("source.port", "the real client's ephemeral port"),
    ("destination.address", "the listener's ephemeral port"),
    ("destination.port", "the listener's ephemeral port"),
    ("request.host", "Host names the listener's ephemeral port"),
];

/// Upstream request headers that only Envoy's HTTP/1.1 hop or the test client adds.
const VOLATILE_HEADERS: &[&str] = &[
    "host",
    "user-agent",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-internal",
    // Set by the connection manager for an external client (use_remote_address), not by a
    // hostcall; the harness has no connection manager.
    "x-envoy-external-address",
    "x-echo-status",
];

// ---------------------------------------------------------------------------------------------
// A scripted cluster: answers HTTP/1.1 like the harness's `Cluster::scripted` of a ClusterSpec.
// ---------------------------------------------------------------------------------------------

struct Scripted {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    fn start(spec: ClusterSpec) -> Scripted {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind scripted cluster");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (spec, stop) = (spec.clone(), Arc::clone(&stop2));
                thread::spawn(move || {
                    let _ = serve_scripted(conn, &spec, &stop);
                });
            }
        });
        Scripted { addr, stop }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Reads header lines up to the empty line; names lower-cased.
fn read_fields(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut fields = Vec::new();
    while let Some(line) = read_line(r)? {
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok(fields)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

type Fields = Vec<(String, String)>;
/// (index, scenario, verdict, details) of one comparison.
type Row = (usize, String, String, Vec<String>);

/// Reads a body framed by content-length or chunked encoding; returns (body, trailers).
fn read_framed_body(
    r: &mut impl BufRead,
    fields: &[(String, String)],
) -> io::Result<(Vec<u8>, Fields)> {
    let mut body = Vec::new();
    if field(fields, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let size_line = read_line(r)?.unwrap_or_default();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                return Ok((body, read_fields(r)?));
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    }
    let len: usize = field(fields, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    body.resize(len, 0);
    r.read_exact(&mut body)?;
    Ok((body, vec![]))
}

fn serve_scripted(conn: TcpStream, spec: &ClusterSpec, stop: &AtomicBool) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let Some(start) = read_line(&mut r)? else {
            return Ok(());
        };
        if start.is_empty() {
            continue;
        }
        let fields = read_fields(&mut r)?;
        let _ = read_framed_body(&mut r, &fields)?;
        let Some(delay) = spec.delay_ms else {
            // Never answers: hold the connection until the peer gives up.
            let mut sink = [0u8; 1024];
            while !stop.load(Ordering::SeqCst) && r.read(&mut sink).unwrap_or(0) > 0 {}
            return Ok(());
        };
        thread::sleep(Duration::from_millis(delay));
        // The same headers as the harness's `Reply::ok(status, body)`.
        let reply = if !spec.grpc {
            format!(
                "HTTP/1.1 {} Scripted\r\ncontent-length: {}\r\n\r\n{}",
                spec.status,
                spec.body.len(),
                spec.body
            )
            .into_bytes()
        } else if spec.status == 0 {
            // A unary gRPC reply: one length-prefixed message, then grpc-status in the trailers.
            let mut frame = vec![0u8];
            frame.extend_from_slice(&(spec.body.len() as u32).to_be_bytes());
            frame.extend_from_slice(spec.body.as_bytes());
            let mut out = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
                frame.len()
            )
            .into_bytes();
            out.extend_from_slice(&frame);
            out.extend_from_slice(b"\r\n0\r\ngrpc-status: 0\r\n\r\n");
            out
        } else {
            // Trailers-only: the status in the headers, no body.
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: {}\r\ngrpc-message: {}\r\ncontent-length: 0\r\n\r\n",
                spec.status, spec.body
            )
            .into_bytes()
        };
        w.write_all(&reply)?;
        w.flush()?;
    }
}

// ---------------------------------------------------------------------------------------------
// Envoy for one scenario.
// ---------------------------------------------------------------------------------------------

fn indent(block: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{pad}{l}\n"))
        .collect()
}

/// HTTP/1.1 with trailers both ways: gRPC calls go over it too, the reply's grpc-status in the
/// trailers (or in the headers, trailers-only).
fn cluster_yaml(name: &str, port: u16) -> String {
    format!(
        r#"- name: {name}
  type: STATIC
  connect_timeout: 1s
  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      explicit_http_config:
        http_protocol_options: {{ enable_trailers: true }}
  load_assignment:
    cluster_name: {name}
    endpoints:
    - lb_endpoints:
      - endpoint:
          address:
            socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"#,
        name = serde_json::to_string(name).unwrap_or_default(),
    )
}

/// The `--config-yaml` overlay: listener `probe` with the plugins, and the scenario's clusters.
fn overlay(
    plugins: &[(String, String, Value)],
    clusters: &[(String, u16)],
    tls: Option<&DownstreamTls>,
) -> String {
    let filters: String = plugins
        .iter()
        .map(|(name, vm_id, config)| {
            WasmFilter::new(wasm_path("probe"), name.clone(), config.to_string())
                .vm_id(vm_id.clone())
                .to_yaml()
        })
        .collect();
    let clusters: String = clusters
        .iter()
        .map(|(name, port)| cluster_yaml(name, *port))
        .collect();
    let transport_socket = tls.map(|t| indent(&t.to_yaml(), 6)).unwrap_or_default();
    format!(
        r#"static_resources:
  listeners:
  - name: probe
    address:
      socket_address: {{ address: 127.0.0.1, port_value: 0 }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: probe
          codec_type: AUTO
          use_remote_address: true
          http_protocol_options: {{ enable_trailers: true }}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: probe
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: upstream, timeout: 15s }}
{transport_socket}  clusters:
{clusters}"#,
        filters = indent(&filters, 10),
        clusters = indent(&clusters, 2),
    )
}

struct ProbeEnvoy {
    envoy: Envoy,
    probe: SocketAddr,
    _echo: Echo,
    _clusters: Vec<Scripted>,
}

fn start_envoy(
    plugins: &[(String, String, Value)],
    specs: &[ClusterSpec],
) -> Result<ProbeEnvoy, shieldwall_e2e::StartError> {
    start_envoy_with(plugins, specs, None)
}

/// [`start_envoy`], the listener over TLS when `tls` is given.
fn start_envoy_with(
    plugins: &[(String, String, Value)],
    specs: &[ClusterSpec],
    tls: Option<&DownstreamTls>,
) -> Result<ProbeEnvoy, shieldwall_e2e::StartError> {
    let echo = Echo::start();
    let servers: Vec<Scripted> = specs.iter().cloned().map(Scripted::start).collect();
    let clusters: Vec<(String, u16)> = specs
        .iter()
        .zip(&servers)
        .map(|(c, s)| (c.name.clone(), s.addr.port()))
        .collect();
    let mut config = EnvoyConfig::new(echo.port());
    // The probe logs its observations at info, the level the harness's guests see by default.
    config.component_log_level = "wasm:info".into();
    config.extra_args = vec!["--config-yaml".into(), overlay(plugins, &clusters, tls)];
    let envoy = Envoy::try_start(config)?;
    let listeners = http::request(
        envoy.admin_addr(),
        "GET",
        "/listeners?format=json",
        &[],
        b"",
    )
    .expect("admin /listeners")
    .json();
    let port = listeners["listener_statuses"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == "probe"))
        .and_then(|s| s["local_address"]["socket_address"]["port_value"].as_u64())
        .expect("listener probe");
    Ok(ProbeEnvoy {
        envoy,
        probe: SocketAddr::from(([127, 0, 0, 1], port as u16)),
        _echo: echo,
        _clusters: servers,
    })
}

struct ClientResponse {
    status: u32,
    headers: Vec<(String, String)>,
    body: String,
}

/// Sends the scenario's request (chunked with trailers when it has trailers) and reads the reply.
fn send(addr: SocketAddr, req: &RequestSpec, extra: &[(&str, &str)]) -> io::Result<ClientResponse> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n",
        req.method, req.path
    );
    for (k, v) in req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied())
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = req.body.clone().unwrap_or_default();
    if !req.trailers.is_empty() {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        if !body.is_empty() {
            head.push_str(&format!("{:x}\r\n{body}\r\n", body.len()));
        }
        head.push_str("0\r\n");
        for (k, v) in &req.trailers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
    } else if req.body.is_some() || req.method != "GET" {
        head.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    } else {
        head.push_str("\r\n");
    }
    conn.write_all(head.as_bytes())?;
    let mut r = BufReader::new(conn);
    let status_line = read_line(&mut r)?.unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = read_fields(&mut r)?;
    let (body, _) = read_framed_body(&mut r, &headers)?;
    Ok(ClientResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `probe: key=value` observations of Envoy's log, as (plugin, key, value), in order. Envoy
/// writes `wasm log <plugin> [<root_id>] <vm_id>: <message>` for a stream context (an empty
/// root_id is left out), and only `wasm log [<root_id>] <vm_id>: <message>` for a root context,
/// without the plugin name. The probes here have an empty root_id, so one word before the colon
/// is a root context: its lines are attributed to the plugin of that vm_id when there is only
/// one, else to the vm_id.
fn envoy_observations(
    log: &str,
    plugins: &[(String, String, Value)],
) -> (Vec<(String, String, String)>, Vec<String>) {
    let mut obs = Vec::new();
    let mut lines = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.split("wasm log ").nth(1) else {
            continue;
        };
        let Some((prefix, message)) = rest.split_once(": ") else {
            continue;
        };
        let tokens: Vec<&str> = prefix.split(' ').collect();
        let plugin = if tokens.len() >= 2 {
            tokens[0].to_owned()
        } else {
            let vm_id = tokens.last().copied().unwrap_or("");
            let of_vm: Vec<&String> = plugins
                .iter()
                .filter(|(_, v, _)| v == vm_id)
                .map(|(n, _, _)| n)
                .collect();
            match of_vm.as_slice() {
                [one] => (*one).clone(),
                _ => vm_id.to_owned(),
            }
        };
        lines.push(format!("[{plugin}] {message}"));
        if let Some((k, v)) = scenarios::parse_observation(message) {
            obs.push((plugin, k, v));
        }
    }
    (obs, lines)
}

/// Plays a scenario in Envoy.
fn run_in_envoy(s: &Scenario, wait_for: &[(String, String)]) -> Result<Observed, String> {
    let plugins: Vec<_> = s
        .plugins
        .iter()
        .map(|p| (p.name.clone(), p.vm_id.clone(), p.config.clone()))
        .collect();
    let pe = start_envoy(&plugins, &s.clusters).map_err(|e| e.to_string())?;
    if s.advance_before_ms > 0 {
        thread::sleep(Duration::from_millis(s.advance_before_ms + 100));
    }
    let status = s.upstream_status.to_string();
    let extra: Vec<(&str, &str)> = if s.upstream_status != 200 {
        vec![("x-echo-status", status.as_str())]
    } else {
        vec![]
    };
    let resp = send(pe.probe, &s.request, &extra).map_err(|e| format!("request: {e}"))?;
    let mut observed = Observed {
        client_status: resp.status,
        ..Observed::default()
    };
    if let Ok(echo) = serde_json::from_str::<Value>(&resp.body) {
        if let Some(list) = echo["header_list"].as_array() {
            observed.upstream_headers = list
                .iter()
                .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
                .collect();
            observed.upstream_body = echo["body"].as_str().map(str::to_owned);
        }
    }
    // on_log / on_done run after the reply is sent: wait for what the harness saw, then settle.
    pe.envoy.wait_for_log(Duration::from_secs(3), |log| {
        let (obs, _) = envoy_observations(log, &plugins);
        wait_for
            .iter()
            .all(|(p, k)| obs.iter().any(|(op, ok, _)| op == p && ok == k))
    });
    thread::sleep(Duration::from_millis(150));
    if std::env::var_os("PROBE_RAW_LOG").is_some() {
        println!("{}", pe.envoy.log());
    }
    let (obs, lines) = envoy_observations(&pe.envoy.log(), &plugins);
    observed.observations = obs;
    observed.log = lines;
    Ok(observed)
}

// ---------------------------------------------------------------------------------------------
// The comparison.
// ---------------------------------------------------------------------------------------------

/// Values per (plugin, key), de-duplicated in first-seen order (Envoy runs a root context per
/// worker and one on the main thread: root observations can repeat).
fn grouped(o: &Observed) -> BTreeMap<(String, String), Vec<String>> {
    let mut m: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (p, k, v) in &o.observations {
        if VOLATILE_KEYS.iter().any(|(vk, _)| vk == k) {
            continue;
        }
        let vals = m.entry((p.clone(), k.clone())).or_default();
        if !vals.contains(v) {
            vals.push(v.clone());
        }
    }
    m
}

fn forwarded(o: &Observed) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = o
        .upstream_headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !k.starts_with(':') && !VOLATILE_HEADERS.contains(&k.as_str()))
        .collect();
    h.sort();
    h
}

/// Every difference between the harness's and Envoy's observations.
fn compare(harness: &Observed, envoy: &Observed) -> Vec<String> {
    let mut diffs = Vec::new();
    if harness.client_status != envoy.client_status {
        diffs.push(format!(
            "client status: harness {} envoy {}",
            harness.client_status, envoy.client_status
        ));
    }
    let (hh, eh) = (forwarded(harness), forwarded(envoy));
    if hh != eh {
        diffs.push(format!("upstream headers: harness {hh:?} envoy {eh:?}"));
    }
    let body = |o: &Observed| o.upstream_body.clone().unwrap_or_default();
    if body(harness) != body(envoy) {
        diffs.push(format!(
            "upstream body: harness {:?} envoy {:?}",
            body(harness),
            body(envoy)
        ));
    }
    let (ho, eo) = (grouped(harness), grouped(envoy));
    for key in ho.keys().chain(eo.keys().filter(|k| !ho.contains_key(*k))) {
        let (hv, ev) = (ho.get(key), eo.get(key));
        if hv != ev {
            diffs.push(format!(
                "{}:{}: harness {:?} envoy {:?}",
                key.0, key.1, hv, ev
            ));
        }
    }
    diffs
}

/// Scenarios left out of the comparison, with the reason.
const EXCLUDED: &[(&str, &str)] = &[];

#[test]
fn every_probe_scenario_behaves_in_the_harness_as_in_envoy() {
    let all = scenarios::all();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Row>> = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(s) = all.get(i) else { return };
                let (verdict, note, details) = play(s);
                if let Ok(mut r) = results.lock() {
                    r.push((i, s.name.clone(), format!("{verdict} {note}"), details));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort();
    let mut table = String::from("\nscenario                           | result\n");
    table.push_str("-----------------------------------+--------------------------------\n");
    let mut failures = Vec::new();
    let mut matched = 0;
    for (_, name, verdict, details) in &results {
        table.push_str(&format!("{name:<35}| {verdict}\n"));
        if verdict.starts_with("match") {
            matched += 1;
        } else if !verdict.starts_with("excluded") {
            failures.push(format!("{name}:\n  {}", details.join("\n  ")));
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{table}\n{}", failures.join("\n\n"));
    assert!(matched >= 15, "only {matched} scenarios compared");
}

/// (verdict, note, details) for one scenario.
fn play(s: &Scenario) -> (&'static str, String, Vec<String>) {
    if let Some((_, why)) = EXCLUDED.iter().find(|(n, _)| *n == s.name) {
        return ("excluded", why.to_string(), vec![]);
    }
    let harness = match scenarios::run(s) {
        Ok(o) => o,
        Err(e) => return ("HARNESS FAILED", String::new(), vec![format!("{e:#}")]),
    };
    let wait_for: Vec<(String, String)> = harness
        .observations
        .iter()
        .map(|(p, k, _)| (p.clone(), k.clone()))
        .collect();
    let envoy = match run_in_envoy(s, &wait_for) {
        Ok(o) => o,
        Err(e) => return ("ENVOY FAILED", String::new(), vec![e]),
    };
    let mut diffs = compare(&harness, &envoy);
    let expectation = scenarios::check(s, &envoy).err();
    if diffs.is_empty() {
        let note = match expectation {
            None => String::new(),
            Some(_) => "(but the scenario's expectations do not hold in Envoy)".into(),
        };
        return ("match", note, vec![]);
    }
    if let Some(e) = expectation {
        diffs.push(format!("scenario expectations in Envoy: {e}"));
    }
    diffs.push(format!("--- harness log ---\n{}", harness.log.join("\n")));
    diffs.push(format!("--- envoy probe log ---\n{}", envoy.log.join("\n")));
    ("DIFFERS", String::new(), diffs)
}

// ---------------------------------------------------------------------------------------------
// Failure paths, each shown in Envoy and on the harness.
// ---------------------------------------------------------------------------------------------

fn probe_plugin(name: &str, config: &Value) -> Plugin {
    Plugin::new(host_tests::wasm_path("probe"))
        .name(name)
        .vm_id("probe")
        .json(config)
}

fn get_spec(path: &str, headers: &[(&str, &str)]) -> RequestSpec {
    RequestSpec {
        method: "GET".into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: None,
        trailers: vec![],
        source: None,
    }
}

/// A guest panic in on_request_headers (fail closed, the default): Envoy answers that request
/// 503 and, the VM being dead, every later request too; the harness does the same.
#[test]
fn a_trap_is_handled_as_envoy_handles_it() {
    let config = json!({"scenario": "trap"});
    let pe = start_envoy(&[("crashy".into(), "probe".into(), config.clone())], &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let crash = send(pe.probe, &get_spec("/", &[("x-crash", "1")]), &[]).expect("request");
    let next = send(pe.probe, &get_spec("/", &[]), &[]).expect("request");
    let log = pe.envoy.log();
    println!(
        "envoy: trapping request -> {} {:?} {:?}; next request -> {} {:?}",
        crash.status, crash.headers, crash.body, next.status, next.body
    );

    let h = Harness::new();
    let worker = h
        .worker(&[probe_plugin("crashy", &config)])
        .expect("worker");
    let mut s1 = worker.stream(Request::get("/").header("x-crash", "1"));
    assert!(
        s1.try_send_request().is_err(),
        "the harness reports the trap"
    );
    let first = s1.outcome().local_reply().clone();
    let second = worker.stream(Request::get("/")).send_request();
    let second = second.local_reply();

    assert!(log.contains("probe asked to crash"), "{log}");
    assert_eq!(crash.status, 503);
    assert_eq!(next.status, 503);
    assert_eq!(first.status() as u32, crash.status);
    assert_eq!(second.status() as u32, next.status);
    assert_eq!(first.body_str(), crash.body);
    assert_eq!(second.body_str(), next.body);
}

/// on_configure returning false.
#[test]
fn a_refused_configuration_is_handled_as_envoy_handles_it() {
    let config = json!({"scenario": "config", "refuse": true});
    let started = start_envoy(&[("cfg".into(), "probe".into(), config.clone())], &[]);
    let h = Harness::new();
    let harness = h.worker(&[probe_plugin("cfg", &config)]);
    match started {
        Err(e) => {
            let interesting: Vec<&str> = e
                .log
                .lines()
                .filter(|l| {
                    l.contains("refus") || l.contains("[critical]") || l.contains("[error]")
                })
                .collect();
            println!(
                "envoy refused to start: {}\n{}",
                e.reason,
                interesting.join("\n")
            );
            assert!(
                e.log.contains("refusing configuration: refuse is true"),
                "{e}"
            );
            let err = harness
                .err()
                .expect("the harness refuses the configuration too");
            assert!(format!("{err:#}").contains("refusing configuration: refuse is true"));
        }
        Ok(pe) => {
            let r = send(pe.probe, &get_spec("/", &[]), &[]).expect("request");
            let log = pe.envoy.log();
            println!(
                "envoy started; a request got {} {:?}\n{log}",
                r.status, r.body
            );
            panic!("Envoy started with a refused configuration: the harness refuses it");
        }
    }
}

/// A callout to a cluster that never answers, with a 50 ms timeout.
#[test]
fn a_callout_timeout_is_handled_as_envoy_handles_it() {
    let s = scenarios::all()
        .into_iter()
        .find(|s| s.name == "callout_timeout")
        .expect("scenario callout_timeout");
    let harness = scenarios::run(&s).expect("harness");
    let started = Instant::now();
    let envoy = run_in_envoy(&s, &[("p".into(), "callout_body".into())]).expect("envoy");
    let pick = |o: &Observed, key: &str| -> Vec<String> {
        o.observations
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, v)| v.clone())
            .collect()
    };
    for key in ["callout_headers", "callout_status", "callout_body"] {
        println!(
            "{key}: envoy {:?} harness {:?}",
            pick(&envoy, key),
            pick(&harness, key)
        );
        assert_eq!(pick(&envoy, key), pick(&harness, key), "{key}");
    }
    println!("upstream x-callout: {:?}", forwarded(&envoy));
    assert_eq!(forwarded(&envoy), forwarded(&harness));
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------------------
// TLS: the connection.* properties of a client certificate, in Envoy and on the harness.
// ---------------------------------------------------------------------------------------------

/// A TLS listener that verifies client certificates, a client (curl) with a certificate that has
/// two URI SANs and two DNS SANs: what the probe reads of `connection.*` in Envoy, and what the
/// harness answers for a `Tls` made from the same certificate (its PEM, digest, first URI and
/// DNS SAN, RFC 4514 subject) are the same.
#[test]
fn tls_properties_of_a_client_certificate_are_read_in_the_harness_as_in_envoy() {
    use mtls_identity::cert::PeerCertificate;
    use mtls_identity::testing::TestCa;

    let ca = TestCa::new("probe-tls");
    let server = ca.end_entity("server", "/CN=localhost", &["DNS:localhost"]);
    let client = ca.end_entity(
        "client",
        "/O=Probe Org/OU=Tests/CN=probe client",
        &[
            "URI:spiffe://probe.example/first",
            "URI:spiffe://probe.example/second",
            "DNS:one.probe.example",
            "DNS:two.probe.example",
        ],
    );
    let config = json!({"scenario": "tls"});
    let plugins = [("p".to_string(), "probe".to_string(), config.clone())];
    let tls = DownstreamTls::new(&server.cert, &server.key).client_ca(&ca.cert, true);
    let pe = start_envoy_with(&plugins, &[], Some(&tls)).unwrap_or_else(|e| panic!("{e}"));
    let port = pe.probe.port();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(&ca.cert)
        .arg("--cert")
        .arg(&client.cert)
        .arg("--key")
        .arg(&client.key)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/tls"))
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pe.envoy.wait_for_log(Duration::from_secs(3), |log| {
        log.contains("probe: connection.mtls=")
    });
    let (envoy_obs, _) = envoy_observations(&pe.envoy.log(), &plugins);

    let parsed = PeerCertificate::from_pem(client.pem.as_bytes()).expect("the client certificate");
    let t = host_tests::Tls::mtls(&parsed.subject.render())
        .uri_san(&parsed.uri_sans[0])
        .dns_san(&parsed.dns_sans[0])
        .sha256(&client.sha256_hex)
        .peer_pem(&client.pem);
    let h = Harness::new();
    let worker = h.worker(&[probe_plugin("p", &config)]).expect("worker");
    let mut stream = worker.stream(Request::get("/tls").tls(t));
    stream.send_request().upstream();
    stream.finish();
    let harness_obs: Vec<(String, String, String)> = worker
        .logs()
        .iter()
        .filter_map(|l| {
            let (k, v) = scenarios::parse_observation(&l.message)?;
            Some((l.plugin.clone(), k, v))
        })
        .collect();

    let pem = client.pem.replace('\n', "\\n");
    let expected = [
        ("connection.tls_version", "TLSv1.3"),
        ("connection.peer_certificate", pem.as_str()),
        (
            "connection.sha256_peer_certificate_digest",
            client.sha256_hex.as_str(),
        ),
        (
            "connection.uri_san_peer_certificate",
            "spiffe://probe.example/first",
        ),
        ("connection.dns_san_peer_certificate", "one.probe.example"),
        (
            "connection.subject_peer_certificate",
            "CN=probe client,OU=Tests,O=Probe Org",
        ),
        ("connection.mtls", "[1]"),
    ];
    for (obs, who) in [(&envoy_obs, "envoy"), (&harness_obs, "harness")] {
        let got: Vec<(&str, &str)> = obs
            .iter()
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected.to_vec(), "{who}");
    }
}
