//! proxy_get_property / proxy_set_property. Paths are NUL-joined segments; values use Envoy's
//! encodings: strings raw, integers 8-byte little-endian, bools one byte, maps as pairs.
//! Unknown top-level names are filter state (`wasm.<path>` in Envoy), shared by all filters of
//! the stream.

use super::headers::get;
use super::{read, return_bytes, serialize_pairs, status, stream_of, Ctx};
use crate::vm::{HostCtx, StreamData};
use wasmtime::Linker;

fn int(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn split_host_port(addr: &str) -> (String, Option<i64>) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().ok()),
        None => (addr.to_string(), None),
    }
}

/// CEL's request.headers map: one entry per name, repeated values joined by ",".
fn header_map(map: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in map {
        if let Some(e) = out.iter_mut().find(|(ok, _)| ok == k) {
            e.1.push(',');
            e.1.push_str(v);
        } else {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

fn stream_property(s: &StreamData, path: &[&str]) -> Option<Vec<u8>> {
    let req = &s.request_headers;
    let str_ = |v: Option<&str>| v.map(|v| v.as_bytes().to_vec());
    match path {
        ["request", "path"] => str_(get(req, ":path")),
        ["request", "url_path"] => {
            str_(get(req, ":path").map(|p| p.split('?').next().unwrap_or("")))
        }
        ["request", "method"] => str_(get(req, ":method")),
        ["request", "host"] => str_(get(req, ":authority")),
        ["request", "scheme"] => str_(get(req, ":scheme")),
        ["request", "id"] => str_(get(req, "x-request-id")),
        ["request", "referer"] => str_(get(req, "referer")),
        ["request", "useragent"] => str_(get(req, "user-agent")),
        ["request", "protocol"] => Some(b"HTTP/1.1".to_vec()),
        ["request", "time"] => Some(int(s.start_nanos as i64)),
        ["request", "headers"] => Some(serialize_pairs(&header_map(req))),
        ["request", "headers", name] => header_map(req)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_bytes()),
        ["response", "code"] => get(&s.response_headers, ":status")
            .and_then(|c| c.parse::<i64>().ok())
            .map(int),
        // Envoy: the local reply's details, or `via_upstream` once the upstream answered.
        ["response", "code_details"] => match &s.local_reply_details {
            Some(d) => Some(d.as_bytes().to_vec()),
            None => get(&s.response_headers, ":status").map(|_| b"via_upstream".to_vec()),
        },
        ["response", "headers"] => (!s.response_headers.is_empty())
            .then(|| serialize_pairs(&header_map(&s.response_headers))),
        ["response", "headers", name] => header_map(&s.response_headers)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_bytes()),
        ["source", "address"] => Some(s.conn.source.as_bytes().to_vec()),
        ["source", "port"] => split_host_port(&s.conn.source).1.map(int),
        ["destination", "address"] => Some(s.conn.destination.as_bytes().to_vec()),
        ["destination", "port"] => split_host_port(&s.conn.destination).1.map(int),
        ["connection", "mtls"] => Some(vec![
            s.conn.tls.as_ref().is_some_and(|t| t.peer_certificate) as u8,
        ]),
        ["connection", rest] => {
            let tls = s.conn.tls.as_ref()?;
            let v = match *rest {
                "tls_version" => Some(&tls.version),
                "subject_peer_certificate" => tls.subject.as_ref(),
                "uri_san_peer_certificate" => tls.uri_san.as_ref(),
                "dns_san_peer_certificate" => tls.dns_san.as_ref(),
                "sha256_peer_certificate_digest" => tls.sha256_digest.as_ref(),
                "peer_certificate" => tls.peer_certificate_pem.as_ref(),
                "subject_local_certificate" => tls.local_subject.as_ref(),
                _ => None,
            };
            v.filter(|v| !v.is_empty()).map(|v| v.as_bytes().to_vec())
        }
        _ => None,
    }
}

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Ctx, pp: i32, pl: i32, ptr_ptr: i32, size_ptr: i32| -> wasmtime::Result<i32> {
            let Some(raw) = read(&mut c, pp, pl)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let text = String::from_utf8_lossy(&raw).into_owned();
            let path: Vec<&str> = text.split('\0').collect();
            let h = c.data();
            let value = match path.as_slice() {
                ["plugin_name"] => Some(h.plugin.name.as_bytes().to_vec()),
                ["plugin_root_id"] => Some(h.plugin.root_id.as_bytes().to_vec()),
                ["plugin_vm_id"] => Some(h.plugin.vm_id.as_bytes().to_vec()),
                _ => match stream_of(&c) {
                    None => None,
                    Some(s) => {
                        let s = s.borrow();
                        stream_property(&s, &path).or_else(|| {
                            // Filter state: the first segment names the object.
                            let state = s.filter_state.get(path[0].as_bytes())?;
                            if path.len() == 1 {
                                Some(state.clone())
                            } else {
                                None
                            }
                        })
                    }
                },
            };
            match value {
                Some(v) => return_bytes(&mut c, &v, ptr_ptr, size_ptr),
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Ctx, pp: i32, pl: i32, vp: i32, vl: i32| -> wasmtime::Result<i32> {
            let (Some(path), Some(value)) = (read(&mut c, pp, pl)?, read(&mut c, vp, vl)?) else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            // Envoy keys filter state by the raw path bytes; without a stream there is none.
            let Some(s) = stream_of(&c) else {
                return Ok(status::NOT_FOUND);
            };
            s.borrow_mut().filter_state.insert(path, value);
            Ok(status::OK)
        },
    )?;
    Ok(())
}
