//! The smallest proxy-wasm HTTP filter the host accepts (ABI 0.2.1): every request passes, no host
//! call is made, and only the callbacks a stream must have are exported. `scripts/bench.sh` runs
//! it to measure the fixed cost of a wasm filter in Envoy (creating the stream's context and the
//! calls into the VM), the floor under which no proxy-wasm filter can go. Built with the feature
//! `every-callback` it also exports the response-header and log callbacks, doing nothing in them:
//! the benchmark's price of those call-ins.

// Exports are what the host calls: unmangled names are the point of this crate.
#![allow(unsafe_code)]

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host writes strings it returns into memory the module hands out here.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root_id: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_id: u32, _parent: u32) {}

/// 0: continue.
#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    0
}

/// 1: the context may be deleted.
#[no_mangle]
pub extern "C" fn proxy_on_done(_id: u32) -> u32 {
    1
}

/// With `every-callback`: Envoy calls this on every response; 0: continue.
#[cfg(feature = "every-callback")]
#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    0
}

/// With `every-callback`: Envoy calls this once per stream, before `proxy_on_done`.
#[cfg(feature = "every-callback")]
#[no_mangle]
pub extern "C" fn proxy_on_log(_id: u32) {}
