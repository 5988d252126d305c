//! The IdP's answer (RFC 7662 §2.2): what it says of a token, how long it may be cached, and the
//! checks it must pass on every use (time claims, issuer, audience, certificate binding).

use std::fmt;
use std::rc::Rc;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use serde_json::{Map, Value};
use shieldwall_core::binding::{check_certificate_binding, BindingError};
use shieldwall_core::claims::{validate, ClaimRules};
use shieldwall_core::{CalloutResponse, Host};

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
    // A member given twice (`"active": false, "active": true`) is ambiguous: another parser may
    // read the other one. Refused, never "the last one wins".
    let Ok(Members(members)) = serde_json::from_slice::<Members>(&response.body) else {
        return Answer::Error("malformed_answer");
    };
    match members.get("active") {
        Some(Value::Bool(true)) => Answer::Active(Rc::new(members)),
        Some(Value::Bool(false)) => Answer::Inactive,
        _ => Answer::Error("malformed_answer"),
    }
}

/// The members of a JSON object, refusing a member given twice.
struct Members(Map<String, Value>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Unique;
        impl<'de> Visitor<'de> for Unique {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Members, A::Error> {
                let mut members = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if members.contains_key(&name) {
                        return Err(A::Error::custom("a member is given twice"));
                    }
                    members.insert(name, value);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Unique)
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

/// Checks an active answer for this request: time claims with skew, issuer and audience (the
/// rule's audiences replace the provider's), and the certificate binding (RFC 8705, the
/// connection's client certificate against `cnf.x5t#S256`, as every token filter checks it).
pub fn check(
    host: &dyn Host,
    members: &Map<String, Value>,
    provider: &Provider,
    audiences: Option<&[String]>,
    now_s: u64,
) -> Result<(), &'static str> {
    let rules = ClaimRules {
        issuer: provider.issuer.as_deref(),
        audiences: audiences.unwrap_or(&provider.audiences),
        now_s,
        skew_s: provider.skew_s,
        require_exp: false,
    };
    validate(members, &rules).map_err(|e| e.code())?;
    check_certificate_binding(host, members).map_err(BindingError::code)
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
        "cnf_mismatch" => BindingError::Mismatch.description(),
        "cnf_no_certificate" => BindingError::NoCertificate.description(),
        "cnf_unsupported" => BindingError::Unsupported.description(),
        "bad_cnf" => BindingError::Malformed.description(),
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
            r#"{"active":false,"active":true}"#,
            r#"{"active":true,"active":true}"#,
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
}
