//! A proxy-wasm HTTP filter (ABI 0.2.1) that, on every request's headers, makes one kind of host
//! call a configured number of times and lets the request through. `scripts/bench.sh` runs it
//! next to the empty module (`noop`) to measure what one host call of each kind costs in Envoy:
//! (CPU per request with N calls − CPU per request of the empty module) ÷ N. Those figures are
//! the floor under shieldwall's per-request work: a filter cannot cost less than the calls it
//! makes.
//!
//! The plugin configuration is `KIND N`, e.g. `get_header 10` (also as a JSON string), or
//! `seq KIND KIND …`: each listed call once, in that order, e.g. the calls one filter's path makes
//! (what that path's calls cost together, where the first call of a request may cost more than
//! the same call repeated). `seq/TAG KIND …` names this module's `set_property_new` keys
//! `bench.new.TAG.0`, …, so that several of these modules in one chain each write new keys.
//! Kinds:
//! - `get_header`: `proxy_get_header_map_value(request headers, ":path")`
//! - `get_header_pairs`: `proxy_get_header_map_pairs(request headers)` (the whole map)
//! - `replace_header`: `proxy_replace_header_map_value(request headers, "x-bench", "1")`
//! - `get_property`: `proxy_get_property("source.address")`
//! - `set_property`: `proxy_set_property("bench.value", "{\"decision\":\"allow\"}")`, the same
//!   key every time (after the first call of a request, Envoy updates the object it made)
//! - `set_property_new`: the same value under a new key each call (`bench.new.0`, `bench.new.1`,
//!   …), so every call makes a filter-state object, as a filter's first write of a key does
//! - `get_property_missing`: `proxy_get_property("shieldwall.nothing")`, a filter-state key no
//!   one set (a filter looking for an earlier filter's identity or decision that is not there)
//! - `memory_copy`: no host call; ten 64-byte copies inside the module's memory with a length the
//!   compiler cannot see, which the wasm target compiles to the bulk-memory `memory.copy` (what it
//!   costs in the engine, per ten copies)
//! - `audit_reads`: at the end of the stream (`proxy_on_log`), the eighteen properties audit-log
//!   reads for one record with its default configuration, as one block (N blocks per request).
//!   The module exports `proxy_on_log` for this kind, so Envoy calls into it at every stream's
//!   end whatever the kind: each price carries a twentieth of that call-in (the empty module
//!   does not export it).
//! - `get_shared`: `proxy_get_shared_data("bench")`
//! - `set_shared`: `proxy_set_shared_data("bench", 24 bytes, cas 0)`
//! - `metric`: `proxy_increment_metric` of a counter defined at configuration
//! - `clock`: `proxy_get_current_time_nanoseconds`
//! - `compute`: no host call; a fixed piece of work of the kind filters do between their calls
//!   (24 short strings formatted, sorted, joined and hashed: allocation, integer formatting,
//!   comparisons, a byte loop). The module also exports it as `shieldwall_bench_compute(n)` (n
//!   times, returns the hashes' XOR), so `bench/engine_compute.sh` can time the same compiled code
//!   in other wasm engines: how fast Envoy's V8 runs a module's own code, against V8 in Node and
//!   against wasmtime.
//! - `none`: no call (the module's own fixed cost, as `noop` with a configuration read)

// The ABI is raw imports and exports: unsafe calls and unmangled names are the point of it.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_buffer_bytes(
        kind: u32,
        start: usize,
        max: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
}

const MAP_REQUEST_HEADERS: u32 = 0;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
const METRIC_COUNTER: u32 = 0;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    None,
    GetHeader,
    GetHeaderPairs,
    ReplaceHeader,
    GetProperty,
    SetProperty,
    SetPropertyNew,
    GetPropertyMissing,
    AuditReads,
    MemoryCopy,
    GetShared,
    SetShared,
    Metric,
    Clock,
    Compute,
}

thread_local! {
    /// The calls of one request, in order.
    static PLAN: RefCell<Vec<Kind>> = const { RefCell::new(Vec::new()) };
    static METRIC: Cell<u32> = const { Cell::new(0) };
    /// What `set_property_new` puts between `bench.new.` and the call's index (`seq/TAG`).
    static TAG: RefCell<String> = const { RefCell::new(String::new()) };
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host writes what it returns into memory the module hands out here.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

/// Takes back (and frees) what the host returned through `proxy_on_memory_allocate`.
fn take(ptr: *mut u8, size: usize) -> Vec<u8> {
    if ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the host filled `size` bytes of a buffer `proxy_on_memory_allocate` made with that
    // capacity.
    unsafe { Vec::from_raw_parts(ptr, size, size) }
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _size: usize) -> u32 {
    1
}

fn kind_named(name: &str) -> Option<Kind> {
    Some(match name {
        "none" => Kind::None,
        "get_header" => Kind::GetHeader,
        "get_header_pairs" => Kind::GetHeaderPairs,
        "replace_header" => Kind::ReplaceHeader,
        "get_property" => Kind::GetProperty,
        "set_property" => Kind::SetProperty,
        "set_property_new" => Kind::SetPropertyNew,
        "get_property_missing" => Kind::GetPropertyMissing,
        "audit_reads" => Kind::AuditReads,
        "memory_copy" => Kind::MemoryCopy,
        "get_shared" => Kind::GetShared,
        "set_shared" => Kind::SetShared,
        "metric" => Kind::Metric,
        "clock" => Kind::Clock,
        "compute" => Kind::Compute,
        _ => return None,
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root_id: u32, size: usize) -> u32 {
    let mut ptr = std::ptr::null_mut();
    let mut len = 0;
    // SAFETY: out-pointers to locals.
    let status =
        unsafe { proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, size, &mut ptr, &mut len) };
    let text = if status == 0 {
        take(ptr, len)
    } else {
        Vec::new()
    };
    let text = String::from_utf8_lossy(&text);
    // Plain text, or the same as one JSON string.
    let mut words = text.trim().trim_matches('"').split_whitespace();
    let first = words.next().unwrap_or("none");
    let (first, tag) = match first.split_once('/') {
        Some((word, tag)) => (word, format!("{tag}.")),
        None => (first, String::new()),
    };
    TAG.with(|t| *t.borrow_mut() = tag);
    let plan = match first {
        "seq" => {
            let kinds: Option<Vec<Kind>> = words.map(kind_named).collect();
            match kinds {
                Some(kinds) => kinds,
                None => return 0,
            }
        }
        name => {
            let Some(kind) = kind_named(name) else {
                return 0;
            };
            let Ok(count) = words.next().unwrap_or("0").parse::<usize>() else {
                return 0;
            };
            vec![kind; count]
        }
    };
    let metric = plan.contains(&Kind::Metric);
    let shared = plan.contains(&Kind::GetShared);
    PLAN.with(|p| *p.borrow_mut() = plan);
    if metric {
        let name = b"bench.hostcalls";
        let mut id = 0;
        // SAFETY: a static name and an out-pointer to a local.
        if unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) } != 0 {
            return 0;
        }
        METRIC.with(|m| m.set(id));
    }
    if shared {
        let (key, value) = (b"bench", [0u8; 24]);
        // SAFETY: static buffers.
        unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), 0) };
    }
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_id: u32, _parent: u32) {}

fn call(kind: Kind, index: usize) {
    let mut ptr = std::ptr::null_mut();
    let mut len = 0;
    // SAFETY (every arm): static inputs and out-pointers to locals; what the host returns is
    // taken back and freed.
    unsafe {
        match kind {
            Kind::None => {}
            Kind::GetHeader => {
                let key = b":path";
                if proxy_get_header_map_value(
                    MAP_REQUEST_HEADERS,
                    key.as_ptr(),
                    key.len(),
                    &mut ptr,
                    &mut len,
                ) == 0
                {
                    drop(take(ptr, len));
                }
            }
            Kind::GetHeaderPairs => {
                if proxy_get_header_map_pairs(MAP_REQUEST_HEADERS, &mut ptr, &mut len) == 0 {
                    drop(take(ptr, len));
                }
            }
            Kind::ReplaceHeader => {
                let (key, value) = (b"x-bench", b"1");
                proxy_replace_header_map_value(
                    MAP_REQUEST_HEADERS,
                    key.as_ptr(),
                    key.len(),
                    value.as_ptr(),
                    value.len(),
                );
            }
            Kind::GetProperty => {
                // A path is its segments, each followed by a NUL.
                let path = b"source\0address\0";
                if proxy_get_property(path.as_ptr(), path.len(), &mut ptr, &mut len) == 0 {
                    drop(take(ptr, len));
                }
            }
            Kind::SetProperty => {
                let (path, value) = (b"bench.value", br#"{"decision":"allow"}"#);
                proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len());
            }
            Kind::SetPropertyNew => {
                // A few bytes of formatting: nothing next to the call itself.
                let path = TAG.with(|tag| format!("bench.new.{}{index}", tag.borrow()));
                let value = br#"{"decision":"allow"}"#;
                proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len());
            }
            Kind::GetPropertyMissing => {
                let path = b"shieldwall.nothing";
                if proxy_get_property(path.as_ptr(), path.len(), &mut ptr, &mut len) == 0 {
                    drop(take(ptr, len));
                }
            }
            Kind::MemoryCopy => {
                let src = [index as u8; 128];
                let mut dst = [0u8; 128];
                let n = std::hint::black_box(64usize);
                for at in 0..10 {
                    let (from, to) = (src.get(at..at + n), dst.get_mut(at..at + n));
                    if let (Some(from), Some(to)) = (from, to) {
                        to.copy_from_slice(from);
                    }
                }
                std::hint::black_box(&dst);
            }
            Kind::Compute => {
                std::hint::black_box(compute(index as u32));
            }
            Kind::AuditReads => {
                for path in AUDIT_PATHS {
                    if proxy_get_property(path.as_ptr(), path.len(), &mut ptr, &mut len) == 0 {
                        drop(take(ptr, len));
                    }
                }
            }
            Kind::GetShared => {
                let key = b"bench";
                let mut cas = 0;
                if proxy_get_shared_data(key.as_ptr(), key.len(), &mut ptr, &mut len, &mut cas) == 0
                {
                    drop(take(ptr, len));
                }
            }
            Kind::SetShared => {
                let (key, value) = (b"bench", [7u8; 24]);
                proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), 0);
            }
            Kind::Metric => {
                proxy_increment_metric(METRIC.with(Cell::get), 1);
            }
            Kind::Clock => {
                let mut t = 0;
                proxy_get_current_time_nanoseconds(&mut t);
            }
        }
    }
}

/// The `compute` kind's work (see the module's documentation): what a filter does between host
/// calls, in small: allocate, format integers, compare, move and hash bytes.
fn compute(seed: u32) -> u32 {
    let seed = std::hint::black_box(seed);
    let mut words: Vec<String> = (0..24u32)
        .map(|i| format!("k{}-{i}", (i.wrapping_mul(2_654_435_761) ^ seed) % 100_000))
        .collect();
    words.sort_unstable();
    let joined = words.join(",");
    joined.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `compute` `n` times (seeds 0..n), for timing the module's own code in another engine; the
/// hashes' XOR, so no engine can skip the work.
#[no_mangle]
pub extern "C" fn shieldwall_bench_compute(n: u32) -> u32 {
    (0..n).fold(0, |acc, i| acc ^ compute(i))
}

/// The properties audit-log reads for a record (its `a_record_makes_only_the_calls_it_needs`),
/// each path's segments followed by a NUL, a filter-state key as one segment.
const AUDIT_PATHS: [&[u8]; 18] = [
    b"source\0address\0",
    b"response\0code\0",
    b"response\0code_details\0",
    b"request\0duration\0",
    b"request\0total_size\0",
    b"response\0total_size\0",
    b"connection\0tls_version\0",
    b"xds\0route_name\0",
    b"xds\0cluster_name\0",
    b"shieldwall.identity",
    b"shieldwall.decision.mtls_identity",
    b"shieldwall.decision.jwt_auth",
    b"shieldwall.decision.token_introspection",
    b"shieldwall.decision.scope_authz",
    b"shieldwall.decision.policy_authz",
    b"shieldwall.decision.rate_limit",
    b"shieldwall.decision.payload_guard",
    b"shieldwall.decision.identity_exchange",
];

/// 0: continue.
#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    PLAN.with(|plan| {
        for (i, kind) in plan.borrow().iter().enumerate() {
            if *kind != Kind::AuditReads {
                call(*kind, i);
            }
        }
    });
    0
}

/// The end of the stream: `audit_reads` are made here, where Envoy knows the response.
#[no_mangle]
pub extern "C" fn proxy_on_log(_id: u32) {
    PLAN.with(|plan| {
        for (i, kind) in plan.borrow().iter().enumerate() {
            if *kind == Kind::AuditReads {
                call(*kind, i);
            }
        }
    });
}

/// 1: the context may be deleted.
#[no_mangle]
pub extern "C" fn proxy_on_done(_id: u32) -> u32 {
    1
}
