//! proxy_get_buffer_bytes / proxy_set_buffer_bytes.

use super::{read, return_bytes, status, stream_of, Ctx};
use crate::vm::HostCtx;
use wasmtime::Linker;

const REQUEST_BODY: i32 = 0;
const RESPONSE_BODY: i32 = 1;
const HTTP_CALL_RESPONSE_BODY: i32 = 4;
const GRPC_RECEIVE_BUFFER: i32 = 5;
const VM_CONFIGURATION: i32 = 6;
const PLUGIN_CONFIGURATION: i32 = 7;

/// The buffer as the current callback may see it; None when Envoy has none at this point.
fn current(c: &Ctx, kind: i32) -> Option<Vec<u8>> {
    let h = c.data();
    match kind {
        REQUEST_BODY | RESPONSE_BODY => {
            let access = h.access.get(&h.effective).copied().unwrap_or_default();
            let s = stream_of(c)?;
            let s = s.borrow();
            if kind == REQUEST_BODY && access.request_body {
                Some(s.request_body.clone())
            } else if kind == RESPONSE_BODY && access.response_body {
                Some(s.response_body.clone())
            } else {
                Some(Vec::new())
            }
        }
        HTTP_CALL_RESPONSE_BODY => h.callout_response.as_ref().map(|r| r.body.clone()),
        GRPC_RECEIVE_BUFFER => h.grpc_buffer.clone(),
        VM_CONFIGURATION => Some(h.plugin.vm_config.clone()),
        PLUGIN_CONFIGURATION => h.in_configure.then(|| h.plugin.config.clone()),
        _ => None,
    }
}

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx,
         kind: i32,
         start: i32,
         max: i32,
         ptr_ptr: i32,
         size_ptr: i32|
         -> wasmtime::Result<i32> {
            let Some(buf) = current(&c, kind) else {
                return Ok(status::NOT_FOUND);
            };
            let start = start as u32 as usize;
            let max = max as u32 as usize;
            if start.checked_add(max).is_none() {
                return Ok(status::BAD_ARGUMENT);
            }
            // Clamp to what exists; nothing to copy is NotFound, as cpp-host answers.
            let end = (start + max).min(buf.len());
            if start >= end {
                return Ok(status::NOT_FOUND);
            }
            return_bytes(&mut c, &buf[start..end], ptr_ptr, size_ptr)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Ctx,
         kind: i32,
         start: i32,
         size: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<i32> {
            let Some(data) = read(&mut c, ptr, len)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            if kind != REQUEST_BODY && kind != RESPONSE_BODY {
                return Ok(status::BAD_ARGUMENT);
            }
            let h = c.data();
            let access = h.access.get(&h.effective).copied().unwrap_or_default();
            let allowed = if kind == REQUEST_BODY {
                access.request_body
            } else {
                access.response_body
            };
            let Some(s) = stream_of(&c) else {
                return Ok(status::BAD_ARGUMENT);
            };
            if !allowed {
                return Ok(status::NOT_FOUND);
            }
            let mut s = s.borrow_mut();
            let body = if kind == REQUEST_BODY {
                &mut s.request_body
            } else {
                &mut s.response_body
            };
            Ok(splice(
                body,
                start as u32 as usize,
                size as u32 as usize,
                &data,
            ))
        },
    )?;
    Ok(())
}

/// Envoy's `Buffer::copyFrom`: prepend, replace all, or append; anything else is refused.
fn splice(body: &mut Vec<u8>, start: usize, size: usize, data: &[u8]) -> i32 {
    if start == 0 {
        if size == 0 {
            let mut v = data.to_vec();
            v.extend_from_slice(body);
            *body = v;
            status::OK
        } else if size >= body.len() {
            *body = data.to_vec();
            status::OK
        } else {
            status::BAD_ARGUMENT
        }
    } else if start >= body.len() {
        body.extend_from_slice(data);
        status::OK
    } else {
        status::BAD_ARGUMENT
    }
}
