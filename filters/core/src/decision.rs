//! Each filter's decision about the request, for the audit log and Envoy's access logs.
//!
//! A filter's decision is written to the stream's filter state under the property
//! `shieldwall.decision.<filter>` (in Envoy the key `wasm.shieldwall.decision.<filter>`, printable
//! with `%FILTER_STATE(wasm.shieldwall.decision.jwt_auth:PLAIN)%`), as one small JSON object:
//! `{"decision":"deny","reason":"token_expired","status":401}`. A client cannot write it.
//!
//! Filters rarely call this themselves: [`crate::Reply::send`] records the deny (the reason is
//! the reply's error code), and the adapter (and the one-module chain, per stage) records
//! `allow` when a filter lets the request go on without having recorded anything. A filter
//! records explicitly only to say what the adapter cannot know: a shadow-mode refusal
//! ([`Decision::shadow_deny`]) or why it allowed ([`Decision::allow`] with a reason).
//! A later decision of the same filter replaces an earlier one (a filter that allowed the
//! headers and refuses the body ends as `deny`).

use std::borrow::Cow;

use crate::host::Host;

/// The property prefix; the filter's name follows (`shieldwall.decision.jwt_auth`).
pub const DECISION_PREFIX: &str = "shieldwall.decision.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    /// Shadow mode: the filter would have refused but let the request go on.
    ShadowDeny,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::ShadowDeny => "shadow_deny",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        match s {
            "allow" => Some(Outcome::Allow),
            "deny" => Some(Outcome::Deny),
            "shadow_deny" => Some(Outcome::ShadowDeny),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// A stable code (`token_expired`, `insufficient_scope`, `public`), never client input.
    /// Empty for a plain allow.
    pub reason: Cow<'static, str>,
    /// The status the filter answered (or, in shadow mode, would have); 0 for an allow.
    pub status: u16,
}

impl Decision {
    pub fn allow(reason: impl Into<Cow<'static, str>>) -> Decision {
        Decision {
            outcome: Outcome::Allow,
            reason: reason.into(),
            status: 0,
        }
    }

    pub fn deny(reason: impl Into<Cow<'static, str>>, status: u16) -> Decision {
        Decision {
            outcome: Outcome::Deny,
            reason: reason.into(),
            status,
        }
    }

    pub fn shadow_deny(reason: impl Into<Cow<'static, str>>, status: u16) -> Decision {
        Decision {
            outcome: Outcome::ShadowDeny,
            reason: reason.into(),
            status,
        }
    }

    /// The JSON object written to filter state. Written by hand: it is on every request's path
    /// and its fields need no escaping beyond what [`crate::json_text::push_string`] does.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64);
        out.push_str("{\"decision\":\"");
        out.push_str(self.outcome.as_str());
        out.push('"');
        if !self.reason.is_empty() {
            out.push_str(",\"reason\":");
            crate::json_text::push_string(&mut out, &self.reason);
        }
        if self.status != 0 {
            out.push_str(",\"status\":");
            crate::json_text::push_u64(&mut out, u64::from(self.status));
        }
        out.push('}');
        out.into_bytes()
    }

    /// Parses what [`Decision::to_json`] wrote; `None` for anything else. The shape that
    /// function writes is read directly (an audit record reads every stage's decision on every
    /// request); anything else, such as a reason with escapes, goes through the JSON reader.
    pub fn from_json(bytes: &[u8]) -> Option<Decision> {
        Self::from_own_json(bytes).or_else(|| Self::from_any_json(bytes))
    }

    /// `{"decision":"…"}` with an optional `"reason"` without escapes and an optional
    /// `"status"`, in that order and with nothing between: what [`Decision::to_json`] writes.
    fn from_own_json(bytes: &[u8]) -> Option<Decision> {
        /// The text up to the next `"` (none may be escaped), and what follows that quote.
        fn plain(s: &[u8]) -> Option<(&str, &[u8])> {
            let end = s.iter().position(|&b| b == b'"' || b == b'\\')?;
            let (text, rest) = s.split_at(end);
            let rest = rest.strip_prefix(b"\"")?;
            // No control characters: JSON requires them escaped.
            if text.iter().any(|&b| b < 0x20) {
                return None;
            }
            Some((std::str::from_utf8(text).ok()?, rest))
        }
        let (outcome, mut rest) = plain(bytes.strip_prefix(b"{\"decision\":\"")?)?;
        let outcome = Outcome::parse(outcome)?;
        let mut reason = "";
        if let Some(r) = rest.strip_prefix(b",\"reason\":\"") {
            (reason, rest) = plain(r)?;
        }
        let mut status = 0;
        if let Some(r) = rest.strip_prefix(b",\"status\":") {
            let digits = r.iter().take_while(|b| b.is_ascii_digit()).count();
            let (n, after) = r.split_at(digits);
            // No leading zero (not JSON), at most five digits (a u16).
            if n.is_empty() || n.len() > 5 || (n.len() > 1 && n.first() == Some(&b'0')) {
                return None;
            }
            status = n.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
            rest = after;
        }
        if rest != b"}" {
            return None;
        }
        Some(Decision {
            outcome,
            reason: Cow::Owned(reason.to_string()),
            // A status beyond a u16 reads as none, as the JSON reader's path has it.
            status: u16::try_from(status).unwrap_or(0),
        })
    }

    fn from_any_json(bytes: &[u8]) -> Option<Decision> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let outcome = Outcome::parse(value.get("decision")?.as_str()?)?;
        let reason = value
            .get("reason")
            .and_then(|r| r.as_str())
            .unwrap_or_default()
            .to_string();
        let status = value
            .get("status")
            .and_then(|s| s.as_u64())
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0);
        Some(Decision {
            outcome,
            reason: Cow::Owned(reason),
            status,
        })
    }
}

/// The property that holds `filter`'s decision.
pub fn property(filter: &str) -> String {
    // Not `format!`: every decision recorded names its property.
    let mut name = String::with_capacity(DECISION_PREFIX.len() + filter.len());
    name.push_str(DECISION_PREFIX);
    name.push_str(filter);
    name
}

/// What a host writes for [`Host::record_decision`]: the property and the value, or `None` for a
/// host without a filter name.
pub fn encoded(filter: &str, decision: &Decision) -> Option<(String, Vec<u8>)> {
    if filter.is_empty() {
        return None;
    }
    Some((property(filter), decision.to_json()))
}

/// Reads `filter`'s decision on the current stream, if it recorded one.
pub fn read(host: &dyn Host, filter: &str) -> Option<Decision> {
    read_property(host, &property(filter))
}

/// Reads the decision at `property` (what [`property`] names for a filter, kept by a reader that
/// asks on every request).
pub fn read_property(host: &dyn Host, property: &str) -> Option<Decision> {
    let bytes = host.property(&[property])?;
    Decision::from_json(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;
    use crate::Reply;

    #[test]
    fn json_shape_round_trips() {
        let d = Decision::deny("token_expired", 401);
        assert_eq!(
            String::from_utf8(d.to_json()).unwrap(),
            r#"{"decision":"deny","reason":"token_expired","status":401}"#
        );
        assert_eq!(Decision::from_json(&d.to_json()), Some(d));
        let a = Decision::allow("");
        assert_eq!(
            String::from_utf8(a.to_json()).unwrap(),
            r#"{"decision":"allow"}"#
        );
        let s = Decision::shadow_deny("a\"b\\c\n", 403);
        let parsed: serde_json::Value = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(parsed["reason"], "a\"b\\c\n");
        assert_eq!(parsed["decision"], "shadow_deny");
        assert_eq!(Decision::from_json(b"{\"decision\":\"maybe\"}"), None);
    }

    /// The direct reader and the JSON reader agree on what the direct one accepts, and it
    /// hands the rest to the JSON reader.
    #[test]
    fn the_direct_reader_agrees_with_the_json_reader() {
        let written = [
            Decision::allow(""),
            Decision::allow("public"),
            Decision::deny("token_expired", 401),
            Decision::shadow_deny("insufficient_scope", 403),
            Decision::deny("", 65535),
            Decision::deny("ünïcode", 429),
        ];
        for d in &written {
            let json = d.to_json();
            assert_eq!(Decision::from_own_json(&json).as_ref(), Some(d));
            assert_eq!(Decision::from_any_json(&json).as_ref(), Some(d));
        }
        // Not the written shape (or at its edge, as a status beyond a u16): the direct reader
        // declines or agrees, and the JSON reader's answer is the answer.
        let others: [&[u8]; 12] = [
            br#"{"decision":"deny","reason":"a\"b","status":403}"#,
            br#"{"decision":"allow","status":99999}"#,
            br#"{"decision":"allow","status":0401}"#,
            br#"{"decision":"allow","status":}"#,
            br#"{"status":403,"decision":"deny"}"#,
            br#"{ "decision": "allow" }"#,
            br#"{"decision":"allow"} "#,
            br#"{"decision":"allow","reason":"x","extra":1}"#,
            br#"{"decision":"maybe"}"#,
            b"{\"decision\":\"deny\",\"reason\":\"a\nb\"}",
            br#"{"decision":"allow""#,
            b"",
        ];
        for json in others {
            let direct = Decision::from_own_json(json);
            assert!(
                direct.is_none() || direct == Decision::from_any_json(json),
                "{}",
                String::from_utf8_lossy(json)
            );
            assert_eq!(
                Decision::from_json(json),
                Decision::from_any_json(json),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
        assert_eq!(
            Decision::from_json(br#"{"decision":"deny","reason":"a\"b","status":403}"#),
            Some(Decision::deny("a\"b", 403))
        );
        assert_eq!(
            Decision::from_json(br#"{"decision":"allow","status":99999}"#),
            Some(Decision::allow(""))
        );
    }

    #[test]
    fn reply_send_records_the_deny_under_the_filter_name() {
        let mut host = MockHost::default();
        host.filter_name = "scope_authz";
        Reply::forbidden("tenant_mismatch", "not your tenant").send(&mut host);
        let d = read(&host, "scope_authz").unwrap();
        assert_eq!(d, Decision::deny("tenant_mismatch", 403));
        assert!(read(&host, "jwt_auth").is_none());
    }

    #[test]
    fn a_host_without_a_filter_name_records_nothing() {
        let mut host = MockHost::default();
        host.record_decision(&Decision::allow("public"));
        assert!(host.properties.is_empty());
    }
}
