//! Masking: every value taken from a request passes through here before it leaves the filter.
//!
//! The built-in detectors are direct scanners over the bytes (one pass each, linear in the input,
//! no regex): payment card numbers (13 to 19 digits, single spaces or dashes between them, a
//! card-network first digit, Luhn-checked), e-mail addresses, bearer/basic credentials, JWTs and
//! prefixed API keys, IBANs (ISO 13616 mod-97). Named JSON fields (`"password": …`) and
//! `name=value` pairs, named query parameters and named headers are replaced whole. Configured
//! `patterns` run through `regex-lite`.
//!
//! A masked value keeps what correlates without revealing: a card keeps its first six and last
//! four digits (`411111******1111`, as PCI DSS allows), an IBAN its country and last four, anything
//! else becomes `[kind:xxxxxxxx]`, the first 32 bits of HMAC-SHA256 under the masking key, so one
//! value gives one tag across requests and workers (when the key is configured) and cannot be
//! guessed back without the key.

use shieldwall_core::json_text::{hex_digit, push_hex};
use shieldwall_jose::HmacSha256;

use crate::config::MaskConfig;

/// What was masked in one record, per kind, for the metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hits {
    pub card_numbers: u32,
    pub emails: u32,
    pub tokens: u32,
    pub ibans: u32,
    /// Named JSON fields, query parameters and headers.
    pub named: u32,
    /// Per configured pattern, in configuration order.
    pub patterns: Vec<u32>,
}

impl Hits {
    pub fn total(&self) -> u32 {
        self.card_numbers
            .saturating_add(self.emails)
            .saturating_add(self.tokens)
            .saturating_add(self.ibans)
            .saturating_add(self.named)
            .saturating_add(self.patterns.iter().fold(0u32, |a, b| a.saturating_add(*b)))
    }
}

pub struct Masker {
    config: MaskConfig,
    patterns: Vec<(String, regex_lite::Regex)>,
    key: HmacSha256,
}

/// Prefixes of API keys that announce themselves (Stripe, GitHub, Slack, AWS access key ids).
const KEY_PREFIXES: &[&str] = &[
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "pk_live_",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "AKIA",
];

/// What one pass over a text found, to skip the detectors that cannot match.
struct Shape {
    len: usize,
    digits: usize,
    upper: usize,
    at: bool,
    space: bool,
    /// `=` or `:` (a `name=value` pair or a JSON member).
    assign: bool,
    /// `eyJ` and two dots.
    jwt: bool,
}

impl Shape {
    fn of(b: &[u8]) -> Shape {
        let mut s = Shape {
            len: b.len(),
            digits: 0,
            upper: 0,
            at: false,
            space: false,
            assign: false,
            jwt: false,
        };
        let mut dots = 0usize;
        for c in b {
            match c {
                b'0'..=b'9' => s.digits += 1,
                b'A'..=b'Z' => s.upper += 1,
                b'@' => s.at = true,
                b' ' => s.space = true,
                b'=' | b':' => s.assign = true,
                b'.' => dots += 1,
                _ => {}
            }
        }
        s.jwt = dots >= 2 && b.windows(3).any(|w| w == b"eyJ");
        s
    }
}

/// What a detector says at one position: nothing here, skip to an index (nothing to mask up to
/// there), or replace up to an index.
enum Found {
    Skip(usize),
    Replace(usize, String),
}

/// Runs a detector over `text`. Detectors only start and end matches on ASCII bytes, so the
/// indexes are character boundaries. `None` when nothing was replaced (no allocation).
/// `at` is a trait object: one copy of this loop serves every detector (the module stays under
/// its size target), and a detector runs only when the value's shape calls for it.
fn replace_all(text: &str, at: &mut dyn FnMut(&[u8], usize) -> Option<Found>) -> Option<String> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut last = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        match at(b, i) {
            None => i += 1,
            Some(Found::Skip(next)) => i = next.max(i + 1),
            Some(Found::Replace(end, with)) => {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                o.push_str(text.get(last..i).unwrap_or(""));
                o.push_str(&with);
                last = end.max(i + 1);
                i = last;
            }
        }
    }
    if let Some(o) = out.as_mut() {
        o.push_str(text.get(last..).unwrap_or(""));
    }
    out
}

/// Applies a pass in place when it changed something.
fn apply(text: &mut String, pass: impl FnOnce(&str) -> Option<String>) {
    if let Some(changed) = pass(text) {
        *text = changed;
    }
}

fn is_alnum(b: Option<&u8>) -> bool {
    b.is_some_and(u8::is_ascii_alphanumeric)
}

fn byte(b: &[u8], i: usize) -> Option<u8> {
    b.get(i).copied()
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// A card number candidate: 13 to 19 digits, first digit 2-6 (Mastercard 2/5, Amex 3, Visa 4,
/// Discover/UnionPay 6; 1 would catch millisecond timestamps), Luhn-valid.
fn is_card(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len())
        && digits.first().is_some_and(|d| (2..=6).contains(d))
        && luhn(digits)
}

fn card_mask(digits: &[u8]) -> String {
    let n = digits.len();
    let mut out = String::with_capacity(n);
    for (i, d) in digits.iter().enumerate() {
        if i < 6 || i >= n.saturating_sub(4) {
            out.push(char::from(b'0' + d));
        } else {
            out.push('*');
        }
    }
    out
}

/// Card numbers at `i`: a run of digits with single spaces or dashes between them, not glued to
/// letters or other digits. When the whole run is no card, windows of its digit groups are tried,
/// so a card between other numbers ("call 555 123 4567, card 4111 1111 1111 1111") is still found.
fn card_at(b: &[u8], i: usize) -> Option<Found> {
    if !byte(b, i)?.is_ascii_digit() {
        return None;
    }
    if i > 0 && is_alnum(b.get(i - 1)) {
        let mut j = i;
        while is_alnum(b.get(j)) {
            j += 1;
        }
        return Some(Found::Skip(j));
    }
    // Groups of digits: (start, end) in the text.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut j = i;
    loop {
        let start = j;
        while byte(b, j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        groups.push((start, j));
        match (byte(b, j), byte(b, j + 1)) {
            (Some(b' ' | b'-'), Some(d)) if d.is_ascii_digit() && groups.len() < 40 => j += 1,
            _ => break,
        }
    }
    let end = groups.last().map(|g| g.1).unwrap_or(i);
    if b.get(end).is_some_and(u8::is_ascii_alphabetic) {
        return Some(Found::Skip(end));
    }
    let digits_of = |from: usize, to: usize| -> Vec<u8> {
        let mut d = Vec::with_capacity(19);
        for (s, e) in groups.get(from..=to).unwrap_or(&[]) {
            for c in b.get(*s..*e).unwrap_or(&[]) {
                d.push(c - b'0');
            }
        }
        d
    };
    let last = groups.len().saturating_sub(1);
    let whole = digits_of(0, last);
    if is_card(&whole) {
        return Some(Found::Replace(end, card_mask(&whole)));
    }
    if groups.len() > 1 {
        for from in 0..groups.len() {
            for to in from..groups.len() {
                let d = digits_of(from, to);
                if d.len() > 19 {
                    break;
                }
                let (Some(&(s, _)), Some(&(_, e))) = (groups.get(from), groups.get(to)) else {
                    continue;
                };
                if (from, to) != (0, last) && is_card(&d) {
                    // Keep what precedes the window as it is.
                    let before = std::str::from_utf8(b.get(i..s).unwrap_or(&[])).unwrap_or("");
                    return Some(Found::Replace(e, format!("{before}{}", card_mask(&d))));
                }
            }
        }
    }
    Some(Found::Skip(end))
}

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// The end of an e-mail domain starting at `i`: labels separated by dots, at least two, the last
/// one letters only (a top-level domain of two or more).
fn domain_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut labels: Vec<(usize, usize)> = Vec::new();
    loop {
        let start = j;
        while byte(b, j).is_some_and(is_label_char) {
            j += 1;
        }
        if j == start {
            break;
        }
        labels.push((start, j));
        if byte(b, j) == Some(b'.') && byte(b, j + 1).is_some_and(is_label_char) {
            j += 1;
        } else {
            break;
        }
    }
    // The longest prefix of labels whose last one is a plausible top-level domain.
    while labels.len() >= 2 {
        let (s, e) = *labels.last()?;
        let tld = b.get(s..e)?;
        if tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) {
            return Some(e);
        }
        labels.pop();
    }
    None
}

impl Masker {
    /// `random_key`: the key used when the configuration names none (made once per VM).
    pub fn new(config: MaskConfig, random_key: &[u8]) -> Masker {
        let patterns = config
            .patterns
            .iter()
            .filter_map(|(name, source)| {
                regex_lite::Regex::new(source)
                    .ok()
                    .map(|re| (name.clone(), re))
            })
            .collect();
        let key_bytes = config
            .hash_key
            .clone()
            .unwrap_or_else(|| random_key.to_vec());
        Masker {
            key: HmacSha256::new(&key_bytes),
            patterns,
            config,
        }
    }

    pub fn new_hits(&self) -> Hits {
        Hits {
            patterns: vec![0; self.patterns.len()],
            ..Default::default()
        }
    }

    pub fn pattern_names(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(n, _)| n.as_str())
    }

    /// `[kind:xxxxxxxx]`: the first 32 bits of HMAC-SHA256(key, kind 0x00 value).
    pub fn tag(&self, kind: &str, value: &str) -> String {
        let tag = self.key.sign(&[kind.as_bytes(), &[0], value.as_bytes()]);
        let mut out = String::with_capacity(kind.len() + 11);
        out.push('[');
        out.push_str(kind);
        out.push(':');
        push_hex(&mut out, tag.get(..4).unwrap_or_default());
        out.push(']');
        out
    }

    /// Masks free text: a header value, a decoded path segment or query value, an identity field.
    pub fn text(&self, text: &str, hits: &mut Hits) -> String {
        let mut out = text.to_string();
        for (i, (name, re)) in self.patterns.iter().enumerate() {
            if re.is_match(&out) {
                let mut n = 0u32;
                let replaced = re
                    .replace_all(&out, |c: &regex_lite::Captures<'_>| {
                        n += 1;
                        self.tag(name, c.get(0).map(|m| m.as_str()).unwrap_or(""))
                    })
                    .into_owned();
                out = replaced;
                if let Some(h) = hits.patterns.get_mut(i) {
                    *h = h.saturating_add(n);
                }
            }
        }
        // One pass to see which detectors could match at all: most values (a parameter name,
        // `shoes`, `2`, a user agent) need none of the passes below.
        let shape = Shape::of(out.as_bytes());
        if self.config.tokens {
            if shape.jwt {
                apply(&mut out, |t| {
                    replace_all(t, &mut |b, i| self.jwt_at(b, i, hits))
                });
            }
            if shape.space {
                apply(&mut out, |t| {
                    replace_all(t, &mut |b, i| self.credential_at(b, i, hits))
                });
            }
            if shape.len >= 20 {
                apply(&mut out, |t| {
                    replace_all(t, &mut |b, i| self.api_key_at(b, i, hits))
                });
            }
        }
        if !self.config.json_fields.is_empty() && shape.assign {
            apply(&mut out, |t| {
                replace_all(t, &mut |b, i| self.field_at(b, i, hits))
            });
        }
        if self.config.emails && shape.at {
            apply(&mut out, |t| {
                replace_all(t, &mut |b, i| self.email_at(b, i, hits))
            });
        }
        if self.config.ibans && shape.upper >= 2 && shape.digits >= 2 && shape.len >= 15 {
            apply(&mut out, |t| {
                replace_all(t, &mut |b, i| iban_at(b, i, hits))
            });
        }
        if self.config.card_numbers && shape.digits >= 13 {
            apply(&mut out, |t| {
                replace_all(t, &mut |b, i| {
                    let found = card_at(b, i);
                    if let Some(Found::Replace(..)) = found {
                        hits.card_numbers += 1;
                    }
                    found
                })
            });
        }
        out
    }

    /// A header value: a header named in `mask.headers` is replaced whole, others are masked as text.
    pub fn header(&self, name: &str, value: &str, hits: &mut Hits) -> String {
        if self.config.headers.iter().any(|h| h == name) {
            hits.named += 1;
            return self.tag(name, value);
        }
        self.text(value, hits)
    }

    /// The path of a URL: masked after percent-decoding, re-encoded only when something was masked.
    pub fn path(&self, raw: &str, hits: &mut Hits) -> String {
        let decoded = decode_fully(raw, false);
        let masked = self.text(&decoded, hits);
        if masked == decoded {
            raw.to_string()
        } else {
            encode(&masked, true)
        }
    }

    /// A query string: parameters named in `mask.query_params` or `mask.json_fields` are replaced
    /// whole, every other name and value is masked as text after decoding.
    pub fn query(&self, raw: &str, hits: &mut Hits) -> String {
        let mut out = String::with_capacity(raw.len());
        for (n, part) in raw.split('&').enumerate() {
            if n > 0 {
                out.push('&');
            }
            let (name_raw, value_raw) = match part.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (part, None),
            };
            let name = decode_fully(name_raw, true);
            let lower = name.to_ascii_lowercase();
            let masked_name = self.text(&name, hits);
            if masked_name == name {
                out.push_str(name_raw);
            } else {
                out.push_str(&encode(&masked_name, false));
            }
            let Some(value_raw) = value_raw else { continue };
            out.push('=');
            let value = decode_fully(value_raw, true);
            let named = self.config.query_params.contains(&lower)
                || self.config.json_fields.contains(&lower);
            if named {
                if !value.is_empty() {
                    hits.named += 1;
                    out.push_str(&encode(&self.tag(&lower, &value), false));
                }
                continue;
            }
            let masked = self.text(&value, hits);
            if masked == value {
                out.push_str(value_raw);
            } else {
                out.push_str(&encode(&masked, false));
            }
        }
        out
    }

    fn jwt_at(&self, b: &[u8], i: usize, hits: &mut Hits) -> Option<Found> {
        if byte(b, i)? != b'e' || b.get(i..i + 3)? != b"eyJ" {
            return None;
        }
        if i > 0 && b.get(i - 1).is_some_and(|c| is_b64url(*c) || *c == b'.') {
            return None;
        }
        let seg = |from: usize| -> usize {
            let mut j = from;
            while byte(b, j).is_some_and(is_b64url) {
                j += 1;
            }
            j
        };
        let e1 = seg(i);
        if e1 - i < 8 || byte(b, e1) != Some(b'.') {
            return Some(Found::Skip(e1));
        }
        let e2 = seg(e1 + 1);
        if e2 - (e1 + 1) < 2 || byte(b, e2) != Some(b'.') {
            return Some(Found::Skip(e2));
        }
        // The signature (JWS) or the further parts of a JWE.
        let mut end = seg(e2 + 1);
        for _ in 0..2 {
            if byte(b, end) == Some(b'.') && byte(b, end + 1).is_some_and(is_b64url) {
                end = seg(end + 1);
            }
        }
        let token = std::str::from_utf8(b.get(i..end)?).ok()?;
        hits.tokens += 1;
        Some(Found::Replace(end, self.tag("jwt", token)))
    }

    /// `Bearer <token>` and `Basic <credentials>` anywhere in text (case-insensitive scheme).
    fn credential_at(&self, b: &[u8], i: usize, hits: &mut Hits) -> Option<Found> {
        let c = byte(b, i)?;
        if c != b'b' && c != b'B' {
            return None;
        }
        if i > 0 && is_alnum(b.get(i - 1)) {
            return None;
        }
        let scheme_len = if b
            .get(i..i + 6)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer"))
        {
            6
        } else if b
            .get(i..i + 5)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"basic"))
        {
            5
        } else {
            return None;
        };
        let mut j = i + scheme_len;
        if byte(b, j) != Some(b' ') {
            return None;
        }
        while byte(b, j) == Some(b' ') {
            j += 1;
        }
        let start = j;
        while byte(b, j).is_some_and(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        }) {
            j += 1;
        }
        while byte(b, j) == Some(b'=') {
            j += 1;
        }
        if j == start {
            return None;
        }
        let prefix = std::str::from_utf8(b.get(i..start)?).ok()?;
        let token = std::str::from_utf8(b.get(start..j)?).ok()?;
        hits.tokens += 1;
        Some(Found::Replace(
            j,
            format!("{prefix}{}", self.tag("token", token)),
        ))
    }

    fn api_key_at(&self, b: &[u8], i: usize, hits: &mut Hits) -> Option<Found> {
        let c = byte(b, i)?;
        if !matches!(c, b's' | b'r' | b'p' | b'g' | b'x' | b'A') {
            return None;
        }
        if i > 0 && is_alnum(b.get(i - 1)) {
            return None;
        }
        let rest = b.get(i..)?;
        let prefix = KEY_PREFIXES
            .iter()
            .find(|p| rest.starts_with(p.as_bytes()))?;
        let mut j = i + prefix.len();
        let start = j;
        while byte(b, j).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
            j += 1;
        }
        if j - start < 16 {
            return Some(Found::Skip(j));
        }
        let key = std::str::from_utf8(b.get(i..j)?).ok()?;
        hits.tokens += 1;
        Some(Found::Replace(j, self.tag("api_key", key)))
    }

    fn email_at(&self, b: &[u8], i: usize, hits: &mut Hits) -> Option<Found> {
        if !is_local_char(byte(b, i)?) || (i > 0 && b.get(i - 1).is_some_and(|c| is_local_char(*c)))
        {
            return None;
        }
        let mut j = i;
        while byte(b, j).is_some_and(is_local_char) {
            j += 1;
        }
        if byte(b, j) != Some(b'@') || byte(b, i) == Some(b'.') {
            return Some(Found::Skip(j));
        }
        let Some(end) = domain_end(b, j + 1) else {
            return Some(Found::Skip(j + 1));
        };
        let address = std::str::from_utf8(b.get(i..end)?).ok()?;
        hits.emails += 1;
        Some(Found::Replace(
            end,
            self.tag("email", &address.to_ascii_lowercase()),
        ))
    }

    /// `"name": value` (a JSON member, any case of the name) or `name=value`: the value is replaced
    /// by a tag (a JSON string stays a JSON string).
    fn field_at(&self, b: &[u8], i: usize, hits: &mut Hits) -> Option<Found> {
        let c = byte(b, i)?;
        let quoted = c == b'"';
        let name_start = if quoted { i + 1 } else { i };
        if !quoted
            && (i > 0
                && b.get(i - 1)
                    .is_some_and(|p| p.is_ascii_alphanumeric() || *p == b'_'))
        {
            return None;
        }
        let first = byte(b, name_start)?.to_ascii_lowercase();
        let name = self.config.json_fields.iter().find(|f| {
            f.as_bytes().first() == Some(&first)
                && b.get(name_start..name_start + f.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(f.as_bytes()))
        })?;
        let mut j = name_start + name.len();
        if quoted {
            if byte(b, j) != Some(b'"') {
                return None;
            }
            j += 1;
            while byte(b, j).is_some_and(|c| c == b' ' || c == b'\t') {
                j += 1;
            }
            if byte(b, j) != Some(b':') {
                return None;
            }
            j += 1;
            while byte(b, j).is_some_and(|c| c == b' ' || c == b'\t') {
                j += 1;
            }
            let value_start = j;
            if byte(b, j) == Some(b'"') {
                j += 1;
                while let Some(c) = byte(b, j) {
                    match c {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                j = (j + 1).min(b.len());
            } else {
                while byte(b, j).is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\n')) {
                    j += 1;
                }
            }
            if j == value_start {
                return None;
            }
            let value = std::str::from_utf8(b.get(value_start..j)?).ok()?;
            let head = std::str::from_utf8(b.get(i..value_start)?).ok()?;
            hits.named += 1;
            return Some(Found::Replace(
                j,
                format!("{head}\"{}\"", self.tag(name, value)),
            ));
        }
        if byte(b, j) != Some(b'=') {
            return None;
        }
        j += 1;
        let value_start = j;
        while byte(b, j).is_some_and(|c| !matches!(c, b'&' | b';' | b',' | b' ' | b'"' | b'\n')) {
            j += 1;
        }
        if j == value_start {
            return None;
        }
        let value = std::str::from_utf8(b.get(value_start..j)?).ok()?;
        let head = std::str::from_utf8(b.get(i..value_start)?).ok()?;
        hits.named += 1;
        Some(Found::Replace(
            j,
            format!("{head}{}", self.tag(name, value)),
        ))
    }
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// ISO 13616: move the first four characters to the end, letters as 10..35, the number mod 97 is 1.
fn iban_valid(compact: &[u8]) -> bool {
    let (head, tail) = compact.split_at(4.min(compact.len()));
    let mut rem = 0u32;
    for c in tail.iter().chain(head.iter()) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// IBANs at `i`: two capital letters, two check digits, then capitals and digits (15 to 34 in all),
/// in groups separated by single spaces or not at all; the longest valid prefix ending at a group
/// boundary is taken.
fn iban_at(b: &[u8], i: usize, hits: &mut Hits) -> Option<Found> {
    let head = b.get(i..i + 4)?;
    let upper_or_digit = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    if !(head.first()?.is_ascii_uppercase()
        && head.get(1)?.is_ascii_uppercase()
        && head.get(2)?.is_ascii_digit()
        && head.get(3)?.is_ascii_digit())
    {
        return None;
    }
    if i > 0 && is_alnum(b.get(i - 1)) {
        return None;
    }
    // The compact characters and, for each, the text index after it.
    let mut compact: Vec<u8> = Vec::with_capacity(34);
    let mut ends: Vec<usize> = Vec::with_capacity(34);
    let mut j = i;
    while compact.len() < 34 {
        match byte(b, j) {
            Some(c) if upper_or_digit(c) => {
                compact.push(c);
                j += 1;
                ends.push(j);
            }
            Some(b' ') if byte(b, j + 1).is_some_and(upper_or_digit) && j > i => j += 1,
            _ => break,
        }
    }
    for len in (15..=compact.len()).rev() {
        let end = *ends.get(len - 1)?;
        if is_alnum(b.get(end)) {
            continue;
        }
        let candidate = compact.get(..len)?;
        if iban_valid(candidate) {
            hits.ibans += 1;
            let mut masked = String::with_capacity(len);
            for (k, c) in candidate.iter().enumerate() {
                masked.push(if k < 2 || k >= len - 4 {
                    char::from(*c)
                } else {
                    '*'
                });
            }
            return Some(Found::Replace(end, masked));
        }
    }
    Some(Found::Skip(i + 4))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decoding (and `+` as a space in a query), lossy for bytes that are not UTF-8.
pub fn decode(text: &str, plus_is_space: bool) -> String {
    if !text.contains('%') && (!plus_is_space || !text.contains('+')) {
        return text.to_string();
    }
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => match (
                b.get(i + 1).and_then(|h| hex_value(*h)),
                b.get(i + 2).and_then(|l| hex_value(*l)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(c),
            },
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes until nothing changes (at most three rounds), so a value encoded twice is still seen.
pub fn decode_fully(text: &str, plus_is_space: bool) -> String {
    let mut current = decode(text, plus_is_space);
    for _ in 0..2 {
        if !current.contains('%') {
            break;
        }
        let next = decode(&current, false);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// Percent-encodes what a URL component cannot hold as is; the masks' `[`, `]`, `:` and `*` stay
/// readable. `path` keeps `/`.
pub fn encode(text: &str, path: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.bytes() {
        let keep = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'['
                    | b']'
                    | b':'
                    | b'*'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'\''
                    | b'('
                    | b')'
                    | b','
                    | b';'
            )
            || (path && c == b'/');
        if keep {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(hex_digit(c >> 4));
            out.push(hex_digit(c & 15));
        }
    }
    out
}
