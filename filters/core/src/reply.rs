//! Deny replies, the same from every filter: RFC 6750 `WWW-Authenticate` for bearer failures and
//! a small JSON body `{"error": "<stable code>", "error_description": "<human text>"}`.
//! Nothing from the request is ever echoed back.

use std::borrow::Cow;

use crate::decision::Decision;
use crate::host::Host;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Stable machine-readable code (`invalid_token`, `insufficient_scope`, `rate_limited`).
    pub error: &'static str,
    /// Human text written by the filter (never client input).
    pub description: String,
    pub headers: Vec<(String, String)>,
    /// The reason recorded in the filter's decision when it is more precise than `error`
    /// (`tenant_mismatch` behind a client-facing `access_denied`); `None` records `error`.
    pub reason: Option<Cow<'static, str>>,
    /// Further members of the JSON body after `error` and `error_description` (payload-guard's
    /// `violations`): written by the filter from its configuration, never from client input.
    pub members: Vec<(&'static str, serde_json::Value)>,
}

/// Makes a string safe inside an RFC 7235 quoted-string: drops `"` `\` and control characters.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

impl Reply {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> Reply {
        Reply {
            status,
            error,
            description: description.into(),
            headers: Vec::new(),
            reason: None,
            members: Vec::new(),
        }
    }

    /// Records `reason` as the decision's reason instead of the error code (see
    /// [`crate::decision`]); the client still sees only the error code.
    pub fn with_reason(mut self, reason: impl Into<Cow<'static, str>>) -> Reply {
        self.reason = Some(reason.into());
        self
    }

    /// Adds a member to the JSON body (after `error` and `error_description`).
    pub fn with_member(mut self, name: &'static str, value: serde_json::Value) -> Reply {
        self.members.push((name, value));
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// 401 for a missing credential: `WWW-Authenticate: Bearer realm="…"` with no error attribute
    /// (RFC 6750 §3.1: a request without credentials gets no error code).
    pub fn missing_credential(realm: &str, description: impl Into<String>) -> Reply {
        Reply::new(401, "missing_token", description).with_header(
            "www-authenticate",
            format!("Bearer realm=\"{}\"", quoted(realm)),
        )
    }

    /// 401 for a bad credential: `error="invalid_token"`. `code` is the body's stable code.
    pub fn invalid_token(realm: &str, code: &'static str, description: impl Into<String>) -> Reply {
        let description = description.into();
        let header = format!(
            "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{}\"",
            quoted(realm),
            quoted(&description)
        );
        Reply::new(401, code, description).with_header("www-authenticate", header)
    }

    /// 403 for a valid credential without the scopes the route needs (RFC 6750 §3.1).
    pub fn insufficient_scope(
        realm: &str,
        scopes: &[String],
        description: impl Into<String>,
    ) -> Reply {
        let description = description.into();
        let header = format!(
            "Bearer realm=\"{}\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"{}\"",
            quoted(realm),
            quoted(&description),
            quoted(&scopes.join(" "))
        );
        Reply::new(403, "insufficient_scope", description).with_header("www-authenticate", header)
    }

    /// 403 for a decision against the caller (tenant, claim, principal, default deny).
    pub fn forbidden(code: &'static str, description: impl Into<String>) -> Reply {
        Reply::new(403, code, description)
    }

    /// 400 `invalid_request` and friends: a malformed request.
    pub fn bad_request(code: &'static str, description: impl Into<String>) -> Reply {
        Reply::new(400, code, description)
    }

    /// 503 with `Retry-After`: a dependency is down and the filter fails closed.
    pub fn unavailable(
        code: &'static str,
        retry_after_s: u64,
        description: impl Into<String>,
    ) -> Reply {
        Reply::new(503, code, description).with_header("retry-after", retry_after_s.to_string())
    }

    pub fn body(&self) -> Vec<u8> {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), self.error.into());
        body.insert("error_description".into(), self.description.clone().into());
        for (name, value) in &self.members {
            body.insert((*name).into(), value.clone());
        }
        let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Sends the reply; the stream then stops at this filter. The filter's decision is recorded
    /// as a deny with the reply's reason (or error code) (see [`crate::decision`]).
    pub fn send(&self, host: &mut dyn Host) {
        let reason = self.reason.clone().unwrap_or(Cow::Borrowed(self.error));
        host.record_decision(&Decision::deny(reason, self.status));
        let mut headers: Vec<(&str, &str)> = vec![
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        host.send_local_reply(self.status, &headers, &self.body());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;

    #[test]
    fn missing_credential_has_no_error_attribute() {
        let r = Reply::missing_credential("orders", "a bearer token is required");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.headers,
            vec![(
                "www-authenticate".to_string(),
                "Bearer realm=\"orders\"".to_string()
            )]
        );
    }

    #[test]
    fn invalid_token_header_and_body() {
        let r = Reply::invalid_token("api", "expired", "the token has \"expired\"");
        assert_eq!(
            r.headers[0].1,
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(body["error"], "expired");
        let mut host = MockHost::new();
        r.send(&mut host);
        let sent = host.local_reply.clone().unwrap();
        assert_eq!(sent.status, 401);
        assert_eq!(sent.header("content-type"), Some("application/json"));
        assert_eq!(
            sent.header("www-authenticate"),
            Some(r.headers[0].1.as_str())
        );
    }

    #[test]
    fn insufficient_scope_lists_scopes() {
        let r =
            Reply::insufficient_scope("api", &["orders:read".into(), "x".into()], "scope missing");
        assert_eq!(r.status, 403);
        assert!(r.headers[0].1.ends_with("scope=\"orders:read x\""));
    }

    #[test]
    fn members_follow_error_and_description() {
        let r = Reply::bad_request("invalid_request", "bad")
            .with_member("violations", serde_json::json!([{"rule": "type"}]));
        let body: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "invalid_request", "error_description": "bad",
                               "violations": [{"rule": "type"}]})
        );
    }

    #[test]
    fn unavailable_has_retry_after() {
        let r = Reply::unavailable("jwks_unavailable", 5, "keys unavailable");
        assert_eq!(r.status, 503);
        assert_eq!(
            r.headers,
            vec![("retry-after".to_string(), "5".to_string())]
        );
    }
}
