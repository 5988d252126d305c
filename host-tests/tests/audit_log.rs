//! audit-log over the real release module, in front of scope-authz: one record per request in the
//! filter state the access loggers read, for requests the upstream answered and for those
//! scope-authz refused; masked; two workers keep two chains that verify, and break when a record
//! goes missing; the configuration refused with its field path.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p audit-log -p scope-authz

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use audit_log::chain::verify;
use host_tests::{wasm_path, Envoy, Outcome, Plugin, Request, Response, Worker};
use serde_json::{json, Value};

const KEY: &str = "host-test chain key of 32 bytes or more";

fn audit(config: &Value) -> Plugin {
    Plugin::new(wasm_path("audit-log"))
        .name("audit")
        .vm_id("audit")
        .env("AUDIT_CHAIN_KEY", KEY)
        .json(config)
}

fn policy() -> Plugin {
    Plugin::new(wasm_path("scope-authz"))
        .name("authz")
        .vm_id("authz")
        .json(&json!({"rules": [{"match": {"prefix": "/public/"}, "public": true}], "default": "deny"}))
}

/// One request; a 200 from the upstream when it gets there. Returns (status, the record line).
fn call(worker: &Worker, req: Request) -> (u16, Option<String>) {
    let mut s = worker.stream(req);
    let status = match s.send_request() {
        Outcome::Upstream(_) => match s.send_response(Response::ok().header("x-upstream", "ok")) {
            Outcome::Response(m) => m.status(),
            other => panic!("unexpected {other:?}"),
        },
        Outcome::LocalReply(r) => r.status(),
        other => panic!("unexpected {other:?}"),
    };
    let record = s
        .finish_logged("shieldwall.audit")
        .map(|b| String::from_utf8(b).unwrap());
    (status, record)
}

#[test]
fn two_workers_record_every_request_masked_in_two_chains() {
    let envoy = Envoy::new();
    let config = json!({"chain": {"key_env": "AUDIT_CHAIN_KEY"},
                        "include": {"request_headers": ["x-note"], "response_headers": ["x-upstream"]}});
    let workers: Vec<Worker> = (0..2)
        .map(|_| envoy.worker(&[audit(&config), policy()]).unwrap())
        .collect();
    let mut lines = Vec::new();
    for i in 0..6 {
        let w = &workers[i % 2];
        let (status, record) = call(
            w,
            Request::get(&format!(
                "/public/{i}?card=4111-1111-1111-1111&mail=a.b%40example.com"
            ))
            .header("x-note", "iban GB82 WEST 1234 5698 7654 32")
            .source("198.51.100.7:4000"),
        );
        assert_eq!(status, 200);
        lines.push(record.expect("a record for an allowed request"));
        let (status, record) = call(w, Request::get(&format!("/private/{i}?token=abc")));
        assert_eq!(status, 403);
        lines.push(record.expect("a record for a refused request"));
    }
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (line, r) in lines.iter().zip(&records) {
        for planted in [
            "4111-1111",
            "a.b%40example.com",
            "a.b@example.com",
            "GB82 WEST",
            "abc",
        ] {
            assert!(!line.contains(planted), "{planted} in {line}");
        }
        assert_eq!(r["ecs"]["version"], "8.11.0");
    }
    let allowed = &records[0];
    assert_eq!(allowed["http"]["response"]["status_code"], 200);
    assert_eq!(allowed["event"]["outcome"], "success");
    assert_eq!(allowed["client"]["ip"], "198.51.100.7");
    assert_eq!(
        allowed["url"]["query"].as_str().unwrap().split('&').next(),
        Some("card=411111******1111")
    );
    assert_eq!(
        allowed["http"]["request"]["headers"]["x-note"],
        "iban GB****************5432"
    );
    assert_eq!(allowed["http"]["response"]["headers"]["x-upstream"], "ok");
    assert_eq!(
        allowed["shieldwall"]["response_code_details"],
        "via_upstream"
    );
    let refused = &records[1];
    assert_eq!(refused["http"]["response"]["status_code"], 403);
    assert_eq!(refused["event"]["outcome"], "failure");
    assert_eq!(refused["event"]["type"], json!(["access", "denied"]));
    assert_eq!(refused["shieldwall"]["denied_by"], "scope_authz");
    assert_eq!(
        refused["shieldwall"]["decisions"]["scope_authz"],
        json!({"decision": "deny", "reason": "no_matching_rule", "status": 403})
    );
    assert_eq!(refused["event"]["reason"], "scope_authz: no_matching_rule");
    assert_eq!(
        allowed["shieldwall"]["decisions"]["scope_authz"]["decision"],
        "allow"
    );
    assert!(refused["url"]["query"]
        .as_str()
        .unwrap()
        .starts_with("token=[token:"));

    // Two workers, two chains of six records each.
    let summary = verify(lines.iter().map(String::as_str), KEY.as_bytes(), false).unwrap();
    assert_eq!(summary.records, 12);
    assert_eq!(summary.chains.len(), 2);
    assert!(summary
        .chains
        .values()
        .all(|&(first, last)| (first, last) == (1, 6)));
    let mut gap = lines.clone();
    gap.remove(4);
    let e = verify(gap.iter().map(String::as_str), KEY.as_bytes(), false).unwrap_err();
    assert!(e.reason.contains("missing"), "{e:?}");
    assert_eq!(envoy.metric("shieldwall.audit_log.records"), Some(12));
    assert_eq!(
        envoy.metric("shieldwall.audit_log.masked.card_number"),
        Some(6)
    );
}

#[test]
fn a_missing_chain_key_refuses_the_configuration() {
    let envoy = Envoy::new();
    let plugin = Plugin::new(wasm_path("audit-log"))
        .name("audit")
        .json(&json!({"chain": {"key_env": "AUDIT_CHAIN_KEY"}}));
    let refused = envoy.worker(&[plugin]).err().expect("refused");
    assert!(
        format!("{refused:#}")
            .contains("chain.key_env: the VM has no environment variable `AUDIT_CHAIN_KEY`"),
        "{refused:#}"
    );
}
