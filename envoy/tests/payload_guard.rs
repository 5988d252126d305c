//! payload-guard in a real Envoy in front of the echo upstream, with the orders API's document
//! (`envoy/openapi/orders.yaml`): a valid order passes whole; an unknown field, a wrong type, a
//! body too large (declared, and streamed in chunks), SQL injection in the comment and a NoSQL
//! operator are refused with the documented replies, and none of them reaches the upstream, not
//! even its headers: payload-guard holds the headers of a request with a body until the body is
//! accepted (the echo records every request head it reads). A request without a body is not held.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p payload-guard -p shieldwall -p rate-limit

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use shieldwall_e2e::config::UPSTREAM_CLUSTER;
use shieldwall_e2e::{
    example_config, repo_root, validate_config, wasm_path, Echo, Envoy, EnvoyConfig, Response,
    Route, WasmFilter,
};

/// Envoy's buffer filter after the module, as the README asks for: it holds the request headers
/// until the body has passed payload-guard, so the upstream sees nothing of a refused request.
fn buffer_filter(max_request_bytes: u64) -> String {
    format!(
        "- name: envoy.filters.http.buffer\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\n    max_request_bytes: {max_request_bytes}\n"
    )
}

/// payload-guard as its own module or (`one_module`) as the one stage of shieldwall.wasm,
/// followed by the buffer filter. Its `max_request_bytes` is well above `max_body_bytes` (8 KiB):
/// at an equal value Envoy's own 413 (plain text) can come before payload-guard's.
fn start(echo: &Echo, one_module: bool) -> Envoy {
    Envoy::start(envoy_config(echo, one_module).native_filter(buffer_filter(64 << 10)))
}

/// The same without the buffer filter.
fn envoy_config(echo: &Echo, one_module: bool) -> EnvoyConfig {
    let doc = std::fs::read_to_string(repo_root().join("envoy/openapi/orders.yaml"))
        .unwrap_or_else(|e| panic!("envoy/openapi/orders.yaml: {e}"));
    let config = json!({"openapi": doc, "limits": {"max_body_bytes": 8192}});
    let filter = if one_module {
        let chain = json!({"chain": [{"filter": "payload-guard", "config": config}]});
        WasmFilter::new(wasm_path("shieldwall"), "shieldwall", chain.to_string())
    } else {
        WasmFilter::new(
            wasm_path("payload-guard"),
            "payload-guard",
            config.to_string(),
        )
    };
    EnvoyConfig::new(echo.port()).filter(filter)
}

fn post(envoy: &Envoy, body: &str) -> Response {
    envoy.request(
        "POST",
        "/tenants/a/orders",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

fn stat(envoy: &Envoy, event: &str) -> Option<u64> {
    envoy.stat(&format!("wasmcustom.shieldwall.payload_guard.{event}"))
}

const VALID: &str = r#"{"customer":{"name":"Ada O'Brien","email":"ada@example.com"},"items":[{"sku":"BOOK-42","qty":2}],"currency":"EUR","comment":"Leave it with the neighbour at number 12."}"#;

#[test]
fn orders_api_in_envoy() {
    orders_api(false);
}

#[test]
fn orders_api_in_envoy_through_the_one_module() {
    orders_api(true);
}

fn orders_api(one_module: bool) {
    let echo = Echo::start();
    let envoy = start(&echo, one_module);

    // A valid order reaches the echo whole.
    let r = post(&envoy, VALID);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let echoed = r.json();
    assert_eq!(echoed["body"], VALID);
    let hits = echo.hits();

    let refused = |r: &Response, status: u16| -> Value {
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        r.json()
    };

    // An unknown field.
    let body = refused(
        &post(
            &envoy,
            r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"discount":100}"#,
        ),
        400,
    );
    assert_eq!(
        body,
        json!({"error": "invalid_request",
               "error_description": "the request body does not match the API's schema",
               "violations": [{"in": "body", "pointer": "", "rule": "additionalProperties"}]})
    );
    // A wrong type.
    let body = refused(
        &post(
            &envoy,
            r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":"2"}]}"#,
        ),
        400,
    );
    assert_eq!(
        body["violations"],
        json!([{"in": "body", "pointer": "/items/0/qty", "rule": "type"}])
    );
    // Too large, by Content-Length: refused before the body is read.
    let big = format!(
        r#"{{"customer":{{"name":"x"}},"items":[{{"sku":"BOOK-42","qty":1}}],"comment":"{}"}}"#,
        "a".repeat(9000)
    );
    let body = refused(&post(&envoy, &big), 413);
    assert_eq!(body["error"], "payload_too_large");
    // SQL injection in the comment.
    let body = refused(
        &post(
            &envoy,
            r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"comment":"1' OR '1'='1"}"#,
        ),
        403,
    );
    assert_eq!(
        body,
        json!({"error": "injection_detected",
               "error_description": "the request looks like SQL injection",
               "violations": [{"in": "body", "pointer": "/comment", "rule": "sqli"}]})
    );
    // A NoSQL operator where a name is expected.
    let body = refused(
        &post(
            &envoy,
            r#"{"customer":{"name":{"$ne":null}},"items":[{"sku":"BOOK-42","qty":1}]}"#,
        ),
        403,
    );
    assert_eq!(
        body["violations"],
        json!([{"in": "body", "pointer": "/customer/name", "rule": "nosql"}])
    );
    // Duplicate keys.
    let body = refused(
        &post(
            &envoy,
            r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"items":[]}"#,
        ),
        400,
    );
    assert_eq!(
        body["violations"],
        json!([{"in": "body", "offset": 61, "rule": "duplicate_key"}])
    );
    // No such operation; another method on a known path.
    assert_eq!(
        refused(&envoy.get("/tenants/a/invoices", &[]), 404)["error"],
        "unknown_operation"
    );
    let r = envoy.request("PUT", "/tenants/a/orders/7", &[], b"");
    assert_eq!(refused(&r, 405)["error"], "method_not_allowed");
    assert_eq!(r.header("allow"), Some("DELETE, GET, HEAD"));

    assert_eq!(echo.hits(), hits, "a refused request reached the upstream");
    // Not even the headers of a refused request reached it: they were held with the body.
    assert_eq!(echo.heads(), ["POST /tenants/a/orders"]);
    assert_eq!(stat(&envoy, "allowed"), Some(1));
    assert_eq!(stat(&envoy, "denied.invalid_request"), Some(3));
    assert_eq!(stat(&envoy, "denied.injection_detected"), Some(2));
    assert_eq!(stat(&envoy, "denied.payload_too_large"), Some(1));
    assert!(
        envoy.wait_for_log(Duration::from_secs(5), |l| l
            .contains("payload-guard: refused POST /tenants/a/orders (createOrder) with 403 injection_detected (sqli body /comment)")),
        "{}",
        envoy.log()
    );
}

/// A body streamed without a length is counted as it arrives and refused once past the limit.
#[test]
fn a_chunked_body_past_the_limit_is_refused_while_streaming() {
    chunked_past_the_limit(false);
}

#[test]
fn the_one_module_refuses_a_chunked_body_past_the_limit_too() {
    chunked_past_the_limit(true);
}

fn chunked_past_the_limit(one_module: bool) {
    let echo = Echo::start();
    let envoy = start(&echo, one_module);
    let mut conn = TcpStream::connect(envoy.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /tenants/a/orders HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        envoy.addr()
    );
    conn.write_all(head.as_bytes()).unwrap();
    // 1 KiB chunks of spaces (valid JSON whitespace) until Envoy answers, at most 1 MiB.
    let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
    let mut sent = 0usize;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // After each chunk, a short look for Envoy's answer.
    conn.set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    while sent < 1 << 20 {
        if conn.write_all(chunk.as_bytes()).is_err() {
            break; // Envoy answered and closed
        }
        sent += 1024;
        if let Ok(n) = conn.read(&mut buf) {
            reply.extend_from_slice(&buf[..n]);
            break;
        }
    }
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = conn.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"error\":\"payload_too_large\""), "{text}");
    assert!(
        sent < 256 * 1024,
        "{sent} bytes were sent before the refusal"
    );
    assert_eq!(echo.hits(), 0);
    assert_eq!(
        echo.heads(),
        Vec::<String>::new(),
        "the upstream saw the headers of the refused request"
    );
    assert_eq!(stat(&envoy, "denied.payload_too_large"), Some(1));
}

/// A request written by hand on its own connection (closed after the answer): the head, then
/// the body in two parts with a pause between them. Returns Envoy's answer (status line, headers
/// and body as text) and the request heads the echo had seen during the pause.
fn slow_post(envoy: &Envoy, echo: &Echo, body: &str, pause: Duration) -> (String, Vec<String>) {
    let mut conn = TcpStream::connect(envoy.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /tenants/a/orders HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        envoy.addr(),
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    conn.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(pause);
    let seen = echo.heads();
    conn.write_all(rest.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    (String::from_utf8_lossy(&reply).into_owned(), seen)
}

/// With the buffer filter after payload-guard, the headers of a request with a body wait in Envoy
/// until payload-guard has the whole body and accepts it; a refused one never reaches the
/// upstream; a request without a body is not held.
#[test]
fn headers_are_held_until_the_body_is_accepted() {
    held_until_accepted(false);
}

#[test]
fn the_one_module_holds_the_headers_until_the_body_is_accepted_too() {
    held_until_accepted(true);
}

fn held_until_accepted(one_module: bool) {
    let echo = Echo::start();
    let envoy = start(&echo, one_module);
    let pause = Duration::from_millis(500);

    // Half a valid order, a pause: the upstream has seen nothing; the rest: it gets it all.
    let (reply, during) = slow_post(&envoy, &echo, VALID, pause);
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{reply}\n{}",
        envoy.log()
    );
    assert_eq!(
        during,
        Vec::<String>::new(),
        "the headers went on before the body"
    );
    assert!(reply.contains("Leave it with the neighbour"), "{reply}");
    assert_eq!(echo.heads(), ["POST /tenants/a/orders"]);

    // An invalid body and an injection, sent the same way: refused, and nothing upstream.
    let invalid = r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":"2"}]}"#;
    let (reply, _) = slow_post(&envoy, &echo, invalid, pause);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let injected =
        r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"comment":"1' OR '1'='1"}"#;
    let (reply, _) = slow_post(&envoy, &echo, injected, pause);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("injection_detected"), "{reply}");
    assert_eq!(echo.heads(), ["POST /tenants/a/orders"]);

    // Without a body (end of stream with the headers) nothing is held: were it held, no body
    // callback would ever let it go and the request would time out.
    let r = envoy.get("/tenants/a/orders/7", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        echo.heads(),
        ["POST /tenants/a/orders", "GET /tenants/a/orders/7"]
    );
    assert_eq!(stat(&envoy, "allowed"), Some(2));
}

/// Without the buffer filter the headers go on as soon as payload-guard has read them (a
/// proxy-wasm filter cannot pause them and still be handed the body): a refused body is still
/// never passed on, but the upstream has seen its request's headers.
#[test]
fn without_the_buffer_filter_the_upstream_sees_the_headers_of_a_refused_body() {
    let echo = Echo::start();
    let envoy = Envoy::start(envoy_config(&echo, false));
    let injected =
        r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"comment":"1' OR '1'='1"}"#;
    let (reply, during) = slow_post(&envoy, &echo, injected, Duration::from_millis(500));
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert_eq!(during, ["POST /tenants/a/orders"]);
    assert_eq!(echo.hits(), 0, "the refused body reached the upstream");
}

/// The one module with a stage after payload-guard (rate-limit, three requests a minute per
/// client) and the buffer filter after the module: the later stage runs at the headers, as it
/// would as its own module, and the upstream still sees only accepted requests.
#[test]
fn the_one_module_with_a_later_stage_holds_refused_requests_from_the_upstream() {
    let echo = Echo::start();
    let doc = std::fs::read_to_string(repo_root().join("envoy/openapi/orders.yaml")).unwrap();
    let limits = json!({"rules": [{"name": "orders", "match": {"prefix": "/"},
        "key": {"source": "client_ip"}, "limit": {"requests": 3, "per": "minute", "burst": 3}}],
        "headers": "draft"});
    let chain = json!({"chain": [
        {"filter": "payload-guard", "config": {"openapi": doc}},
        {"filter": "rate-limit", "config": limits}
    ]});
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .filter(WasmFilter::new(
                wasm_path("shieldwall"),
                "shieldwall",
                chain.to_string(),
            ))
            .native_filter(buffer_filter(1 << 20)),
    );
    let injected =
        r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"comment":"1' OR '1'='1"}"#;
    let (reply, during) = slow_post(&envoy, &echo, VALID, Duration::from_millis(300));
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{reply}\n{}",
        envoy.log()
    );
    assert!(
        reply.to_ascii_lowercase().contains("\r\nratelimit:"),
        "{reply}"
    );
    assert_eq!(during, Vec::<String>::new());
    let (reply, _) = slow_post(&envoy, &echo, injected, Duration::from_millis(300));
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert_eq!(post(&envoy, VALID).status, 200);
    let r = post(&envoy, VALID);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(
        echo.heads(),
        ["POST /tenants/a/orders", "POST /tenants/a/orders"]
    );
    assert_eq!(
        envoy.stat("wasmcustom.shieldwall.payload_guard.denied.injection_detected"),
        Some(1)
    );
}

/// Envoy holds the body for payload-guard in its own buffer, whose limit (the route's
/// `request_body_buffer_limit`, by default the listener's per-connection buffer limit, 1 MiB)
/// comes first: with `max_body_bytes` above it, Envoy answers a larger body with its own 413
/// (plain text) before payload-guard sees its end. The route's limit, or the buffer filter's
/// `max_request_bytes` (which sets the request's buffer limit), let it through to payload-guard.
#[test]
fn envoys_buffer_limit_must_cover_max_body_bytes() {
    let doc = std::fs::read_to_string(repo_root().join("envoy/openapi/orders.yaml")).unwrap();
    let config = json!({"openapi": doc, "limits": {"max_body_bytes": 4 << 20}}).to_string();
    // A valid order followed by 1.5 MiB of JSON whitespace.
    let body = format!("{VALID}{}", " ".repeat(3 << 19));
    for setup in ["default", "route", "buffer"] {
        let echo = Echo::start();
        let mut envoy_config = EnvoyConfig::new(echo.port()).filter(WasmFilter::new(
            wasm_path("payload-guard"),
            "payload-guard",
            config.clone(),
        ));
        match setup {
            "route" => {
                envoy_config = envoy_config.route(
                    Route::new("/tenants/", UPSTREAM_CLUSTER).request_body_buffer_limit(4 << 20),
                )
            }
            "buffer" => envoy_config = envoy_config.native_filter(buffer_filter(4 << 20)),
            _ => {}
        }
        let envoy = Envoy::start(envoy_config);
        let r = post(&envoy, &body);
        if setup == "default" {
            // Envoy's answer, not payload-guard's: it never saw the end of the body.
            assert_eq!(r.status, 413, "{}", r.text());
            assert_eq!(r.header("content-type"), Some("text/plain"));
            assert_eq!(envoy.stat("http.ingress.downstream_rq_too_large"), Some(1));
            assert_eq!(stat(&envoy, "allowed"), None);
            assert_eq!(echo.hits(), 0);
        } else {
            assert_eq!(r.status, 200, "{setup}: {}", r.text());
            assert_eq!(r.json()["body_len"], body.len(), "{setup}");
            assert_eq!(stat(&envoy, "allowed"), Some(1), "{setup}");
            assert_eq!(echo.heads(), ["POST /tenants/a/orders"], "{setup}");
        }
    }
}

/// The example configuration (payload-guard, then the buffer filter, then the router) is one
/// Envoy accepts as written, the module's path aside.
#[test]
fn the_example_configuration_is_valid() {
    let text = example_config("payload-guard.yaml");
    assert!(text.contains("envoy.filters.http.buffer"), "{text}");
    let dir = shieldwall_e2e::scratch_dir("payload-guard-example");
    let (ok, log) = validate_config(&dir, &text, &[]);
    assert!(ok, "{log}");
}
