//! payload-guard over a mock host: configuration errors, operation lookup, parameters, bodies,
//! injection, rules and shadow mode, with the orders API of the local gateway.

use serde_json::{json, Value};
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Action, RootFilter, StreamFilter};

use crate::filter::PayloadGuard;

const ORDERS: &str = include_str!("../../../envoy/openapi/orders.yaml");

fn config(extra: Value) -> Vec<u8> {
    let mut c = json!({"openapi": ORDERS});
    if let (Some(c), Value::Object(more)) = (c.as_object_mut(), extra) {
        c.extend(more);
    }
    serde_json::to_vec(&c).unwrap()
}

fn root(cfg: &[u8]) -> PayloadGuard {
    let mut host = MockHost::new();
    PayloadGuard::configure(&mut host, cfg).unwrap_or_else(|e| panic!("{e}"))
}

/// What happened to one request: `None` when it went on, else the reply's status and body.
struct Run {
    host: MockHost,
    reply: Option<(u16, Value)>,
    header_action: Action,
}

fn send(
    root: &mut PayloadGuard,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Run {
    let mut hdrs: Vec<(&str, &str)> = headers.to_vec();
    let len;
    if let Some(b) = body {
        len = b.len().to_string();
        if !hdrs.iter().any(|(k, _)| *k == "content-length") {
            hdrs.push(("content-length", &len));
        }
    }
    let mut host = MockHost::request(method, path, &hdrs);
    host.filter_name = PayloadGuard::NAME;
    let mut s = root.new_stream(&mut host, 2);
    let header_action = s.on_request_headers(&mut host, body.is_none());
    if host.local_reply.is_none() {
        if let Some(b) = body {
            host.request_body = b.to_vec();
            let a = s.on_request_body(&mut host, b.len(), true);
            if host.local_reply.is_none() {
                assert_eq!(a, Action::Continue);
            }
        }
    }
    let reply = host.local_reply.clone().map(|r| (r.status, r.json()));
    Run {
        host,
        reply,
        header_action,
    }
}

fn post(root: &mut PayloadGuard, body: &str) -> Run {
    send(
        root,
        "POST",
        "/tenants/a/orders",
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    )
}

const GOOD: &str = r#"{"customer":{"name":"Ada O'Brien","email":"ada@example.com",
  "address":{"street":"12 Rue de l'Église","city":"Paris","postcode":"75004","country":"FR"}},
  "items":[{"sku":"BOOK-42","qty":2,"price":12.5}],"currency":"EUR",
  "comment":"Please leave it with the concierge, she'll sign for it."}"#;

#[test]
fn a_valid_order_passes_and_is_counted() {
    let mut r = root(&config(json!({})));
    let run = post(&mut r, GOOD);
    assert_eq!(run.reply, None);
    assert_eq!(run.header_action, Action::Continue);
    assert_eq!(run.host.metric("shieldwall.payload_guard.allowed"), 1);
    // A refusal is recorded as the decision, with its reply code as the reason.
    let run = send(&mut r, "GET", "/nothing/here", &[], None);
    let d = shieldwall_core::decision::read(&run.host, "payload_guard").unwrap();
    assert_eq!((d.reason.as_ref(), d.status), ("unknown_operation", 404));
    let run = send(&mut r, "GET", "/tenants/a/orders/42", &[], None);
    assert_eq!(run.reply, None);
    let run = send(
        &mut r,
        "GET",
        "/tenants/a/orders?limit=10&status=open",
        &[],
        None,
    );
    assert_eq!(run.reply, None);
}

#[test]
fn unknown_operations_are_404_and_other_methods_405() {
    let mut r = root(&config(json!({})));
    let run = send(&mut r, "GET", "/nothing/here", &[], None);
    let (status, body) = run.reply.unwrap();
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown_operation");
    assert_eq!(
        run.host
            .metric("shieldwall.payload_guard.denied.unknown_operation"),
        1
    );
    let run = send(&mut r, "PUT", "/tenants/a/orders/42", &[], None);
    let reply = run.host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("DELETE, GET, HEAD"));
    assert_eq!(reply.json()["error"], "method_not_allowed");
    // HEAD is answered as GET when the document has no HEAD.
    assert_eq!(
        send(&mut r, "HEAD", "/tenants/a/orders/42", &[], None).reply,
        None
    );
    // Allowed through when configured so.
    let mut open = root(&config(json!({"unknown_operations": "allow"})));
    assert_eq!(
        send(&mut open, "GET", "/nothing/here", &[], None).reply,
        None
    );
}

#[test]
fn parameters_are_read_as_their_schemas_say() {
    let mut r = root(&config(json!({})));
    let bad = |r: &mut PayloadGuard, path: &str| {
        let run = send(r, "GET", path, &[], None);
        let (status, body) = run.reply.unwrap_or_else(|| panic!("{path} passed"));
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"], "invalid_request");
        body["violations"].clone()
    };
    assert_eq!(
        bad(&mut r, "/tenants/a/orders/0"),
        json!([{"in": "path", "name": "id", "pointer": "", "rule": "minimum"}])
    );
    assert_eq!(bad(&mut r, "/tenants/a/orders/abc")[0]["rule"], "type");
    assert_eq!(bad(&mut r, "/tenants/A_B/orders/1")[0]["rule"], "pattern");
    assert_eq!(
        bad(&mut r, "/tenants/a/orders?limit=1000")[0]["rule"],
        "maximum"
    );
    assert_eq!(
        bad(&mut r, "/tenants/a/orders?status=lost")[0]["rule"],
        "enum"
    );
    assert_eq!(
        bad(&mut r, "/tenants/a/orders?limit=1&limit=2")[0]["rule"],
        "repeated"
    );
    let v = bad(&mut r, "/tenants/a/orders?debug=1");
    assert_eq!(
        v,
        json!([{"in": "query", "pointer": "", "rule": "unknown_parameter"}])
    );
    let mut lax = root(&config(json!({"unknown_query_params": "allow"})));
    assert_eq!(
        send(&mut lax, "GET", "/tenants/a/orders?debug=1", &[], None).reply,
        None
    );
}

#[test]
fn bodies_over_the_limit_are_refused_before_and_while_buffering() {
    let mut r = root(&config(json!({"limits": {"max_body_bytes": 64}})));
    // Content-Length says too much: refused at the headers, nothing buffered.
    let mut host = MockHost::request(
        "POST",
        "/tenants/a/orders",
        &[
            ("content-type", "application/json"),
            ("content-length", "1000000000"),
        ],
    );
    let mut s = r.new_stream(&mut host, 2);
    assert_eq!(s.on_request_headers(&mut host, false), Action::Pause);
    let reply = host.local_reply.clone().unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"], "payload_too_large");
    // Chunked: held while under the limit, refused at the chunk that passes it.
    let mut host = MockHost::request(
        "POST",
        "/tenants/a/orders",
        &[
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
        ],
    );
    let mut s = r.new_stream(&mut host, 3);
    assert_eq!(s.on_request_headers(&mut host, false), Action::Continue);
    assert_eq!(s.on_request_body(&mut host, 40, false), Action::Pause);
    assert!(host.local_reply.is_none());
    assert_eq!(s.on_request_body(&mut host, 80, false), Action::Pause);
    assert_eq!(host.local_reply.clone().unwrap().status, 413);
}

#[test]
fn media_types() {
    let mut r = root(&config(json!({})));
    let run = send(
        &mut r,
        "POST",
        "/tenants/a/orders",
        &[("content-type", "text/plain")],
        Some(GOOD.as_bytes()),
    );
    assert_eq!(run.reply.unwrap().1["error"], "unsupported_media_type");
    let run = send(
        &mut r,
        "POST",
        "/tenants/a/orders",
        &[],
        Some(GOOD.as_bytes()),
    );
    assert_eq!(run.reply.unwrap().0, 415);
    let run = send(
        &mut r,
        "POST",
        "/tenants/a/orders",
        &[("content-type", "application/json; charset=latin1")],
        Some(GOOD.as_bytes()),
    );
    assert_eq!(run.reply.unwrap().0, 415);
    let run = send(
        &mut r,
        "POST",
        "/tenants/a/orders",
        &[("content-type", "Application/JSON; charset=UTF-8")],
        Some(GOOD.as_bytes()),
    );
    assert_eq!(run.reply, None);
    // No body where one is required; a body where the operation takes none.
    let run = send(&mut r, "POST", "/tenants/a/orders", &[], None);
    assert_eq!(run.reply.unwrap().1["violations"][0]["rule"], "required");
    let run = send(
        &mut r,
        "DELETE",
        "/tenants/a/orders/1",
        &[("content-type", "application/json")],
        Some(b"{}"),
    );
    assert_eq!(run.reply.unwrap().1["violations"][0]["rule"], "not_allowed");
}

#[test]
fn schema_violations_name_pointers_and_rules_only() {
    let mut r = root(&config(json!({})));
    let body = r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1000}],"vip":true}"#;
    let (status, reply) = post(&mut r, body).reply.unwrap();
    assert_eq!(status, 400);
    assert_eq!(reply["error"], "invalid_request");
    let v = reply["violations"].as_array().unwrap();
    assert!(
        v.contains(&json!({"in": "body", "pointer": "/items/0/qty", "rule": "maximum"})),
        "{v:?}"
    );
    assert_eq!(v.len(), 1, "{v:?}");
    // An unknown member alone: reported at its object, its name not printed.
    let body = r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"vip":true}"#;
    let (_, reply) = post(&mut r, body).reply.unwrap();
    assert_eq!(
        reply["violations"],
        json!([{"in": "body", "pointer": "", "rule": "additionalProperties"}])
    );
    assert!(!reply.to_string().contains("vip"));
    let (_, reply) = post(
        &mut r,
        r#"{"customer":{"name":5},"items":[{"sku":"BOOK-42","qty":1}]}"#,
    )
    .reply
    .unwrap();
    assert_eq!(
        reply["violations"],
        json!([{"in": "body", "pointer": "/customer/name", "rule": "type"}])
    );
    // With `additional_properties: schema` an unlisted member passes.
    let mut open = root(&config(json!({"additional_properties": "schema"})));
    let body = r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"vip":true}"#;
    assert_eq!(post(&mut open, body).reply, None);
}

#[test]
fn malformed_bodies() {
    let mut r = root(&config(json!({"limits": {"max_depth": 8}})));
    for (body, rule) in [
        (
            &br#"{"customer":{"name":"a"},"customer":{"name":"b"},"items":[]}"#[..],
            "duplicate_key",
        ),
        (&b"{\"customer\":{\"name\":\"\xff\"}}"[..], "utf8"),
        (&b"{\"items\":[[[[[[[[[[1]]]]]]]]]]}"[..], "max_depth"),
        (&b"{} {}"[..], "trailing_data"),
        (&b"{\"a\":}"[..], "syntax"),
    ] {
        let run = send(
            &mut r,
            "POST",
            "/tenants/a/orders",
            &[("content-type", "application/json")],
            Some(body),
        );
        let (status, reply) = run.reply.unwrap();
        assert_eq!(status, 400);
        assert_eq!(reply["violations"][0]["rule"], rule, "{reply}");
    }
}

#[test]
fn injections_in_free_text_are_refused_with_where() {
    let mut r = root(&config(json!({})));
    let body =
        r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"comment":"1' OR '1'='1"}"#;
    let (status, reply) = post(&mut r, body).reply.unwrap();
    assert_eq!(status, 403);
    assert_eq!(
        reply,
        json!({"error": "injection_detected", "error_description": "the request looks like SQL injection",
               "violations": [{"in": "body", "pointer": "/comment", "rule": "sqli"}]})
    );
    let body =
        r#"{"customer":{"name":"<script>alert(1)</script>"},"items":[{"sku":"BOOK-42","qty":1}]}"#;
    assert_eq!(
        post(&mut r, body).reply.unwrap().1["violations"][0]["rule"],
        "xss"
    );
    let body = r#"{"customer":{"name":{"$ne":null}},"items":[{"sku":"BOOK-42","qty":1}]}"#;
    let (status, reply) = post(&mut r, body).reply.unwrap();
    assert_eq!(status, 403);
    assert_eq!(
        reply["violations"][0],
        json!({"in": "body", "pointer": "/customer/name", "rule": "nosql"})
    );
    // Query text: free text is read, a parameter with an enum is not (it is checked by its schema).
    let run = send(
        &mut r,
        "GET",
        "/tenants/a/orders?q=1%27%20OR%20%271%27%3D%271",
        &[],
        None,
    );
    assert_eq!(
        run.reply.unwrap().1["violations"][0],
        json!({"in": "query", "name": "q", "pointer": "", "rule": "sqli"})
    );
    let run = send(&mut r, "GET", "/tenants/a/orders?user[$ne]=x", &[], None);
    assert_eq!(run.reply.unwrap().1["violations"][0]["rule"], "nosql");
    // `where: off` leaves SQL and XSS alone; the schema still refuses what it must.
    let mut off = root(&config(json!({"injection": {"where": "off"}})));
    let body =
        r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"comment":"1' OR '1'='1"}"#;
    assert_eq!(post(&mut off, body).reply, None);
}

#[test]
fn rules_change_limits_and_checks_per_route() {
    let cfg = config(json!({
        "limits": {"max_body_bytes": 1000},
        "rules": [{"match": {"prefix": "/tenants/b/"}, "limits": {"max_body_bytes": 100}, "injection": false}]
    }));
    let mut r = root(&cfg);
    let big = format!(
        r#"{{"customer":{{"name":"x"}},"items":[{{"sku":"BOOK-42","qty":1}}],"comment":"{}"}}"#,
        "a".repeat(200)
    );
    assert_eq!(post(&mut r, &big).reply, None);
    let run = send(
        &mut r,
        "POST",
        "/tenants/b/orders",
        &[("content-type", "application/json")],
        Some(big.as_bytes()),
    );
    assert_eq!(run.reply.unwrap().0, 413);
    let sqli =
        r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"comment":"1' OR '1'='1"}"#;
    let run = send(
        &mut r,
        "POST",
        "/tenants/b/orders",
        &[("content-type", "application/json")],
        Some(sqli.as_bytes()),
    );
    assert_eq!(run.reply, None);
}

#[test]
fn shadow_mode_logs_and_counts_but_refuses_nothing() {
    let mut r = root(&config(json!({"shadow": true})));
    let body =
        r#"{"customer":{"name":"x"},"items":[{"sku":"BOOK-42","qty":1}],"comment":"1' OR '1'='1"}"#;
    let run = post(&mut r, body);
    assert_eq!(run.reply, None);
    assert_eq!(
        run.host
            .metric("shieldwall.payload_guard.shadow.denied.injection_detected"),
        1
    );
    let logs = run.host.logs.borrow();
    assert!(
        logs.iter()
            .any(|(_, l)| l.contains("would refuse POST /tenants/a/orders (createOrder)")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|(_, l)| l.contains("OR '1'")),
        "client text logged"
    );
}

#[test]
fn without_a_document_limits_and_injection_still_apply() {
    let mut r = root(br#"{"limits": {"max_body_bytes": 100}}"#);
    let run = send(
        &mut r,
        "POST",
        "/anything",
        &[("content-type", "application/json")],
        Some(br#"{"a":"1' OR '1'='1"}"#),
    );
    assert_eq!(run.reply.unwrap().0, 403);
    let run = send(
        &mut r,
        "POST",
        "/anything",
        &[("content-type", "application/json")],
        Some(br#"{"a":{"$gt":""}}"#),
    );
    assert_eq!(run.reply.unwrap().1["violations"][0]["rule"], "nosql");
    let run = send(
        &mut r,
        "POST",
        "/anything",
        &[("content-type", "application/json")],
        Some(br#"{"a":"fine"}"#),
    );
    assert_eq!(run.reply, None);
    let run = send(
        &mut r,
        "GET",
        "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
        &[],
        None,
    );
    assert_eq!(run.reply.unwrap().1["violations"][0]["rule"], "xss");
}

#[test]
fn configuration_errors_name_the_field_and_the_pointer() {
    let err = |cfg: Value| {
        let mut host = MockHost::new();
        match PayloadGuard::configure(&mut host, &serde_json::to_vec(&cfg).unwrap()) {
            Ok(_) => panic!("accepted: {cfg}"),
            Err(e) => e.to_string(),
        }
    };
    assert!(err(json!({"limits": {"max_depth": 0}})).starts_with("limits.max_depth:"));
    assert!(err(json!({"limits": {"max_depth": 1000}})).starts_with("limits.max_depth:"));
    assert!(err(json!({"limitz": {}})).contains("unknown field"));
    assert!(err(json!({"injection": {"where": "everywhere"}})).starts_with("injection.where"));
    assert!(err(json!({"content_types": ["json"]})).starts_with("content_types[0]:"));
    assert!(
        err(json!({"rules": [{"match": {"prefix": "x"}}]})).starts_with("rules[0].match.prefix:")
    );
    assert!(err(json!({"openapi": 5})).starts_with("openapi:"));
    let e = err(json!({"openapi": {"openapi": "2.0", "paths": {}}}));
    assert!(e.starts_with("openapi: at /openapi:"), "{e}");
    let e = err(
        json!({"openapi": {"openapi": "3.1.0", "paths": {"/a": {"get": {"parameters": [
        {"name": "x", "in": "query", "schema": {"$ref": "https://example.com/s.json"}}]}}}}}),
    );
    assert!(
        e.contains("/paths/~1a/get/parameters/0/schema/$ref") && e.contains("remote"),
        "{e}"
    );
    let e = err(
        json!({"openapi": {"openapi": "3.1.0", "paths": {"/a": {"post": {"requestBody": {
        "content": {"application/json": {"schema": {"type": "object", "minProperties": "x"}}}}}}}}}),
    );
    assert!(
        e.contains("/paths/~1a/post/requestBody/content/application~1json/schema"),
        "{e}"
    );
    let e = err(json!({"openapi": {"openapi": "3.1.0", "paths": {"/a/{id}": {"get": {}}}}}));
    assert!(e.contains("`id` has no parameter"), "{e}");
    let e = err(json!({"openapi": "openapi: 3.1.0\npaths: [\n"}));
    assert!(e.starts_with("openapi: not a YAML document"), "{e}");
}

#[test]
fn openapi_30_documents_use_their_dialect() {
    let doc = json!({
        "openapi": "3.0.3",
        "servers": [{"url": "https://api.example.com/{version}", "variables": {"version": {"default": "v2"}}}],
        "paths": {"/items/{name}.{ext}": {"put": {
            "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                           {"name": "ext", "in": "path", "required": true, "schema": {"type": "string", "enum": ["json"]}},
                           {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
                           {"name": "ids", "in": "query", "style": "form", "explode": false,
                            "schema": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}},
                           {"name": "x-trace", "in": "header", "required": true, "schema": {"type": "string", "format": "uuid"}}],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}}},
        "components": {"schemas": {"Item": {"type": "object", "properties": {
            "price": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
            "note": {"type": "string", "nullable": true}}}}}
    });
    let mut r = root(&serde_json::to_vec(&json!({"openapi": doc})).unwrap());
    let trace = ("x-trace", "0b7e2a4c-1c8f-4b8e-9a55-3f1e4c2a7d10");
    let ct = ("content-type", "application/json");
    let ok = send(
        &mut r,
        "PUT",
        "/v2/items/a.b.json?tags=1&tags=2&ids=3,4",
        &[trace, ct],
        Some(br#"{"price":1,"note":null}"#),
    );
    assert_eq!(ok.reply, None);
    let bad = |r: &mut PayloadGuard, path: &str, h: &[(&str, &str)], body: &[u8]| {
        send(r, "PUT", path, h, Some(body))
            .reply
            .map(|(_, b)| b["violations"][0]["rule"].clone())
    };
    assert_eq!(
        bad(&mut r, "/v2/items/a.json", &[trace, ct], br#"{"price":0}"#),
        Some(json!("exclusiveMinimum"))
    );
    assert_eq!(
        bad(&mut r, "/v2/items/a.json?tags=x", &[trace, ct], b"{}"),
        Some(json!("type"))
    );
    assert_eq!(
        bad(&mut r, "/v2/items/a.json?ids=1,2,3", &[trace, ct], b"{}"),
        Some(json!("maxItems"))
    );
    assert_eq!(
        bad(&mut r, "/v2/items/a.json", &[ct], b"{}"),
        Some(json!("required"))
    );
    assert_eq!(
        bad(
            &mut r,
            "/v2/items/a.json",
            &[("x-trace", "nope"), ct],
            b"{}"
        ),
        Some(json!("format"))
    );
    assert_eq!(
        bad(&mut r, "/v2/items/a.xml", &[trace, ct], b"{}"),
        Some(json!("enum"))
    );
    assert_eq!(
        send(&mut r, "PUT", "/items/a.json", &[trace, ct], Some(b"{}"))
            .reply
            .unwrap()
            .0,
        404
    );
}
