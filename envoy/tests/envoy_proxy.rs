//! A real Envoy, rendered from the templates, proxies to the echo upstream; the guard kills it
//! even when the test panics.

use std::path::Path;
use std::time::Duration;

use shieldwall_e2e::{Cluster, Echo, Envoy, EnvoyConfig, Idp, IdpOptions, Route};

fn process_alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still show its state as `Z`.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

#[test]
fn envoy_proxies_a_request_to_the_echo() {
    let echo = Echo::start();
    let envoy = Envoy::start(EnvoyConfig::new(echo.port()));
    assert_ne!(envoy.port(), 0);

    let resp = envoy.request(
        "POST",
        "/orders/7?verbose=1",
        &[("x-test", "hello"), ("content-type", "text/plain")],
        b"payload",
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(resp.header("server"), Some("envoy"));
    let got = resp.json();
    assert_eq!(got["method"], "POST");
    assert_eq!(got["path"], "/orders/7?verbose=1");
    assert_eq!(got["body"], "payload");
    let headers = &got["headers"];
    assert_eq!(headers["x-test"], "hello");
    assert_eq!(headers["host"], format!("127.0.0.1:{}", envoy.port()));
    assert_eq!(headers["x-forwarded-proto"], "http");
    // The downstream address as Envoy saw it (on some sandboxed hosts loopback peers do not show
    // as 127.0.0.1, so only its presence is asserted).
    assert!(headers["x-forwarded-for"].is_string(), "{got}");
    assert!(headers["x-request-id"].is_string(), "{got}");
    assert_eq!(echo.hits(), 1);

    // The admin API sees it.
    assert_eq!(envoy.stat("cluster.upstream.upstream_rq_200"), Some(1));
    assert!(envoy.stat("http.ingress.downstream_rq_total").unwrap_or(0) >= 1);
    assert!(envoy
        .stats_prometheus()
        .contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"upstream\"} 1"));
    assert!(envoy.wait_for_log(Duration::from_secs(5), |l| l
        .contains("starting main dispatch loop")));
    let access_log = envoy.wait_for_access_log(Duration::from_secs(5), |l| {
        l.contains("POST /orders/7?verbose=1")
    });
    assert!(
        access_log.contains("POST /orders/7?verbose=1"),
        "{access_log}"
    );
}

#[test]
fn two_envoys_run_side_by_side() {
    let echo = Echo::start();
    let a = Envoy::start(EnvoyConfig::new(echo.port()).concurrency(2));
    let b = Envoy::start(EnvoyConfig::new(echo.port()));
    assert_ne!(a.port(), b.port());
    assert_eq!(a.get("/a", &[]).status, 200);
    assert_eq!(b.get("/b", &[]).status, 200);
}

#[test]
fn envoy_is_killed_when_the_test_panics() {
    let echo = Echo::start();
    let mut seen = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let envoy = Envoy::start(EnvoyConfig::new(echo.port()));
        seen = Some((envoy.pid(), envoy.dir().to_path_buf()));
        assert!(process_alive(envoy.pid()));
        panic!("a failing assertion in the middle of a test");
    }));
    assert!(outcome.is_err());
    let (pid, dir) = seen.expect("envoy started");
    assert!(
        !process_alive(pid),
        "envoy {pid} still runs after the panicking scope"
    );
    // After a panic the files stay for debugging; this test cleans them up itself.
    assert!(dir.join("envoy.log").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn envoy_is_killed_on_drop_and_its_files_removed() {
    let echo = Echo::start();
    let envoy = Envoy::start(EnvoyConfig::new(echo.port()));
    let (pid, dir) = (envoy.pid(), envoy.dir().to_path_buf());
    drop(envoy);
    assert!(!process_alive(pid));
    assert!(!Path::new(&dir).exists());
}

#[test]
fn a_bad_config_fails_to_start_with_the_log() {
    let echo = Echo::start();
    let config = EnvoyConfig::new(echo.port())
        .native_filter("- name: envoy.filters.http.no_such_filter\n  typed_config:\n    \"@type\": type.googleapis.com/google.protobuf.Empty\n");
    let err = match Envoy::try_start(config) {
        Ok(_) => panic!("envoy started with an unknown filter"),
        Err(e) => e,
    };
    assert!(err.reason.contains("exited"), "{err}");
    assert!(
        err.log.contains("no_such_filter") || err.log.contains("google.protobuf.Empty"),
        "{err}"
    );
}

#[test]
fn a_native_filter_given_as_yaml_runs_in_the_chain() {
    let echo = Echo::start();
    let config = EnvoyConfig::new(echo.port()).native_filter(
        "- name: envoy.filters.http.buffer\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\n    max_request_bytes: 16\n",
    );
    let envoy = Envoy::start(config);
    assert_eq!(envoy.request("POST", "/small", &[], b"tiny").status, 200);
    let resp = envoy.request("POST", "/big", &[], &[b'x'; 64]);
    assert_eq!(resp.status, 413, "{resp}");
    assert_eq!(echo.hits(), 1);
}

#[test]
fn envoy_routes_to_the_idp_cluster_with_its_authority() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let config = EnvoyConfig::new(echo.port())
        .cluster(Cluster::new("idp", idp.port()))
        .route(
            Route::new("/idp/", "idp")
                .prefix_rewrite("/")
                .host_rewrite(idp.authority()),
        );
    let envoy = Envoy::start(config);
    let resp = envoy.get("/idp/jwks", &[]);
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(resp.json(), idp.jwks());
    assert_eq!(idp.stats()["/jwks"], 2);
    // Everything else still goes to the echo.
    assert_eq!(envoy.get("/other", &[]).json()["path"], "/other");
}

#[test]
fn a_wasm_filter_entry_reaches_the_v8_runtime() {
    // An empty module (just the wasm header): Envoy accepts the filter's YAML, hands the module
    // to V8, and refuses it for missing the proxy-wasm ABI. Shows the template is what Envoy
    // expects without depending on any filter being built.
    let dir = shieldwall_e2e::scratch_dir("wasm");
    let module = dir.join("empty.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").expect("write module");
    let echo = Echo::start();
    let config = EnvoyConfig::new(echo.port()).filter(shieldwall_e2e::WasmFilter::new(
        &module,
        "empty",
        r#"{"k": "v"}"#,
    ));
    let err = match Envoy::try_start(config) {
        Ok(_) => panic!("envoy started with a module that has no proxy-wasm ABI"),
        Err(e) => e,
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.log
            .contains("Missing or unknown Proxy-Wasm ABI version"),
        "{err}"
    );
    assert!(err.log.contains("Plugin empty failed to load"), "{err}");
}
