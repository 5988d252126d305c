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
    // The headers go on (a proxy-wasm host would hand no body to a filter paused at them);
    // the body is held until it is accepted.
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

/// The body of a request is held chunk by chunk until it is whole and accepted; the headers
/// callback never pauses a request it lets through (a proxy-wasm host would then hand the filter
/// no body at all); trailers end a held body and decide it.
#[test]
fn bodies_are_held_until_decided_and_headers_never_wait() {
    let mut r = root(&config(json!({})));
    for (method, path, headers, eos) in [
        ("GET", "/tenants/a/orders/42", vec![], true),
        (
            "GET",
            "/tenants/a/orders/42",
            vec![("content-length", "0")],
            false,
        ),
        ("DELETE", "/tenants/a/orders/42", vec![], true),
    ] {
        let mut host = MockHost::request(method, path, &headers);
        let mut s = r.new_stream(&mut host, 2);
        assert_eq!(
            s.on_request_headers(&mut host, eos),
            Action::Continue,
            "{method} {path}"
        );
        assert!(host.local_reply.is_none());
    }
    let chunked = [
        ("content-type", "application/json"),
        ("transfer-encoding", "chunked"),
    ];
    let mut host = MockHost::request("POST", "/tenants/a/orders", &chunked);
    let mut s = r.new_stream(&mut host, 3);
    assert_eq!(s.on_request_headers(&mut host, false), Action::Continue);
    let (first, rest) = GOOD.as_bytes().split_at(40);
    host.request_body = first.to_vec();
    assert_eq!(
        s.on_request_body(&mut host, first.len(), false),
        Action::Pause
    );
    host.request_body.extend_from_slice(rest);
    assert_eq!(
        s.on_request_body(&mut host, GOOD.len(), true),
        Action::Continue
    );
    assert!(host.local_reply.is_none());
    // A body ended by trailers is decided there.
    let mut host = MockHost::request("POST", "/tenants/a/orders", &chunked);
    let mut s = r.new_stream(&mut host, 4);
    assert_eq!(s.on_request_headers(&mut host, false), Action::Continue);
    host.request_body = br#"{"customer":{"name":{"$ne":1}},"items":[]}"#.to_vec();
    let held = host.request_body.len();
    assert_eq!(s.on_request_body(&mut host, held, false), Action::Pause);
    assert_eq!(s.on_request_trailers(&mut host), Action::Pause);
    assert_eq!(host.local_reply.clone().unwrap().status, 403);
}

/// One operation per parameter style; each request either passes or names the rule it broke.
#[test]
fn parameter_styles() {
    let int_array = json!({"type": "array", "items": {"type": "integer"}, "maxItems": 3});
    let color = json!({"type": "object", "additionalProperties": false,
        "properties": {"R": {"type": "integer", "maximum": 255}, "G": {"type": "integer", "maximum": 255}}});
    let q = |name: &str, style: &str, explode: bool, schema: &Value| json!({"name": name, "in": "query", "style": style, "explode": explode, "schema": schema});
    let path = |style: &str, explode: bool, schema: &Value| json!({"name": "v", "in": "path", "required": true, "style": style, "explode": explode, "schema": schema});
    let get = |params: Vec<Value>| json!({"get": {"parameters": params, "responses": {}}});
    let doc = json!({"openapi": "3.1.0", "paths": {
        "/form": get(vec![q("ids", "form", true, &int_array), q("color", "form", true, &color)]),
        "/form-flat": get(vec![q("ids", "form", false, &int_array), q("color", "form", false, &color)]),
        "/space": get(vec![q("ids", "spaceDelimited", false, &int_array)]),
        "/pipe": get(vec![q("ids", "pipeDelimited", false, &int_array), q("color", "pipeDelimited", false, &color)]),
        "/deep": get(vec![q("color", "deepObject", true, &color)]),
        "/simple/{v}": get(vec![path("simple", false, &int_array)]),
        "/simple-obj/{v}": get(vec![path("simple", true, &color)]),
        "/label/{v}": get(vec![path("label", true, &int_array)]),
        "/label-flat/{v}": get(vec![path("label", false, &color)]),
        "/matrix/{v}": get(vec![path("matrix", false, &int_array)]),
        "/matrix-exploded/{v}": get(vec![path("matrix", true, &int_array)]),
        "/matrix-obj/{v}": get(vec![path("matrix", true, &color)]),
        "/matrix-one/{v}": get(vec![path("matrix", false, &json!({"type": "integer", "minimum": 1}))]),
        "/header": get(vec![json!({"name": "X-Ids", "in": "header", "schema": int_array})]),
        "/cookie": get(vec![json!({"name": "session", "in": "cookie", "required": true,
                                   "schema": {"type": "string", "pattern": "^[a-f0-9]{8}$"}})]),
        "/encoded/{v}": get(vec![path("simple", false, &json!({"type": "array", "items": {"type": "string", "maxLength": 3}}))])
    }});
    let mut r = root(&serde_json::to_vec(&json!({"openapi": doc})).unwrap());
    let mut rule = |target: &str, headers: &[(&str, &str)]| -> Option<String> {
        send(&mut r, "GET", target, headers, None)
            .reply
            .map(|(_, b)| {
                b["violations"][0]["rule"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string()
            })
    };
    let cases: &[(&str, Option<&str>)] = &[
        ("/form?ids=1&ids=2&R=10&G=20", None),
        ("/form?ids=1&ids=x", Some("type")),
        ("/form?R=300", Some("maximum")),
        ("/form-flat?ids=1,2,3&color=R,1,G,2", None),
        ("/form-flat?ids=1,2,3,4", Some("maxItems")),
        ("/form-flat?color=R,1,G", Some("style")),
        ("/form-flat?color=R,1,B,2", Some("additionalProperties")),
        ("/space?ids=1%202+3", None),
        ("/space?ids=1%20x", Some("type")),
        ("/pipe?ids=1|2&color=R|5|G|6", None),
        ("/pipe?ids=1%7C2%7C3%7C4", Some("maxItems")),
        ("/deep?color[R]=1&color[G]=2", None),
        ("/deep?color[R]=1000", Some("maximum")),
        ("/deep?color[B]=1", Some("additionalProperties")),
        ("/simple/1,2,3", None),
        ("/simple/1,y", Some("type")),
        ("/simple-obj/R=1,G=2", None),
        ("/simple-obj/R=1,G=256", Some("maximum")),
        ("/simple-obj/R,1", Some("style")),
        ("/label/.1.2", None),
        ("/label/1.2", Some("style")),
        ("/label-flat/.R,3,G,4", None),
        ("/matrix/;v=1,2", None),
        ("/matrix/;w=1", Some("style")),
        ("/matrix-exploded/;v=1;v=2;v=3", None),
        ("/matrix-exploded/;v=1;v=2;v=3;v=4", Some("maxItems")),
        ("/matrix-obj/;R=1;G=2", None),
        ("/matrix-one/;v=7", None),
        ("/matrix-one/;v=0", Some("minimum")),
        // An encoded comma is part of an item, not a delimiter.
        ("/encoded/ab,cd", None),
        ("/encoded/ab%2Ccd", Some("maxLength")),
    ];
    for (target, want) in cases {
        assert_eq!(rule(target, &[]).as_deref(), *want, "{target}");
    }
    assert_eq!(rule("/header", &[("x-ids", "1, 2")]), None);
    assert_eq!(rule("/header", &[("x-ids", "1"), ("x-ids", "2")]), None);
    assert_eq!(
        rule("/header", &[("x-ids", "1,2,3,4")]).as_deref(),
        Some("maxItems")
    );
    assert_eq!(
        rule("/cookie", &[("cookie", "a=1; session=0a1b2c3d")]),
        None
    );
    assert_eq!(
        rule("/cookie", &[("cookie", "session=nope")]).as_deref(),
        Some("pattern")
    );
    assert_eq!(rule("/cookie", &[]).as_deref(), Some("required"));
    // The properties of an exploded form object and a deep object's keys are not unknown.
    assert_eq!(
        rule("/form?R=1&x=2", &[]).as_deref(),
        Some("unknown_parameter")
    );
}

/// A style a location does not take, or one that does not fit the schema, is refused when the
/// document is compiled, with the pointer of the parameter's `style`.
#[test]
fn unsupported_parameter_styles_are_refused_at_configuration() {
    let err = |param: Value| {
        let doc = json!({"openapi": "3.1.0", "paths": {"/a/{v}": {"get": {"parameters": [
            {"name": "v", "in": "path", "required": true, "schema": {"type": "string"}}, param]}}}});
        let mut host = MockHost::new();
        match PayloadGuard::configure(
            &mut host,
            &serde_json::to_vec(&json!({"openapi": doc})).unwrap(),
        ) {
            Ok(_) => panic!("accepted: {doc}"),
            Err(e) => e.to_string(),
        }
    };
    let obj = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    for (param, pointer, words) in [
        (
            json!({"name": "q", "in": "query", "style": "matrix", "schema": {"type": "string"}}),
            "/paths/~1a~1{v}/get/parameters/1/style",
            "a query parameter takes",
        ),
        (
            json!({"name": "h", "in": "header", "style": "form", "schema": {"type": "string"}}),
            "/paths/~1a~1{v}/get/parameters/1/style",
            "a header parameter takes",
        ),
        (
            json!({"name": "q", "in": "query", "style": "deepObject", "schema": {"type": "string"}}),
            "/paths/~1a~1{v}/get/parameters/1/style",
            "deepObject applies to objects",
        ),
        (
            json!({"name": "q", "in": "query", "style": "pipeDelimited", "schema": {"type": "integer"}}),
            "/paths/~1a~1{v}/get/parameters/1/style",
            "arrays and objects",
        ),
        (
            json!({"name": "c", "in": "cookie", "schema": obj}),
            "/paths/~1a~1{v}/get/parameters/1/style",
            "object in a cookie",
        ),
        (
            json!({"name": "q", "in": "query", "style": "tabDelimited", "schema": {"type": "string"}}),
            "/paths/~1a~1{v}/get/parameters/1/style",
            "unknown parameter style",
        ),
        (
            json!({"name": "q", "in": "query", "schema": {"type": "object"}}),
            "/paths/~1a~1{v}/get/parameters/1/schema",
            "declare its `properties`",
        ),
        (
            json!({"name": "q", "in": "query", "content": {"application/json": {"schema": obj}}}),
            "/paths/~1a~1{v}/get/parameters/1/content",
            "not supported",
        ),
    ] {
        let e = err(param);
        assert!(e.contains(pointer) && e.contains(words), "{e}");
    }
}

/// The Istio WasmPlugin's pluginConfig is a configuration this filter accepts, its document
/// compiled (the CRD check in the istio tests does not look inside pluginConfig).
#[test]
fn the_istio_manifest_configures_the_filter() {
    let text = include_str!("../../../istio/payload-guard/wasmplugin.yaml");
    let manifest: Value = serde_yaml::from_str(text).unwrap();
    assert_eq!(manifest["kind"], "WasmPlugin");
    let config = serde_json::to_vec(&manifest["spec"]["pluginConfig"]).unwrap();
    let mut r = root(&config);
    // The orders API it carries is in force.
    assert_eq!(post(&mut r, GOOD).reply, None);
    let run = send(&mut r, "GET", "/tenants/a/invoices", &[], None);
    assert_eq!(run.reply.unwrap().0, 404);
}

/// A cookie array: the cookie repeated (form, exploded: the default) or one comma list.
#[test]
fn cookie_arrays() {
    let ids = json!({"type": "array", "items": {"type": "integer"}, "maxItems": 2});
    let doc = json!({"openapi": "3.1.0", "paths": {
        "/a": {"get": {"parameters": [{"name": "id", "in": "cookie", "schema": ids}], "responses": {}}},
        "/b": {"get": {"parameters": [{"name": "id", "in": "cookie", "explode": false, "schema": ids}], "responses": {}}}
    }});
    let mut r = root(&serde_json::to_vec(&json!({"openapi": doc})).unwrap());
    let mut rule = |target: &str, cookie: &str| -> Option<String> {
        send(&mut r, "GET", target, &[("cookie", cookie)], None)
            .reply
            .map(|(_, b)| {
                b["violations"][0]["rule"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string()
            })
    };
    assert_eq!(rule("/a", "id=3; x=y; id=4"), None);
    assert_eq!(rule("/a", "id=3; id=z").as_deref(), Some("type"));
    assert_eq!(rule("/a", "id=1; id=2; id=3").as_deref(), Some("maxItems"));
    assert_eq!(rule("/b", "id=3,4"), None);
    assert_eq!(rule("/b", "id=3,4,5").as_deref(), Some("maxItems"));
    assert_eq!(rule("/b", "id=3; id=4").as_deref(), Some("repeated"));
}
