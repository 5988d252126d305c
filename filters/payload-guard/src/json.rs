//! A strict JSON parser whose limits hold while it parses.
//!
//! General-purpose parsers accept what gateways must not: duplicate object members (services
//! behind the gateway disagree on which one wins, so a checked value can be swapped for an
//! unchecked one), unbounded nesting (a stack exhausted on a thousand `[`), and strings or
//! containers of any size. This parser takes one complete body (already bounded by
//! `max_body_bytes`) and refuses, at the byte where it happens:
//! - anything but exactly one JSON value (RFC 8259) surrounded by optional whitespace;
//! - text that is not UTF-8 (a byte-order mark included), raw control characters in strings,
//!   escapes that name a lone UTF-16 surrogate;
//! - a second member with a name already seen in the same object;
//! - nesting deeper than `max_depth`, an array of more than `max_array_items` items, an object of
//!   more than `max_object_entries` members, a string longer than `max_string_bytes` or a member
//!   name longer than `max_key_bytes` (both counted in bytes after unescaping);
//! - numbers that do not fit an `f64` (`1e400`).
//!
//! Each limit is checked before the parser allocates for the item that would break it, so the
//! tree it builds is bounded by the body's size and the limits, whatever the body holds.

use serde_json::{Map, Number, Value};

/// The limits the parser enforces (one per rule name of [`JsonError::rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonLimits {
    pub max_depth: usize,
    pub max_array_items: usize,
    pub max_object_entries: usize,
    pub max_string_bytes: usize,
    pub max_key_bytes: usize,
}

/// Why a body was refused: a stable rule name and the byte offset where it was noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// `syntax`, `utf8`, `duplicate_key`, `max_depth`, `max_array_items`, `max_object_entries`,
    /// `max_string_bytes`, `max_key_bytes`, `number_range`, `trailing_data`, `empty`.
    pub rule: &'static str,
    pub offset: usize,
}

impl JsonError {
    pub fn description(&self) -> &'static str {
        match self.rule {
            "utf8" => "the body is not UTF-8 text",
            "duplicate_key" => "an object of the body has two members with the same name",
            "max_depth" => "the body is nested deeper than allowed",
            "max_array_items" => "an array of the body has more items than allowed",
            "max_object_entries" => "an object of the body has more members than allowed",
            "max_string_bytes" => "a string of the body is longer than allowed",
            "max_key_bytes" => "a member name of the body is longer than allowed",
            "number_range" => "a number of the body is out of range",
            "trailing_data" => "the body has data after its JSON value",
            "empty" => "the body is empty",
            _ => "the body is not valid JSON",
        }
    }
}

/// Parses one JSON value from `input` under `limits`.
pub fn parse(input: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    let text = match std::str::from_utf8(input) {
        Ok(text) => text,
        Err(e) => {
            return Err(JsonError {
                rule: "utf8",
                offset: e.valid_up_to(),
            })
        }
    };
    let mut p = Parser {
        text,
        pos: 0,
        limits,
    };
    p.skip_ws();
    if p.pos >= input.len() {
        return Err(p.err("empty"));
    }
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != input.len() {
        return Err(p.err("trailing_data"));
    }
    Ok(value)
}

struct Parser<'a> {
    /// The body, checked to be UTF-8 once: a string's text is a slice of it.
    text: &'a str,
    pos: usize,
    limits: &'a JsonLimits,
}

impl<'a> Parser<'a> {
    fn input(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn err(&self, rule: &'static str) -> JsonError {
        JsonError {
            rule,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, word: &'static [u8], value: Value) -> Result<Value, JsonError> {
        let end = self.pos.saturating_add(word.len());
        if self.input().get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(value)
        } else {
            Err(self.err("syntax"))
        }
    }

    /// A value whose container is at `depth` (0 for the top level).
    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(
                self.string(self.limits.max_string_bytes, "max_string_bytes")?,
            )),
            Some(b't') => self.expect_literal(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_literal(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("syntax")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > self.limits.max_depth {
            return Err(self.err("max_depth"));
        }
        self.pos += 1; // `{`
        let mut map = Map::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("syntax"));
            }
            if map.len() >= self.limits.max_object_entries {
                return Err(self.err("max_object_entries"));
            }
            let key_at = self.pos;
            let key = self.string(self.limits.max_key_bytes, "max_key_bytes")?;
            // One search of the map per member: the slot a new name goes into, or the duplicate.
            let serde_json::map::Entry::Vacant(slot) = map.entry(key) else {
                return Err(JsonError {
                    rule: "duplicate_key",
                    offset: key_at,
                });
            };
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("syntax"));
            }
            self.pos += 1;
            self.skip_ws();
            slot.insert(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.err("syntax")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > self.limits.max_depth {
            return Err(self.err("max_depth"));
        }
        self.pos += 1; // `[`
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            if items.len() >= self.limits.max_array_items {
                return Err(self.err("max_array_items"));
            }
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("syntax")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("syntax")),
            };
            n = n << 4 | u32::from(d);
            self.pos += 1;
        }
        Ok(n)
    }

    /// A string at `"`, unescaped; refused once it passes `max` bytes (before growing further).
    fn string(&mut self, max: usize, rule: &'static str) -> Result<String, JsonError> {
        self.pos += 1; // `"`
        let mut out: Vec<u8> = Vec::new();
        let mut first = true;
        loop {
            // Copy the run of plain bytes up to the next quote, backslash or control byte.
            let start = self.pos;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let run = self.input().get(start..self.pos).unwrap_or_default();
            if out.len().saturating_add(run.len()) > max {
                self.pos = start.saturating_add(max.saturating_sub(out.len()));
                return Err(self.err(rule));
            }
            if first && self.peek() == Some(b'"') {
                // No escape (most strings): one exact allocation, no growing buffer, and no
                // second UTF-8 check (the run ends at an ASCII quote, a character boundary).
                self.pos += 1;
                return self
                    .text
                    .get(start..self.pos - 1)
                    .map(str::to_owned)
                    .ok_or_else(|| self.err("utf8"));
            }
            first = false;
            out.extend_from_slice(run);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    // The input is UTF-8 and escapes were encoded as UTF-8 below.
                    return String::from_utf8(out).map_err(|_| self.err("utf8"));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let mut buf = [0u8; 4];
                    let decoded: &[u8] = match self.peek() {
                        Some(b'"') => b"\"",
                        Some(b'\\') => b"\\",
                        Some(b'/') => b"/",
                        Some(b'b') => b"\x08",
                        Some(b'f') => b"\x0c",
                        Some(b'n') => b"\n",
                        Some(b'r') => b"\r",
                        Some(b't') => b"\t",
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape()?;
                            if out.len().saturating_add(c.len_utf8()) > max {
                                return Err(self.err(rule));
                            }
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => return Err(self.err("syntax")),
                    };
                    if out.len() >= max {
                        return Err(self.err(rule));
                    }
                    out.extend_from_slice(decoded);
                    self.pos += 1;
                }
                // A raw control character, or the end of the input inside the string.
                _ => return Err(self.err("syntax")),
            }
        }
    }

    /// After `\u`: four hex digits, or a surrogate pair written as two escapes.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.input().get(self.pos..self.pos.saturating_add(2)) != Some(b"\\u") {
                    return Err(self.err("syntax"));
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.err("syntax"));
                }
                0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.err("syntax")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.err("syntax"))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("syntax")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("syntax"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("syntax"));
            }
        }
        let text = self.text.get(start..self.pos).unwrap_or("");
        if integer {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Value::Number(n.into()));
            }
            if let Ok(n) = text.parse::<u64>() {
                return Ok(Value::Number(n.into()));
            }
        }
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(Value::Number(n)),
            _ => Err(JsonError {
                rule: "number_range",
                offset: start,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: JsonLimits = JsonLimits {
        max_depth: 4,
        max_array_items: 3,
        max_object_entries: 3,
        max_string_bytes: 8,
        max_key_bytes: 4,
    };

    fn ok(text: &str) -> Value {
        parse(text.as_bytes(), &LIMITS)
            .or_else(|_| {
                parse(
                    text.as_bytes(),
                    &JsonLimits {
                        max_string_bytes: 64,
                        ..LIMITS
                    },
                )
            })
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }
    fn rule(text: &[u8]) -> &'static str {
        parse(text, &LIMITS).unwrap_err().rule
    }

    #[test]
    fn values_like_serde_json() {
        for text in [
            r#"{"a":[1,-2,3.5],"b":{"c":null}}"#,
            r#" "x\"\\\/\b\f\n\r\t" "#,
            "true",
            "false",
            "null",
            "0",
            "1e5",
            "-1.25E-3",
            "18446744073709551615",
            "-9223372036854775808",
            r#""\u00e9\ud83d\ude00""#,
            "[]",
            "{}",
            "\"é\"",
        ] {
            let want: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ok(text), want, "{text}");
        }
    }

    /// Numbers read as the nearest double, also past 19 significant digits and in the subnormal
    /// range (a fuzzing run once compared this with a reader that was off by a unit there).
    #[test]
    fn numbers_are_correctly_rounded() {
        for (text, bits) in [
            ("[9999299222876457777779e-331]", 0xb81224fc0d88_u64),
            ("[2.2250738585072011e-308]", 0x000f_ffff_ffff_ffff),
            ("[4.9406564584124654e-324]", 1),
            ("[2.4703282292062328e-324]", 1),
            (
                "[1.00000000000000011102230246251565404236316680908203125]",
                0x3ff0_0000_0000_0000,
            ),
        ] {
            let got = ok(text)[0].as_f64().map(f64::to_bits);
            assert_eq!(got, Some(bits), "{text}");
        }
    }

    #[test]
    fn syntax_errors() {
        for text in [
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "'x'",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "[1 2]",
            "{\"a\" 1}",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "NaN",
            "Infinity",
            "\"a\tb\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
        ] {
            assert!(
                parse(text.as_bytes(), &LIMITS).is_err(),
                "{text:?} was accepted"
            );
        }
        assert_eq!(parse(b"-0", &LIMITS), Ok(json!(0)));
        assert_eq!(rule(b""), "empty");
        assert_eq!(rule(b"1 2"), "trailing_data");
        assert_eq!(rule(b"{} {}"), "trailing_data");
        assert_eq!(rule(b"1e400"), "number_range");
    }

    #[test]
    fn utf8_errors_and_bom() {
        assert_eq!(rule(b"\"\xff\""), "utf8");
        assert_eq!(rule(b"\"\xc3\""), "utf8");
        assert_eq!(rule(b"\"\xed\xa0\x80\""), "utf8", "an encoded surrogate");
        assert_eq!(parse(b"\"\xc3\xa9\xff\"", &LIMITS).unwrap_err().offset, 3);
        assert_eq!(
            rule(b"\xef\xbb\xbf{}"),
            "syntax",
            "a byte-order mark is refused"
        );
    }

    #[test]
    fn duplicate_keys_are_refused_even_when_escaped() {
        assert_eq!(rule(br#"{"a":1,"a":2}"#), "duplicate_key");
        assert_eq!(rule(br#"{"a":1,"\u0061":2}"#), "duplicate_key");
        assert_eq!(rule(br#"{"x":{"a":1,"b":{},"a":2}}"#), "duplicate_key");
        assert_eq!(ok(r#"{"a":{"a":1}}"#), json!({"a":{"a":1}}));
    }

    #[test]
    fn limits_while_parsing() {
        assert_eq!(ok("[[[[1]]]]"), json!([[[[1]]]]));
        assert_eq!(rule(b"[[[[[1]]]]]"), "max_depth");
        assert_eq!(rule(b"{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}"), "max_depth");
        // A depth bomb is refused at the first `[` too many, not at the end.
        let bomb = "[".repeat(100_000);
        let e = parse(bomb.as_bytes(), &LIMITS).unwrap_err();
        assert_eq!((e.rule, e.offset), ("max_depth", 4));
        assert_eq!(rule(b"[1,2,3,4]"), "max_array_items");
        assert_eq!(ok("[1,2,3]"), json!([1, 2, 3]));
        assert_eq!(rule(br#"{"a":1,"b":2,"c":3,"d":4}"#), "max_object_entries");
        assert_eq!(ok(r#""12345678""#), json!("12345678"));
        assert_eq!(rule(br#""123456789""#), "max_string_bytes");
        assert_eq!(ok(r#""1234567\n""#), json!("1234567\n"));
        assert_eq!(rule(br#""12345678\n""#), "max_string_bytes");
        assert_eq!(rule(br#""1234567\u00e9""#), "max_string_bytes");
        assert_eq!(ok(r#"{"abcd":1}"#), json!({"abcd": 1}));
        assert_eq!(rule(br#"{"abcde":1}"#), "max_key_bytes");
        // A long string is refused at the limit, not at its end.
        let long = format!("\"{}\"", "a".repeat(10_000));
        let e = parse(long.as_bytes(), &LIMITS).unwrap_err();
        assert_eq!((e.rule, e.offset), ("max_string_bytes", 9));
    }
}
