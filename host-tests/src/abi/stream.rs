//! Context and stream control. Like Envoy, continue and local replies are deferred until the
//! current callback returns; the worker then applies them.

use super::{read, read_str, return_bytes, status, write_u32, Ctx};
use crate::vm::{Deferred, Dir, HostCtx};
use wasmtime::Linker;

fn dir(stream_type: i32) -> Option<Dir> {
    match stream_type {
        0 => Some(Dir::Request),
        1 => Some(Dir::Response),
        _ => None,
    }
}

fn defer(c: &mut Ctx, d: Deferred) {
    let h = c.data_mut();
    let ctx = h.effective;
    // Envoy has no stream callbacks on a root context: accepted, and nothing happens.
    if matches!(h.contexts.get(&ctx), Some(Some(_))) {
        h.actions.push((ctx, d));
    }
}

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Ctx, t: i32| -> wasmtime::Result<i32> {
            let Some(d) = dir(t) else {
                return Ok(status::BAD_ARGUMENT);
            };
            defer(&mut c, Deferred::Continue(d));
            Ok(status::OK)
        },
    )?;
    // The pre-0.2 names, still exported by cpp-host.
    l.func_wrap(
        "env",
        "proxy_continue_request",
        |mut c: Ctx| -> wasmtime::Result<i32> {
            defer(&mut c, Deferred::Continue(Dir::Request));
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_continue_response",
        |mut c: Ctx| -> wasmtime::Result<i32> {
            defer(&mut c, Deferred::Continue(Dir::Response));
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: Ctx, t: i32| -> wasmtime::Result<i32> {
            if !(0..=3).contains(&t) {
                return Ok(status::BAD_ARGUMENT);
            }
            defer(&mut c, Deferred::Reset);
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx,
         code: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         grpc: i32|
         -> wasmtime::Result<i32> {
            let (Some(details), Some(body), Some(h)) = (
                read_str(&mut c, dp, dl)?,
                read(&mut c, bp, bl)?,
                read(&mut c, hp, hl)?,
            ) else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let Some(headers) = super::deserialize_pairs(&h) else {
                return Ok(status::BAD_ARGUMENT);
            };
            defer(
                &mut c,
                Deferred::LocalReply {
                    status: code as u32,
                    details,
                    body,
                    headers,
                    grpc_status: grpc,
                },
            );
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Ctx, id: i32| -> wasmtime::Result<i32> {
            let h = c.data_mut();
            if h.contexts.contains_key(&(id as u32)) {
                h.effective = id as u32;
                Ok(status::OK)
            } else {
                Ok(status::BAD_ARGUMENT)
            }
        },
    )?;
    l.func_wrap("env", "proxy_done", |_c: Ctx| -> wasmtime::Result<i32> {
        Ok(status::OK)
    })?;
    l.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_c: Ctx,
         _np: i32,
         _nl: i32,
         _ap: i32,
         _al: i32,
         _rp: i32,
         _rs: i32|
         -> wasmtime::Result<i32> {
            // No foreign functions are registered in our Envoy configuration.
            Ok(status::NOT_FOUND)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: Ctx, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| -> wasmtime::Result<i32> {
            let (code, msg) = c.data().status.clone();
            if !write_u32(&mut c, code_ptr, code)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            return_bytes(&mut c, msg.as_bytes(), ptr_ptr, size_ptr)
        },
    )?;
    Ok(())
}
