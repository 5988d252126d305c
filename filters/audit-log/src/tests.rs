//! Unit tests over the mock host: configuration, every detector (what it must find and what it
//! must leave alone), the record's fields, sampling, the chain and the filter-state sink.

use serde_json::{json, Value};
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Host, RootFilter, StreamFilter};

use crate::chain::verify;
use crate::config::{Config, HttpFormat};
use crate::filter::{AuditLog, AUDIT_PROPERTY};
use crate::mask::{Hits, Masker};

const KEY: &str = "an audit chain key of 32+ bytes!";

fn env(name: &str) -> Option<String> {
    match name {
        "AUDIT_CHAIN_KEY" => Some(KEY.into()),
        "SHORT" => Some("short".into()),
        "SIEM_TOKEN" => Some("Splunk 0000-test-token".into()),
        _ => None,
    }
}

fn config(v: Value) -> Result<Config, shieldwall_core::ConfigError> {
    Config::parse(v.to_string().as_bytes(), &env)
}

fn masker(v: Value) -> Masker {
    let c = config(json!({ "mask": v })).unwrap();
    Masker::new(c.mask, b"a fixed masking key for the unit tests")
}

fn mask(m: &Masker, text: &str) -> String {
    let mut hits = m.new_hits();
    m.text(text, &mut hits)
}

#[test]
fn the_issue_example_loads_with_its_http_sink() {
    let c = config(json!({
        "sinks": {
            "access_log": true,
            "http": {"cluster": "siem", "uri": "https://siem.example.com/services/collector/event",
                     "format": "splunk_hec", "headers": [{"name": "authorization", "value_env": "SIEM_TOKEN"}],
                     "batch_max_records": 200, "batch_max_bytes": 1048576, "flush_interval_ms": 1000,
                     "buffer_max_records": 20000, "timeout_ms": 2000}
        },
        "mask": {"card_numbers": true, "emails": true, "tokens": true, "ibans": true,
                 "json_fields": ["password", "ssn"], "query_params": ["token", "api_key"],
                 "patterns": [{"name": "account", "regex": "ACC-[0-9]{8}"}]},
        "include": {"request_headers": ["user-agent", "x-request-id"], "response_headers": []},
        "chain": {"key_env": "AUDIT_CHAIN_KEY"},
        "sample": {"allowed": 1.0}
    }))
    .unwrap();
    assert_eq!(c.chain_key.as_deref(), Some(KEY.as_bytes()));
    assert_eq!(c.mask.query_params, vec!["token", "api_key"]);
    assert_eq!(c.sample_allowed_ppm, 1_000_000);
    let http = c.http.unwrap();
    assert_eq!(http.cluster, "siem");
    assert_eq!(http.authority, "siem.example.com");
    assert_eq!(http.path, "/services/collector/event");
    assert_eq!(http.format, HttpFormat::SplunkHec);
    assert_eq!(
        http.headers,
        vec![(
            "authorization".to_string(),
            "Splunk 0000-test-token".to_string()
        )]
    );
    assert_eq!(
        (
            http.batch_max_records,
            http.batch_max_bytes,
            http.flush_interval_ms
        ),
        (200, 1_048_576, 1000)
    );
    assert_eq!((http.buffer_max_records, http.timeout_ms), (20_000, 2000));
    assert_eq!(
        (http.retry_initial_backoff_ms, http.retry_max_backoff_ms),
        (500, 30_000)
    );
    // The HTTP sink alone is a sink.
    let c = config(
        json!({"sinks": {"access_log": false, "http": {"cluster": "s", "uri": "http://s/logs"}}}),
    )
    .unwrap();
    assert!(!c.access_log);
    assert_eq!(c.http.unwrap().format, HttpFormat::JsonLines);
}

#[test]
fn http_sink_errors_name_the_field() {
    let cases = [
        (
            json!({"cluster": "", "uri": "https://x/"}),
            "sinks.http.cluster",
        ),
        (
            json!({"cluster": "siem", "uri": "ftp://x/"}),
            "sinks.http.uri",
        ),
        (
            json!({"cluster": "siem", "uri": "https://x/", "format": "csv"}),
            "sinks.http.format",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "headers": [{"name": "a", "value": "1", "value_env": "B"}]}),
            "sinks.http.headers[0]",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "headers": [{"name": "a"}]}),
            "sinks.http.headers[0]",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "headers": [{"name": "A", "value": "1"}]}),
            "sinks.http.headers[0].name",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "headers": [{"name": "content-length", "value": "1"}]}),
            "sinks.http.headers[0].name",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "headers": [{"name": "x-a", "value": "1"}, {"name": "x-a", "value": "2"}]}),
            "sinks.http.headers[1].name",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "headers": [{"name": "x-a", "value": "a\nb"}]}),
            "sinks.http.headers[0]",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "headers": [{"name": "x-a", "value_env": "NOT_SET"}]}),
            "sinks.http.headers[0].value_env",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "batch_max_records": 0}),
            "sinks.http.batch_max_records",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "batch_max_bytes": 0}),
            "sinks.http.batch_max_bytes",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "flush_interval_ms": 0}),
            "sinks.http.flush_interval_ms",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "buffer_max_records": 0}),
            "sinks.http.buffer_max_records",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "timeout_ms": 0}),
            "sinks.http.timeout_ms",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "batch_max_records": 50, "buffer_max_records": 10}),
            "sinks.http.batch_max_records",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "retry_initial_backoff_ms": 1000, "retry_max_backoff_ms": 10}),
            "sinks.http.retry_max_backoff_ms",
        ),
        (
            json!({"cluster": "s", "uri": "https://x/", "batch_size": 10}),
            "sinks.http.batch_size",
        ),
    ];
    for (http, path) in cases {
        let e = config(json!({"sinks": {"http": http}})).unwrap_err();
        assert_eq!(e.path, path, "{http}: {e}");
    }
}

#[test]
fn configuration_errors_name_the_field() {
    let cases = [
        (json!({"sinks": {"access_log": false}}), "sinks"),
        (
            json!({"mask": {"patterns": [{"name": "ok", "regex": "("}]}}),
            "mask.patterns[0].regex",
        ),
        (
            json!({"mask": {"patterns": [{"name": "ok", "regex": "a*"}]}}),
            "mask.patterns[0].regex",
        ),
        (
            json!({"mask": {"patterns": [{"name": "Bad Name", "regex": "x"}]}}),
            "mask.patterns[0].name",
        ),
        (
            json!({"mask": {"json_fields": ["ok", "a b"]}}),
            "mask.json_fields[1]",
        ),
        (json!({"mask": {"emails": "yes"}}), "mask.emails"),
        (
            json!({"include": {"request_headers": ["Authorization"]}}),
            "include.request_headers[0]",
        ),
        (
            json!({"include": {"request_headers": ["x-a", "cookie"]}}),
            "include.request_headers[1]",
        ),
        (
            json!({"include": {"response_headers": ["set-cookie"]}}),
            "include.response_headers[0]",
        ),
        (json!({"chain": {"key_env": "MISSING"}}), "chain.key_env"),
        (json!({"chain": {"key_env": "SHORT"}}), "chain.key_env"),
        (json!({"sample": {"allowed": 1.5}}), "sample.allowed"),
        (json!({"sample": {"allowed": -0.1}}), "sample.allowed"),
        (json!({"unknown": 1}), "unknown"),
        (
            json!({"mask": {"hash_key_env": "MISSING"}}),
            "mask.hash_key_env",
        ),
    ];
    for (c, path) in cases {
        let e = config(c.clone()).unwrap_err();
        assert_eq!(e.path, path, "{c}: {e}");
    }
    let e = config(json!({"chain": {"key_env": "MISSING"}})).unwrap_err();
    assert!(
        e.reason.contains("no environment variable `MISSING`"),
        "{e}"
    );
    let e = config(json!({"include": {"request_headers": ["cookie"]}})).unwrap_err();
    assert!(e.reason.contains("never logged"), "{e}");
    // Everything has a default.
    let c = config(json!({})).unwrap();
    assert!(c.access_log && c.chain_key.is_none() && c.mask.card_numbers);
    assert!(c.decisions.contains(&"jwt_auth".to_string()));
}

#[test]
fn card_numbers_are_found_with_separators_and_keep_first_six_last_four() {
    let m = masker(json!({}));
    for (input, want) in [
        ("4111111111111111", "411111******1111"),
        ("card=4111 1111 1111 1111.", "card=411111******1111."),
        ("4111-1111-1111-1111", "411111******1111"),
        ("amex 378282246310005 ok", "amex 378282*****0005 ok"),
        ("mc 5555555555554444", "mc 555555******4444"),
        // 19 digits (a Visa test number) and 13 digits.
        ("4222222222222", "422222***2222"),
        (
            "call 555 123 4567 then 4111 1111 1111 1111",
            "call 555 123 4567 then 411111******1111",
        ),
        ("(4012888888881881)", "(401288******1881)"),
    ] {
        assert_eq!(mask(&m, input), want, "{input}");
    }
}

#[test]
fn ordinary_numbers_are_not_cards() {
    let m = masker(json!({}));
    for input in [
        // A millisecond timestamp that happens to pass Luhn (1700000000007: 1 is no card network).
        "ts=1700000000007",
        // Fails Luhn.
        "4111111111111112",
        // Too short and too long.
        "411111111111",
        "41111111111111111111111",
        // Glued to letters: an identifier, not a card.
        "order4111111111111111",
        "4111111111111111abc",
        "2026-11-30 12:00:00",
        "+1 555 123 4567",
        "550e8400-e29b-41d4-a716-446655440000",
        "version 1.2.3",
    ] {
        assert_eq!(mask(&m, input), input, "{input}");
    }
}

#[test]
fn emails_tokens_ibans_and_keys() {
    let m = masker(json!({}));
    let out = mask(&m, "from Alice.Smith+tag@Example.co.uk, cc bob@x.io");
    assert!(!out.contains("Alice") && !out.contains("bob@"), "{out}");
    assert_eq!(out.matches("[email:").count(), 2, "{out}");
    // One address gives one tag whatever its case; another gives another.
    assert_eq!(mask(&m, "ALICE@EXAMPLE.COM"), mask(&m, "alice@example.com"));
    assert_ne!(mask(&m, "alice@example.com"), mask(&m, "alicf@example.com"));

    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz";
    let out = mask(&m, &format!("x {jwt} y"));
    assert!(out.starts_with("x [jwt:") && out.ends_with("] y"), "{out}");
    let out = mask(&m, "Bearer abc.def-ghi_jkl~mno+/==");
    assert!(
        out.starts_with("Bearer [token:") && !out.contains("abc"),
        "{out}"
    );
    let out = mask(&m, "basic dXNlcjpwYXNz");
    assert!(out.starts_with("basic [token:"), "{out}");
    let out = mask(
        &m,
        "key sk_live_4eC39HqLyjWDarjtT1zdp7dc and AKIAIOSFODNN7EXAMPLE",
    );
    assert!(!out.contains("4eC39") && !out.contains("IOSFODNN"), "{out}");

    assert_eq!(
        mask(&m, "iban DE89370400440532013000."),
        "iban DE****************3000."
    );
    assert_eq!(
        mask(&m, "GB82 WEST 1234 5698 7654 32"),
        "GB****************5432"
    );
    assert_eq!(
        mask(&m, "GB82 WEST 1234 5698 7654 32 paid"),
        "GB****************5432 paid"
    );
}

#[test]
fn ordinary_text_is_left_alone() {
    let m = masker(json!({}));
    for input in [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0",
        "user@localhost",
        "a@b",
        "@handle",
        "/tenants/a/orders/42",
        // Mod-97 fails: an IBAN-shaped code that is not one.
        "DE89370400440532013001",
        "AB12CDEF",
        "bearer",
        "the basics of eyJ",
        "curl/8.5.0",
        "2f1c7e9a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
        "eyJhbGciOiJIUzI1NiJ9",
    ] {
        assert_eq!(mask(&m, input), input, "{input}");
    }
}

#[test]
fn named_fields_patterns_and_switched_off_detectors() {
    let m = masker(json!({"json_fields": ["password", "ssn"],
                          "patterns": [{"name": "account", "regex": "ACC-[0-9]{8}"}]}));
    let out = mask(&m, r#"{"user":"a","Password" : "hunter2","ssn":123456789}"#);
    assert!(
        !out.contains("hunter2") && !out.contains("123456789"),
        "{out}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["Password"].as_str().unwrap().starts_with("[password:"),
        "{out}"
    );
    assert!(v["ssn"].as_str().unwrap().starts_with("[ssn:"), "{out}");
    let out = mask(&m, "password=hunter2; theme=dark");
    assert!(
        out.starts_with("password=[password:") && out.ends_with("; theme=dark"),
        "{out}"
    );
    // A word that only contains a field name is not that field.
    assert_eq!(mask(&m, "mypassword=x"), "mypassword=x");
    let mut hits = m.new_hits();
    let out = m.text("ref ACC-12345678 and ACC-87654321", &mut hits);
    assert_eq!(out.matches("[account:").count(), 2, "{out}");
    assert_eq!(hits.patterns, vec![2]);

    let off =
        masker(json!({"card_numbers": false, "emails": false, "tokens": false, "ibans": false}));
    let text = "4111111111111111 a@b.com Bearer x DE89370400440532013000";
    assert_eq!(mask(&off, text), text);
}

#[test]
fn query_strings_are_decoded_before_masking_and_named_parameters_go_whole() {
    let m = masker(json!({"query_params": ["token", "api_key"]}));
    let mut hits = Hits::default();
    let out = m.query(
        "q=shoes&card=4111%201111%201111%201111&mail=alice%40example.com&token=s3cr3t&API_KEY=k&e=a%2540b.com&plus=4111+1111+1111+1111&flag",
        &mut hits,
    );
    for planted in [
        "4111%201111",
        "4111+1111",
        "alice",
        "s3cr3t",
        "=k&",
        "a%2540b",
    ] {
        assert!(!out.contains(planted), "{planted} in {out}");
    }
    assert!(
        out.starts_with("q=shoes&card=411111******1111&mail=[email:"),
        "{out}"
    );
    assert!(
        out.contains("&token=[token:") && out.contains("&API_KEY=[api_key:"),
        "{out}"
    );
    assert!(out.ends_with("&flag"), "{out}");
    assert_eq!(hits.named, 2);
    // Nothing to mask: the query is kept byte for byte.
    let raw = "a=1&b=%7Bx%7D&c=hello+world";
    assert_eq!(m.query(raw, &mut Hits::default()), raw);
    // A path segment too.
    let p = m.path(
        "/users/alice%40example.com/cards/4111111111111111",
        &mut Hits::default(),
    );
    assert!(
        p.starts_with("/users/[email:") && p.ends_with("/cards/411111******1111"),
        "{p}"
    );
}

#[test]
fn headers_named_as_secrets_are_replaced_whole() {
    let m = masker(json!({}));
    let mut hits = Hits::default();
    let out = m.header("x-api-key", "plain-looking-key", &mut hits);
    assert!(out.starts_with("[x-api-key:"), "{out}");
    assert_eq!(m.header("x-other", "plain", &mut hits), "plain");
}

fn root(host: &mut MockHost, config: Value) -> AuditLog {
    host.env.insert("AUDIT_CHAIN_KEY".into(), KEY.into());
    AuditLog::configure(host, config.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// One request through the filter; returns the record line (or `None`).
fn run(
    root: &mut AuditLog,
    host: &mut MockHost,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
    decisions: &[(&str, Value)],
) -> Option<String> {
    host.new_stream("GET", path, headers);
    host.properties.remove(AUDIT_PROPERTY);
    host.properties.retain(|k, _| !k.starts_with("shieldwall."));
    host.properties
        .insert("source\0address".into(), b"10.1.2.3:5555".to_vec());
    let mut s = root.new_stream(host, 2);
    s.on_request_headers(host, true);
    for (name, d) in decisions {
        host.set_property(
            &[&format!("shieldwall.decision.{name}")],
            d.to_string().as_bytes(),
        )
        .unwrap();
    }
    host.properties.insert(
        "response\0code".into(),
        i64::from(status).to_le_bytes().to_vec(),
    );
    s.on_log(host);
    host.property_value(AUDIT_PROPERTY)
        .map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn the_record_has_the_ecs_fields_the_identity_and_the_decisions() {
    let mut host = MockHost::new();
    let mut r = root(
        &mut host,
        json!({"chain": {"key_env": "AUDIT_CHAIN_KEY"},
        "include": {"request_headers": ["x-request-id", "x-api-key", "x-note"]}}),
    );
    host.new_stream("GET", "/", &[]);
    let identity = json!({"sub": "alice", "client_id": "orders-reader", "tenant": "a",
        "spiffe_id": "spiffe://bank-a/gw", "cert_sha256": "ab12", "auth": ["mtls", "jwt"]});
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let line = {
        let identity_bytes = identity.to_string().into_bytes();
        host.new_stream(
            "GET",
            "/orders/1?card=4111111111111111&q=x",
            &[
                ("x-request-id", "req-1"),
                ("traceparent", traceparent),
                ("user-agent", "curl/8 alice@example.com"),
                ("authorization", "Bearer secret-token"),
                ("cookie", "session=secret"),
                ("x-api-key", "key-123"),
                ("x-note", "call me at bob@example.com"),
            ],
        );
        host.properties
            .insert("shieldwall.identity".into(), identity_bytes);
        host.properties
            .insert("connection\0tls_version".into(), b"TLSv1.3".to_vec());
        host.properties
            .insert("xds\0route_name".into(), b"orders".to_vec());
        host.properties
            .insert("source\0address".into(), b"10.1.2.3:5555".to_vec());
        let mut s = r.new_stream(&mut host, 2);
        s.on_request_headers(&mut host, true);
        host.advance_ms(7);
        host.set_property(
            &["shieldwall.decision.jwt_auth"],
            br#"{"decision":"allow","reason":"verified"}"#,
        )
        .unwrap();
        host.set_property(
            &["shieldwall.decision.scope_authz"],
            br#"{"decision":"deny","reason":"insufficient_scope","status":403}"#,
        )
        .unwrap();
        host.properties
            .insert("response\0code".into(), 403i64.to_le_bytes().to_vec());
        host.properties.insert(
            "response\0code_details".into(),
            b"shieldwall_scope_authz".to_vec(),
        );
        s.on_log(&mut host);
        String::from_utf8(host.property_value(AUDIT_PROPERTY).unwrap()).unwrap()
    };
    for secret in [
        "4111111111111111",
        "alice@example.com",
        "bob@example.com",
        "secret-token",
        "session=secret",
        "key-123",
    ] {
        assert!(!line.contains(secret), "{secret} in {line}");
    }
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ecs"]["version"], "8.11.0");
    assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.000Z");
    assert_eq!(v["event"]["kind"], "event");
    assert_eq!(v["event"]["category"], json!(["web"]));
    assert_eq!(v["event"]["type"], json!(["access", "denied"]));
    assert_eq!(v["event"]["outcome"], "failure");
    assert_eq!(v["event"]["reason"], "scope_authz: insufficient_scope");
    assert_eq!(v["event"]["id"], "req-1");
    assert_eq!(v["event"]["duration"], 7_000_000);
    assert_eq!(v["trace"]["id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(v["client"]["ip"], "10.1.2.3");
    assert_eq!(v["source"]["ip"], "10.1.2.3");
    assert_eq!(v["user"]["id"], "alice");
    assert_eq!(v["http"]["request"]["method"], "GET");
    assert_eq!(v["http"]["response"]["status_code"], 403);
    assert_eq!(v["url"]["path"], "/orders/1");
    assert_eq!(v["url"]["query"], "card=411111******1111&q=x");
    assert_eq!(v["tls"]["version"], "1.3");
    assert_eq!(v["tls"]["version_protocol"], "tls");
    assert_eq!(v["tls"]["client"]["hash"]["sha256"], "AB12");
    assert!(v["user_agent"]["original"]
        .as_str()
        .unwrap()
        .starts_with("curl/8 [email:"));
    let sw = &v["shieldwall"];
    assert_eq!(sw["client_id"], "orders-reader");
    assert_eq!(sw["tenant"], "a");
    assert_eq!(sw["spiffe_id"], "spiffe://bank-a/gw");
    assert_eq!(sw["auth"], json!(["mtls", "jwt"]));
    assert_eq!(sw["route"], "orders");
    assert_eq!(sw["denied_by"], "scope_authz");
    assert_eq!(
        sw["decisions"]["jwt_auth"],
        json!({"decision": "allow", "reason": "verified"})
    );
    assert_eq!(
        sw["decisions"]["scope_authz"],
        json!({"decision": "deny", "reason": "insufficient_scope", "status": 403})
    );
    let headers = &v["http"]["request"]["headers"];
    assert_eq!(headers["x-request-id"], "req-1");
    assert!(headers["x-api-key"]
        .as_str()
        .unwrap()
        .starts_with("[x-api-key:"));
    assert!(headers.get("authorization").is_none() && headers.get("cookie").is_none());
    assert_eq!(v["audit"]["seq"], 1);
    assert_eq!(host.metric("shieldwall.audit_log.records"), 1);
    assert_eq!(host.metric("shieldwall.audit_log.masked.card_number"), 1);
    assert_eq!(host.metric("shieldwall.audit_log.masked.email"), 2);
    assert_eq!(host.metric("shieldwall.audit_log.masked.named"), 1);
}

/// The record of a request Envoy ended with `status` and `details`, no filter having recorded a
/// decision; parsed, so the line is valid JSON.
fn record_of_a_reply(status: i64, details: &[u8]) -> Value {
    let mut host = MockHost::new();
    let mut r = root(&mut host, json!({}));
    host.new_stream("GET", "/x", &[]);
    let mut s = r.new_stream(&mut host, 2);
    s.on_request_headers(&mut host, true);
    host.properties
        .insert("response\0code".into(), status.to_le_bytes().to_vec());
    host.properties
        .insert("response\0code_details".into(), details.to_vec());
    s.on_log(&mut host);
    let line = String::from_utf8(host.property_value(AUDIT_PROPERTY).unwrap()).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn a_filter_that_recorded_nothing_is_named_from_envoys_details() {
    let v = record_of_a_reply(429, b"shieldwall_rate_limit");
    assert_eq!(v["shieldwall"]["denied_by"], "rate_limit");
    assert_eq!(
        v["shieldwall"]["decisions"]["rate_limit"],
        json!({"decision": "deny", "status": 429})
    );
    assert_eq!(v["event"]["reason"], "rate_limit");
    assert!(v.get("audit").is_none(), "no chain configured");
}

#[test]
fn names_that_would_need_escaping_are_refused() {
    // Header and filter names become member names of the record, written without escaping.
    for (c, path) in [
        (
            json!({"include": {"request_headers": ["x-\"a"]}}),
            "include.request_headers[0]",
        ),
        (
            json!({"include": {"response_headers": ["x\\b"]}}),
            "include.response_headers[0]",
        ),
        (json!({"decisions": ["jwt_auth", "a\"b"]}), "decisions[1]"),
        (json!({"decisions": ["line\nbreak"]}), "decisions[0]"),
    ] {
        let e = config(c.clone()).unwrap_err();
        assert_eq!(e.path, path, "{c}: {e}");
    }
    // A name only Envoy's response code details give is not a member name unless it is plain;
    // the record stays valid JSON and still says who refused.
    let v = record_of_a_reply(403, b"shieldwall_odd\"name\\");
    assert_eq!(v["shieldwall"]["denied_by"], "odd\"name\\");
    assert!(v["shieldwall"].get("decisions").is_none(), "{v}");
}

#[test]
fn every_record_of_a_worker_is_chained_and_verifies() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, json!({"chain": {"key_env": "AUDIT_CHAIN_KEY"}}));
    let mut lines = Vec::new();
    for i in 0..5u16 {
        let status = [200, 401, 403, 429, 400][usize::from(i)];
        lines.push(run(&mut r, &mut host, &format!("/r/{i}"), &[], status, &[]).unwrap());
    }
    let s = verify(lines.iter().map(String::as_str), KEY.as_bytes(), false).unwrap();
    assert_eq!(s.records, 5);
    assert_eq!(s.chains.len(), 1);
    lines.remove(1);
    assert!(verify(lines.iter().map(String::as_str), KEY.as_bytes(), false).is_err());
}

#[test]
fn allowed_requests_are_sampled_denied_never() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, json!({"sample": {"allowed": 0.25}}));
    let mut allowed = 0;
    for i in 0..400 {
        if run(&mut r, &mut host, &format!("/a/{i}"), &[], 200, &[]).is_some() {
            allowed += 1;
        }
    }
    // 25% of 400 is 100; xorshift is uniform enough that 60..140 never fails by chance.
    assert!((60..140).contains(&allowed), "{allowed}");
    for i in 0..50 {
        let denied = run(
            &mut r,
            &mut host,
            &format!("/d/{i}"),
            &[],
            401,
            &[(
                "jwt_auth",
                json!({"decision": "deny", "reason": "expired", "status": 401}),
            )],
        );
        assert!(denied.is_some());
        // An upstream error is a failure too: never sampled away.
        assert!(run(&mut r, &mut host, "/e", &[], 503, &[]).is_some());
    }
    assert_eq!(
        host.metric("shieldwall.audit_log.sampled_out"),
        400 - allowed
    );
    let mut r = root(&mut host, json!({"sample": {"allowed": 0.0}}));
    assert!(run(&mut r, &mut host, "/a", &[], 200, &[]).is_none());
}

#[test]
fn the_client_address_is_resolved_as_rate_limit_does() {
    let mut host = MockHost::new();
    let mut r = root(&mut host, json!({"client_ip": {"xff_trusted_hops": 1}}));
    // Envoy appended the peer (10.1.2.3); the entry before it is what the trusted proxy saw.
    let line = run(
        &mut r,
        &mut host,
        "/",
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")],
        200,
        &[],
    )
    .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["client"]["ip"], "203.0.113.7");
    assert_eq!(v["source"]["ip"], "10.1.2.3");
    let mut r = root(&mut host, json!({}));
    let line = run(
        &mut r,
        &mut host,
        "/",
        &[("x-forwarded-for", "6.6.6.6")],
        200,
        &[],
    )
    .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["client"]["ip"], "10.1.2.3");
}

#[test]
fn timestamps_and_trace_ids() {
    use crate::record::{rfc3339_millis, trace_id};
    assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        rfc3339_millis(951_782_400_123_000_000),
        "2000-02-29T00:00:00.123Z"
    );
    assert_eq!(
        rfc3339_millis(1_796_000_000_999_999_999),
        "2026-11-30T00:53:20.999Z"
    );
    assert_eq!(rfc3339_millis(u64::MAX), "2554-07-21T23:34:33.709Z");
    assert_eq!(
        rfc3339_millis(1_704_067_199_001_000_000),
        "2023-12-31T23:59:59.001Z"
    );
    assert_eq!(
        trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        None
    );
    assert_eq!(trace_id("garbage"), None);
}

#[test]
fn values_with_quotes_backslashes_and_control_characters_stay_valid_json() {
    let mut host = MockHost::new();
    let mut r = root(
        &mut host,
        json!({"include": {"request_headers": ["x-note"]}}),
    );
    let note = "say \"hi\" \\ tab\there\u{1}end";
    let line = run(
        &mut r,
        &mut host,
        "/q?a=%22x%22",
        &[("x-note", note)],
        200,
        &[],
    )
    .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["http"]["request"]["headers"]["x-note"], note);
    assert_eq!(v["url"]["query"], "a=%22x%22");
}

#[test]
fn masking_random_text_never_panics_and_masking_twice_changes_nothing() {
    let m = masker(json!({"patterns": [{"name": "account", "regex": "ACC-[0-9]{8}"}]}));
    let alphabet: Vec<char> = "0123456789 -@.abcXYZ+%=\"eyJ_:/é4DE8GB".chars().collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let len = (next() % 80) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let once = mask(&m, &text);
        assert_eq!(mask(&m, &once), once, "{text:?}");
        let _ = m.query(&text, &mut Hits::default());
        let _ = m.path(&text, &mut Hits::default());
    }
    // Planted values between random separators are still found. (Glued to letters a digit run is
    // taken for an identifier, not a card: the README says so.)
    for _ in 0..300 {
        let noise: String = (0..(next() % 10))
            .map(|_| [" ", ",", ";", "("][(next() % 4) as usize])
            .collect();
        let text = format!("{noise}4111 1111 1111 1111{noise} bob@example.org{noise}");
        let out = mask(&m, &text);
        assert!(
            !out.contains("4111 1111") && !out.contains("bob@"),
            "{text:?} → {out:?}"
        );
    }
}

/// The properties a record costs, in order: each is a host call (about 0.5–1 µs in Envoy's V8),
/// so a new one must be a decision, not an accident.
#[test]
fn a_record_reads_only_the_properties_it_needs() {
    let reads = |config: Value, tls: bool| {
        let mut host = MockHost::new();
        let mut r = root(&mut host, config);
        host.new_stream("GET", "/orders/1?q=shoes", &[("x-request-id", "r1")]);
        if tls {
            host.properties
                .insert("connection\0tls_version".into(), b"TLSv1.3".to_vec());
        }
        host.property_reads.borrow_mut().clear();
        let mut s = r.new_stream(&mut host, 2);
        s.on_request_headers(&mut host, true);
        s.on_log(&mut host);
        let list = host.property_reads.borrow().clone();
        list
    };
    let base = [
        "source.address",
        "response.code",
        "response.code_details",
        "request.duration",
        "request.total_size",
        "response.total_size",
        "connection.tls_version",
        "xds.route_name",
        "xds.cluster_name",
        "shieldwall.identity",
    ];
    let got = reads(json!({"decisions": ["jwt_auth", "scope_authz"]}), false);
    let mut want: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    want.push("shieldwall.decision.jwt_auth".into());
    want.push("shieldwall.decision.scope_authz".into());
    assert_eq!(got, want);
    // Every shieldwall filter by default: one read each.
    assert_eq!(reads(json!({}), false).len(), base.len() + 8);
    // No decisions to read when none are listed.
    assert_eq!(reads(json!({"decisions": []}), false).len(), base.len());
    // The client certificate's digest only on TLS connections.
    let tls = reads(json!({"decisions": []}), true);
    assert_eq!(tls.len(), base.len() + 1);
    assert!(tls.contains(&"connection.sha256_peer_certificate_digest".to_string()));
}

/// Envoy's metadata encoding of a map (the proxy-wasm pairs encoding), as `jwt_authn`'s
/// `payload_in_metadata` reads back in Envoy 1.40 (see core's `metadata` module).
fn pairs(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut out = u32::try_from(entries.len()).unwrap().to_le_bytes().to_vec();
    for (k, v) in entries {
        out.extend(u32::try_from(k.len()).unwrap().to_le_bytes());
        out.extend(u32::try_from(v.len()).unwrap().to_le_bytes());
    }
    for (k, v) in entries {
        out.extend(k.as_bytes());
        out.push(0);
        out.extend(v.as_bytes());
        out.push(0);
    }
    out
}

#[test]
fn the_identity_can_come_from_envoys_jwt_authn() {
    let payload = pairs(&[
        ("iss", "https://idp.example"),
        ("sub", "svc-7"),
        ("client_id", "reports"),
        ("tenant", "bank-b"),
    ]);
    let record = |config: Value| {
        let mut host = MockHost::new();
        let mut r = root(&mut host, config);
        host.new_stream("GET", "/reports", &[]);
        host.properties.insert(
            "metadata\0filter_metadata\0envoy.filters.http.jwt_authn\0jwt_payload".into(),
            payload.clone(),
        );
        host.properties
            .insert("response\0code".into(), 200i64.to_le_bytes().to_vec());
        let mut s = r.new_stream(&mut host, 2);
        s.on_request_headers(&mut host, true);
        s.on_log(&mut host);
        let line = String::from_utf8(host.property_value(AUDIT_PROPERTY).unwrap()).unwrap();
        serde_json::from_str::<Value>(&line).unwrap()
    };
    let from_jwt_authn = record(json!({"identity_from": "jwt_authn", "decisions": []}));
    assert_eq!(from_jwt_authn["user"]["id"], "svc-7", "{from_jwt_authn}");
    assert_eq!(from_jwt_authn["shieldwall"]["client_id"], "reports");
    assert_eq!(from_jwt_authn["shieldwall"]["tenant"], "bank-b");
    // By default only shieldwall's own identity context counts: the metadata is not read.
    let default = record(json!({"decisions": []}));
    assert!(default.get("user").is_none(), "{default}");
    // A misspelled source is refused with the field.
    let err = config(json!({"identity_from": "jwt"})).unwrap_err();
    assert!(err.to_string().contains("identity_from"), "{err}");
}

/// Every host call of one request with the benchmark's configuration (the access-log sink, the
/// default decision list, one extra request header), in order: the list bench/run.py prices to
/// give audit-log's floor. The header reads of one callback are one header-map read in the wasm
/// adapter.
#[test]
fn a_record_makes_only_the_calls_it_needs() {
    use shieldwall_core::testing::CountingHost;
    let mut inner = MockHost::new();
    let cfg = json!({"sinks": {"access_log": true},
                     "include": {"request_headers": ["user-agent"]}});
    let mut r = root(&mut inner, cfg);
    let mut host = CountingHost::new(inner);
    let calls = host.calls_when_warm(
        |mock| {
            mock.new_stream(
                "GET",
                "/orders",
                &[("x-request-id", "r1"), ("user-agent", "wrk")],
            );
            // Envoy knows the duration at the end; the clock is read only when it does not.
            mock.properties.insert(
                "request\0duration".into(),
                1_500_000i64.to_le_bytes().to_vec(),
            );
        },
        |host| {
            let mut s = r.new_stream(host, 2);
            s.on_request_headers(host, true);
            s.on_log(host);
        },
    );
    assert_eq!(calls, CALLS_ONE_RECORD);
}

const CALLS_ONE_RECORD: [&str; 21] = [
    "now",             // the request's start
    "request_headers", // x-request-id, traceparent, the included headers, the query
    "property",        // source.address
    "property",        // response.code
    "property",        // response.code_details
    "property",        // request.duration
    "property",        // request.total_size
    "property",        // response.total_size
    "property",        // connection.tls_version (no certificate digest without TLS)
    "property",        // xds.route_name
    "property",        // xds.cluster_name
    "property",        // the identity context
    "property",        // eight decisions: every shieldwall filter by default
    "property",
    "property",
    "property",
    "property",
    "property",
    "property",
    "property",
    "set_property", // the record, for the access log
];
