//! HTTP and gRPC callouts to the clusters the test declared. Like Envoy, a call is made on
//! the plugin's root context (its token belongs to it) and the answer is delivered to that
//! root context in a later dispatcher turn, never inside the call.

use super::{deserialize_pairs, read, read_str, status, write_u32, Ctx};
use crate::envoy::EventKind;
use crate::state::upstreams::{CalloutRequest, GrpcRequest};
use crate::vm::HostCtx;
use std::time::Duration;
use wasmtime::Linker;

/// `envoy_grpc.cluster_name` from a serialized `GrpcService`, if that is what we were given.
fn grpc_service_cluster(b: &[u8]) -> Option<String> {
    // field 1 (envoy_grpc), length-delimited; inside, field 1 (cluster_name), length-delimited.
    let inner = length_delimited(b, 0x0a)?;
    let name = length_delimited(inner, 0x0a)?;
    String::from_utf8(name.to_vec()).ok()
}

fn length_delimited(b: &[u8], tag: u8) -> Option<&[u8]> {
    if *b.first()? != tag {
        return None;
    }
    let (mut len, mut shift, mut i) = (0usize, 0, 1);
    loop {
        let byte = *b.get(i)?;
        len |= ((byte & 0x7f) as usize) << shift;
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    b.get(i..i + len)
}

fn next_token(h: &mut HostCtx, grpc: bool) -> u32 {
    if grpc {
        // gRPC call tokens are odd in Envoy (stream tokens even).
        h.next_grpc_token = h.next_grpc_token.wrapping_add(2).max(1) | 1;
        h.next_grpc_token
    } else {
        h.next_http_token = h.next_http_token.wrapping_add(1).max(1);
        h.next_http_token
    }
}

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Ctx,
         up: i32,
         upl: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         tp: i32,
         tl: i32,
         timeout: i32,
         token_ptr: i32|
         -> wasmtime::Result<i32> {
            let (Some(cluster), Some(h), Some(body), Some(t)) = (
                read_str(&mut c, up, upl)?,
                read(&mut c, hp, hl)?,
                read(&mut c, bp, bl)?,
                read(&mut c, tp, tl)?,
            ) else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let (Some(mut headers), Some(trailers)) =
                (deserialize_pairs(&h), deserialize_pairs(&t))
            else {
                return Ok(status::BAD_ARGUMENT);
            };
            if timeout < 0 {
                return Ok(status::BAD_ARGUMENT);
            }
            for (k, _) in headers.iter_mut() {
                *k = k.to_ascii_lowercase();
            }
            let envoy = c.data().envoy.clone();
            let Some(cl) = envoy.borrow().clusters.get(&cluster).cloned() else {
                return Ok(status::BAD_ARGUMENT);
            };
            // Envoy refuses a callout without these three.
            for required in [":path", ":method", ":authority"] {
                if !headers.iter().any(|(k, _)| k == required) {
                    return Ok(status::BAD_ARGUMENT);
                }
            }
            if !body.is_empty() {
                headers.retain(|(k, _)| k != "content-length");
                headers.push(("content-length".into(), body.len().to_string()));
            }
            let timeout = (timeout > 0).then(|| Duration::from_millis(timeout as u64));
            let h = c.data_mut();
            let token = next_token(h, false);
            let req = CalloutRequest {
                cluster,
                headers,
                body,
                trailers,
                timeout,
                plugin: h.plugin.name.clone(),
            };
            // Envoy runs every callout on the plugin's root context, whichever context started
            // it (proxy-wasm-cpp-host's http_call takes the root context), and replies there:
            // the guest must route the reply by token itself.
            let (worker, vm, ctx) = (h.worker, h.vm_index, h.root_context_id);
            envoy.borrow_mut().callouts.push(req.clone());
            let timeout_ns = timeout.map(|t| t.as_nanos() as u64);
            if let Some(addr) = cl.real {
                envoy.borrow_mut().post(
                    worker,
                    vm,
                    0,
                    EventKind::RealHttp {
                        context_id: ctx,
                        token,
                        addr,
                        request: req,
                    },
                );
            } else {
                // Call the script outside any borrow: it may inspect the Envoy itself.
                let reply = match &cl.http {
                    Some(f) => f(&req),
                    None => crate::state::upstreams::Reply::reset(),
                };
                let delay = reply.delay.as_nanos() as u64;
                let mut e = envoy.borrow_mut();
                let timeout_reply = e.timeout_behavior.response();
                match (reply.response, timeout_ns) {
                    (Some(_), Some(t)) if delay > t => e.post(
                        worker,
                        vm,
                        t,
                        EventKind::Http {
                            context_id: ctx,
                            token,
                            response: timeout_reply,
                        },
                    ),
                    (Some(r), _) => e.post(
                        worker,
                        vm,
                        delay,
                        EventKind::Http {
                            context_id: ctx,
                            token,
                            response: with_service_time(r, reply.delay),
                        },
                    ),
                    (None, Some(t)) => e.post(
                        worker,
                        vm,
                        t,
                        EventKind::Http {
                            context_id: ctx,
                            token,
                            response: timeout_reply,
                        },
                    ),
                    (None, None) => {}
                }
            }
            if !write_u32(&mut c, token_ptr, token)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: Ctx,
         up: i32,
         upl: i32,
         sp: i32,
         sl: i32,
         mp: i32,
         ml: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         timeout: i32,
         token_ptr: i32|
         -> wasmtime::Result<i32> {
            let (Some(upstream), Some(service), Some(method), Some(md), Some(message)) = (
                read(&mut c, up, upl)?,
                read_str(&mut c, sp, sl)?,
                read_str(&mut c, mp, ml)?,
                read(&mut c, hp, hl)?,
                read(&mut c, bp, bl)?,
            ) else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let Some(initial_metadata) = deserialize_pairs(&md) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let envoy = c.data().envoy.clone();
            // Envoy takes a serialized GrpcService, or a plain cluster name.
            let name = String::from_utf8_lossy(&upstream).into_owned();
            let cluster = if envoy.borrow().clusters.contains_key(&name) {
                name
            } else if let Some(n) = grpc_service_cluster(&upstream) {
                n
            } else {
                return Ok(status::BAD_ARGUMENT);
            };
            let Some(cl) = envoy.borrow().clusters.get(&cluster).cloned() else {
                return Ok(status::BAD_ARGUMENT);
            };
            let timeout = (timeout > 0).then(|| Duration::from_millis(timeout as u32 as u64));
            let h = c.data_mut();
            let token = next_token(h, true);
            let req = GrpcRequest {
                cluster,
                service,
                method,
                initial_metadata,
                message,
                timeout,
                plugin: h.plugin.name.clone(),
            };
            let (worker, vm, ctx) = (h.worker, h.vm_index, h.root_context_id);
            envoy.borrow_mut().grpc_callouts.push(req.clone());
            let reply = match &cl.grpc {
                Some(f) => f(&req),
                // An HTTP-only cluster does not speak gRPC: Unavailable, as a failed upstream.
                None => {
                    crate::state::upstreams::GrpcReply::error(14, "upstream is not a gRPC service")
                }
            };
            let delay = reply.delay.as_nanos() as u64;
            let timeout_ns = timeout.map(|t| t.as_nanos() as u64);
            let deadline = EventKind::Grpc {
                context_id: ctx,
                token,
                message: None,
                status: 4,
                status_message: String::new(),
            };
            let mut e = envoy.borrow_mut();
            match (reply.never, timeout_ns) {
                (false, Some(t)) if delay > t => e.post(worker, vm, t, deadline),
                (false, _) => e.post(
                    worker,
                    vm,
                    delay,
                    EventKind::Grpc {
                        context_id: ctx,
                        token,
                        message: reply.message,
                        status: reply.status,
                        status_message: reply.status_message,
                    },
                ),
                (true, Some(t)) => e.post(worker, vm, t, deadline),
                (true, None) => {}
            }
            drop(e);
            if !write_u32(&mut c, token_ptr, token)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: Ctx,
         up: i32,
         upl: i32,
         _sp: i32,
         _sl: i32,
         _mp: i32,
         _ml: i32,
         _hp: i32,
         _hl: i32,
         token_ptr: i32|
         -> wasmtime::Result<i32> {
            let Some(upstream) = read(&mut c, up, upl)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let name = String::from_utf8_lossy(&upstream).into_owned();
            let known = {
                let e = c.data().envoy.borrow();
                e.clusters.contains_key(&name)
                    || grpc_service_cluster(&upstream).is_some_and(|n| e.clusters.contains_key(&n))
            };
            if !known {
                return Ok(status::BAD_ARGUMENT);
            }
            // Streams are opened and accept messages; scripted stream replies are not modelled.
            let h = c.data_mut();
            h.next_grpc_stream = h.next_grpc_stream.wrapping_add(2).max(2) & !1;
            let token = h.next_grpc_stream;
            h.grpc_streams.insert(token);
            if !write_u32(&mut c, token_ptr, token)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_send",
        |c: Ctx, token: i32, _p: i32, _l: i32, _end: i32| -> wasmtime::Result<i32> {
            if token as u32 & 1 == 1 {
                return Ok(status::BAD_ARGUMENT);
            }
            Ok(if c.data().grpc_streams.contains(&(token as u32)) {
                status::OK
            } else {
                status::NOT_FOUND
            })
        },
    )?;
    for name in ["proxy_grpc_cancel", "proxy_grpc_close"] {
        l.func_wrap(
            "env",
            name,
            |mut c: Ctx, token: i32| -> wasmtime::Result<i32> {
                let token = token as u32;
                let h = c.data_mut();
                if h.grpc_streams.remove(&token) {
                    return Ok(status::OK);
                }
                let (w, vm) = (h.worker, h.vm_index);
                // A cancelled call gets no callback at all.
                let removed = h.envoy.borrow_mut().cancel(
                    w,
                    vm,
                    |k| matches!(k, EventKind::Grpc { token: t, .. } if *t == token),
                );
                Ok(if removed {
                    status::OK
                } else {
                    status::NOT_FOUND
                })
            },
        )?;
    }
    Ok(())
}

/// Envoy's async client runs the router, which adds `x-envoy-upstream-service-time` (ms) to an
/// upstream's answer, after the upstream's own headers; its local replies (timeouts, no
/// upstream) and failures carry none (checked against Envoy 1.40: callout_pause_resume,
/// callout_timeout).
pub(crate) fn with_service_time(
    mut r: crate::state::upstreams::CalloutResponse,
    took: std::time::Duration,
) -> crate::state::upstreams::CalloutResponse {
    if r.failure.is_none() {
        r.headers.push((
            "x-envoy-upstream-service-time".into(),
            took.as_millis().to_string(),
        ));
    }
    r
}
