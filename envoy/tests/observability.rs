//! envoy/observability: the Prometheus rules, their unit tests and the Grafana dashboard, checked
//! against what a real Envoy exports.
//!
//! - `promtool check rules` and `promtool test rules` pass; every alert has a `for`, a severity,
//!   a summary and a description, and a unit test where it fires.
//! - The dashboard is importable JSON with a `${DS_PROMETHEUS}` data source input.
//! - A real Envoy runs the one-module chain of the gateway (envoy/gateway.yaml's configurations,
//!   plus identity-exchange, a JWKS provider whose key server is down and a rate-limit service
//!   that is down) with the stats tags of stats-tags.yaml, and gets real traffic: allowed, 401,
//!   403, 400, 429, introspected tokens, an IdP that goes away, a spent failure budget, audit
//!   records shipped to a SIEM and then dropped while it is down. Every metric selector of
//!   alerts.yml and of the dashboard matches a series of its `/stats/prometheus?usedonly` (label
//!   values of `=` matchers included).
//! - A real Prometheus scrapes that Envoy every second with prometheus.yml rendered for it and the
//!   rules loaded: the shieldwall series are queryable, every rule is healthy after evaluating
//!   the real series, and the alerts whose condition holds become pending.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p shieldwall

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shieldwall_e2e::prometheus::{
    dashboard_exprs, observability_dir, parse_exposition, prometheus_tool, rule_exprs, selectors,
    Selector, Series,
};
use shieldwall_e2e::{
    free_port, gateway_chain, http, keys, render, scratch_dir, wasm_path, Cluster, Echo, Envoy,
    EnvoyConfig, Idp, IdpOptions, Prometheus, SiemReceiver, WasmFilter,
};

const PREFIXES: [&str; 2] = ["shieldwall_", "envoy_"];

fn read(name: &str) -> String {
    let path = observability_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("grafana-dashboard.json is not JSON: {e}"))
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(prometheus_tool("promtool"))
        .args(args)
        .current_dir(observability_dir())
        .output()
        .unwrap_or_else(|e| panic!("run promtool: {e}"));
    let text = shieldwall_e2e::output_text(&out);
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules() {
    let out = promtool(&["check", "rules", "alerts.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_unit_tests_pass_and_cover_every_alert() {
    let out = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");

    let rules = read("alerts.yml");
    let tests = read("alerts_test.yml");
    // Each alert's block: from `- alert:` to the next rule.
    let blocks: Vec<&str> = rules
        .split("\n  - ")
        .filter(|b| b.starts_with("alert:"))
        .collect();
    assert!(blocks.len() >= 8, "alerts.yml has {} alerts", blocks.len());
    for block in blocks {
        let name = block["alert:".len()..]
            .lines()
            .next()
            .unwrap_or_default()
            .trim();
        for field in ["for:", "severity:", "summary:", "description:"] {
            assert!(block.contains(field), "alert {name} has no {field}");
        }
        // A test where it fires: an `alertname: <name>` entry whose exp_alerts is not empty.
        let fires = tests.split("  - eval_time:").any(|case| {
            case.contains(&format!("alertname: {name}\n"))
                && case.contains("- exp_labels:")
                && !case.contains("exp_alerts: []")
        });
        assert!(fires, "alerts_test.yml has no case where {name} fires");
        // And one where it stays silent: a quiet instance in that test's series (gw-b), or an
        // explicit empty expectation.
        let quiet = tests.split("\n- name:").any(|test| {
            test.contains(&format!("alertname: {name}\n"))
                && (test.contains("instance=\"gw-b\"") || test.contains("exp_alerts: []"))
        });
        assert!(quiet, "alerts_test.yml has no quiet series for {name}");
    }
}

#[test]
fn the_dashboard_is_an_importable_grafana_dashboard() {
    let d = dashboard();
    let inputs = d["__inputs"].as_array().cloned().unwrap_or_default();
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
            && i["type"] == "datasource"
            && i["pluginId"] == "prometheus"),
        "no DS_PROMETHEUS data source input: {inputs:?}"
    );
    let version = d["schemaVersion"].as_u64().unwrap_or_default();
    assert!((36..=41).contains(&version), "schemaVersion {version}");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["uid"].as_str().is_some_and(|t| !t.is_empty()));
    let mut ids = BTreeSet::new();
    let mut panels = 0;
    for panel in d["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            continue;
        }
        panels += 1;
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("a panel without id: {panel}"));
        assert!(ids.insert(id), "panel id {id} twice");
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {id} does not use the data source input"
        );
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "panel {id} has no query");
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "panel {id}: {t}"
            );
            assert_eq!(
                t["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {id}: {t}"
            );
        }
        for key in ["x", "y", "w", "h"] {
            assert!(panel["gridPos"][key].is_u64(), "panel {id} gridPos.{key}");
        }
    }
    assert!(panels >= 8, "{panels} panels");
}

/// Every selector of the rules and of the dashboard.
fn all_selectors() -> Vec<(String, Selector)> {
    let mut out = Vec::new();
    for expr in rule_exprs(&read("alerts.yml")) {
        for s in selectors(&expr, &PREFIXES) {
            out.push(("alerts.yml".to_owned(), s));
        }
    }
    for expr in dashboard_exprs(&dashboard()) {
        for s in selectors(&expr, &PREFIXES) {
            out.push(("grafana-dashboard.json".to_owned(), s));
        }
    }
    out
}

/// Whether a series of `series` has the selector's name and its exact (`=`) label values. The
/// other operators select among existing series and are not checked.
fn matches(selector: &Selector, series: &[Series]) -> bool {
    series.iter().any(|s| {
        s.name == selector.name
            && selector
                .matchers
                .iter()
                .filter(|(_, op, _)| op == "=")
                .all(|(label, _, value)| s.label(label) == Some(value.as_str()))
    })
}

fn entry<'a>(chain: &'a mut [Value], filter: &str) -> &'a mut Value {
    chain
        .iter_mut()
        .find(|e| e["filter"] == filter)
        .map(|e| &mut e["config"])
        .unwrap_or_else(|| panic!("gateway.yaml's chain has no {filter}"))
}

/// An Ed25519 signing key (PKCS#8 PEM) for identity-exchange, made by openssl.
fn signing_key() -> String {
    let dir = scratch_dir("observability-key");
    let (pem, _) = keys::ed25519(&dir, "key");
    let _ = std::fs::remove_dir_all(dir);
    pem
}

/// The gateway's one-module chain in a real Envoy with the stats tags, plus what makes every
/// event of the rules happen: identity-exchange after the gateway's filters, a second jwt-auth
/// provider whose JWKS cluster has nothing listening, a global rate limit whose service is down,
/// failure budgets small enough to spend, and audit-log's HTTP sink to `siem` with a buffer of
/// two records (so that records are dropped while the SIEM is down).
fn start_gateway(echo: &Echo, idp: &Idp, siem: &SiemReceiver, dead_port: u16) -> Envoy {
    let mut chain = gateway_chain(idp.port());
    entry(&mut chain, "audit-log")["sinks"]["http"] = json!({
        "cluster": "siem", "uri": format!("http://127.0.0.1:{}/ingest", siem.port()),
        "batch_max_records": 1, "buffer_max_records": 2, "flush_interval_ms": 50,
        "timeout_ms": 500, "retry_initial_backoff_ms": 100, "retry_max_backoff_ms": 500
    });
    let jwt = entry(&mut chain, "jwt-auth");
    jwt["providers"]["partner"] = json!({
        "issuer": "https://partner.example",
        "remote_jwks": {"cluster": "partner-jwks", "uri": format!("http://127.0.0.1:{dead_port}/jwks"),
                        "timeout_ms": 500, "cache_duration_s": 300, "refetch_min_interval_s": 1}
    });
    let rules = jwt["rules"].as_array_mut().expect("jwt-auth rules");
    rules.insert(
        0,
        json!({"match": {"prefix": "/partner/"}, "requires": {"provider": "partner"}}),
    );
    jwt["failed_verification_budget"] = json!({"failures": 1, "per": "minute", "burst": 3});
    entry(&mut chain, "token-introspection")["failed_verification_budget"] =
        json!({"failures": 1, "per": "minute", "burst": 3});
    entry(&mut chain, "rate-limit")["global"] = json!({
        "cluster": "ratelimit", "domain": "edge", "timeout_ms": 200, "failure_mode": "allow"
    });
    chain.push(json!({"filter": "identity-exchange", "config": {
        "spiffe_id": "spiffe://{tenant}.bank.example/client/{client_id}",
        "token": {"issuer": "https://gateway.bank.example", "audience": "{tenant}", "ttl_s": 300,
                  "alg": "EdDSA", "keys": [{"kid": "k1", "private_key_env": "SIGNING_KEY"}]},
        "rules": [{"match": {"prefix": "/healthz"}, "exchange": "skip"},
                  {"match": {"prefix": "/tenants/"}}]
    }}));
    let mut config = EnvoyConfig::new(echo.port())
        .cluster(Cluster::new("idp", idp.port()))
        .cluster(Cluster::new("partner-jwks", dead_port))
        .cluster(Cluster::new("ratelimit", dead_port).http2())
        .cluster(Cluster::new("siem", siem.port()))
        .filter(
            WasmFilter::new(
                wasm_path("shieldwall"),
                "shieldwall",
                json!({ "chain": chain }).to_string(),
            )
            .env("IDP_INTROSPECTION_SECRET", "gateway-secret")
            .env("AUDIT_CHAIN_KEY", "0123456789abcdef0123456789abcdef")
            .env("SIGNING_KEY", signing_key()),
        );
    config.extra_args.push("--config-yaml".into());
    config.extra_args.push(read("stats-tags.yaml"));
    Envoy::start(config)
}

fn scrape(envoy: &Envoy) -> String {
    envoy.settle_metrics();
    let resp = http::request(
        envoy.admin_addr(),
        "GET",
        "/stats/prometheus?usedonly",
        &[],
        b"",
    )
    .unwrap_or_else(|e| panic!("admin /stats/prometheus: {e}"));
    assert_eq!(resp.status, 200, "{resp}");
    resp.text()
}

/// Real traffic of every kind the rules and the dashboard count.
/// Returns the reader's token and a forged one, for the traffic that goes on while Prometheus
/// scrapes.
fn traffic(envoy: &Envoy, idp: &mut Idp, siem: &mut SiemReceiver) -> (String, String) {
    let reader = idp.demo_token("orders-reader"); // orders:read, tenant a, tier free
    let writer = idp.demo_token("orders-writer"); // orders:write too, tier gold
    let opaque = |idp: &Idp| {
        idp.token(
            "orders-reader",
            "orders-reader-secret",
            Some("orders:read"),
            Some("urn:shieldwall:orders-api:opaque"),
        )
    };
    let opaque_used = opaque(idp);
    let opaque_later = opaque(idp);
    let check = |what: &str, resp: shieldwall_e2e::Response, want: u16| {
        assert_eq!(resp.status, want, "{what}: {resp}\n{}", envoy.log());
    };

    check("healthz", envoy.get("/healthz", &[]), 200);
    for _ in 0..2 {
        // jwt-auth allows, identity-exchange mints then serves its cache, audit-log records.
        check(
            "reader",
            envoy.get_with_token("/tenants/a/orders/1", &reader),
            200,
        );
    }
    // audit-log's sink ships these records; then the SIEM goes down, and the records of the
    // requests below overflow the sink's buffer of two: dropped.
    assert!(
        siem.wait_for_lines(1, Duration::from_secs(20)),
        "the SIEM got no records: {:?}\n{}",
        siem.batches(),
        envoy.log()
    );
    siem.down();
    check("no token", envoy.get("/tenants/a/orders/1", &[]), 401);
    check(
        "other tenant",
        envoy.get_with_token("/tenants/b/orders/1", &reader),
        403,
    );
    for _ in 0..2 {
        // token-introspection: a callout, then its cache.
        check(
            "opaque",
            envoy.get_with_token("/tenants/a/orders/1", &opaque_used),
            200,
        );
    }
    let auth = format!("Bearer {writer}");
    check(
        "unknown field",
        envoy.request(
            "POST",
            "/tenants/a/orders",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            br#"{"customer": {"name": "x"}, "items": [{"sku": "a", "qty": 1}], "discount": 100}"#,
        ),
        400,
    );
    // The reader's tier (free) has a burst of 20: the first 429 comes before 60 requests.
    let mut limited = false;
    for _ in 0..60 {
        let r = envoy.get_with_token("/tenants/a/orders/1", &reader);
        if r.status == 429 {
            limited = true;
            break;
        }
        check("under the limit", r, 200);
    }
    assert!(limited, "no 429 from rate-limit");

    // The IdP goes away: a token never introspected cannot be checked (503).
    idp.stop();
    check(
        "idp down",
        envoy.get_with_token("/tenants/a/orders/2", &opaque_later),
        503,
    );
    idp.restart();

    // Unknown opaque tokens from one address: refused (401) until the address's introspection
    // failure budget (a burst of 3) is spent, then 429 too_many_failed_verifications.
    let statuses: Vec<u16> = (0..6)
        .map(|i| {
            let guess = format!("guessed-token-{i}");
            envoy.get_with_token("/tenants/a/orders/1", &guess).status
        })
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429) && statuses.last() == Some(&429),
        "guessed tokens: {statuses:?}\n{}",
        envoy.log()
    );

    // Forged signatures from one address: 401 until jwt-auth's budget (a burst of 3) is spent,
    // then 429. Last, as the address's budget stays spent for a while.
    let at = reader.rfind('.').unwrap() + 5;
    let mut forged = reader.clone();
    let swap = if &reader[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, swap);
    let statuses: Vec<u16> = (0..6)
        .map(|_| envoy.get_with_token("/tenants/a/orders/1", &forged).status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429) && statuses.last() == Some(&429),
        "forged tokens: {statuses:?}\n{}",
        envoy.log()
    );
    (reader, forged)
}

#[test]
fn rules_and_dashboard_use_only_series_a_real_envoy_exports_and_prometheus_evaluates_them() {
    let echo = Echo::start();
    let mut idp = Idp::start(IdpOptions::default());
    let dead_port = free_port(); // nothing listens: the partner JWKS and the rate-limit service
    let mut siem = SiemReceiver::start();
    let envoy = start_gateway(&echo, &idp, &siem, dead_port);
    let (reader, forged) = traffic(&envoy, &mut idp, &mut siem);

    // Envoy's export, as Prometheus scrapes it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let series = loop {
        let series = parse_exposition(&scrape(&envoy));
        let missing: Vec<String> = all_selectors()
            .into_iter()
            .filter(|(_, s)| !matches(s, &series))
            .map(|(file, s)| format!("{file}: {s:?}"))
            .collect();
        if missing.is_empty() {
            break series;
        }
        // The JWKS fetch of the partner provider is retried in the background: give it time.
        if Instant::now() > deadline {
            let shieldwall: Vec<String> = series
                .iter()
                .filter(|s| s.name.starts_with("shieldwall_"))
                .map(|s| format!("{} {:?}", s.name, s.labels))
                .collect();
            panic!(
                "selectors without a series in Envoy's /stats/prometheus:\n{}\n--- shieldwall series ---\n{}",
                missing.join("\n"),
                shieldwall.join("\n")
            );
        }
        thread::sleep(Duration::from_millis(500));
    };
    // The stats tags did their work: no flat per-reason names.
    let flat: Vec<&String> = series
        .iter()
        .map(|s| &s.name)
        .filter(|n| {
            n.starts_with("shieldwall_") && (n.contains("_denied_") || n.contains("_rule_per_"))
        })
        .collect();
    assert!(flat.is_empty(), "untagged names: {flat:?}");
    // What README.md says of the names: no `envoy_` prefix and no `wasmcustom` on wasm metrics,
    // counters, gauges and histograms with their Prometheus types, and wasm metrics tagged in
    // /stats/prometheus keep their full names in /stats.
    // A histogram's values are merged at Envoy's stats flush (every 5 s by default): it shows up
    // in /stats/prometheus?usedonly after the first flush that follows its first value.
    let histogram = "# TYPE shieldwall_token_introspection_callout_latency_ms histogram";
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut text = scrape(&envoy);
    while !text.lines().any(|l| l == histogram) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(500));
        text = scrape(&envoy);
    }
    for line in [
        "# TYPE shieldwall_jwt_auth_denied counter",
        "# TYPE shieldwall_jwt_auth_jwks_keys gauge",
        histogram,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(
        !text.contains("envoy_shieldwall") && !text.contains("wasmcustom"),
        "wasm metrics with a prefix"
    );
    assert!(
        envoy
            .stat("wasmcustom.shieldwall.jwt_auth.denied.missing_token")
            .is_some_and(|n| n >= 1),
        "/stats keeps the full name"
    );

    // Prometheus scraping this Envoy every second, with the rules: prometheus.yml rendered as
    // scripts/gateway.sh renders it, with this Envoy as both gateways and the mesh, and its 5 s
    // intervals made 1 s.
    let port = envoy.admin_addr().port().to_string();
    let rules_file = observability_dir().join("alerts.yml");
    let template = read("prometheus.yml");
    let fast = template.replace("_interval: 5s", "_interval: 1s");
    assert_eq!(
        fast.matches("_interval: 1s").count(),
        2,
        "prometheus.yml's scrape_interval and evaluation_interval are 5s"
    );
    let config = render(
        &fast,
        &[
            ("RULES_FILE", &rules_file.to_string_lossy()),
            ("ADMIN_PORT", &port),
            ("ADMIN2_PORT", &port),
            ("MESH_ADMIN_PORT", &port),
        ],
    );
    // Traffic goes on while Prometheus scrapes, so that rates are not zero: the health check
    // (rate-limit's per-address rule calls the dead rate-limit service; its record cannot be
    // shipped to the SIEM that is down), the partner route (its JWKS fetch fails again), forged
    // tokens (refused, the budget stays spent).
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let stop = Arc::clone(&stop);
        let addr = envoy.addr();
        thread::spawn(move || {
            let reader = format!("Bearer {reader}");
            let forged = format!("Bearer {forged}");
            while !stop.load(Ordering::Relaxed) {
                for (path, auth) in [
                    ("/healthz", None),
                    ("/partner/reports", Some(&reader)),
                    ("/tenants/a/orders/1", Some(&forged)),
                ] {
                    let headers: Vec<(&str, &str)> =
                        auth.iter().map(|a| ("authorization", a.as_str())).collect();
                    let _ = http::request(addr, "GET", path, &headers, b"");
                }
                thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let prometheus = Prometheus::start(&config);
    let started = Instant::now();
    let wait = |what: &str, pred: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pred() {
            assert!(
                Instant::now() < deadline,
                "prometheus: {what} after 60 s\n--- prometheus log ---\n{}",
                prometheus.log()
            );
            thread::sleep(Duration::from_millis(250));
        }
    };
    wait("no sample of shieldwall_jwt_auth_allowed", &|| {
        !prometheus
            .query("shieldwall_jwt_auth_allowed{job=\"shieldwall-gateway\"}")
            .is_empty()
    });
    // Every selector of the rules and the dashboard has series in Prometheus too.
    for (file, s) in all_selectors() {
        let exact: Vec<String> = s
            .matchers
            .iter()
            .filter(|(_, op, _)| op == "=")
            .map(|(l, _, v)| format!("{l}={}", serde_json::to_string(v).unwrap()))
            .collect();
        let q = format!("{}{{{}}}", s.name, exact.join(","));
        assert!(
            !prometheus.query(&q).is_empty(),
            "{file}: no series for {q} in Prometheus"
        );
    }
    // Rules loaded and evaluated against these series without error; a rate needs two scrapes,
    // so wait until the alerts whose conditions hold are at least pending.
    let rules = || prometheus.api("/api/v1/rules")["data"]["groups"].clone();
    wait("rules not all evaluated with health ok", &|| {
        let groups = rules();
        let all: Vec<&Value> = groups
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        all.len() >= 13 && all.iter().all(|r| r["health"] == "ok")
    });
    let active = |name: &str| {
        prometheus.api("/api/v1/alerts")["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["labels"]["alertname"] == name && a["labels"]["job"] == "shieldwall-gateway")
    };
    for name in [
        "ShieldwallRateLimitServiceErrors",
        "ShieldwallRateLimitClusterUnreachable",
        "ShieldwallJwksRefreshFailing",
        "ShieldwallVerificationBudgetExhausted",
        "ShieldwallAuditShippingStalled",
        "ShieldwallAuditRecordsDropped",
    ] {
        wait(&format!("{name} not pending"), &|| active(name));
    }
    // Healthy after evaluating the real series (a rule that errors, e.g. on series that collide
    // once the metric name is dropped, shows health "err" with its lastError).
    for group in rules().as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            assert_eq!(rule["health"], "ok", "{rule}");
        }
    }
    eprintln!(
        "prometheus: rules healthy and alerts pending {:.1} s after start",
        started.elapsed().as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    let _ = background.join();
    let pid = prometheus.pid();
    drop(prometheus);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "prometheus {pid} still runs after drop"
    );
}
