//! The proxy-wasm ABI 0.2.1 hostcalls (import module `env`) plus the WASI imports a Rust
//! `wasm32-wasip1` cdylib needs, one module per family. Every hostcall answers with the
//! `WasmResult` Envoy would give; a trap (Err) only where Envoy would fail the VM.

pub(crate) mod buffers;
pub(crate) mod callouts;
pub(crate) mod headers;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod properties;
pub(crate) mod queues;
pub(crate) mod shared_data;
pub(crate) mod stream;
pub(crate) mod timers;
pub(crate) mod wasi;

use crate::vm::{HostCtx, StreamData};
use std::cell::RefCell;
use std::rc::Rc;
use wasmtime::format_err as anyhow;
use wasmtime::{Caller, Linker, Memory};

pub(crate) type Ctx<'a> = Caller<'a, HostCtx>;

/// proxy-wasm `WasmResult` codes.
pub(crate) mod status {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const BAD_ARGUMENT: i32 = 2;
    pub const INVALID_MEMORY_ACCESS: i32 = 6;
    pub const EMPTY: i32 = 7;
    pub const CAS_MISMATCH: i32 = 8;
    pub const BROKEN_CONNECTION: i32 = 11;
}

pub(crate) fn add_to_linker(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    logging::add(l)?;
    timers::add(l)?;
    buffers::add(l)?;
    headers::add_fns(l)?;
    properties::add(l)?;
    shared_data::add(l)?;
    queues::add(l)?;
    stream::add(l)?;
    callouts::add(l)?;
    metrics::add(l)?;
    wasi::add(l)?;
    Ok(())
}

fn memory(c: &mut Ctx) -> wasmtime::Result<Memory> {
    c.get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| anyhow!("the guest exports no memory"))
}

/// Guest bytes, or None when the range is outside its memory.
pub(crate) fn read(c: &mut Ctx, ptr: i32, len: i32) -> wasmtime::Result<Option<Vec<u8>>> {
    let m = memory(c)?;
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize);
    Ok(end.and_then(|end| m.data(&*c).get(start..end).map(|s| s.to_vec())))
}

pub(crate) fn read_str(c: &mut Ctx, ptr: i32, len: i32) -> wasmtime::Result<Option<String>> {
    Ok(read(c, ptr, len)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

pub(crate) fn write(c: &mut Ctx, ptr: i32, data: &[u8]) -> wasmtime::Result<bool> {
    let m = memory(c)?;
    Ok(m.write(&mut *c, ptr as u32 as usize, data).is_ok())
}

pub(crate) fn write_u32(c: &mut Ctx, ptr: i32, v: u32) -> wasmtime::Result<bool> {
    write(c, ptr, &v.to_le_bytes())
}

pub(crate) fn write_u64(c: &mut Ctx, ptr: i32, v: u64) -> wasmtime::Result<bool> {
    write(c, ptr, &v.to_le_bytes())
}

/// Calls the guest's allocator, as the host does for every value it returns.
fn alloc(c: &mut Ctx, size: usize) -> wasmtime::Result<u32> {
    let f = c
        .get_export("proxy_on_memory_allocate")
        .or_else(|| c.get_export("malloc"))
        .and_then(|e| e.into_func())
        .ok_or_else(|| anyhow!("the guest exports neither proxy_on_memory_allocate nor malloc"))?;
    let f = f.typed::<i32, i32>(&*c)?;
    let p = f.call(&mut *c, size as i32)?;
    Ok(p as u32)
}

/// Copies `data` into guest memory it allocates, and stores pointer and size at the two
/// return slots. An empty value returns a null pointer, as cpp-host does.
pub(crate) fn return_bytes(
    c: &mut Ctx,
    data: &[u8],
    ptr_ptr: i32,
    size_ptr: i32,
) -> wasmtime::Result<i32> {
    let ptr = if data.is_empty() {
        0
    } else {
        let p = alloc(c, data.len())?;
        if p == 0 || !write(c, p as i32, data)? {
            return Ok(status::INVALID_MEMORY_ACCESS);
        }
        p
    };
    if !write_u32(c, ptr_ptr, ptr)? || !write_u32(c, size_ptr, data.len() as u32)? {
        return Ok(status::INVALID_MEMORY_ACCESS);
    }
    Ok(status::OK)
}

/// The stream behind the effective context, if it is a stream context.
pub(crate) fn stream_of(c: &Ctx) -> Option<Rc<RefCell<StreamData>>> {
    let h = c.data();
    h.contexts.get(&h.effective).cloned().flatten()
}

/// proxy-wasm pairs: count, then (key_len, value_len)*, then each key and value NUL-ended.
pub(crate) fn serialize_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

pub(crate) fn deserialize_pairs(b: &[u8]) -> Option<Vec<(String, String)>> {
    let word = |i: usize| -> Option<usize> {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    if b.is_empty() {
        return Some(vec![]);
    }
    let n = word(0)?;
    let mut sizes = Vec::with_capacity(n.min(4096));
    for i in 0..n {
        sizes.push((word(4 + i * 8)?, word(8 + i * 8)?));
    }
    let mut p = 4 + n * 8;
    let mut out = Vec::with_capacity(sizes.len());
    for (kl, vl) in sizes {
        let k = b.get(p..p + kl)?;
        p += kl + 1;
        let v = b.get(p..p + vl)?;
        p += vl + 1;
        out.push((
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ));
    }
    Some(out)
}
