//! Configuration errors that name the field path, and JSON parsing that produces them.
//!
//! `on_configure` logs `providers.idp.remote_jwks.uri: not an http(s) URI` and returns false:
//! an operator sees exactly what to fix.

use std::fmt;

use serde::de::DeserializeOwned;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending field (`rules[2].match.template`); empty for the whole document.
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Prefixes the path with a parent (`rules[0]` + `match.prefix`).
    pub fn within(self, parent: &str) -> Self {
        let path = match (parent.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => parent.to_string(),
            (false, false) if self.path.starts_with('[') => format!("{parent}{}", self.path),
            (false, false) => format!("{parent}.{}", self.path),
        };
        ConfigError {
            path,
            reason: self.reason,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "configuration: {}", self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses a JSON configuration; a serde error keeps the path of the field where it happened.
/// An empty configuration is parsed as `{}` so filters with all-default configs load without one.
///
/// The path comes from the error's position in the text ([`path_at`]), not from wrapping every
/// visitor: that wrapping doubled the deserialisation code in each module.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let text = document_text(bytes);
    serde_json::from_slice(text).map_err(|e| serde_error(text, &e))
}

/// The text to parse: an empty (or all-whitespace) configuration is `{}`.
pub(crate) fn document_text(bytes: &[u8]) -> &[u8] {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    }
}

/// A serde_json error as a configuration error at the path of its position in `text`.
pub(crate) fn serde_error(text: &[u8], e: &serde_json::Error) -> ConfigError {
    let path = path_at(text, e.line(), e.column());
    ConfigError::new(path, strip_position(&e.to_string()))
}

/// The index of the closing quote of the JSON string whose opening quote is at `open` (the end
/// of the text if there is none); escapes are skipped, not decoded.
pub(crate) fn string_end(text: &[u8], open: usize) -> usize {
    let mut j = open + 1;
    while let Some(&c) = text.get(j) {
        match c {
            b'\\' => j += 2,
            b'"' => break,
            _ => j += 1,
        }
    }
    j.min(text.len())
}

/// One open container while walking the text.
enum Frame {
    Object { key: Option<String>, want_key: bool },
    Array { index: usize },
}

/// The path (`providers.idp.uri`, `rules[2].match`) of the value being read at a position serde_json
/// reports (1-based line; column = bytes of that line read so far, the failing one included).
/// Walks the text up to there, keeping the open objects' current keys and the arrays' indexes; a
/// container closed by the failing byte (a missing field is noticed at `}`) counts as its parent.
pub fn path_at(text: &[u8], line: usize, column: usize) -> String {
    let mut line_start = 0usize;
    let mut seen = 1usize;
    for (i, b) in text.iter().enumerate() {
        if seen >= line {
            break;
        }
        if *b == b'\n' {
            seen += 1;
            line_start = i + 1;
        }
    }
    let end = line_start.saturating_add(column).min(text.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0usize;
    while i < end {
        let Some(&c) = text.get(i) else { break };
        match c {
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { want_key, .. }) = stack.last_mut() {
                    *want_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                let j = string_end(text, i);
                if let Some(Frame::Object {
                    key,
                    want_key: true,
                }) = stack.last_mut()
                {
                    let raw = text.get(start..j.min(text.len())).unwrap_or_default();
                    *key = Some(String::from_utf8_lossy(raw).into_owned());
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => break,
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// serde_json appends " at line 1 column 57" to its messages; the path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_string(),
        None => message.to_string(),
    }
}

/// A `Result` whose error gets a parent path, for nested validation.
pub trait Within<T> {
    fn within(self, parent: &str) -> Result<T, ConfigError>;
}

impl<T> Within<T> for Result<T, ConfigError> {
    fn within(self, parent: &str) -> Result<T, ConfigError> {
        self.map_err(|e| e.within(parent))
    }
}

/// Whether `name` is 1 to `max` bytes, each an ASCII letter or digit or one of `extra`: the shape
/// of the names a configuration gives to rules, providers and policy files.
pub fn is_plain_name(name: &str, max: usize, extra: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// A rule's name in logs: `name` when the configuration gives one (1 to 64 letters, digits, `-`,
/// `_`, `.` or `:`; anything else is refused at `name`), else `rules[<index>]`.
pub fn rule_label(name: Option<String>, index: usize) -> Result<String, ConfigError> {
    match name {
        Some(name) => {
            if !is_plain_name(&name, 64, b"-_.:") {
                return Err(ConfigError::new(
                    "name",
                    "1 to 64 letters, digits, `-`, `_`, `.` or `:`",
                ));
            }
            Ok(name)
        }
        None => Ok(format!("rules[{index}]")),
    }
}

/// Checks an `http(s)://` URI and returns (authority, path-and-query) for a callout.
pub fn split_http_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .ok_or_else(|| "not an http(s) URI".to_string())?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(|c: char| c.is_whitespace() || c == '@') {
        return Err("the URI has no valid host".to_string());
    }
    if path.contains(|c: char| c.is_whitespace() || c.is_control()) || path.contains('#') {
        return Err("the URI path is not valid".to_string());
    }
    Ok((authority.to_string(), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        uri: String,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        providers: std::collections::BTreeMap<String, Inner>,
    }

    #[test]
    fn rule_labels_are_the_name_or_the_index() {
        assert_eq!(rule_label(None, 3), Ok("rules[3]".to_string()));
        assert_eq!(
            rule_label(Some("orders:read-1.v2_x".into()), 0),
            Ok("orders:read-1.v2_x".to_string())
        );
        assert_eq!(rule_label(Some("a".repeat(64)), 0), Ok("a".repeat(64)));
        for bad in [
            String::new(),
            "a".repeat(65),
            "two words".into(),
            "x/y".into(),
        ] {
            let e = rule_label(Some(bad.clone()), 0).unwrap_err();
            assert_eq!(e.path, "name", "{bad:?}");
            assert_eq!(e.reason, "1 to 64 letters, digits, `-`, `_`, `.` or `:`");
        }
    }

    #[test]
    fn serde_errors_name_the_field_path() {
        let e = parse_json::<Outer>(br#"{"providers":{"idp":{"uri":"x","extra":1}}}"#).unwrap_err();
        assert_eq!(e.path, "providers.idp.extra");
        assert!(e.reason.contains("unknown field `extra`"), "{}", e.reason);
        assert!(!e.reason.contains("line"));
        let e = parse_json::<Outer>(br#"{"providers":{"idp":{"uri":5}}}"#).unwrap_err();
        assert_eq!(e.path, "providers.idp.uri");
        assert_eq!(e.to_string(), format!("providers.idp.uri: {}", e.reason));
    }

    #[test]
    fn paths_of_missing_fields_variants_and_array_items() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Rule {
            #[allow(dead_code)]
            name: String,
            #[allow(dead_code)]
            per: Per,
        }
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Per {
            Second,
        }
        #[derive(Debug, Deserialize)]
        struct Rules {
            #[allow(dead_code)]
            rules: Vec<Rule>,
        }
        let text = "{\"rules\": [\n  {\"name\": \"a\", \"per\": \"second\"},\n  {\"name\": \"b\", \"per\": \"fortnight\"}\n]}";
        let e = parse_json::<Rules>(text.as_bytes()).unwrap_err();
        assert_eq!(e.path, "rules[1].per");
        assert!(
            e.reason.contains("unknown variant `fortnight`"),
            "{}",
            e.reason
        );
        let e = parse_json::<Rules>(
            br#"{"rules": [{"name": "a", "per": "second"}, {"per": "second"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "rules[1]");
        assert!(e.reason.contains("missing field `name`"), "{}", e.reason);
        let e = parse_json::<Rules>(
            br#"{"rules": [{"name": "a\"q", "per": "second", "x": [1, {"y": 2}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "rules[0].x");
        let e = parse_json::<Rules>(br#"{"rules": 7}"#).unwrap_err();
        assert_eq!(e.path, "rules");
        let e = parse_json::<Rules>(br#"{}"#).unwrap_err();
        assert_eq!(e.path, "");
    }

    #[test]
    fn trailing_garbage_and_bad_json_are_refused() {
        assert!(parse_json::<Outer>(br#"{"providers":{}} x"#).is_err());
        assert!(parse_json::<Outer>(b"{").is_err());
    }

    #[test]
    fn empty_config_is_an_empty_object() {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields, default)]
        struct AllDefault {
            #[allow(dead_code)]
            shadow: bool,
        }
        assert!(parse_json::<AllDefault>(b"").is_ok());
        assert!(parse_json::<AllDefault>(b"  \n").is_ok());
    }

    #[test]
    fn within_builds_paths() {
        let e = ConfigError::new("uri", "bad")
            .within("remote_jwks")
            .within("providers.idp");
        assert_eq!(e.path, "providers.idp.remote_jwks.uri");
        let e = ConfigError::new("[2]", "bad").within("rules");
        assert_eq!(e.path, "rules[2]");
        let e = ConfigError::new("", "bad").within("rules");
        assert_eq!(e.path, "rules");
    }

    #[test]
    fn http_uris() {
        assert_eq!(
            split_http_uri("https://idp.example.com/.well-known/jwks.json").unwrap(),
            ("idp.example.com".into(), "/.well-known/jwks.json".into())
        );
        assert_eq!(
            split_http_uri("http://127.0.0.1:8080").unwrap(),
            ("127.0.0.1:8080".into(), "/".into())
        );
        assert!(split_http_uri("ftp://x/").is_err());
        assert!(split_http_uri("https:///x").is_err());
        assert!(split_http_uri("https://a b/").is_err());
    }
}
