//! Header maps: request/response headers and trailers, callout response maps, gRPC metadata.
//! Envoy hands a filter a map only while the callback that owns it runs (or its stream is
//! paused there), and the request/response maps read-only in `on_log`; we do the same.

use super::{read, read_str, return_bytes, serialize_pairs, status, stream_of, Ctx};
use crate::vm::{Access, HostCtx};
use std::cell::RefCell;
use std::rc::Rc;
use wasmtime::Linker;

pub(crate) type HeaderMap = Vec<(String, String)>;

/// Adds like Envoy's header map: keys lowercased, pseudo-headers kept before the others.
pub(crate) fn add(map: &mut HeaderMap, key: &str, value: &str) {
    let key = key.to_ascii_lowercase();
    if key.starts_with(':') {
        let at = map.iter().take_while(|(k, _)| k.starts_with(':')).count();
        map.insert(at, (key, value.to_string()));
    } else {
        map.push((key, value.to_string()));
    }
}

pub(crate) fn get<'a>(map: &'a HeaderMap, key: &str) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    map.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
}

pub(crate) fn remove(map: &mut HeaderMap, key: &str) {
    let key = key.to_ascii_lowercase();
    map.retain(|(k, _)| *k != key);
}

/// Envoy's `setCopy`: every copy removed, one added.
pub(crate) fn replace(map: &mut HeaderMap, key: &str, value: &str) {
    remove(map, key);
    add(map, key, value);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcInitial,
    GrpcTrailing,
    CallHeaders,
    CallTrailers,
}

fn which(t: i32) -> Option<Which> {
    Some(match t {
        0 => Which::RequestHeaders,
        1 => Which::RequestTrailers,
        2 => Which::ResponseHeaders,
        3 => Which::ResponseTrailers,
        4 => Which::GrpcInitial,
        5 => Which::GrpcTrailing,
        6 => Which::CallHeaders,
        7 => Which::CallTrailers,
        _ => return None,
    })
}

fn access(c: &Ctx) -> Access {
    let h = c.data();
    h.access.get(&h.effective).copied().unwrap_or_default()
}

/// The map as a read-only copy, or None when Envoy would have no map here.
fn read_map(c: &Ctx, w: Which) -> Option<HeaderMap> {
    let a = access(c);
    let h = c.data();
    match w {
        Which::GrpcInitial => h.grpc_initial.clone(),
        Which::GrpcTrailing => h.grpc_trailing.clone(),
        Which::CallHeaders => h.callout_response.as_ref().map(|r| r.headers.clone()),
        Which::CallTrailers => h
            .callout_response
            .as_ref()
            .filter(|r| !r.trailers.is_empty())
            .map(|r| r.trailers.clone()),
        _ => {
            let s = stream_of(c)?;
            let s = s.borrow();
            match w {
                Which::RequestHeaders if a.request_headers || a.log => {
                    Some(s.request_headers.clone())
                }
                Which::RequestTrailers if a.request_trailers => Some(s.request_trailers.clone()),
                Which::ResponseHeaders if a.response_headers || a.log => {
                    Some(s.response_headers.clone())
                }
                Which::ResponseTrailers if a.response_trailers || a.log => {
                    Some(s.response_trailers.clone())
                }
                _ => None,
            }
        }
    }
}

/// Runs `f` on the mutable map; BadArgument where Envoy has no mutable map.
fn with_mut_map(c: &Ctx, t: i32, f: impl FnOnce(&mut HeaderMap)) -> i32 {
    let Some(w) = which(t) else {
        return status::BAD_ARGUMENT;
    };
    let a = access(c);
    let allowed = match w {
        Which::RequestHeaders => a.request_headers,
        Which::RequestTrailers => a.request_trailers,
        Which::ResponseHeaders => a.response_headers,
        Which::ResponseTrailers => a.response_trailers,
        _ => false,
    };
    let Some(s) = stream_of(c).filter(|_| allowed) else {
        return status::BAD_ARGUMENT;
    };
    let s: Rc<RefCell<_>> = s;
    let mut s = s.borrow_mut();
    let map = match w {
        Which::RequestHeaders => &mut s.request_headers,
        Which::RequestTrailers => &mut s.request_trailers,
        Which::ResponseHeaders => &mut s.response_headers,
        _ => &mut s.response_trailers,
    };
    f(map);
    status::OK
}

pub(crate) fn add_fns(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx, t: i32, ptr_ptr: i32, size_ptr: i32| -> wasmtime::Result<i32> {
            let Some(w) = which(t) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let map = read_map(&c, w).unwrap_or_default();
            return_bytes(&mut c, &serialize_pairs(&map), ptr_ptr, size_ptr)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Ctx, t: i32, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let Some(b) = read(&mut c, ptr, len)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let Some(pairs) = super::deserialize_pairs(&b) else {
                return Ok(status::BAD_ARGUMENT);
            };
            Ok(with_mut_map(&c, t, |m| {
                m.clear();
                for (k, v) in &pairs {
                    add(m, k, v);
                }
            }))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx,
         t: i32,
         kp: i32,
         kl: i32,
         ptr_ptr: i32,
         size_ptr: i32|
         -> wasmtime::Result<i32> {
            let Some(key) = read_str(&mut c, kp, kl)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let Some(map) = which(t).and_then(|w| read_map(&c, w)) else {
                return Ok(status::BAD_ARGUMENT);
            };
            // Envoy returns the first of repeated values (its code has a TODO about it).
            match get(&map, &key) {
                Some(v) => {
                    let v = v.to_string();
                    return_bytes(&mut c, v.as_bytes(), ptr_ptr, size_ptr)
                }
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> wasmtime::Result<i32> {
            let (Some(k), Some(v)) = (read_str(&mut c, kp, kl)?, read_str(&mut c, vp, vl)?) else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            Ok(with_mut_map(&c, t, |m| replace(m, &k, &v)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> wasmtime::Result<i32> {
            let (Some(k), Some(v)) = (read_str(&mut c, kp, kl)?, read_str(&mut c, vp, vl)?) else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            Ok(with_mut_map(&c, t, |m| add(m, &k, &v)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Ctx, t: i32, kp: i32, kl: i32| -> wasmtime::Result<i32> {
            let Some(k) = read_str(&mut c, kp, kl)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            Ok(with_mut_map(&c, t, |m| remove(m, &k)))
        },
    )?;
    Ok(())
}
