//! audit-log in a real Envoy with two workers, first in the chain audit-log → jwt-auth →
//! scope-authz → rate-limit, with real tokens from the OpenID Provider: a mixed run (allowed, 401
//! from jwt-auth and from scope-authz, 403, 429, 400) with card numbers, e-mail addresses, an IBAN,
//! a password and tokens planted in query strings and headers. Envoy prints each record through
//! `%FILTER_STATE(wasm.shieldwall.audit:PLAIN)%` into a file of its own; the test checks that every
//! request has exactly one record, with the decision and reason of the filter that answered (so
//! audit-log's `on_log` runs for requests a later filter refused, and sees that filter's
//! decision), that no planted value appears anywhere in that file or in Envoy's log, and that
//! `scripts/audit-verify` accepts the chains and rejects them after a line is deleted or edited.
//!
//! Needs the modules: `cargo build --release --target wasm32-wasip1 -p audit-log -p jwt-auth -p scope-authz -p rate-limit`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shieldwall_e2e::{
    example_config, scratch_dir, validate_config, wasm_path, yaml_str, Cluster, Echo, Envoy,
    EnvoyConfig, Idp, IdpOptions, WasmFilter,
};

const CHAIN_KEY: &str = "e2e audit chain key, 32 bytes or more";

/// A file access logger that prints the record and nothing else, one per line.
fn audit_access_log(path: &Path) -> String {
    format!(
        "- name: envoy.access_loggers.file
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: {}
    log_format:
      text_format_source:
        inline_string: \"%FILTER_STATE(wasm.shieldwall.audit:PLAIN)%\\n\"
",
        yaml_str(&path.to_string_lossy())
    )
}

fn audit_config() -> Value {
    json!({
        "sinks": {"access_log": true},
        "mask": {"json_fields": ["password", "ssn"], "query_params": ["access_token", "api_key"],
                 "patterns": [{"name": "account", "regex": "ACC-[0-9]{8}"}],
                 "hash_key_env": "AUDIT_CHAIN_KEY"},
        "include": {"request_headers": ["user-agent", "x-note", "x-api-key"]},
        "chain": {"key_env": "AUDIT_CHAIN_KEY"}
    })
}

fn audit_log() -> WasmFilter {
    WasmFilter::new(
        wasm_path("audit-log"),
        "audit-log",
        audit_config().to_string(),
    )
    .env("AUDIT_CHAIN_KEY", CHAIN_KEY)
}

/// The same filter state printed without `:PLAIN`, to pin what Envoy makes of it then.
fn audit_access_log_without_plain(path: &Path) -> String {
    audit_access_log(path).replace(":PLAIN", "")
}

/// The four filters as separate modules, or (`one_module`) as the stages of shieldwall.wasm.
fn chain(echo: &Echo, idp: &Idp, audit_file: &Path, one_module: bool) -> Envoy {
    let jwt = json!({
        "realm": "orders",
        "providers": {"idp": {
            "issuer": idp.issuer(), "audiences": ["orders-api"],
            "remote_jwks": {"cluster": "idp", "uri": format!("http://{}{}", idp.authority(), idp.jwks_path())}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"allow_missing": {"provider": "idp"}}}]
    });
    let policy = json!({"rules": [
        {"match": {"prefix": "/limited/"}, "public": true},
        {"match": {"methods": ["GET"], "template": "/tenants/{tenant}/orders/{id}"},
         "require": {"scopes": ["orders:read"], "tenant": "{tenant}"}}],
        "default": "deny", "realm": "orders"});
    let limits = json!({"rules": [{"name": "limited", "match": {"prefix": "/limited/"},
        "key": {"source": "client_ip"}, "limit": {"requests": 2, "per": "minute", "burst": 2}}]});
    let config = EnvoyConfig::new(echo.port())
        .concurrency(2)
        .cluster(Cluster::new("idp", idp.port()))
        .access_log(audit_access_log(audit_file))
        .access_log(audit_access_log_without_plain(
            &audit_file.with_extension("raw"),
        ));
    if one_module {
        let stages = json!({"chain": [
            {"filter": "audit-log", "config": audit_config()},
            {"filter": "jwt-auth", "config": jwt},
            {"filter": "scope-authz", "config": policy},
            {"filter": "rate-limit", "config": limits}
        ]});
        return Envoy::start(
            config.filter(
                WasmFilter::new(wasm_path("shieldwall"), "shieldwall", stages.to_string())
                    .env("AUDIT_CHAIN_KEY", CHAIN_KEY),
            ),
        );
    }
    let config = config
        .filter(audit_log())
        .filter(WasmFilter::new(
            wasm_path("jwt-auth"),
            "jwt-auth",
            jwt.to_string(),
        ))
        .filter(WasmFilter::new(
            wasm_path("scope-authz"),
            "scope-authz",
            policy.to_string(),
        ))
        .filter(WasmFilter::new(
            wasm_path("rate-limit"),
            "rate-limit",
            limits.to_string(),
        ));
    Envoy::start(config)
}

/// The audit records in the file (lines that are JSON objects).
fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn wait_for_records(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = records(path);
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `scripts/audit-verify FILE` with the chain key; (exit code, output).
fn audit_verify(file: &Path) -> (i32, String) {
    shieldwall_e2e::audit_verify(file, CHAIN_KEY)
}

#[test]
fn a_mixed_run_gives_one_masked_chained_record_per_request() {
    mixed_run(false);
}

#[test]
fn the_one_module_gives_the_same_records() {
    mixed_run(true);
}

fn mixed_run(one_module: bool) {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let dir = scratch_dir(if one_module {
        "audit-log-one"
    } else {
        "audit-log"
    });
    let audit_file = dir.join("audit.log");
    let envoy = chain(&echo, &idp, &audit_file, one_module);
    let reader = idp.demo_token("orders-reader"); // orders:read, tenant a
    let bearer = format!("Bearer {reader}");
    // A JWT-shaped token no key of the IdP signed.
    let forged = "eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vLXN1Y2gta2V5In0.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLW9mLW5vLW9uZQ";
    let forged_bearer = format!("Bearer {forged}");
    let note = "card 5555-5555-5555-4444, mail bob@example.org, ref ACC-12345678, {\"password\":\"hunter2\"}";
    let ua = "audit-test/1.0 (carol@example.net)";

    // (n, path and query, headers, expected status, the filter expected to answer and the reason
    // it records: `None` for the error code of its reply)
    let mut planted: Vec<String> = vec![
        "4111111111111111".into(),
        "4111 1111 1111 1111".into(),
        "4111%201111".into(),
        "5555-5555-5555-4444".into(),
        "alice@example.com".into(),
        "alice%40example.com".into(),
        "bob@example.org".into(),
        "carol@example.net".into(),
        "DE89370400440532013000".into(),
        "ACC-12345678".into(),
        "hunter2".into(),
        "k-7f3a9c".into(),
        forged.into(),
        reader.clone(),
    ];
    planted.sort();
    let path2 = format!("/tenants/a/orders/2?n=2&access_token={forged}&c=4111+1111+1111+1111");
    type Case<'a> = (
        u32,
        &'a str,
        Vec<(&'a str, &'a str)>,
        u16,
        Option<(&'a str, Option<&'a str>)>,
    );
    let cases: Vec<Case> = vec![
        (1, "/tenants/a/orders/1?n=1&card=4111111111111111&email=alice%40example.com&iban=DE89370400440532013000",
         vec![("authorization", &bearer), ("x-note", note), ("user-agent", ua), ("x-api-key", "k-7f3a9c")], 200, None),
        (2, &path2,
         vec![("authorization", &forged_bearer), ("user-agent", ua)], 401, Some(("jwt_auth", None))),
        (3, "/tenants/a/orders/3?n=3&password=hunter2", vec![("x-note", note)], 401, Some(("scope_authz", Some("missing_identity")))),
        (4, "/tenants/b/orders/4?n=4&mail=alice@example.com", vec![("authorization", &bearer)], 403, Some(("scope_authz", Some("tenant_mismatch")))),
        (5, "/limited/5?n=5", vec![], 200, None),
        (6, "/limited/6?n=6", vec![], 200, None),
        (7, "/limited/7?n=7&card=4111%201111%201111%201111", vec![], 429, Some(("rate_limit", None))),
        (8, "/tenants/a%2Forders/8?n=8", vec![("authorization", &bearer), ("x-note", note)], 400, Some(("jwt_auth", None))),
    ];
    let paths: Vec<String> = cases.iter().map(|c| c.1.to_string()).collect();
    let mut errors = Vec::new();
    for ((n, _, headers, status, _), path) in cases.iter().zip(&paths) {
        let resp = envoy.request("GET", path, headers, b"");
        assert_eq!(resp.status, *status, "request {n}: {resp}\n{}", envoy.log());
        errors.push(resp.error());
    }

    let got = wait_for_records(&audit_file, cases.len());
    assert_eq!(
        got.len(),
        cases.len(),
        "one record per request:\n{got:#?}\n{}",
        envoy.log()
    );
    for ((n, _, _, status, by), error) in cases.iter().zip(&errors) {
        let mine: Vec<&Value> = got
            .iter()
            .filter(|r| {
                r["url"]["query"]
                    .as_str()
                    .is_some_and(|q| q.split('&').any(|p| p == format!("n={n}")))
            })
            .collect();
        assert_eq!(mine.len(), 1, "request {n}: {got:#?}");
        let r = mine[0];
        assert_eq!(r["http"]["response"]["status_code"], *status, "{r}");
        assert_eq!(r["ecs"]["version"], "8.11.0");
        assert_eq!(r["event"]["kind"], "event");
        assert_eq!(r["client"]["ip"], "127.0.0.1");
        assert!(
            r["event"]["id"].as_str().is_some_and(|s| !s.is_empty()),
            "{r}"
        );
        assert!(r["event"]["duration"].as_u64().is_some(), "{r}");
        match by {
            None => {
                assert_eq!(r["event"]["outcome"], "success", "{r}");
                assert!(r["shieldwall"].get("denied_by").is_none(), "{r}");
            }
            Some((filter, reason)) => {
                let reason = reason.unwrap_or(error.as_str());
                assert_eq!(r["event"]["outcome"], "failure", "{r}");
                assert_eq!(r["shieldwall"]["denied_by"], *filter, "request {n}: {r}");
                let d = &r["shieldwall"]["decisions"][filter];
                assert_eq!(d["decision"], "deny", "{r}");
                assert_eq!(d["status"], *status, "{r}");
                // The reason the filter recorded is the error code its reply carried.
                assert_eq!(d["reason"], reason, "request {n}: {r}");
                assert_eq!(r["event"]["reason"], format!("{filter}: {reason}"), "{r}");
            }
        }
    }
    // The allowed request: the caller, masked values that still correlate.
    let allowed = got
        .iter()
        .find(|r| r["url"]["query"].as_str().unwrap().starts_with("n=1&"))
        .unwrap();
    assert_eq!(allowed["user"]["id"], "orders-reader", "{allowed}");
    assert_eq!(allowed["shieldwall"]["client_id"], "orders-reader");
    assert_eq!(allowed["shieldwall"]["tenant"], "a");
    assert_eq!(allowed["shieldwall"]["auth"], json!(["jwt"]));
    assert_eq!(
        allowed["shieldwall"]["decisions"]["jwt_auth"]["decision"], "allow",
        "{allowed}"
    );
    let query = allowed["url"]["query"].as_str().unwrap();
    assert!(query.contains("card=411111******1111"), "{query}");
    assert!(query.contains("iban=DE****************3000"), "{query}");
    assert!(query.contains("email=[email:"), "{query}");
    let note_logged = allowed["http"]["request"]["headers"]["x-note"]
        .as_str()
        .unwrap();
    assert!(
        note_logged.contains("555555******4444") && note_logged.contains("[account:"),
        "{note_logged}"
    );
    // The same address in another request, as another parameter, gives the same tag.
    let tag = &query[query.find("[email:").unwrap()..][..16];
    assert!(
        got.iter()
            .any(|r| r["url"]["query"].as_str().unwrap().starts_with("n=4&")
                && r["url"]["query"].as_str().unwrap().contains(tag)),
        "{got:#?}"
    );

    // No planted value anywhere: not in the audit file, not in Envoy's own log.
    let raw = std::fs::read_to_string(&audit_file).unwrap();
    let log = envoy.log();
    for p in &planted {
        assert!(!raw.contains(p.as_str()), "{p} in the audit log:\n{raw}");
        assert!(!log.contains(p.as_str()), "{p} in Envoy's log");
    }
    assert!(
        !raw.contains("Bearer ") && !raw.to_ascii_lowercase().contains("authorization"),
        "{raw}"
    );

    // The chains verify; a deleted or an edited line is found.
    let (code, out) = audit_verify(&audit_file);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("intact: {} records", cases.len())),
        "{out}"
    );
    let lines: Vec<&str> = raw.lines().collect();
    // A record with a successor in its chain (its deletion must break the successor's link).
    let chain_of = |l: &str| serde_json::from_str::<Value>(l).unwrap()["audit"]["chain"].clone();
    let victim = (0..lines.len())
        .find(|&i| (i + 1..lines.len()).any(|j| chain_of(lines[j]) == chain_of(lines[i])))
        .unwrap();
    let deleted: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, l)| *l)
        .collect();
    let file = dir.join("deleted.log");
    std::fs::write(&file, deleted.join("\n") + "\n").unwrap();
    let (code, out) = audit_verify(&file);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("missing") || out.contains("does not match"),
        "{out}"
    );

    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let target = edited
        .iter()
        .position(|l| l.contains("\"status_code\":403"))
        .unwrap();
    edited[target] = edited[target].replace("\"status_code\":403", "\"status_code\":200");
    let file = dir.join("edited.log");
    std::fs::write(&file, edited.join("\n") + "\n").unwrap();
    let (code, out) = audit_verify(&file);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("edited.log:{}:", target + 1)),
        "{out}"
    );
    assert!(out.contains("does not match"), "{out}");

    // Without `:PLAIN` Envoy prints the value as a protobuf `BytesValue` (JSON, base64 value), not
    // the record: the access-log format must say `:PLAIN`.
    // That file is flushed on Envoy's own schedule, apart from the first one.
    let unplain = wait_for_records(&audit_file.with_extension("raw"), cases.len());
    assert_eq!(unplain.len(), cases.len(), "{unplain:#?}");
    for v in &unplain {
        let line = v.to_string();
        assert_eq!(
            v["@type"], "type.googleapis.com/google.protobuf.BytesValue",
            "{line}"
        );
        assert!(
            v.get("ecs").is_none() && v["value"].as_str().unwrap().starts_with("eyJ"),
            "{line}"
        );
    }

    let stats = envoy.stats_prometheus();
    assert!(stats.contains("shieldwall_audit_log_records"), "{stats}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shipping path a SIEM receives: Envoy's audit file → syslog-ng (tailing it, forwarding
/// RFC 5424 over TCP) → a second syslog-ng as the SIEM's collector, writing a file. Every record
/// arrives once, masked, and the collected file (syslog header before each record) verifies.
#[test]
fn records_reach_a_syslog_collector_once_and_still_verify() {
    // scripts/setup.sh installs syslog-ng (Debian syslog-ng-core): a test never passes by skipping.
    assert!(
        shieldwall_e2e::SyslogNg::binary().is_some(),
        "syslog-ng is not installed: run scripts/setup.sh (Debian package syslog-ng-core)"
    );
    let echo = Echo::start();
    let dir = scratch_dir("audit-syslog");
    let audit_file = dir.join("audit.log");
    let collected = dir.join("collected.log");
    let policy =
        json!({"rules": [{"match": {"prefix": "/public/"}, "public": true}], "default": "deny"});
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .concurrency(2)
            .access_log(audit_access_log(&audit_file))
            .filter(audit_log())
            .filter(WasmFilter::new(
                wasm_path("scope-authz"),
                "scope-authz",
                policy.to_string(),
            )),
    );
    // The SIEM's collector: RFC 5424 (octet-counted framing) on TCP, one line per message.
    let port = shieldwall_e2e::free_port();
    let mut collector = shieldwall_e2e::SyslogNg::start(
        "collector",
        &format!(
            "@version: 3.35
options {{ flush_lines(0); log_msg_size(262144); }};
source s_net {{ syslog(ip(\"127.0.0.1\") port({port}) transport(\"tcp\") max-connections(4) log-msg-size(262144)); }};
destination d_file {{ file(\"{}\" template(\"${{ISODATE}} ${{HOST}} ${{PROGRAM}}: ${{MSG}}\\n\")); }};
log {{ source(s_net); destination(d_file); }};
",
            collected.display()
        ),
    );
    collector.wait_listening(port);
    // The node's shipper: follows Envoy's audit file, one record per line, forwards as RFC 5424.
    let shipper = shieldwall_e2e::SyslogNg::start(
        "shipper",
        &format!(
            "@version: 3.35
options {{ log_msg_size(262144); }};
source s_audit {{ file(\"{}\" follow-freq(0.1) flags(no-parse) program-override(\"envoy-audit\") log-msg-size(262144)); }};
filter f_records {{ message(\"^\\\\{{\"); }};
destination d_siem {{ syslog(\"127.0.0.1\" port({port}) transport(\"tcp\")); }};
log {{ source(s_audit); filter(f_records); destination(d_siem); }};
",
            audit_file.display()
        ),
    );

    let n = 40;
    let mut threads = Vec::new();
    let envoy = std::sync::Arc::new(envoy);
    for t in 0..4 {
        let envoy = envoy.clone();
        threads.push(std::thread::spawn(move || {
            for i in 0..n / 4 {
                let k = t * 100 + i;
                let path = if i % 3 == 0 {
                    format!("/private/{k}?card=4111111111111111")
                } else {
                    format!("/public/{k}?mail=dora{k}%40example.com")
                };
                let resp = envoy.request("GET", &path, &[], b"");
                assert!(resp.status == 200 || resp.status == 403, "{resp}");
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let text = std::fs::read_to_string(&collected).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        lines.len(),
        n,
        "every record once at the collector:\n{}\nshipper:\n{}\ncollector:\n{}",
        lines.join("\n"),
        shipper.output(),
        collector.output()
    );
    let mut paths: Vec<String> = lines
        .iter()
        .map(|l| {
            assert!(l.contains(" envoy-audit: {"), "{l}");
            let record: Value = serde_json::from_str(&l[l.find('{').unwrap()..]).unwrap();
            record["url"]["path"].as_str().unwrap().to_string()
        })
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), n, "each request's record exactly once");
    let raw = std::fs::read_to_string(&collected).unwrap();
    assert!(
        !raw.contains("4111111111111111") && !raw.contains("example.com"),
        "{raw}"
    );
    let (code, out) = audit_verify(&collected);
    assert_eq!(code, 0, "{out}");
    drop(shipper);
    drop(collector);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example configuration loads in Envoy with the chain key and the SIEM token in Envoy's
/// environment, and Envoy refuses it without either: the filter never runs with a chain it cannot
/// key, nor ships to a SIEM without its token.
#[test]
fn the_example_takes_its_chain_key_and_siem_token_from_the_environment() {
    let text = example_config("audit-log.yaml");
    let dir = scratch_dir("audit-example");
    let validate = |key: Option<&str>, token: Option<&str>| {
        validate_config(
            &dir,
            &text,
            &[("AUDIT_CHAIN_KEY", key), ("SIEM_TOKEN", token)],
        )
    };
    let token = Some("Bearer example-token");
    let (ok, log) = validate(Some(CHAIN_KEY), token);
    assert!(ok, "{log}");
    let (ok, log) = validate(None, token);
    assert!(!ok, "{log}");
    assert!(
        log.contains("chain.key_env: the VM has no environment variable `AUDIT_CHAIN_KEY`"),
        "{log}"
    );
    let (ok, log) = validate(Some(CHAIN_KEY), None);
    assert!(!ok, "{log}");
    assert!(
        log.contains(
            "sinks.http.headers[0].value_env: the VM has no environment variable `SIEM_TOKEN`"
        ),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Behind Envoy's own `jwt_authn` (Istio's RequestAuthentication): with
/// `"identity_from": "jwt_authn"` the record names the caller from the payload `jwt_authn`
/// verified and put in metadata; a request `jwt_authn` refused still gets its record.
#[test]
fn the_identity_can_come_from_envoys_jwt_authn() {
    let dir = scratch_dir("audit-jwt-authn");
    let audit_file = dir.join("audit.log");
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    let mut config = audit_config();
    config["identity_from"] = json!("jwt_authn");
    config["decisions"] = json!([]);
    let envoy = Envoy::start(
        EnvoyConfig::new(echo.port())
            .cluster(Cluster::new("idp", idp.port()))
            .native_filter(idp.jwt_authn_filter(&[]))
            .filter(
                WasmFilter::new(wasm_path("audit-log"), "audit-log", config.to_string())
                    .env("AUDIT_CHAIN_KEY", CHAIN_KEY),
            )
            .access_log(audit_access_log(&audit_file)),
    );
    let reader = idp.demo_token("orders-reader");
    let resp = envoy.get_with_token("/tenants/a/orders/1", &reader);
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log());
    assert_eq!(envoy.get("/tenants/a/orders/2", &[]).status, 401);
    let got = wait_for_records(&audit_file, 2);
    assert_eq!(got.len(), 2, "{got:?}\n{}", envoy.log());
    let allowed = &got[0];
    assert_eq!(allowed["url"]["path"], "/tenants/a/orders/1", "{allowed}");
    assert_eq!(allowed["user"]["id"], "orders-reader", "{allowed}");
    assert_eq!(allowed["shieldwall"]["client_id"], "orders-reader");
    assert_eq!(allowed["shieldwall"]["tenant"], "a");
    assert_eq!(allowed["http"]["response"]["status_code"], 200);
    let refused = &got[1];
    assert_eq!(refused["http"]["response"]["status_code"], 401, "{refused}");
    assert!(refused.get("user").is_none(), "{refused}");
    assert_eq!(refused["event"]["outcome"], "failure");
    let _ = std::fs::remove_dir_all(&dir);
}
