//! The input document a policy decides on, built per request from what the proxy and the earlier
//! filters know:
//!
//! ```json
//! { "identity":   { …the identity context, as the authenticators wrote it… },
//!   "request":    { "method": "POST", "path": "/tenants/a/payments",
//!                   "path_params": { "tenant": "a" }, "query": { "dry_run": ["1"] },
//!                   "headers": { "x-request-id": "…" }, "rule": "payments" },
//!   "source":     { "address": "203.0.113.7" },
//!   "connection": { "mtls": true, "subject": "CN=…", "uri_san": "spiffe://…",
//!                   "dns_san": "…", "sha256": "…" },
//!   "body":       { …the parsed JSON body, with `input: {"body": "json"}`… } }
//! ```
//!
//! A member that is not known is absent (undefined in Rego), never an empty placeholder, so a
//! policy cannot mistake "no identity" for "an identity without a tenant".

use std::collections::BTreeMap;

use regorus::Value as RegoValue;
use shieldwall_core::client_ip::client_ip;
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::route::Params;
use shieldwall_core::{Host, RequestLine};

use crate::config::InputSpec;

fn object(members: Vec<(&str, RegoValue)>) -> RegoValue {
    let map: BTreeMap<RegoValue, RegoValue> = members
        .into_iter()
        .filter(|(_, v)| *v != RegoValue::Undefined)
        .map(|(k, v)| (RegoValue::from(k), v))
        .collect();
    RegoValue::from(map)
}

fn text(s: &str) -> RegoValue {
    RegoValue::from(s)
}

/// The identity context as the authenticators wrote it (every member, claims included), or
/// undefined when none did. A context that does not parse (only a bug can cause that: clients
/// cannot write filter state) is left out, and the policy sees no identity.
pub fn identity(host: &dyn Host) -> RegoValue {
    let Some(bytes) = host.property(&[IDENTITY_PROPERTY]) else {
        return RegoValue::Undefined;
    };
    let Ok(json) = std::str::from_utf8(&bytes) else {
        return RegoValue::Undefined;
    };
    match RegoValue::from_json_str(json) {
        Ok(v @ RegoValue::Object(_)) => v,
        _ => RegoValue::Undefined,
    }
}

/// `input.request`: method, normalised path, the matched template's parameters, the query as a
/// map of every value per name, and the listed headers (repeated values joined by `, `).
pub fn request(
    host: &dyn Host,
    spec: &InputSpec,
    line: &RequestLine,
    params: &Params,
    rule: &str,
) -> RegoValue {
    let path_params: BTreeMap<RegoValue, RegoValue> =
        params.iter().map(|(k, v)| (text(k), text(v))).collect();
    let mut query: BTreeMap<String, Vec<RegoValue>> = BTreeMap::new();
    for (k, v) in line.query_pairs() {
        query.entry(k).or_default().push(RegoValue::from(v));
    }
    let query: BTreeMap<RegoValue, RegoValue> = query
        .into_iter()
        .map(|(k, v)| (RegoValue::from(k), RegoValue::from(v)))
        .collect();
    let headers = if spec.headers.is_empty() {
        RegoValue::Undefined
    } else {
        let mut found: BTreeMap<&str, String> = BTreeMap::new();
        for (k, v) in host.request_headers() {
            let k = k.to_ascii_lowercase();
            if let Some(name) = spec.headers.iter().find(|h| **h == k) {
                let entry = found.entry(name.as_str()).or_default();
                if !entry.is_empty() {
                    entry.push_str(", ");
                }
                entry.push_str(&v);
            }
        }
        RegoValue::from(
            found
                .into_iter()
                .map(|(k, v)| (text(k), RegoValue::from(v)))
                .collect::<BTreeMap<RegoValue, RegoValue>>(),
        )
    };
    object(vec![
        ("method", text(&line.method)),
        ("path", text(&line.path)),
        ("path_params", RegoValue::from(path_params)),
        ("query", RegoValue::from(query)),
        ("headers", headers),
        ("rule", text(rule)),
    ])
}

/// `input.source`: the client address, as rate-limit resolves it (the peer, or the address the
/// outermost of `xff_trusted_hops` trusted proxies saw).
pub fn source(host: &dyn Host, spec: &InputSpec) -> RegoValue {
    let address = client_ip(host, spec.xff_trusted_hops)
        .map(RegoValue::from)
        .unwrap_or(RegoValue::Undefined);
    object(vec![("address", address)])
}

/// `input.connection`: whether the client presented a certificate the listener verified, and
/// then what Envoy says of it (first SANs only; mtls-identity reads every SAN and writes the
/// verified SPIFFE ID into the identity context).
pub fn connection(host: &dyn Host) -> RegoValue {
    let mtls = host
        .property(&["connection", "mtls"])
        .is_some_and(|b| b.first() == Some(&1));
    if !mtls {
        return object(vec![("mtls", RegoValue::from(false))]);
    }
    let prop = |name: &str| {
        (host as &dyn Host)
            .property_str(&["connection", name])
            .filter(|s| !s.is_empty())
            .map(RegoValue::from)
            .unwrap_or(RegoValue::Undefined)
    };
    object(vec![
        ("mtls", RegoValue::from(true)),
        ("subject", prop("subject_peer_certificate")),
        ("uri_san", prop("uri_san_peer_certificate")),
        ("dns_san", prop("dns_san_peer_certificate")),
        ("sha256", prop("sha256_peer_certificate_digest")),
    ])
}

/// The whole input document.
pub fn document(
    identity: RegoValue,
    request: RegoValue,
    source: RegoValue,
    connection: RegoValue,
    body: RegoValue,
) -> RegoValue {
    object(vec![
        ("identity", identity),
        ("request", request),
        ("source", source),
        ("connection", connection),
        ("body", body),
    ])
}
