//! The proxy-wasm ABI 0.2.1 host functions, bound directly.
//!
//! Why not the Rust SDK's wrappers: they panic on any status they do not expect and on header
//! values that are not UTF-8 (`String::from_utf8(..).unwrap()`), and a panic traps the VM, which
//! fails every later request on that worker. A client could trigger that with one odd header
//! byte. Here every call returns its status as an error and every value as bytes.

use std::ptr::{null, null_mut};

pub use crate::wire::serialize_pairs;

/// Host status codes (proxy-wasm `WasmResult`).
pub const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;
pub const BAD_ARGUMENT: u32 = 2;
/// A shared queue had nothing to dequeue.
pub const EMPTY: u32 = 7;
pub const CAS_MISMATCH: u32 = 8;

pub const MAP_REQUEST_HEADERS: u32 = 0;
pub const MAP_RESPONSE_HEADERS: u32 = 2;
pub const MAP_HTTP_CALL_RESPONSE_HEADERS: u32 = 6;

pub const BUFFER_REQUEST_BODY: u32 = 0;
pub const BUFFER_HTTP_CALL_RESPONSE_BODY: u32 = 4;
pub const BUFFER_GRPC_RECEIVE: u32 = 5;
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;

pub const STREAM_REQUEST: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_log_level(out: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(out: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        kind: u32,
        start: usize,
        max: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(kind: u32, out: *mut *mut u8, out_size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        kind: u32,
        key: *const u8,
        key_size: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        kind: u32,
        key: *const u8,
        key_size: usize,
        v: *const u8,
        v_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(kind: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_add_header_map_value(
        kind: u32,
        key: *const u8,
        key_size: usize,
        v: *const u8,
        v_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(path: *const u8, path_size: usize, v: *const u8, v_size: usize) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        out: *mut *mut u8,
        out_size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        v: *const u8,
        v_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> u32;
    fn proxy_grpc_call(
        service: *const u8,
        service_size: usize,
        service_name: *const u8,
        service_name_size: usize,
        method: *const u8,
        method_size: usize,
        metadata: *const u8,
        metadata_size: usize,
        message: *const u8,
        message_size: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_register_shared_queue(name: *const u8, name_size: usize, token: *mut u32) -> u32;
    fn proxy_resolve_shared_queue(
        vm_id: *const u8,
        vm_id_size: usize,
        name: *const u8,
        name_size: usize,
        token: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(token: u32, v: *const u8, v_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(token: u32, out: *mut *mut u8, out_size: *mut usize) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
}

/// The host allocates returned data through this export; the guest then owns it.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

/// Takes ownership of a buffer the host filled through `proxy_on_memory_allocate`.
fn take(ptr: *mut u8, size: usize) -> Vec<u8> {
    if ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the host allocated `size` bytes with `proxy_on_memory_allocate` (a Vec with that
    // capacity) and wrote `size` bytes into it; ownership passes to us exactly once.
    unsafe { Vec::from_raw_parts(ptr, size, size) }
}

fn result(status: u32) -> Result<(), u32> {
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// Calls a host function that returns a buffer; `Ok(None)` for NotFound.
fn fetch(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Option<Vec<u8>>, u32> {
    let mut ptr: *mut u8 = null_mut();
    let mut size: usize = 0;
    match call(&mut ptr, &mut size) {
        OK => Ok(Some(take(ptr, size))),
        NOT_FOUND => Ok(None),
        status => Err(status),
    }
}

fn path_bytes(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(seg.as_bytes());
    }
    out
}

// ---- safe wrappers (each `unsafe` block passes pointers to live, correctly sized buffers)

pub fn log(level: u32, message: &str) {
    // SAFETY: message is a live buffer of the given size.
    unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// The proxy's log level for this plugin (proxy-wasm's numbering: 0 trace … 5 critical).
pub fn log_level() -> Result<u32, u32> {
    let mut level = 0u32;
    // SAFETY: `level` is a valid out-pointer.
    result(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(level)
}

pub fn now_nanos() -> u64 {
    let mut t = 0u64;
    // SAFETY: `t` is a valid out-pointer.
    unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    t
}

pub fn set_tick_period_ms(ms: u32) -> Result<(), u32> {
    // SAFETY: no pointers.
    result(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

pub fn buffer(kind: u32, start: usize, max: usize) -> Result<Option<Vec<u8>>, u32> {
    // SAFETY: out-pointers are valid for the call.
    fetch(|p, s| unsafe { proxy_get_buffer_bytes(kind, start, max, p, s) })
}

/// A header map as the host wrote it, indexed (no copy of a key or value).
pub fn header_map(kind: u32) -> Result<crate::wire::Pairs, u32> {
    // SAFETY: out-pointers are valid for the call.
    let bytes = fetch(|p, s| unsafe { proxy_get_header_map_pairs(kind, p, s) })?;
    Ok(crate::wire::Pairs::parse(bytes.unwrap_or_default()))
}

pub fn header(kind: u32, name: &str) -> Result<Option<Vec<u8>>, u32> {
    // SAFETY: name is live; out-pointers are valid for the call.
    fetch(|p, s| unsafe { proxy_get_header_map_value(kind, name.as_ptr(), name.len(), p, s) })
}

pub fn replace_header(kind: u32, name: &str, value: &[u8]) -> Result<(), u32> {
    // SAFETY: both buffers are live with their sizes.
    result(unsafe {
        proxy_replace_header_map_value(kind, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_header(kind: u32, name: &str) -> Result<(), u32> {
    // SAFETY: name is live.
    result(unsafe { proxy_remove_header_map_value(kind, name.as_ptr(), name.len()) })
}

pub fn add_header(kind: u32, name: &str, value: &[u8]) -> Result<(), u32> {
    // SAFETY: both buffers are live with their sizes.
    result(unsafe {
        proxy_add_header_map_value(kind, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, u32> {
    let p = path_bytes(path);
    // SAFETY: p is live; out-pointers are valid for the call.
    fetch(|o, s| unsafe { proxy_get_property(p.as_ptr(), p.len(), o, s) })
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), u32> {
    let p = path_bytes(path);
    // SAFETY: both buffers are live with their sizes.
    result(unsafe { proxy_set_property(p.as_ptr(), p.len(), value.as_ptr(), value.len()) })
}

pub fn shared_get(key: &str) -> Result<(Option<Vec<u8>>, u32), u32> {
    let mut cas = 0u32;
    // SAFETY: key is live; out-pointers are valid for the call.
    let value =
        fetch(|p, s| unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), p, s, &mut cas) })?;
    Ok((value, cas))
}

pub fn shared_set(key: &str, value: &[u8], cas: u32) -> Result<(), u32> {
    // SAFETY: both buffers are live with their sizes.
    result(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

pub fn continue_request() -> Result<(), u32> {
    // SAFETY: no pointers.
    result(unsafe { proxy_continue_stream(STREAM_REQUEST) })
}

pub fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[(&str, &[u8])],
) -> Result<(), u32> {
    let h = serialize_pairs(headers);
    // SAFETY: every buffer is live with its size.
    result(unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            h.as_ptr(),
            h.len(),
            -1,
        )
    })
}

pub fn http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    body: Option<&[u8]>,
    timeout_ms: u32,
) -> Result<u32, u32> {
    let h = serialize_pairs(headers);
    let t = serialize_pairs(&[]);
    let (bp, bs) = body.map_or((null(), 0), |b| (b.as_ptr(), b.len()));
    let mut token = 0u32;
    // SAFETY: every buffer is live with its size; token is a valid out-pointer.
    let status = unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            h.as_ptr(),
            h.len(),
            bp,
            bs,
            t.as_ptr(),
            t.len(),
            timeout_ms,
            &mut token,
        )
    };
    result(status).map(|()| token)
}

#[allow(clippy::too_many_arguments)]
pub fn grpc_call(
    cluster: &str,
    service: &str,
    method: &str,
    metadata: &[(&str, &[u8])],
    message: &[u8],
    timeout_ms: u32,
) -> Result<u32, u32> {
    let m = serialize_pairs(metadata);
    let mut token = 0u32;
    // SAFETY: every buffer is live with its size; token is a valid out-pointer.
    let status = unsafe {
        proxy_grpc_call(
            cluster.as_ptr(),
            cluster.len(),
            service.as_ptr(),
            service.len(),
            method.as_ptr(),
            method.len(),
            m.as_ptr(),
            m.len(),
            message.as_ptr(),
            message.len(),
            timeout_ms,
            &mut token,
        )
    };
    result(status).map(|()| token)
}

pub fn set_effective_context(id: u32) -> Result<(), u32> {
    // SAFETY: no pointers.
    result(unsafe { proxy_set_effective_context(id) })
}

pub fn register_shared_queue(name: &str) -> Result<u32, u32> {
    let mut token = 0u32;
    // SAFETY: name is live; token is a valid out-pointer.
    result(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut token) })
        .map(|()| token)
}

pub fn resolve_shared_queue(vm_id: &str, name: &str) -> Result<Option<u32>, u32> {
    let mut token = 0u32;
    // SAFETY: both strings are live; token is a valid out-pointer.
    let status = unsafe {
        proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut token,
        )
    };
    match status {
        OK => Ok(Some(token)),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

pub fn enqueue_shared_queue(token: u32, value: &[u8]) -> Result<(), u32> {
    // SAFETY: value is live with its size.
    result(unsafe { proxy_enqueue_shared_queue(token, value.as_ptr(), value.len()) })
}

/// The next item, or `Ok(None)` when the queue is empty.
pub fn dequeue_shared_queue(token: u32) -> Result<Option<Vec<u8>>, u32> {
    // SAFETY: out-pointers are valid for the call.
    match fetch(|p, s| unsafe { proxy_dequeue_shared_queue(token, p, s) }) {
        Err(EMPTY) => Ok(None),
        Ok(None) => Err(NOT_FOUND),
        other => other,
    }
}

pub fn define_metric(kind: u32, name: &str) -> Result<u32, u32> {
    let mut id = 0u32;
    // SAFETY: name is live; id is a valid out-pointer.
    result(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) }).map(|()| id)
}

pub fn increment_metric(id: u32, offset: i64) {
    // SAFETY: no pointers.
    unsafe { proxy_increment_metric(id, offset) };
}

pub fn record_metric(id: u32, value: u64) {
    // SAFETY: no pointers.
    unsafe { proxy_record_metric(id, value) };
}
