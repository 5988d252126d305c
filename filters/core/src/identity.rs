//! The identity context: what authenticating filters verified, for the filters that decide.
//!
//! Written to the stream's filter state under the property `shieldwall.identity` (in Envoy the
//! filter-state key `wasm.shieldwall.identity`), which a client cannot write. One JSON object; a
//! later authenticator merges into it instead of replacing it.

use std::borrow::Cow;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::host::{Host, HostError};

/// The property path of the identity context.
pub const IDENTITY_PROPERTY: &str = "shieldwall.identity";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Identity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// How the caller was authenticated, in order: `mtls`, `jwt`, `introspection`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auth: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Every claim of the verified token, for rules on arbitrary claims.
    #[serde(skip_serializing_if = "Claims::is_empty")]
    pub claims: Claims,
}

/// The claims of an identity context: a JSON object, read from the identity's text only when a
/// filter first looks at them. Most deciding filters do not (scope-authz's scopes and tenant, a
/// rate-limit key on `sub` are members of the identity itself), and building the object was half
/// of what reading the identity cost a module (bench/RESULTS.md, the three-module chain). Derefs
/// to the object; an object whose text does not parse reads as empty (only a bug can write one:
/// clients cannot write the identity).
#[derive(Clone, Default)]
pub struct Claims {
    /// The object's JSON text, until it is parsed.
    text: Option<Box<str>>,
    object: std::cell::OnceCell<Map<String, Value>>,
    /// Never holds anything: what `deref_mut` would hand out if the object were missing, which
    /// it cannot be (it is set just before).
    spare: Map<String, Value>,
}

impl Claims {
    /// Claims from an object's JSON text, parsed when first looked at.
    fn from_text(text: &str) -> Claims {
        Claims {
            text: Some(text.into()),
            ..Claims::default()
        }
    }

    /// The object, parsed from its text if it has not been (an object already parsed is taken
    /// as it is).
    pub fn into_map(mut self) -> Map<String, Value> {
        match self.object.take() {
            Some(object) => object,
            None => parse_object(self.text.as_deref()),
        }
    }

    pub fn is_empty(&self) -> bool {
        std::ops::Deref::deref(self).is_empty()
    }
}

/// Read as a `Value`, the one serde reader every module has already: reading a `Map` and a
/// `String` here instead made jwt_auth.wasm 34 KB larger (each typed reader is its own copy of
/// serde_json's parser).
fn parse_object(text: Option<&str>) -> Map<String, Value> {
    match text.map(|t| serde_json::from_slice(t.as_bytes())) {
        Some(Ok(Value::Object(object))) => object,
        _ => Map::new(),
    }
}

impl std::ops::Deref for Claims {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        self.object
            .get_or_init(|| parse_object(self.text.as_deref()))
    }
}

impl std::ops::DerefMut for Claims {
    fn deref_mut(&mut self) -> &mut Map<String, Value> {
        let object = std::mem::take(self).into_map();
        self.object = std::cell::OnceCell::from(object);
        match self.object.get_mut() {
            Some(object) => object,
            None => &mut self.spare,
        }
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(object: Map<String, Value>) -> Claims {
        Claims {
            object: std::cell::OnceCell::from(object),
            ..Claims::default()
        }
    }
}

impl PartialEq for Claims {
    fn eq(&self, other: &Claims) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Claims, D::Error> {
        Map::deserialize(deserializer).map(Claims::from)
    }
}

impl Identity {
    /// Reads the identity context of the current stream. `None` when no authenticator wrote one,
    /// or when it cannot be parsed (which only a bug can cause: clients cannot write it).
    /// Shared, not copied: in the one-module chain every stage gets the value the authenticator
    /// wrote (its claims included) without a copy of its own.
    pub fn read(host: &dyn Host) -> Option<Rc<Identity>> {
        if let Some(known) = host.known_identity() {
            return Some(known);
        }
        let bytes = host.property(&[IDENTITY_PROPERTY])?;
        if bytes.is_empty() {
            return None;
        }
        Identity::parse(&bytes).map(Rc::new)
    }

    /// The identity context from its JSON text, as serde's derived reader takes it (every member
    /// optional, unknown members ignored, a member of the wrong type refusing the whole), read by
    /// hand in one pass: this is the one reader of it in every module. It builds no JSON tree:
    /// the members go straight into their fields, and `claims` keeps its text until a filter
    /// looks at them ([`Claims`]). serde's generated code for it was as large as the rest of a
    /// filter's configuration reading; the derive stays for tests and native tools, and a test
    /// keeps the two in agreement.
    pub fn parse(bytes: &[u8]) -> Option<Identity> {
        let mut r = Reader { bytes, at: 0 };
        let mut id = Identity::default();
        r.eat(b'{')?;
        if r.peek()? == b'}' {
            r.at += 1;
        } else {
            loop {
                let key = r.str()?;
                r.eat(b':')?;
                match &*key {
                    "sub" => id.sub = r.text()?,
                    "iss" => id.iss = r.text()?,
                    "aud" => id.aud = r.texts()?,
                    "client_id" => id.client_id = r.text()?,
                    "scopes" => id.scopes = r.texts()?,
                    "tenant" => id.tenant = r.text()?,
                    "spiffe_id" => id.spiffe_id = r.text()?,
                    "cert_sha256" => id.cert_sha256 = r.text()?,
                    "auth" => id.auth = r.texts()?,
                    "exp" => id.exp = r.number()?,
                    "claims" => {
                        if r.peek()? != b'{' {
                            return None;
                        }
                        let (start, end) = r.skip()?;
                        id.claims =
                            Claims::from_text(std::str::from_utf8(bytes.get(start..end)?).ok()?);
                    }
                    _ => {
                        r.skip()?;
                    }
                }
                match r.next()? {
                    b',' => {}
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        // Nothing but white space after the object.
        r.peek().is_none().then_some(id)
    }

    /// Merges `self` into what is already there and writes the result.
    pub fn merge_and_write(self, host: &mut dyn Host) -> Result<Rc<Identity>, HostError> {
        let merged = match Identity::read(host) {
            Some(existing) => {
                let mut existing = Rc::unwrap_or_clone(existing);
                existing.merge(self);
                existing
            }
            None => self,
        };
        let bytes = serde_json::to_vec(&merged).map_err(|_| HostError::Failed)?;
        let merged = Rc::new(merged);
        host.write_identity(&merged, &bytes)?;
        Ok(merged)
    }

    /// Adds what `newer` knows. A value `newer` has wins over the older one; lists are unioned in
    /// order; claims are merged key by key. Nothing the older authenticator established is lost.
    pub fn merge(&mut self, newer: Identity) {
        fn take(old: &mut Option<String>, new: Option<String>) {
            if new.is_some() {
                *old = new;
            }
        }
        fn union(old: &mut Vec<String>, new: Vec<String>) {
            for v in new {
                if !old.contains(&v) {
                    old.push(v);
                }
            }
        }
        take(&mut self.sub, newer.sub);
        take(&mut self.iss, newer.iss);
        union(&mut self.aud, newer.aud);
        take(&mut self.client_id, newer.client_id);
        union(&mut self.scopes, newer.scopes);
        take(&mut self.tenant, newer.tenant);
        take(&mut self.spiffe_id, newer.spiffe_id);
        take(&mut self.cert_sha256, newer.cert_sha256);
        union(&mut self.auth, newer.auth);
        // The identity is valid only while every credential behind it is: keep the earliest expiry.
        self.exp = match (self.exp, newer.exp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if !newer.claims.is_empty() {
            let claims = &mut *self.claims;
            for (k, v) in newer.claims.into_map() {
                claims.insert(k, v);
            }
        }
    }

    /// A field by dotted name, as text, for rules that key on identity values:
    /// `sub`, `client_id`, `tenant`, `spiffe_id`, `iss`, or `claims.<name>` (strings and numbers).
    pub fn field(&self, name: &str) -> Option<String> {
        match name {
            "sub" => self.sub.clone(),
            "iss" => self.iss.clone(),
            "client_id" => self.client_id.clone(),
            "tenant" => self.tenant.clone(),
            "spiffe_id" => self.spiffe_id.clone(),
            "cert_sha256" => self.cert_sha256.clone(),
            _ => {
                let claim = name.strip_prefix("claims.")?;
                match self.claims.get(claim)? {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                }
            }
        }
    }

    /// The names [`Identity::field`] accepts, for config validation.
    pub fn is_field_name(name: &str) -> bool {
        matches!(
            name,
            "sub" | "iss" | "client_id" | "tenant" | "spiffe_id" | "cert_sha256"
        ) || name.strip_prefix("claims.").is_some_and(|c| !c.is_empty())
    }
}

/// A cursor over the identity's JSON text, for [`Identity::parse`]. Every read skips the white
/// space before it and answers `None` on text that is not what it reads.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next byte that is not white space, left in place; `None` at the end.
    fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
        self.bytes.get(self.at).copied()
    }

    /// The next byte that is not white space, taken.
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// The span of the string at the cursor, its quotes included, and whether it has escapes.
    fn string_span(&mut self) -> Option<(usize, usize, bool)> {
        self.eat(b'"')?;
        let start = self.at.saturating_sub(1);
        let mut escaped = false;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                c if c < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        Some((start, self.at, escaped))
    }

    /// The string at the cursor: the text as written when it has no escapes (every member name
    /// the writer makes; a name is compared, never kept, so reading one allocates nothing),
    /// decoded otherwise.
    fn str(&mut self) -> Option<Cow<'a, str>> {
        let (start, end, escaped) = self.string_span()?;
        let bytes: &'a [u8] = self.bytes;
        let quoted = bytes.get(start..end)?;
        if escaped {
            // As a `Value` (see `parse_object`).
            match serde_json::from_slice(quoted) {
                Ok(Value::String(text)) => Some(Cow::Owned(text)),
                _ => None,
            }
        } else {
            let inner = quoted.get(1..quoted.len().saturating_sub(1))?;
            std::str::from_utf8(inner).ok().map(Cow::Borrowed)
        }
    }

    fn string(&mut self) -> Option<String> {
        self.str().map(Cow::into_owned)
    }

    /// The word at the cursor (`null`, `true`, a number, …): its span, empty where there is
    /// none. What it must be, its reader checks.
    fn word(&mut self) -> Option<&[u8]> {
        self.peek()?;
        let start = self.at;
        while let Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'+' | b'.') =
            self.bytes.get(self.at)
        {
            self.at += 1;
        }
        self.bytes.get(start..self.at)
    }

    /// A string, or `null` for none.
    fn text(&mut self) -> Option<Option<String>> {
        if self.peek()? == b'"' {
            return self.string().map(Some);
        }
        (self.word()? == b"null").then_some(None)
    }

    /// An array of strings (not `null`: serde's reader refuses that too).
    fn texts(&mut self) -> Option<Vec<String>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(out);
        }
        loop {
            out.push(self.string()?);
            match self.next()? {
                b',' => {}
                b']' => return Some(out),
                _ => return None,
            }
        }
    }

    /// A whole number that fits 64 bits, or `null` for none: anything else (negative, a
    /// fraction, an exponent, a string) refuses the identity, as serde's reader does.
    fn number(&mut self) -> Option<Option<u64>> {
        let word = self.word()?;
        if word == b"null" {
            return Some(None);
        }
        if !word.iter().all(u8::is_ascii_digit) || (word.len() > 1 && word.first() == Some(&b'0')) {
            return None;
        }
        word.iter()
            .try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .map(Some)
    }

    /// Skips the value at the cursor, whatever it is, checking that it is JSON: its span. serde
    /// reads it without building it (no allocation but for escaped text).
    fn skip(&mut self) -> Option<(usize, usize)> {
        self.peek()?;
        let start = self.at;
        let mut values = serde_json::Deserializer::from_slice(self.bytes.get(start..)?)
            .into_iter::<serde::de::IgnoredAny>();
        values.next()?.ok()?;
        self.at = start + values.byte_offset();
        Some((start, self.at))
    }
}

/// Where a deciding filter (scope-authz, rate-limit, …) takes the caller's identity from; its
/// configuration field `identity_from`:
/// - `"shieldwall"` (the default): the identity context shieldwall's authenticators wrote;
/// - `"jwt_authn"`, or `{"jwt_authn": {"payload_in_metadata": "jwt_payload", "tenant_claim":
///   "tenant"}}`: the payload of the JWT that Envoy's own `jwt_authn` filter verified, which it
///   writes to dynamic metadata when its provider sets `payload_in_metadata` (Istio's
///   RequestAuthentication does the same), merged over the identity context if there is one
///   (mtls-identity's SPIFFE ID). `auth` then names `jwt_authn`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IdentityFrom {
    #[default]
    Shieldwall,
    JwtAuthn {
        /// The key the provider's `payload_in_metadata` names (default `jwt_payload`).
        payload_in_metadata: String,
        /// The claim that holds the tenant (default `tenant`).
        tenant_claim: String,
    },
}

/// Read through a visitor rather than `try_from = "Value"`: an error raised while the JSON text is
/// being read carries its position, so the configuration error names the field
/// (`rules[0].identity_from: must be …`) instead of the whole configuration.
impl<'de> Deserialize<'de> for IdentityFrom {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = IdentityFrom;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"shieldwall\", \"jwt_authn\" or {\"jwt_authn\": {…}}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IdentityFrom, E> {
                IdentityFrom::try_from(Value::String(v.to_string())).map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<IdentityFrom, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    object.insert(k, v);
                }
                IdentityFrom::try_from(Value::Object(object)).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

impl TryFrom<Value> for IdentityFrom {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        const DEFAULT_KEY: &str = "jwt_payload";
        let jwt_authn = |key: &str, tenant: &str| IdentityFrom::JwtAuthn {
            payload_in_metadata: key.to_string(),
            tenant_claim: tenant.to_string(),
        };
        let usage = "must be \"shieldwall\", \"jwt_authn\" or {\"jwt_authn\": {\"payload_in_metadata\": \"…\", \"tenant_claim\": \"…\"}}";
        match &value {
            Value::String(s) if s == "shieldwall" => Ok(IdentityFrom::Shieldwall),
            Value::String(s) if s == "jwt_authn" => Ok(jwt_authn(DEFAULT_KEY, "tenant")),
            Value::Object(outer) if outer.len() == 1 => {
                let Some(Value::Object(inner)) = outer.get("jwt_authn") else {
                    return Err(usage.to_string());
                };
                if let Some(unknown) = inner
                    .keys()
                    .find(|k| *k != "payload_in_metadata" && *k != "tenant_claim")
                {
                    return Err(format!("jwt_authn: unknown field `{unknown}`"));
                }
                let field = |name: &str, default: &str| -> Result<String, String> {
                    match inner.get(name) {
                        None => Ok(default.to_string()),
                        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                        Some(_) => Err(format!("jwt_authn.{name}: must be a non-empty string")),
                    }
                };
                Ok(jwt_authn(
                    &field("payload_in_metadata", DEFAULT_KEY)?,
                    &field("tenant_claim", "tenant")?,
                ))
            }
            _ => Err(usage.to_string()),
        }
    }
}

impl IdentityFrom {
    /// The caller's identity on the current stream, from where this says.
    pub fn read(&self, host: &dyn Host) -> Option<Rc<Identity>> {
        match self {
            IdentityFrom::Shieldwall => Identity::read(host),
            IdentityFrom::JwtAuthn {
                payload_in_metadata,
                tenant_claim,
            } => {
                let bytes = host.property(&[
                    "metadata",
                    "filter_metadata",
                    crate::metadata::JWT_AUTHN_NAMESPACE,
                    payload_in_metadata,
                ]);
                let from_jwt = bytes
                    .and_then(|b| crate::metadata::jwt_payload_claims(&b))
                    .map(|claims| {
                        crate::authn::identity_from_claims(claims, "jwt_authn", tenant_claim)
                    });
                match (Identity::read(host), from_jwt) {
                    (Some(context), Some(jwt)) => {
                        let mut context = Rc::unwrap_or_clone(context);
                        context.merge(jwt);
                        Some(Rc::new(context))
                    }
                    (context, jwt) => jwt.map(Rc::new).or(context),
                }
            }
        }
    }
}

/// Scopes from a token's claims: `scope` as a space-separated string (RFC 8693/9068), or `scp` as
/// a string or an array of strings. Anything else yields no scopes (never a guess).
pub fn scopes_from_claims(claims: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        for part in s.split(' ').filter(|p| !p.is_empty()) {
            if !out.iter().any(|o| o == part) {
                out.push(part.to_string());
            }
        }
    };
    if let Some(Value::String(s)) = claims.get("scope") {
        push(s);
    }
    match claims.get("scp") {
        Some(Value::String(s)) => push(s),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::String(s) = item {
                    push(s);
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;
    use serde_json::json;

    #[test]
    fn the_hand_written_reader_agrees_with_serde() {
        let full = Identity {
            sub: Some("u1".into()),
            iss: Some("https://idp".into()),
            aud: vec!["api".into(), "other".into()],
            client_id: Some("teller".into()),
            scopes: vec!["read".into()],
            tenant: Some("bank-a".into()),
            spiffe_id: Some("spiffe://bank/teller".into()),
            cert_sha256: Some("ab".repeat(32)),
            auth: vec!["mtls".into(), "jwt".into()],
            exp: Some(1_900_000_000),
            claims: serde_json::from_str(r#"{"x": [1, {"y": null}], "n": 1.5}"#).unwrap(),
        };
        let mut texts: Vec<String> = vec![
            serde_json::to_string(&full).unwrap(),
            serde_json::to_string(&Identity::default()).unwrap(),
        ];
        // Every member of the wrong type, null, or left out; unknown members; not objects.
        for (key, values) in [
            ("sub", vec!["null", "5", "\"s\"", "[]"]),
            ("aud", vec!["null", "[\"a\", 1]", "[]", "\"a\"", "{}"]),
            (
                "exp",
                vec!["null", "-1", "1.5", "\"1\"", "18446744073709551615"],
            ),
            ("claims", vec!["null", "{}", "[]", "{\"a\": 1}"]),
            ("auth", vec!["[\"jwt\"]", "[null]"]),
            ("colour", vec!["1", "null"]),
        ] {
            for v in values {
                texts.push(format!(r#"{{"tenant": "t", "{key}": {v}}}"#));
            }
        }
        texts.extend(["null", "5", "\"x\"", "{", ""].map(String::from));
        // Text as JSON may write it: escapes, white space anywhere, brackets inside strings,
        // nested unknown members; and text that is not JSON.
        texts.extend(
            [
                r#"{"sub": "a\"b\\c\u00e9\/", "aud": ["x\ty"], "tenant": "\u0074"}"#,
                r#"{"s\u0075b": "s", "ten\u0061nt": "t", "\u00e9": 1, "é": 2}"#,
                " \n{ \"sub\" :\t\"s\" , \"scopes\" : [ \"a\" , \"b\" ] , \"exp\" : 7 }\r\n ",
                r#"{"claims": {"a": [1, {"b": "}]"}], "c": "{"}, "sub": "s"}"#,
                r#"{"colour": {"x": [true, false, null, -1.5e3, "]"]}, "sub": "s"}"#,
                r#"{"exp": 0}"#,
                r#"{"exp": 01}"#,
                r#"{"exp": 1e3}"#,
                r#"{"exp": 18446744073709551616}"#,
                r#"{"exp": nul}"#,
                r#"{"sub": nullx}"#,
                r#"{"sub": "s",}"#,
                r#"{"sub" "s"}"#,
                r#"{"sub": "s"} x"#,
                r#"{"sub": "s"}}"#,
                r#"{"sub": "a"#,
                "{\"sub\": \"a\u{1}b\"}",
                r#"{"claims": {"a": }}"#,
                r#"{"claims": {"a": 1,}}"#,
                r#"{"colour": [1 2]}"#,
                r#"{"colour": tru}"#,
                r#"{"sub": "\x"}"#,
                r#"{sub: "s"}"#,
                "{}",
                " { } ",
            ]
            .map(String::from),
        );
        for text in texts {
            let derived: Option<Identity> = serde_json::from_str(&text).ok();
            assert_eq!(Identity::parse(text.as_bytes()), derived, "{text}");
        }
        assert_eq!(
            Identity::parse(serde_json::to_string(&full).unwrap().as_bytes()),
            Some(full)
        );
        // The one difference: serde also takes a struct from a JSON array, member by position.
        // No filter writes one; the hand-written reader refuses it.
        assert!(serde_json::from_str::<Identity>("[]").is_ok());
        assert_eq!(Identity::parse(b"[]"), None);
    }

    #[test]
    fn claims_are_parsed_only_when_looked_at() {
        let text = r#"{"sub": "u1", "claims": {"tier": "gold", "n": [1, 2]}, "scopes": ["a"]}"#;
        let id = Identity::parse(text.as_bytes()).unwrap();
        assert_eq!(id.sub.as_deref(), Some("u1"));
        assert!(id.claims.object.get().is_none(), "not parsed yet");
        assert_eq!(id.claims.get("tier"), Some(&json!("gold")));
        assert!(id.claims.object.get().is_some());
        // Written back, merged and compared as the object they are.
        let mut again = Identity::parse(text.as_bytes()).unwrap();
        assert_eq!(again, id);
        assert_eq!(
            serde_json::to_value(&again).unwrap()["claims"],
            json!({"tier": "gold", "n": [1, 2]})
        );
        again.merge(Identity {
            claims: json!({"tier": "silver", "x": 1})
                .as_object()
                .cloned()
                .unwrap()
                .into(),
            ..Identity::default()
        });
        assert_eq!(
            *again.claims,
            *json!({"tier": "silver", "n": [1, 2], "x": 1})
                .as_object()
                .unwrap()
        );
        assert_eq!(again.field("claims.x").as_deref(), Some("1"));
        // No claims: empty, and left out of the text.
        let bare = Identity::parse(br#"{"sub": "u2"}"#).unwrap();
        assert!(bare.claims.is_empty());
        assert!(!serde_json::to_string(&bare).unwrap().contains("claims"));
    }

    #[test]
    fn identity_from_accepts_its_three_forms_and_nothing_else() {
        let parse = |v: Value| IdentityFrom::try_from(v);
        assert_eq!(parse(json!("shieldwall")), Ok(IdentityFrom::Shieldwall));
        let default_jwt = IdentityFrom::JwtAuthn {
            payload_in_metadata: "jwt_payload".into(),
            tenant_claim: "tenant".into(),
        };
        assert_eq!(parse(json!("jwt_authn")), Ok(default_jwt.clone()));
        assert_eq!(parse(json!({"jwt_authn": {}})), Ok(default_jwt));
        assert_eq!(
            parse(json!({"jwt_authn": {"payload_in_metadata": "p", "tenant_claim": "org"}})),
            Ok(IdentityFrom::JwtAuthn {
                payload_in_metadata: "p".into(),
                tenant_claim: "org".into()
            })
        );
        assert!(parse(json!("jwt")).is_err());
        assert!(parse(json!({"jwt_authn": {"payload": "p"}}))
            .unwrap_err()
            .contains("unknown field `payload`"));
        assert!(parse(json!({"jwt_authn": {"tenant_claim": ""}})).is_err());
        assert!(parse(json!({"other": {}})).is_err());
    }

    #[test]
    fn identity_from_jwt_authn_reads_the_metadata_and_merges_over_the_context() {
        // A payload map as Envoy encodes it: {"sub": "alice", "tenant": "a", "scope": "r w"}.
        fn pairs(entries: &[(&str, &str)]) -> Vec<u8> {
            let mut out = (entries.len() as u32).to_le_bytes().to_vec();
            for (k, v) in entries {
                out.extend((k.len() as u32).to_le_bytes());
                out.extend((v.len() as u32).to_le_bytes());
            }
            for (k, v) in entries {
                out.extend(k.as_bytes());
                out.push(0);
                out.extend(v.as_bytes());
                out.push(0);
            }
            out
        }
        let from = IdentityFrom::try_from(json!("jwt_authn")).unwrap();
        let mut h = MockHost::new();
        assert_eq!(from.read(&h), None);
        h.set_property(
            &[
                "metadata",
                "filter_metadata",
                "envoy.filters.http.jwt_authn",
                "jwt_payload",
            ],
            &pairs(&[("sub", "alice"), ("tenant", "a"), ("scope", "r w")]),
        )
        .unwrap();
        let id = from.read(&h).unwrap();
        assert_eq!(id.sub.as_deref(), Some("alice"));
        assert_eq!(id.tenant.as_deref(), Some("a"));
        assert_eq!(id.scopes, ["r", "w"]);
        assert_eq!(id.auth, ["jwt_authn"]);
        // mtls-identity's context is kept under it.
        Identity {
            spiffe_id: Some("spiffe://bank-a/gw".into()),
            auth: vec!["mtls".into()],
            ..Default::default()
        }
        .merge_and_write(&mut h)
        .unwrap();
        let id = from.read(&h).unwrap();
        assert_eq!(id.spiffe_id.as_deref(), Some("spiffe://bank-a/gw"));
        assert_eq!(id.sub.as_deref(), Some("alice"));
        assert_eq!(id.auth, ["mtls", "jwt_authn"]);
        // The default source ignores the metadata.
        assert_eq!(IdentityFrom::Shieldwall.read(&h).unwrap().sub, None);
    }

    #[test]
    fn merge_keeps_what_earlier_authenticators_set() {
        let mut mtls = Identity {
            spiffe_id: Some("spiffe://bank-a/gw".into()),
            cert_sha256: Some("ab".into()),
            auth: vec!["mtls".into()],
            exp: Some(2000),
            ..Default::default()
        };
        let jwt = Identity {
            sub: Some("alice".into()),
            scopes: vec!["a".into(), "b".into()],
            auth: vec!["jwt".into()],
            exp: Some(1000),
            claims: json!({"tier": "gold"}).as_object().cloned().unwrap().into(),
            ..Default::default()
        };
        mtls.merge(jwt);
        assert_eq!(mtls.spiffe_id.as_deref(), Some("spiffe://bank-a/gw"));
        assert_eq!(mtls.sub.as_deref(), Some("alice"));
        assert_eq!(mtls.auth, vec!["mtls", "jwt"]);
        assert_eq!(mtls.exp, Some(1000));
        assert_eq!(mtls.field("claims.tier").as_deref(), Some("gold"));
    }

    #[test]
    fn written_identity_is_read_back_and_merged() {
        let mut host = MockHost::new();
        let h: &mut dyn Host = &mut host;
        assert!(Identity::read(h).is_none());
        Identity {
            sub: Some("a".into()),
            auth: vec!["mtls".into()],
            ..Default::default()
        }
        .merge_and_write(h)
        .unwrap();
        Identity {
            tenant: Some("t".into()),
            auth: vec!["jwt".into()],
            ..Default::default()
        }
        .merge_and_write(h)
        .unwrap();
        let got = Identity::read(h).unwrap();
        assert_eq!(got.sub.as_deref(), Some("a"));
        assert_eq!(got.tenant.as_deref(), Some("t"));
        assert_eq!(got.auth, vec!["mtls", "jwt"]);
        // The serialized form omits what is unknown and uses the documented names.
        let raw: Value =
            serde_json::from_slice(&host.property_value(IDENTITY_PROPERTY).unwrap()).unwrap();
        assert_eq!(
            raw,
            json!({"sub": "a", "tenant": "t", "auth": ["mtls", "jwt"]})
        );
    }

    #[test]
    fn scopes_from_scope_and_scp() {
        let c = json!({"scope": "orders:read  orders:write", "scp": ["admin", "orders:read"]});
        assert_eq!(
            scopes_from_claims(c.as_object().unwrap()),
            vec!["orders:read", "orders:write", "admin"]
        );
        let c = json!({"scp": "x y"});
        assert_eq!(scopes_from_claims(c.as_object().unwrap()), vec!["x", "y"]);
        let c = json!({"scope": ["not", "a", "string"], "scp": 5});
        assert!(scopes_from_claims(c.as_object().unwrap()).is_empty());
    }

    #[test]
    fn field_names() {
        assert!(Identity::is_field_name("client_id"));
        assert!(Identity::is_field_name("claims.tier"));
        assert!(!Identity::is_field_name("claims."));
        assert!(!Identity::is_field_name("password"));
    }
}
