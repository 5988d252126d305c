//! Native cost of one request through payload-guard: the orders API's `createOrder` with a valid
//! body of about 1 KB (headers, operation lookup, parse, injection checks, schema), over the mock
//! host. Prints the median of several rounds, in microseconds per request.
//!
//!   cargo run --release -p payload-guard --example request_cost
//!
//! `--openapi FILE --body FILE --path PATH` take another document (JSON or YAML), body and POST
//! path (the benchmark's: `python3 bench/run.py --write-payload DIR` writes its document and body).
//!
//! `--requests N` runs one round of N requests instead, for counting instructions with a
//! simulator (`valgrind --tool=callgrind …/request_cost --requests 2000`: the difference between
//! two such counts divided by the difference of N is the cost of one request, free of the noise
//! of a shared machine).

use std::time::Instant;

use shieldwall_core::testing::{cli_value, MockHost};
use shieldwall_core::{RootFilter, StreamFilter};

use payload_guard::PayloadGuard;

const ORDERS: &str = include_str!("../../../envoy/openapi/orders.yaml");

fn body() -> String {
    let items: Vec<String> = (0..14)
        .map(|i| format!(r#"{{"sku":"BOOK-{i:03}","qty":{},"price":12.5}}"#, i + 1))
        .collect();
    format!(
        r#"{{"customer":{{"name":"Ada O'Brien","email":"ada@example.com","address":{{"street":"12 Rue de l'Eglise","city":"Paris","postcode":"75004","country":"FR"}}}},"items":[{}],"currency":"EUR","comment":"Please leave the parcel with the concierge if nobody answers; she knows us and will sign for it. The gate code is 1234 and the door is on the left, second floor, flat 2B. Many thanks, and see you next month for the next order of books and coffee."}}"#,
        items.join(",")
    )
}

fn main() {
    if std::env::args().any(|a| a == "--parts") {
        parts();
        return;
    }
    let read = |name: &str| cli_value(name).map(|f| std::fs::read_to_string(f).unwrap_or_default());
    let document = read("--openapi").unwrap_or_else(|| ORDERS.to_string());
    let cfg = serde_json::to_vec(&serde_json::json!({"openapi": document})).unwrap_or_default();
    let mut host = MockHost::new();
    let Ok(mut root) = PayloadGuard::configure(&mut host, &cfg) else {
        eprintln!("configuration refused");
        return;
    };
    let body = read("--body").unwrap_or_else(body);
    let path = cli_value("--path").unwrap_or_else(|| "/tenants/a/orders".to_string());
    let len = body.len().to_string();
    let headers = [
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
    ];
    let mut host = MockHost::request("POST", &path, &headers);
    host.request_body = body.clone().into_bytes();
    let one_round = cli_value("--requests").and_then(|v| v.parse::<u32>().ok());
    let n = one_round.unwrap_or(20_000);
    let round_count = if one_round.is_some() { 1 } else { 7 };
    let mut rounds = Vec::new();
    for _ in 0..round_count {
        let start = Instant::now();
        for _ in 0..n {
            host.local_reply = None;
            let mut s = root.new_stream(&mut host, 2);
            s.on_request_headers(&mut host, false);
            s.on_request_body(&mut host, body.len(), true);
        }
        rounds.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    if host.local_reply.is_some() {
        eprintln!("the body was refused: {:?}", host.local_reply);
        return;
    }
    rounds.sort_by(f64::total_cmp);
    let median = rounds.get(rounds.len() / 2).copied().unwrap_or_default();
    println!(
        "payload-guard, POST {path} with a {} byte valid body: {median:.1} µs per request (median of {round_count} rounds of {n})",
        body.len()
    );
}

#[allow(dead_code)]
fn parts() {
    let cfg = payload_guard::Config::parse(
        &serde_json::to_vec(&serde_json::json!({"openapi": ORDERS})).unwrap_or_default(),
    )
    .ok()
    .unwrap_or_else(|| std::process::exit(1));
    let api = cfg.api.as_ref().unwrap_or_else(|| std::process::exit(1));
    let b = body();
    let n = 2000;
    let t = Instant::now();
    let mut v = serde_json::Value::Null;
    for _ in 0..n {
        v = payload_guard::json::parse(b.as_bytes(), &cfg.defaults.limits.json).unwrap_or_default();
    }
    println!(
        "parse {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let payload_guard::openapi::Lookup::Found(op, _) = api.lookup("POST", "/tenants/a/orders")
    else {
        return;
    };
    let t = Instant::now();
    for _ in 0..n {
        let _ = api.lookup("POST", "/tenants/a/orders");
    }
    println!(
        "lookup {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let schema = op
        .body
        .as_ref()
        .and_then(|b| b.media.first())
        .and_then(|m| m.schema.clone());
    let Some((idx, ptr)) = schema else { return };
    let t = Instant::now();
    for _ in 0..n {
        let _ = api.schemas.validate(&v, idx);
    }
    println!(
        "validate {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    let known = |k: &str| api.known_names.contains(k);
    let t = Instant::now();
    for _ in 0..n {
        let _ = payload_guard::inject::scan_body(
            &v,
            Some(&api.doc),
            &api.walk,
            Some(&ptr),
            &cfg.defaults.injection,
            &known,
        );
    }
    println!(
        "scan {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    // The walk alone (no SQL or XSS check on the strings it picks), then each check alone.
    let mut walk_only = cfg.defaults.injection.clone();
    walk_only.sql = false;
    walk_only.xss = false;
    let mut sql_only = cfg.defaults.injection.clone();
    sql_only.xss = false;
    for (name, inj) in [("walk", &walk_only), ("walk+sqli", &sql_only)] {
        let t = Instant::now();
        for _ in 0..n {
            let _ = payload_guard::inject::scan_body(
                &v,
                Some(&api.doc),
                &api.walk,
                Some(&ptr),
                inj,
                &known,
            );
        }
        println!(
            "{name} {:.1} µs",
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
    }
    for text in ["Ada O'Brien", "Paris", "Please leave the parcel with the concierge if nobody answers; she knows us and will sign for it."] {
        let t = Instant::now();
        for _ in 0..n {
            let _ = libinjectionrs::detect_sqli(text.as_bytes());
        }
        let sq = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let t = Instant::now();
        for _ in 0..n {
            let _ = libinjectionrs::detect_xss(text.as_bytes());
        }
        println!("{} bytes: sqli {sq:.1} µs, xss {:.1} µs", text.len(), t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
}
