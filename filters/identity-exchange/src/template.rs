//! Templates over the identity context (`spiffe://{tenant}.bank.example/user/{sub}`, `{tenant}`),
//! and the SPIFFE ID rules each substituted value must keep.
//!
//! The SPIFFE ID specification (SPIFFE-ID §2) allows, after `spiffe://`:
//! - a trust domain of `a-z 0-9 . - _` only, at most 255 bytes;
//! - a path of `/segment` parts, each non-empty, not `.` or `..`, of `A-Z a-z 0-9 . - _` only.
//!   Percent-encoding is not allowed anywhere in a SPIFFE ID;
//! - at most 2048 bytes in all.
//!
//! A value substituted into the trust domain must be one or more labels of `a-z 0-9 - _` joined by
//! `.`: never upper case (which would make `Bank-A` and `bank-a` two names for one tenant), never
//! an empty label. A value substituted into the path is checked on its own before it is placed:
//! with [`SegmentRule::Reject`] (the default) it must be non-empty and of the path characters
//! only, so `../admin`, `a/b`, `%2f` and the empty string are refused rather than turned into
//! another identity; with [`SegmentRule::Escape`] every byte outside `A-Z a-z 0-9 . -` (including
//! `_` itself) becomes `_` and two upper-case hex digits, which stays inside the allowed alphabet
//! and maps two different values to two different segments (`alice@bank` → `alice_40bank`,
//! `a/b` → `a_2Fb`, `%2f` → `_252f`). Either way a value can never add, remove or climb a
//! segment. The whole result is then checked against the rules above.

use shieldwall_core::{ConfigError, Identity};

/// The longest SPIFFE ID the specification allows, in bytes.
pub const MAX_SPIFFE_ID: usize = 2048;
/// The longest trust domain the specification allows, in bytes.
pub const MAX_TRUST_DOMAIN: usize = 255;
/// The longest audience this filter writes.
pub const MAX_AUDIENCE: usize = 256;

/// How a value that is not a plain SPIFFE path segment is treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SegmentRule {
    /// Refuse the request: the identity cannot be carried inward.
    #[default]
    Reject,
    /// Escape each other byte as `_XX` (hex), `_` included.
    Escape,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// An identity field, by [`Identity::field`] name.
    Field(String),
}

/// A parsed template: literal text and `{field}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a value could not be placed into a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// The identity has no such field (or it is empty).
    Missing(String),
    /// The value would break the SPIFFE ID's structure or alphabet.
    NotAllowed(String),
}

impl RenderError {
    /// Stable reason, for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            RenderError::Missing(_) => "missing_field",
            RenderError::NotAllowed(_) => "unmappable_value",
        }
    }
    /// The field concerned (a configured name, never client data).
    pub fn field(&self) -> &str {
        match self {
            RenderError::Missing(f) | RenderError::NotAllowed(f) => f,
        }
    }
}

impl Template {
    /// Parses `text`; placeholders must name identity fields (`sub`, `tenant`, `client_id`,
    /// `iss`, `claims.<name>`). A `{` or `}` outside a placeholder is refused.
    pub fn parse(text: &str) -> Result<Template, ConfigError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(Part::Literal(rest.to_string()));
                    break;
                }
                Some(i) => {
                    let (lit, tail) = rest.split_at(i);
                    if !lit.is_empty() {
                        parts.push(Part::Literal(lit.to_string()));
                    }
                    if tail.starts_with('}') {
                        return Err(ConfigError::new("", "a `}` without its `{`"));
                    }
                    let Some(end) = tail.find('}') else {
                        return Err(ConfigError::new("", "a `{` without its `}`"));
                    };
                    let name = tail.get(1..end).unwrap_or("");
                    if !Identity::is_field_name(name) || name == "spiffe_id" {
                        return Err(ConfigError::new(
                            "",
                            format!("`{{{name}}}` is not an identity field (sub, tenant, client_id, iss, claims.<name>)"),
                        ));
                    }
                    parts.push(Part::Field(name.to_string()));
                    rest = tail.get(end + 1..).unwrap_or("");
                }
            }
        }
        Ok(Template { parts })
    }

    /// Whether the template has any placeholder.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Renders with `place(field, value, out)` deciding how each value is written.
    fn render_with(
        &self,
        identity: &Identity,
        mut place: impl FnMut(&str, &str, &mut String) -> Result<(), RenderError>,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Field(name) => {
                    let value = identity
                        .field(name)
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| RenderError::Missing(name.clone()))?;
                    place(name, &value, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    /// Renders an audience: values as they are, but printable and the result bounded.
    pub fn render_audience(&self, identity: &Identity) -> Result<String, RenderError> {
        let out = self.render_with(identity, |name, value, out| {
            if value.chars().any(char::is_control) {
                return Err(RenderError::NotAllowed(name.to_string()));
            }
            out.push_str(value);
            Ok(())
        })?;
        if out.len() > MAX_AUDIENCE {
            return Err(RenderError::NotAllowed("audience".to_string()));
        }
        Ok(out)
    }
}

/// A SPIFFE ID template, split at the start of its path so each value is checked by the rules
/// of the part it lands in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiffeTemplate {
    trust_domain: Template,
    path: Template,
    rule: SegmentRule,
}

fn trust_domain_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// A value for the trust domain: labels of `a-z 0-9 - _` joined by single dots.
fn trust_domain_value(value: &str) -> bool {
    value
        .split('.')
        .all(|label| !label.is_empty() && label.bytes().all(trust_domain_char))
}

/// Escapes a value into the SPIFFE path alphabet, injectively (see the module documentation).
pub fn escape_segment(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push('_');
            out.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            out.push(char::from(
                HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// Checks a whole SPIFFE ID (scheme, trust domain, path segments, length).
pub fn check_spiffe_id(id: &str) -> Result<(), &'static str> {
    if id.len() > MAX_SPIFFE_ID {
        return Err("longer than 2048 bytes");
    }
    let rest = id
        .strip_prefix("spiffe://")
        .ok_or("the scheme is not `spiffe://`")?;
    let (td, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if td.is_empty() {
        return Err("the trust domain is empty");
    }
    if td.len() > MAX_TRUST_DOMAIN {
        return Err("the trust domain is longer than 255 bytes");
    }
    if !td.bytes().all(trust_domain_char) {
        return Err("the trust domain has a character other than a-z, 0-9, `.`, `-`, `_`");
    }
    if path.is_empty() {
        return Ok(());
    }
    for seg in path.split('/').skip(1) {
        if seg.is_empty() {
            return Err("the path has an empty segment (or ends with `/`)");
        }
        if seg == "." || seg == ".." {
            return Err("the path has a `.` or `..` segment");
        }
        if !seg.bytes().all(path_char) {
            return Err("the path has a character other than A-Z, a-z, 0-9, `.`, `-`, `_`");
        }
    }
    Ok(())
}

impl SpiffeTemplate {
    pub fn parse(text: &str, rule: SegmentRule) -> Result<SpiffeTemplate, ConfigError> {
        let rest = text
            .strip_prefix("spiffe://")
            .ok_or_else(|| ConfigError::new("", "must start with `spiffe://`"))?;
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let trust_domain = Template::parse(&format!("spiffe://{td}"))?;
        let path = Template::parse(path)?;
        let t = SpiffeTemplate {
            trust_domain,
            path,
            rule,
        };
        // The literal parts must already make a valid ID: render with a plain sample value.
        let sample = t.render_sample("x");
        check_spiffe_id(&sample)
            .map_err(|e| ConfigError::new("", format!("does not make a valid SPIFFE ID: {e}")))?;
        Ok(t)
    }

    fn render_sample(&self, value: &str) -> String {
        let mut out = String::new();
        for part in self.trust_domain.parts.iter().chain(self.path.parts.iter()) {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Field(_) => out.push_str(value),
            }
        }
        out
    }

    /// The SPIFFE ID of this identity, or why it cannot be made.
    pub fn render(&self, identity: &Identity) -> Result<String, RenderError> {
        let mut id = self
            .trust_domain
            .render_with(identity, |name, value, out| {
                if !trust_domain_value(value) {
                    return Err(RenderError::NotAllowed(name.to_string()));
                }
                out.push_str(value);
                Ok(())
            })?;
        let rule = self.rule;
        let path = self.path.render_with(identity, |name, value, out| {
            match rule {
                SegmentRule::Reject => {
                    if value == "." || value == ".." || !value.bytes().all(path_char) {
                        return Err(RenderError::NotAllowed(name.to_string()));
                    }
                    out.push_str(value);
                }
                SegmentRule::Escape => escape_segment(value, out),
            }
            Ok(())
        })?;
        id.push_str(&path);
        check_spiffe_id(&id).map_err(|_| RenderError::NotAllowed("spiffe_id".to_string()))?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(sub: &str, tenant: &str) -> Identity {
        Identity {
            sub: Some(sub.into()),
            tenant: Some(tenant.into()),
            client_id: Some("web".into()),
            claims: json!({"dept": "retail", "n": 7})
                .as_object()
                .cloned()
                .unwrap()
                .into(),
            ..Default::default()
        }
    }

    fn bank(rule: SegmentRule) -> SpiffeTemplate {
        SpiffeTemplate::parse("spiffe://{tenant}.bank.example/user/{sub}", rule).unwrap()
    }

    #[test]
    fn renders_the_seed_example() {
        let t = bank(SegmentRule::Reject);
        assert_eq!(
            t.render(&who("12345", "bank-a")).unwrap(),
            "spiffe://bank-a.bank.example/user/12345"
        );
        let t = SpiffeTemplate::parse(
            "spiffe://bank.example/{claims.dept}/c-{client_id}/{claims.n}",
            SegmentRule::Reject,
        )
        .unwrap();
        assert_eq!(
            t.render(&who("u", "t")).unwrap(),
            "spiffe://bank.example/retail/c-web/7"
        );
    }

    #[test]
    fn hostile_subjects_cannot_forge_another_identity() {
        let t = bank(SegmentRule::Reject);
        for sub in [
            "../admin",
            "a/b",
            "",
            ".",
            "..",
            "%2f",
            "%2e%2e",
            "a b",
            "x\0",
            "admin/../x",
            "é",
            "a?b",
            "a#b",
        ] {
            let got = t.render(&who(sub, "bank-a"));
            assert!(
                matches!(
                    got,
                    Err(RenderError::NotAllowed(_)) | Err(RenderError::Missing(_))
                ),
                "{sub:?} gave {got:?}"
            );
        }
        // Escaping keeps every value inside one segment, and different values apart.
        let t = bank(SegmentRule::Escape);
        let cases = [
            ("../admin", "spiffe://bank-a.bank.example/user/.._2Fadmin"),
            ("a/b", "spiffe://bank-a.bank.example/user/a_2Fb"),
            ("%2f", "spiffe://bank-a.bank.example/user/_252f"),
            ("a_2Fb", "spiffe://bank-a.bank.example/user/a_5F2Fb"),
            (
                "alice@bank.example",
                "spiffe://bank-a.bank.example/user/alice_40bank.example",
            ),
            ("é", "spiffe://bank-a.bank.example/user/_C3_A9"),
        ];
        for (sub, want) in cases {
            let got = t.render(&who(sub, "bank-a")).unwrap();
            assert_eq!(got, want);
            check_spiffe_id(&got).unwrap();
        }
        // A value that is a whole dot segment stays refused; empty stays missing.
        assert!(t.render(&who("..", "bank-a")).is_err());
        assert!(t.render(&who(".", "bank-a")).is_err());
        assert_eq!(
            t.render(&who("", "bank-a")),
            Err(RenderError::Missing("sub".into()))
        );
    }

    #[test]
    fn tenant_values_must_be_trust_domain_labels() {
        let t = bank(SegmentRule::Escape);
        for tenant in [
            "Bank-A",
            "bank/a",
            "evil.example/x",
            "",
            "a..b",
            ".a",
            "a.",
            "a:1",
            "a@b",
        ] {
            assert!(t.render(&who("1", tenant)).is_err(), "{tenant:?}");
        }
        assert_eq!(
            t.render(&who("1", "eu.bank-a")).unwrap(),
            "spiffe://eu.bank-a.bank.example/user/1"
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        for t in [
            "https://x/y",
            "spiffe:///user/{sub}",
            "spiffe://Bank/{sub}",
            "spiffe://b/{sub}/",
            "spiffe://b//{sub}",
            "spiffe://b/{password}",
            "spiffe://b/{spiffe_id}",
            "spiffe://b/{sub",
            "spiffe://b/sub}",
            "spiffe://b/{claims.}",
            "spiffe://b/../{sub}",
            "spiffe://b/a%20/{sub}",
        ] {
            assert!(
                SpiffeTemplate::parse(t, SegmentRule::Reject).is_err(),
                "{t}"
            );
        }
    }

    #[test]
    fn long_ids_are_refused() {
        let t = bank(SegmentRule::Reject);
        let long = "a".repeat(MAX_SPIFFE_ID);
        assert!(t.render(&who(&long, "bank-a")).is_err());
        let t = bank(SegmentRule::Reject);
        let td = "a".repeat(MAX_TRUST_DOMAIN);
        assert!(t.render(&who("1", &td)).is_err());
    }

    #[test]
    fn audiences() {
        let t = Template::parse("{tenant}").unwrap();
        assert_eq!(t.render_audience(&who("1", "bank-a")).unwrap(), "bank-a");
        assert!(t.render_audience(&who("1", "a\nb")).is_err());
        assert!(t.render_audience(&Identity::default()).is_err());
        assert!(Template::parse("payments").unwrap().is_constant());
        assert!(Template::parse("x-{nope}").is_err());
    }
}
