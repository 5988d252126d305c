//! The IdP's answer (RFC 7662 §2.2): what it says of a token, how long it may be cached, and the
//! checks it must pass on every use (time claims, issuer, audience, certificate binding).

use std::rc::Rc;

use base64::Engine;
use serde_json::{Map, Value};
use shieldwall_core::claims::{validate, ClaimRules};
use shieldwall_core::CalloutResponse;

use crate::config::Provider;

/// The largest answer body read; a larger one is an error of the IdP.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What one introspection established.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `active: true`, with every member of the answer.
    Active(Rc<Map<String, Value>>),
    /// `active: false`.
    Inactive,
    /// The IdP did not answer usably (stable code): never an admission, never cached.
    Error(&'static str),
}

/// Reads the reply of the introspection callout. Only the JSON value `true` in `active` admits;
/// anything but a 200 with a JSON object whose `active` is a boolean is an error of the IdP.
pub fn classify(response: &CalloutResponse) -> Answer {
    match response.status {
        None => return Answer::Error("unreachable"),
        Some(504)
            if response
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/plain")) =>
        {
            // Envoy delivers a callout timeout as its router's 504 local reply.
            return Answer::Error("timeout");
        }
        Some(200) => {}
        Some(_) => return Answer::Error("http_status"),
    }
    if response.body.len() > MAX_ANSWER_BYTES {
        return Answer::Error("too_large");
    }
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(&response.body) else {
        return Answer::Error("malformed_answer");
    };
    match members.get("active") {
        Some(Value::Bool(true)) => Answer::Active(Rc::new(members)),
        Some(Value::Bool(false)) => Answer::Inactive,
        _ => Answer::Error("malformed_answer"),
    }
}

/// How long an active answer may be cached: `min(exp − now, max_ttl_s)`; `max_ttl_s` when the
/// answer has no `exp`; 0 (not cached) when `exp` is not a number or already past.
pub fn active_ttl_s(members: &Map<String, Value>, now_s: u64, max_ttl_s: u64) -> u64 {
    match members.get("exp") {
        None => max_ttl_s,
        Some(Value::Number(n)) => {
            let exp = n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f > 0.0).map(|f| f.floor() as u64))
                .unwrap_or(0);
            exp.saturating_sub(now_s).min(max_ttl_s)
        }
        Some(_) => 0,
    }
}

/// The RFC 8705 thumbprint of the connection's client certificate: Envoy's
/// `connection.sha256_peer_certificate_digest` is the SHA-256 in hex; `x5t#S256` is base64url.
pub fn thumbprint_from_hex(hex: &str) -> Option<String> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = Vec::with_capacity(32);
    for pair in hex.as_bytes().chunks(2) {
        let text = std::str::from_utf8(pair).ok()?;
        bytes.push(u8::from_str_radix(text, 16).ok()?);
    }
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Checks an active answer for this request: time claims with skew, issuer and audience (the
/// rule's audiences replace the provider's), and the certificate binding. `cert` is the
/// connection's `x5t#S256` thumbprint, if it has a client certificate.
pub fn check(
    members: &Map<String, Value>,
    provider: &Provider,
    audiences: Option<&[String]>,
    now_s: u64,
    cert: Option<&str>,
) -> Result<(), &'static str> {
    let rules = ClaimRules {
        issuer: provider.issuer.as_deref(),
        audiences: audiences.unwrap_or(&provider.audiences),
        now_s,
        skew_s: provider.skew_s,
        require_exp: false,
    };
    validate(members, &rules).map_err(|e| e.code())?;
    match members.get("cnf") {
        None => Ok(()),
        Some(Value::Object(cnf)) => match cnf.get("x5t#S256") {
            Some(Value::String(want)) => match cert {
                Some(have) if have == want => Ok(()),
                _ => Err("certificate_mismatch"),
            },
            // A binding this gateway cannot check (DPoP `jkt`, …) is refused, not ignored.
            _ => Err("unsupported_binding"),
        },
        Some(_) => Err("bad_claim_type"),
    }
}

/// The text of a refusal, by code (never anything from the token).
pub fn description(code: &str) -> &'static str {
    match code {
        "inactive" => "the token is not active",
        "expired" => "the token has expired",
        "not_yet_valid" => "the token is not valid yet",
        "bad_issuer" => "the token was not issued by an accepted issuer",
        "bad_audience" => "the token is not meant for this audience",
        "bad_claim_type" => "the introspection answer has a claim of the wrong type",
        "certificate_mismatch" => "the token is bound to another client certificate",
        "unsupported_binding" => "the token is bound to a key this gateway cannot check",
        "token_too_large" => "the token is too large",
        _ => "the token is malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(status: Option<u16>, body: &str) -> CalloutResponse {
        CalloutResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn only_the_json_true_admits() {
        assert!(matches!(
            classify(&reply(Some(200), r#"{"active":true,"sub":"a"}"#)),
            Answer::Active(m) if m["sub"] == "a"
        ));
        assert_eq!(
            classify(&reply(Some(200), r#"{"active":false}"#)),
            Answer::Inactive
        );
        for body in [
            r#"{"active":"true"}"#,
            r#"{"active":1}"#,
            r#"{"active":null}"#,
            r#"{"sub":"a"}"#,
            r#"[{"active":true}]"#,
            r#"true"#,
            r#"{"active":true"#,
            "",
            "<html>",
        ] {
            assert_eq!(
                classify(&reply(Some(200), body)),
                Answer::Error("malformed_answer"),
                "{body}"
            );
        }
    }

    #[test]
    fn statuses_timeouts_and_sizes_are_errors() {
        assert_eq!(
            classify(&reply(Some(401), r#"{"active":true}"#)),
            Answer::Error("http_status")
        );
        assert_eq!(
            classify(&reply(Some(500), "")),
            Answer::Error("http_status")
        );
        assert_eq!(classify(&reply(None, "")), Answer::Error("unreachable"));
        let timeout = CalloutResponse {
            status: Some(504),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"upstream request timeout".to_vec(),
        };
        assert_eq!(classify(&timeout), Answer::Error("timeout"));
        let big = format!(
            r#"{{"active":true,"pad":"{}"}}"#,
            "x".repeat(MAX_ANSWER_BYTES)
        );
        assert_eq!(
            classify(&reply(Some(200), &big)),
            Answer::Error("too_large")
        );
    }

    #[test]
    fn ttl_arithmetic() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        let now = 1_700_000_000;
        assert_eq!(active_ttl_s(&m(json!({"exp": now + 10})), now, 30), 10);
        assert_eq!(active_ttl_s(&m(json!({"exp": now + 100})), now, 30), 30);
        assert_eq!(active_ttl_s(&m(json!({"exp": now})), now, 30), 0);
        assert_eq!(active_ttl_s(&m(json!({"exp": now - 5})), now, 30), 0);
        assert_eq!(active_ttl_s(&m(json!({"exp": -5})), now, 30), 0);
        assert_eq!(
            active_ttl_s(&m(json!({"exp": (now + 10) as f64 + 0.9})), now, 30),
            10
        );
        assert_eq!(active_ttl_s(&m(json!({"exp": "soon"})), now, 30), 0);
        assert_eq!(active_ttl_s(&m(json!({})), now, 30), 30);
        assert_eq!(active_ttl_s(&m(json!({"exp": now + 100})), now, 0), 0);
        assert_eq!(active_ttl_s(&m(json!({"exp": u64::MAX})), now, 30), 30);
    }

    #[test]
    fn thumbprints() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            thumbprint_from_hex(hex).as_deref(),
            Some("n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg")
        );
        assert_eq!(
            thumbprint_from_hex(&hex.to_uppercase()).as_deref(),
            Some("n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg")
        );
        assert_eq!(thumbprint_from_hex("abc"), None);
        assert_eq!(thumbprint_from_hex(&"zz".repeat(32)), None);
        assert_eq!(thumbprint_from_hex(&"é".repeat(32)), None);
    }
}
