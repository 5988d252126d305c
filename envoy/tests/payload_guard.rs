//! payload-guard in a real Envoy in front of the echo upstream, with the orders API's document
//! (`envoy/openapi/orders.yaml`): a valid order passes whole; an unknown field, a wrong type, a
//! body too large (declared, and streamed in chunks), SQL injection in the comment and a NoSQL
//! operator are refused with the documented replies, and none of them reaches the upstream.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p payload-guard

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use shieldwall_e2e::{repo_root, wasm_path, Echo, Envoy, EnvoyConfig, WasmFilter};

/// payload-guard as its own module or (`one_module`) as the one stage of shieldwall.wasm.
fn start(echo: &Echo, one_module: bool) -> Envoy {
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
    Envoy::start(EnvoyConfig::new(echo.port()).filter(filter))
}

fn post(envoy: &Envoy, body: &str) -> shieldwall_e2e::Response {
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

    let refused = |r: &shieldwall_e2e::Response, status: u16| -> Value {
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
    assert_eq!(stat(&envoy, "denied.payload_too_large"), Some(1));
}
