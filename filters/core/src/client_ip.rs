//! The client address a rule keys on: the connection's peer, or, behind `xff_trusted_hops`
//! trusted proxies, the address the outermost trusted proxy saw (read from the right of
//! `x-forwarded-for`). Entries a client wrote itself sit to the left of that and are never used,
//! so a client cannot choose its own key.

use std::net::{IpAddr, SocketAddr};

use crate::Host;

/// The IP of `ip`, `ip:port` or `[ipv6]:port`, in canonical form.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    bare.unwrap_or(text).parse::<IpAddr>().ok()
}

/// Chooses the client address. `peer` is the connection's remote address; `xff` the
/// comma-separated `x-forwarded-for` values in order. Envoy (with `use_remote_address`) appends
/// the peer to the header; a last entry equal to the peer is that append and is dropped.
/// With fewer entries than trusted hops, the peer is used (as Envoy does).
pub fn resolve(peer: Option<IpAddr>, xff: &[String], trusted_hops: u32) -> Option<IpAddr> {
    let peer = peer?;
    if trusted_hops == 0 {
        return Some(peer);
    }
    let mut chain: Vec<&str> = xff
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if chain.last().and_then(|l| parse_ip(l)) == Some(peer) {
        chain.pop();
    }
    let hops = trusted_hops as usize;
    if chain.len() < hops {
        return Some(peer);
    }
    // The peer is trusted hop 1; it wrote the last entry, and so on to the left.
    let at = chain.len() - hops;
    Some(chain.get(at).and_then(|s| parse_ip(s)).unwrap_or(peer))
}

/// The client address of the current request, as text.
pub fn client_ip(host: &dyn Host, trusted_hops: u32) -> Option<String> {
    let peer = host
        .property(&["source", "address"])
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| parse_ip(&s));
    let xff: Vec<String> = if trusted_hops == 0 {
        Vec::new()
    } else {
        host.request_headers()
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
            .map(|(_, v)| v)
            .collect()
    };
    resolve(peer, &xff, trusted_hops).map(|ip| ip.to_string())
}
