//! The probe: a tiny proxy-wasm guest that exercises one hostcall family per scenario and logs
//! what it observes as `probe: key=value` lines. The same module runs under the host-tests
//! harness and under Envoy, and the two logs are compared. Its plugin configuration is JSON:
//! `{"scenario": "<name>", ...options}`.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

thread_local! {
    /// Streams paused by `root_resume`, waiting for the root context to call out for them.
    static PAUSED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

fn obs(key: &str, value: impl std::fmt::Display) {
    let _ = hostcalls::log(LogLevel::Info, &format!("probe: {key}={value}"));
}

fn text(b: Option<Vec<u8>>) -> String {
    b.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|| "none".into())
}

#[derive(Default)]
struct Root {
    cfg: Value,
    scenario: String,
    ticks: u32,
    queue: Option<u32>,
    metrics: [u32; 3],
    /// Root callouts in flight: token -> the paused stream they wake.
    waking: HashMap<u32, u32>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _nh: usize, _body: usize, _nt: usize) {
        let Some(stream) = self.waking.remove(&token) else {
            return;
        };
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_else(|| "failed".into());
        obs("root_callout_status", &status);
        obs(
            "set_effective_context",
            format!("{:?}", hostcalls::set_effective_context(stream)),
        );
        obs(
            "root_sets_header",
            format!(
                "{:?}",
                hostcalls::set_map_value(
                    proxy_wasm::types::MapType::HttpRequestHeaders,
                    "x-root-resumed",
                    Some(&status)
                )
            ),
        );
        obs(
            "root_resume",
            format!("{:?}", hostcalls::resume_http_request()),
        );
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        self.cfg = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        self.scenario = self.cfg["scenario"].as_str().unwrap_or("").to_string();
        match self.scenario.as_str() {
            "config" => {
                obs("config_size", size);
                obs("vm_config", text(self.get_vm_configuration()));
                if self.cfg["refuse"].as_bool() == Some(true) {
                    let _ = hostcalls::log(
                        LogLevel::Error,
                        "probe: refusing configuration: refuse is true",
                    );
                    return false;
                }
            }
            "tick" => self.set_tick_period(Duration::from_millis(100)),
            "root_resume" => self.set_tick_period(Duration::from_millis(10)),
            "queue" => self.queue = hostcalls::register_shared_queue("probe_q").ok(),
            "metrics" => {
                let kinds = [
                    MetricType::Counter,
                    MetricType::Gauge,
                    MetricType::Histogram,
                ];
                let names = ["probe_requests", "probe_gauge", "probe_latency"];
                for i in 0..3 {
                    self.metrics[i] = hostcalls::define_metric(kinds[i], names[i]).unwrap_or(0);
                }
            }
            _ => {}
        }
        true
    }

    fn on_tick(&mut self) {
        if self.scenario == "root_resume" {
            for stream in PAUSED.with(|p| std::mem::take(&mut *p.borrow_mut())) {
                let cluster = self.cfg["cluster"].as_str().unwrap_or("upstream");
                match self.dispatch_http_call(
                    cluster,
                    vec![
                        (":method", "GET"),
                        (":path", "/wake"),
                        (":authority", "callout.local"),
                    ],
                    None,
                    vec![],
                    Duration::from_millis(1000),
                ) {
                    Ok(token) => {
                        self.waking.insert(token, stream);
                    }
                    Err(e) => obs("root_dispatch_error", format!("{e:?}")),
                }
            }
            return;
        }
        self.ticks += 1;
        obs("tick", self.ticks);
        let _ = self.set_shared_data("probe/ticks", Some(self.ticks.to_string().as_bytes()), None);
        if self.ticks >= 2 {
            self.set_tick_period(Duration::ZERO);
        }
    }

    fn on_queue_ready(&mut self, id: u32) {
        obs("queue_ready_is_registered", Some(id) == self.queue);
        obs(
            "queue_item",
            text(hostcalls::dequeue_shared_queue(id).ok().flatten()),
        );
        obs(
            "queue_after",
            text(hostcalls::dequeue_shared_queue(id).ok().flatten()),
        );
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            id,
            cfg: self.cfg.clone(),
            scenario: self.scenario.clone(),
            metrics: self.metrics,
            order: vec![],
        }))
    }
}

struct Probe {
    id: u32,
    cfg: Value,
    scenario: String,
    metrics: [u32; 3],
    order: Vec<String>,
}

impl Probe {
    fn callout(&mut self) -> Action {
        let cluster = self.cfg["cluster"].as_str().unwrap_or("upstream");
        let timeout = self.cfg["timeout_ms"].as_u64().unwrap_or(1000);
        let mut headers = vec![(":method", "GET"), (":path", "/check")];
        if self.cfg["no_authority"].as_bool() != Some(true) {
            headers.push((":authority", "callout.local"));
        }
        match self.dispatch_http_call(
            cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(timeout),
        ) {
            Ok(_) => {
                obs("dispatch", "ok");
                Action::Pause
            }
            Err(e) => {
                obs("dispatch_error", format!("{e:?}"));
                Action::Continue
            }
        }
    }
}

impl Context for Probe {
    fn on_http_call_response(&mut self, _token: u32, nh: usize, body: usize, _nt: usize) {
        obs("callout_headers", nh);
        let names: Vec<String> = self
            .get_http_call_response_headers()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        obs("callout_header_names", names.join(","));
        obs(
            "callout_status",
            self.get_http_call_response_header(":status")
                .unwrap_or_else(|| "none".into()),
        );
        obs(
            "callout_body",
            text(self.get_http_call_response_body(0, body)),
        );
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_else(|| "failed".into());
        self.set_http_request_header("x-callout", Some(&status));
        self.resume_http_request();
    }

    fn on_grpc_call_response(&mut self, _token: u32, status: u32, size: usize) {
        obs("grpc_status", status);
        obs(
            "grpc_message",
            text(self.get_grpc_call_response_body(0, size)),
        );
        self.resume_http_request();
    }

    fn on_done(&mut self) -> bool {
        if self.scenario == "order" {
            obs(
                "done_after_log",
                self.order.last().is_some_and(|l| l == "log"),
            );
        }
        true
    }
}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, n: usize, end: bool) -> Action {
        self.order.push("request_headers".into());
        match self.scenario.as_str() {
            "log" => {
                for (level, name) in [
                    (LogLevel::Trace, "trace"),
                    (LogLevel::Debug, "debug"),
                    (LogLevel::Warn, "warn"),
                ] {
                    let _ = hostcalls::log(level, &format!("probe log at {name}"));
                }
                obs(
                    "log_level",
                    hostcalls::get_log_level().map(|l| l as u32).unwrap_or(99),
                );
            }
            "headers" => {
                obs("header_count", n);
                obs("end_of_stream", end);
                obs(
                    "method",
                    self.get_http_request_header(":method").unwrap_or_default(),
                );
                obs(
                    "x_multi_first",
                    self.get_http_request_header("x-multi").unwrap_or_default(),
                );
                let pairs = self.get_http_request_headers();
                let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
                obs("header_names", names.join(","));
                obs(
                    "x_multi_count",
                    pairs.iter().filter(|(k, _)| k == "x-multi").count(),
                );
                obs(
                    "pseudo_first",
                    pairs.first().is_some_and(|(k, _)| k.starts_with(':')),
                );
                obs(
                    "missing",
                    self.get_http_request_header("x-missing")
                        .unwrap_or_else(|| "absent".into()),
                );
                self.set_http_request_header("x-replace", Some("new"));
                self.set_http_request_header("x-remove", None);
                self.add_http_request_header("x-added", "1");
                self.add_http_request_header("X-Multi", "c");
            }
            "local_reply" => {
                self.send_http_response(403, vec![("x-probe", "denied")], Some(b"denied"));
                return Action::Pause;
            }
            "observe" => obs("saw_request", true),
            "root_resume" => {
                PAUSED.with(|p| p.borrow_mut().push(self.id));
                return Action::Pause;
            }
            "callout" => return self.callout(),
            "grpc" => {
                let cluster = self.cfg["cluster"].as_str().unwrap_or("grpc");
                let timeout = self.cfg["timeout_ms"].as_u64().unwrap_or(1000);
                return match self.dispatch_grpc_call(
                    cluster,
                    "probe.Echo",
                    "Ping",
                    vec![],
                    Some(b"ping"),
                    Duration::from_millis(timeout),
                ) {
                    Ok(_) => Action::Pause,
                    Err(e) => {
                        obs("grpc_dispatch_error", format!("{e:?}"));
                        Action::Continue
                    }
                };
            }
            "tls" => {
                // The connection's TLS properties; the PEM's line breaks as `\n`, one log line.
                for p in [
                    "connection.tls_version",
                    "connection.peer_certificate",
                    "connection.sha256_peer_certificate_digest",
                    "connection.uri_san_peer_certificate",
                    "connection.dns_san_peer_certificate",
                    "connection.subject_peer_certificate",
                ] {
                    obs(
                        p,
                        text(self.get_property(p.split('.').collect())).replace('\n', "\\n"),
                    );
                }
                let mtls = self.get_property(vec!["connection", "mtls"]);
                obs(
                    "connection.mtls",
                    mtls.map_or("none".into(), |b| format!("{:?}", b)),
                );
            }
            "properties" => {
                for p in [
                    "request.path",
                    "request.url_path",
                    "request.method",
                    "request.host",
                    "request.scheme",
                    "source.address",
                    "destination.address",
                    "plugin_name",
                    "plugin_root_id",
                    "plugin_vm_id",
                    "connection.tls_version",
                    "connection.uri_san_peer_certificate",
                ] {
                    obs(p, text(self.get_property(p.split('.').collect())));
                }
                for p in ["source.port", "destination.port"] {
                    let v = self.get_property(p.split('.').collect());
                    obs(
                        p,
                        v.and_then(|b| b.try_into().ok())
                            .map(i64::from_le_bytes)
                            .map_or("none".into(), |v| v.to_string()),
                    );
                }
                let mtls = self.get_property(vec!["connection", "mtls"]);
                obs(
                    "connection.mtls",
                    mtls.map_or("none".into(), |b| format!("{:?}", b)),
                );
                obs(
                    "request.id_present",
                    self.get_property(vec!["request", "id"]).is_some(),
                );
                let headers = self
                    .get_property(vec!["request", "headers"])
                    .unwrap_or_default();
                obs("request.headers_is_map", headers.len() > 4);
                obs(
                    "request.headers.x-multi",
                    text(self.get_property(vec!["request", "headers", "x-multi"])),
                );
            }
            "fs_write" => {
                let id = self.cfg["identity"].to_string();
                obs(
                    "fs_set",
                    format!(
                        "{:?}",
                        hostcalls::set_property(vec!["shieldwall.identity"], Some(id.as_bytes()))
                    ),
                );
            }
            "fs_read" => obs(
                "identity",
                text(self.get_property(vec!["shieldwall.identity"])),
            ),
            "shared_data" => {
                obs(
                    "get_missing",
                    format!("{:?}", self.get_shared_data("probe/missing")),
                );
                obs(
                    "set_plain",
                    format!("{:?}", self.set_shared_data("probe/k", Some(b"v1"), None)),
                );
                let (v, cas) = self.get_shared_data("probe/k");
                obs("value", text(v));
                let cas = cas.unwrap_or(0);
                obs("cas_nonzero", cas != 0);
                obs(
                    "set_wrong_cas",
                    format!(
                        "{:?}",
                        self.set_shared_data("probe/k", Some(b"x"), Some(cas.wrapping_add(1000)))
                    ),
                );
                obs(
                    "set_right_cas",
                    format!(
                        "{:?}",
                        self.set_shared_data("probe/k", Some(b"v2"), Some(cas))
                    ),
                );
                let (v, cas2) = self.get_shared_data("probe/k");
                obs("value_after", text(v));
                obs("cas_changed", cas2.is_some_and(|c| c != cas));
                obs(
                    "set_cas_on_missing",
                    format!(
                        "{:?}",
                        self.set_shared_data("probe/new", Some(b"n"), Some(777))
                    ),
                );
            }
            "queue" => {
                let vm_id = text(self.get_property(vec!["plugin_vm_id"]));
                match hostcalls::resolve_shared_queue(&vm_id, "probe_q") {
                    Ok(Some(q)) => obs(
                        "enqueue",
                        format!("{:?}", hostcalls::enqueue_shared_queue(q, Some(b"hello"))),
                    ),
                    other => obs("resolve", format!("{other:?}")),
                }
                obs(
                    "resolve_unknown",
                    format!("{:?}", hostcalls::resolve_shared_queue(&vm_id, "nope")),
                );
            }
            "tick" => obs("ticks_seen", text(self.get_shared_data("probe/ticks").0)),
            "metrics" => {
                let [c, g, h] = self.metrics;
                let _ = hostcalls::increment_metric(c, 1);
                obs(
                    "counter_zero_increment",
                    format!("{:?}", hostcalls::increment_metric(c, 0)),
                );
                let _ = hostcalls::record_metric(g, 42);
                let _ = hostcalls::increment_metric(g, -2);
                let _ = hostcalls::record_metric(h, 7);
                obs("counter", format!("{:?}", hostcalls::get_metric(c)));
                obs("gauge", format!("{:?}", hostcalls::get_metric(g)));
                obs("histogram_get", format!("{:?}", hostcalls::get_metric(h)));
            }
            "trap" => {
                if self.get_http_request_header("x-crash").is_some() {
                    panic!("probe asked to crash");
                }
            }
            "set_body" | "body" | "trailers" | "order" | "response" => {}
            other => obs("unknown_scenario", other),
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end: bool) -> Action {
        self.order.push(format!("request_body({size},{end})"));
        if self.scenario == "body" {
            if !end {
                return Action::Pause;
            }
            let body = text(self.get_http_request_body(0, size));
            obs("body", &body);
            obs("body_size", size);
            self.set_http_request_body(0, size, body.to_uppercase().as_bytes());
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, n: usize) -> Action {
        self.order.push("request_trailers".into());
        if self.scenario == "trailers" {
            obs("trailer_count", n);
            obs(
                "trailer",
                self.get_http_request_trailer("x-t").unwrap_or_default(),
            );
            self.add_http_request_trailer("x-added-trailer", "1");
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _end: bool) -> Action {
        self.order.push("response_headers".into());
        let status = self.get_http_response_header(":status").unwrap_or_default();
        match self.scenario.as_str() {
            "local_reply" => obs("response_status", &status),
            "observe" => obs("saw_response", &status),
            "response" => {
                obs("upstream_status", &status);
                self.add_http_response_header("x-probe-resp", "1");
            }
            _ => {}
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, _size: usize, _end: bool) -> Action {
        self.order.push("response_body".into());
        Action::Continue
    }

    fn on_log(&mut self) {
        self.order.push("log".into());
        if self.scenario == "order" {
            obs("order", self.order.join(","));
        }
        if self.scenario == "observe" {
            obs("logged", true);
        }
    }
}
