//! Each module exports exactly the callbacks its filter uses. The host skips a callback a module
//! does not export (and each call into the VM costs time), so a missing export silently disables
//! a hook and an extra one costs every request: both are caught here. Every module has the tick:
//! it hands the counters the VM counted to the proxy (and runs the filter's own tick, if any).

// Test code: a failed expectation is meant to panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use host_tests::wasm_path;

fn leb(bytes: &[u8], at: &mut usize) -> u64 {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

/// The names of the module's function exports (kind 0) that the host looks for (`proxy_*`,
/// `_initialize`), read from its export section. (Crypto code may export helpers of its own.)
fn function_exports(module: &str) -> BTreeSet<String> {
    let bytes = std::fs::read(wasm_path(module)).unwrap();
    assert_eq!(&bytes[..4], b"\0asm");
    let mut at = 8;
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let size = leb(&bytes, &mut at) as usize;
        let end = at + size;
        if id == 7 {
            let mut names = BTreeSet::new();
            let mut p = at;
            for _ in 0..leb(&bytes, &mut p) {
                let len = leb(&bytes, &mut p) as usize;
                let name = String::from_utf8(bytes[p..p + len].to_vec()).unwrap();
                p += len;
                let kind = bytes[p];
                p += 1;
                leb(&bytes, &mut p);
                if kind == 0 && (name.starts_with("proxy_") || name == "_initialize") {
                    names.insert(name);
                }
            }
            return names;
        }
        at = end;
    }
    panic!("{module}: no export section");
}

const ALWAYS: &[&str] = &[
    "_initialize",
    "proxy_abi_version_0_2_1",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_done",
    "proxy_on_memory_allocate",
    "proxy_on_request_headers",
    "proxy_on_tick",
    "proxy_on_vm_start",
];

fn expect(module: &str, extra: &[&str]) {
    let want: BTreeSet<String> = ALWAYS.iter().chain(extra).map(|s| s.to_string()).collect();
    assert_eq!(function_exports(module), want, "{module}");
}

#[test]
fn jwt_auth_exports_http_callouts_only() {
    expect("jwt-auth", &["proxy_on_http_call_response"]);
}

#[test]
fn scope_authz_exports_request_headers_only() {
    expect("scope-authz", &[]);
}

#[test]
fn policy_authz_exports_the_request_body_and_trailers() {
    expect(
        "policy-authz",
        &["proxy_on_request_body", "proxy_on_request_trailers"],
    );
}

#[test]
fn mtls_identity_exports_request_headers_only() {
    expect("mtls-identity", &[]);
}

#[test]
fn rate_limit_exports_response_headers_and_grpc() {
    expect(
        "rate-limit",
        &[
            "proxy_on_response_headers",
            "proxy_on_grpc_receive",
            "proxy_on_grpc_close",
        ],
    );
}

#[test]
fn token_introspection_exports_http_callouts_only() {
    expect("token-introspection", &["proxy_on_http_call_response"]);
}

#[test]
fn identity_exchange_exports_request_headers_only() {
    expect("identity-exchange", &[]);
}

#[test]
fn shieldwall_exports_the_union_of_its_filters() {
    expect(
        "shieldwall",
        &[
            "proxy_on_http_call_response",
            "proxy_on_response_headers",
            "proxy_on_grpc_receive",
            "proxy_on_grpc_close",
            "proxy_on_log",
            "proxy_on_request_body",
            "proxy_on_request_trailers",
        ],
    );
}

#[test]
fn audit_log_exports_the_log_callback_and_the_http_sinks_replies() {
    expect(
        "audit-log",
        &["proxy_on_log", "proxy_on_http_call_response"],
    );
}

#[test]
fn payload_guard_exports_the_request_body_and_trailers() {
    expect(
        "payload-guard",
        &["proxy_on_request_body", "proxy_on_request_trailers"],
    );
}
