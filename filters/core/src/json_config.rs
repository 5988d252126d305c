//! Configuration read by hand from a parsed JSON document, without serde's generated code.
//!
//! serde's derived deserialisers are the largest part of a filter module after the filter's own
//! logic: one `deserialize_struct` per configuration type, each with the JSON parser inlined
//! (bench/RESULTS.md, the size gaps). A filter that reads its configuration with these helpers
//! parses the text once into a `serde_json::Value` (code every module has for JWT claims
//! anyway) and takes its fields from there. The behaviour is serde's, message for message where
//! the tests pin it: unknown fields refused, a missing required field named, `null` for an
//! optional field taken as absent, a duplicate field refused; every error carries the field's
//! path.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::config::{document_text, path_at, serde_error, string_end, ConfigError};

/// Parses a configuration document into a JSON value. An empty (or all-whitespace) document is
/// `{}`. Syntax errors name the path where they occur, and a member given twice in one object
/// is refused (`duplicate field`) at its second occurrence, as serde's derived code does.
pub fn parse_document(bytes: &[u8]) -> Result<Value, ConfigError> {
    let text = document_text(bytes);
    let value: Value = serde_json::from_slice(text).map_err(|e| serde_error(text, &e))?;
    check_duplicates(text)?;
    Ok(value)
}

/// Refuses a member name given twice in one object, naming it at its second occurrence. The text
/// is already known to be valid JSON. Names are compared as written; a name spelled with escapes
/// is decoded first.
fn check_duplicates(text: &[u8]) -> Result<(), ConfigError> {
    // Per open container: the names seen (objects only) and whether a name is expected next.
    enum Open {
        Object { names: Vec<String>, want_name: bool },
        Array,
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0usize;
    while let Some(&c) = text.get(i) {
        match c {
            b'{' => stack.push(Open::Object {
                names: Vec::new(),
                want_name: true,
            }),
            b'[' => stack.push(Open::Array),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(Open::Object { want_name, .. }) = stack.last_mut() {
                    *want_name = true;
                }
            }
            b':' => {
                if let Some(Open::Object { want_name, .. }) = stack.last_mut() {
                    *want_name = false;
                }
            }
            b'"' => {
                let start = i;
                let j = string_end(text, i);
                if let Some(Open::Object {
                    names,
                    want_name: true,
                }) = stack.last_mut()
                {
                    let raw = text.get(start + 1..j).unwrap_or_default();
                    let name = if raw.contains(&b'\\') {
                        // Through `Value`, whose reader every module has already.
                        match serde_json::from_slice(text.get(start..=j).unwrap_or_default()) {
                            Ok(Value::String(s)) => s,
                            _ => String::new(),
                        }
                    } else {
                        String::from_utf8_lossy(raw).into_owned()
                    };
                    if names.contains(&name) {
                        let (line, column) = position(text, j);
                        return Err(ConfigError::new(
                            path_at(text, line, column),
                            format!("duplicate field `{name}`"),
                        ));
                    }
                    names.push(name);
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// serde_json's (line, column) of byte `at`: lines from 1, the column counting that byte.
fn position(text: &[u8], at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or_default();
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, at - line_start + 1)
}

/// What a value is, in serde's words (`invalid type: string "x", expected u64`).
fn unexpected(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => {
            let mut out = String::from("string ");
            let _ = write!(out, "{}", Value::String(s.clone()));
            out
        }
        Value::Array(_) => "sequence".to_string(),
        Value::Object(_) => "map".to_string(),
    }
}

/// `invalid type: <what v is>, expected <expected>`, at the value itself.
pub fn invalid_type(v: &Value, expected: &str) -> ConfigError {
    ConfigError::new(
        "",
        format!("invalid type: {}, expected {expected}", unexpected(v)),
    )
}

/// A string.
pub fn string(v: &Value) -> Result<String, ConfigError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid_type(v, "a string"))
}

/// A boolean.
pub fn boolean(v: &Value) -> Result<bool, ConfigError> {
    v.as_bool().ok_or_else(|| invalid_type(v, "a boolean"))
}

/// A non-negative integer that fits `max`, named `name` in errors (`u64`, `usize`, `u32`).
fn unsigned(v: &Value, name: &str, max: u64) -> Result<u64, ConfigError> {
    match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(x), _) if x <= max => Ok(x),
            (Some(_), _) | (None, Some(_)) => Err(ConfigError::new(
                "",
                format!("invalid value: integer `{n}`, expected {name}"),
            )),
            (None, None) => Err(invalid_type(v, name)),
        },
        _ => Err(invalid_type(v, name)),
    }
}

pub fn u64_value(v: &Value) -> Result<u64, ConfigError> {
    unsigned(v, "u64", u64::MAX)
}

pub fn usize_value(v: &Value) -> Result<usize, ConfigError> {
    let x = unsigned(v, "usize", usize::MAX as u64)?;
    usize::try_from(x).map_err(|_| invalid_type(v, "usize"))
}

pub fn u8_value(v: &Value) -> Result<u8, ConfigError> {
    let x = unsigned(v, "u8", u64::from(u8::MAX))?;
    u8::try_from(x).map_err(|_| invalid_type(v, "u8"))
}

pub fn u32_value(v: &Value) -> Result<u32, ConfigError> {
    let x = unsigned(v, "u32", u64::from(u32::MAX))?;
    u32::try_from(x).map_err(|_| invalid_type(v, "u32"))
}

/// A sequence, each element read by `item`; an element's error is at `[i]`.
pub fn array<T>(
    v: &Value,
    item: impl Fn(&Value) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let items = v.as_array().ok_or_else(|| invalid_type(v, "a sequence"))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, x) in items.iter().enumerate() {
        out.push(item(x).map_err(|e| e.within(&format!("[{i}]")))?);
    }
    Ok(out)
}

/// A sequence of strings.
pub fn strings(v: &Value) -> Result<Vec<String>, ConfigError> {
    array(v, string)
}

/// A unit variant of an enum written as its name: the index of `name` in `variants`.
pub fn variant(v: &Value, variants: &[&str]) -> Result<usize, ConfigError> {
    let Some(s) = v.as_str() else {
        return Err(invalid_type(v, "a string"));
    };
    variants.iter().position(|x| *x == s).ok_or_else(|| {
        ConfigError::new(
            "",
            format!("unknown variant `{s}`, expected {}", one_of(variants)),
        )
    })
}

/// A unit variant written as its name, mapped to its value: `choice(v, &[("deny", Deny), …])`.
pub fn choice<T: Copy>(v: &Value, choices: &[(&str, T)]) -> Result<T, ConfigError> {
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let index = variant(v, &names)?;
    choices
        .get(index)
        .map(|(_, value)| *value)
        .ok_or_else(|| invalid_type(v, "a string"))
}

/// serde's list of expected names: "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_string(),
        [a] => format!("`{a}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => {
            let mut out = String::from("one of ");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "`{n}`");
            }
            out
        }
    }
}

/// A JSON object read field by field. Made by [`object`], which refuses members not in `fields`.
#[derive(Debug)]
pub struct Object<'a> {
    map: &'a Map<String, Value>,
}

/// The object `v`, whose members must all be among `fields` (serde's `deny_unknown_fields`); an
/// unknown member is named at its own path.
pub fn object<'a>(v: &'a Value, fields: &[&str]) -> Result<Object<'a>, ConfigError> {
    let map = v.as_object().ok_or_else(|| invalid_type(v, "an object"))?;
    if let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(ConfigError::new(
            unknown.as_str(),
            format!("unknown field `{unknown}`, expected {}", one_of(fields)),
        ));
    }
    Ok(Object { map })
}

impl<'a> Object<'a> {
    /// The member `key`, `None` when absent or `null` (an optional field).
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The required member `key`.
    pub fn required(&self, key: &str) -> Result<&'a Value, ConfigError> {
        self.map
            .get(key)
            .ok_or_else(|| ConfigError::new("", format!("missing field `{key}`")))
    }

    /// An optional member read by `read`, its errors at `key`.
    pub fn optional<T>(
        &self,
        key: &str,
        read: impl Fn(&Value) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            Some(v) => read(v).map(Some).map_err(|e| e.within(key)),
            None => Ok(None),
        }
    }

    /// A member with a default when absent (serde's `#[serde(default)]`: `null` is not absent).
    pub fn or<T>(
        &self,
        key: &str,
        default: T,
        read: impl Fn(&Value) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match self.map.get(key) {
            Some(v) => read(v).map_err(|e| e.within(key)),
            None => Ok(default),
        }
    }

    /// A required member read by `read`, its errors at `key`.
    pub fn need<T>(
        &self,
        key: &str,
        read: impl Fn(&Value) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        read(self.required(key)?).map_err(|e| e.within(key))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err(r: Result<impl std::fmt::Debug, ConfigError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn documents_parse_with_paths_and_refuse_duplicates() {
        assert_eq!(parse_document(b"  \n").unwrap(), json!({}));
        assert_eq!(
            parse_document(br#"{"a": [1, {"b": 2}]}"#).unwrap(),
            json!({"a": [1, {"b": 2}]})
        );
        let e = parse_document(b"{\"a\": {\"b\": 1,\n \"b\": 2}}").unwrap_err();
        assert_eq!(e.to_string(), "a.b: duplicate field `b`");
        let e = parse_document(br#"{"r": [{"x": 1}, {"x": 1, "y": 2, "x": 3}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "r[1].x: duplicate field `x`");
        // The same name spelled with an escape is the same member (the path shows it as written).
        let e = parse_document(br#"{"ab": 1, "a\u0062": 2}"#).unwrap_err();
        assert_eq!(e.to_string(), "a\\u0062: duplicate field `ab`");
        // Equal names in different objects, and strings that are values, are not duplicates.
        assert!(parse_document(br#"{"a": {"x": "x"}, "b": {"x": ["x", "x"]}, "x": "a"}"#).is_ok());
        assert!(parse_document(br#"{"a": "\"b\": 1, \"b\""}"#).is_ok());
        let e = parse_document(br#"{"a": [1, }"#).unwrap_err();
        assert_eq!(e.to_string(), "a: expected value");
        assert!(parse_document(br#"{"a": 1} x"#).is_err());
    }

    #[test]
    fn values_are_read_with_serde_s_messages() {
        assert_eq!(string(&json!("x")).unwrap(), "x");
        assert_eq!(
            err(string(&json!(5))),
            "configuration: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            err(u64_value(&json!("5"))),
            "configuration: invalid type: string \"5\", expected u64"
        );
        assert_eq!(
            err(u64_value(&json!(-1))),
            "configuration: invalid value: integer `-1`, expected u64"
        );
        assert_eq!(
            err(u64_value(&json!(1.5))),
            "configuration: invalid type: floating point `1.5`, expected u64"
        );
        assert_eq!(
            err(u32_value(&json!(5_000_000_000u64))),
            "configuration: invalid value: integer `5000000000`, expected u32"
        );
        assert_eq!(u32_value(&json!(7)).unwrap(), 7);
        assert_eq!(usize_value(&json!(7)).unwrap(), 7);
        assert_eq!(
            err(boolean(&json!(null))),
            "configuration: invalid type: null, expected a boolean"
        );
        assert_eq!(
            err(strings(&json!(["a", 1]))),
            "[1]: invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            err(strings(&json!({}))),
            "configuration: invalid type: map, expected a sequence"
        );
        assert_eq!(variant(&json!("allow"), &["deny", "allow"]).unwrap(), 1);
        assert_eq!(
            err(variant(&json!("maybe"), &["deny", "allow"])),
            "configuration: unknown variant `maybe`, expected `deny` or `allow`"
        );
        assert_eq!(
            err(variant(&json!("x"), &["a", "b", "c"])),
            "configuration: unknown variant `x`, expected one of `a`, `b`, `c`"
        );
    }

    /// Each core type with both readers: the hand-written one and serde's derive (kept for the
    /// filters that do not read their configuration by hand yet) must take and refuse the same
    /// documents, and take them to the same value.
    #[test]
    fn core_types_read_the_same_by_hand_and_by_serde() {
        use crate::authn::{ClaimToHeader, RuleFile, Unmatched};
        use crate::bucket::Per;
        use crate::budget::BudgetFile;
        use crate::credential::FromHeader;
        use crate::route::{PathOptions, RouteMatchConfig};
        use serde::de::DeserializeOwned;

        fn agree<T: DeserializeOwned + std::fmt::Debug>(
            by_hand: fn(&Value) -> Result<T, ConfigError>,
            docs: &[Value],
        ) {
            for doc in docs {
                let ours = by_hand(doc).map(|v| format!("{v:?}"));
                let theirs = serde_json::from_value::<T>(doc.clone()).map(|v| format!("{v:?}"));
                match (&ours, &theirs) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{doc}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("{doc}: by hand {ours:?}, serde {theirs:?}"),
                }
            }
        }
        let route = json!({"prefix": "/a", "methods": ["GET"]});
        agree(
            RouteMatchConfig::from_json,
            &[
                route.clone(),
                json!({}),
                json!({"path": "/x", "template": null}),
                json!({"template": "/a/{id}"}),
                json!({"prefix": 5}),
                json!({"methods": null}),
                json!({"methods": "GET"}),
                json!({"colour": 1}),
                json!([]),
                json!(null),
            ],
        );
        agree(
            PathOptions::from_json,
            &[
                json!({}),
                json!({"allow_encoded_slashes": true}),
                json!({"allow_encoded_slashes": null}),
                json!({"allow_encoded_slashes": "yes"}),
                json!({"x": 1}),
                json!(null),
            ],
        );
        agree(
            RuleFile::from_json,
            &[
                json!({"match": route}),
                json!({"match": route, "requires": null}),
                json!({"match": route, "requires": {"provider": "a", "audiences": ["x"]}}),
                json!({"match": route, "requires": {"any": [{"provider": "a"}, {"all": [{"provider": "b"}]}]}}),
                json!({"match": route, "requires": {"allow_missing": {"provider": "a"}}}),
                json!({"match": route, "requires": {"any": {"provider": "a"}}}),
                json!({"match": route, "requires": {"provider": "a", "colour": 1}}),
                json!({"match": route, "requires": {"audiences": [1]}}),
                json!({"requires": {"provider": "a"}}),
                json!({"match": route, "extra": 1}),
                json!({"match": null}),
            ],
        );
        agree(
            ClaimToHeader::from_json,
            &[
                json!({"claim": "sub", "header": "x-sub"}),
                json!({"claim": "sub"}),
                json!({"claim": "sub", "header": 1}),
                json!({"claim": "sub", "header": "x", "y": 1}),
            ],
        );
        agree(
            FromHeader::from_json,
            &[
                json!({"name": "authorization", "value_prefix": "Bearer "}),
                json!({"name": "x-token"}),
                json!({"name": "x-token", "value_prefix": null}),
                json!({"value_prefix": "Bearer "}),
                json!({"name": ["x"]}),
            ],
        );
        agree(
            BudgetFile::from_json,
            &[
                json!({"failures": 5, "per": "minute"}),
                json!({"failures": 5, "per": "day", "burst": 9, "xff_trusted_hops": 2, "slots": 64}),
                json!({"failures": 5, "per": "minute", "burst": null, "slots": null}),
                json!({"failures": 5, "per": "minute", "xff_trusted_hops": null}),
                json!({"failures": 5, "per": "fortnight"}),
                json!({"failures": -5, "per": "minute"}),
                json!({"failures": 1.5, "per": "minute"}),
                json!({"failures": 5, "per": "minute", "xff_trusted_hops": 5_000_000_000u64}),
                json!({"per": "minute"}),
                json!({"failures": 5, "per": "minute", "colour": 1}),
            ],
        );
        agree(
            Per::from_json,
            &[json!("second"), json!("hour"), json!("Hour"), json!(1)],
        );
        agree(
            Unmatched::from_json,
            &[json!("deny"), json!("allow"), json!("maybe"), json!(null)],
        );
    }

    #[test]
    fn objects_refuse_unknown_members_and_name_missing_ones() {
        let v = json!({"a": "x", "b": null});
        let o = object(&v, &["a", "b", "c"]).unwrap();
        assert_eq!(o.get("a"), Some(&json!("x")));
        assert_eq!(o.get("b"), None);
        assert_eq!(o.optional("b", string).unwrap(), None);
        assert_eq!(o.or("c", 4, u64_value).unwrap(), 4);
        // `null` is a value for a field with a default, as in serde.
        assert!(o.or("b", 4, u64_value).is_err());
        assert_eq!(err(o.need("c", string)), "configuration: missing field `c`");
        assert_eq!(
            err(o.need("b", string)),
            "b: invalid type: null, expected a string"
        );
        assert_eq!(
            err(object(&json!({"a": 1, "colour": 2}), &["a", "b"])),
            "colour: unknown field `colour`, expected `a` or `b`"
        );
        assert_eq!(
            err(object(&json!([]), &["a"])),
            "configuration: invalid type: sequence, expected an object"
        );
    }
}
