//! Parameters: the text of path variables, query parameters and headers read as the values their
//! schemas describe (OpenAPI `style`/`explode`, the common cases), then validated.

use serde_json::{Number, Value};

use crate::openapi::{percent_decode, Api, In, Operation, Param, Scalar, Shape, Style};
use crate::schema::{tidy, violations, Violation, MAX_VIOLATIONS};

/// One query pair, decoded (`+` is a space), with its value as written (a style's delimiters
/// are found in it before decoding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPair {
    pub name: String,
    pub value: String,
    pub raw: String,
}

/// A query string with a broken percent-encoding or text that is not UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadQuery;

/// Splits and decodes a raw query string.
pub fn parse_query(raw: Option<&str>) -> Result<Vec<QueryPair>, BadQuery> {
    let Some(q) = raw else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for pair in q.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push(QueryPair {
            name: form_decode(k)?,
            value: form_decode(v)?,
            raw: v.to_string(),
        });
    }
    Ok(out)
}

fn form_decode(s: &str) -> Result<String, BadQuery> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let h = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(BadQuery)?;
                out.push(h);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| BadQuery)
}

/// Text as the scalar type says; text that does not parse stays a string, so the schema's
/// `type` refuses it with the right rule.
fn scalar(text: &str, ty: Scalar) -> Value {
    match ty {
        Scalar::String => Value::String(text.to_string()),
        Scalar::Integer | Scalar::Number => {
            if let Ok(i) = text.parse::<i64>() {
                return Value::from(i);
            }
            let plain = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            match text
                .parse::<f64>()
                .ok()
                .filter(|_| plain)
                .and_then(Number::from_f64)
            {
                Some(n) => Value::Number(n),
                None => Value::String(text.to_string()),
            }
        }
        Scalar::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
    }
}

/// The text a parameter had, for the injection checks.
#[derive(Clone, Debug)]
pub struct ParamText {
    pub location: In,
    /// The declared name (None for parameters the document does not declare).
    pub name: Option<String>,
    /// The schema's pointer, when declared with one.
    pub schema: Option<String>,
    pub value: String,
}

/// What reading the parameters found.
#[derive(Default, Debug)]
pub struct ParamCheck {
    pub violations: Vec<Violation>,
    pub texts: Vec<ParamText>,
}

fn violation(location: In, name: Option<&str>, rule: &'static str) -> Violation {
    Violation {
        in_: location.name(),
        name: name.map(str::to_string),
        pointer: String::new(),
        rule,
        member: None,
        member_raw: None,
    }
}

/// Where a parameter's text was found, before its style is read.
enum Found {
    /// Values as written: a path variable or query values (percent-encoded), header or cookie
    /// values (as sent).
    Texts(Vec<String>),
    /// Named pieces already apart (an exploded form object, a deep object): property → text.
    Pairs(Vec<(String, String)>),
}

/// Why a parameter's text could not be read: a violation's rule.
type Unreadable = &'static str;

/// Decodes one piece of a value: form decoding for query and cookie text, percent decoding for
/// path text, none for headers.
fn decode(location: In, raw: &str) -> String {
    match location {
        In::Query | In::Cookie => form_decode(raw).unwrap_or_else(|_| percent_decode(raw)),
        In::Path => percent_decode(raw),
        In::Header => raw.trim().to_string(),
    }
}

/// Splits text at a delimiter given as raw forms (`,`; `%20`, `+` and ` ` for a space).
fn split_raw<'t>(text: &'t str, delims: &[&str]) -> Vec<&'t str> {
    let mut out = Vec::new();
    let mut rest = text;
    'outer: loop {
        let mut best: Option<(usize, usize)> = None;
        for d in delims {
            let found = if d.starts_with('%') {
                rest.to_ascii_lowercase().find(&d.to_ascii_lowercase())
            } else {
                rest.find(d)
            };
            if let Some(at) = found {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, d.len()));
                }
            }
        }
        match best {
            Some((at, len)) => {
                out.push(&rest[..at]);
                rest = &rest[at + len..];
            }
            None => {
                out.push(rest);
                break 'outer;
            }
        }
    }
    out
}

/// The delimiter between the items of a non-exploded value.
fn delimiters(style: Style) -> &'static [&'static str] {
    match style {
        Style::SpaceDelimited => &["%20", "+", " "],
        Style::PipeDelimited => &["|", "%7C"],
        _ => &[","],
    }
}

/// Pairs from `k1,v1,k2,v2` (a non-exploded object).
fn alternating(items: Vec<String>) -> Result<Vec<(String, String)>, Unreadable> {
    if !items.len().is_multiple_of(2) {
        return Err("style");
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// Pairs from `k1=v1` items (an exploded object).
fn assigned(items: &[&str], location: In) -> Result<Vec<(String, String)>, Unreadable> {
    items
        .iter()
        .map(|item| {
            let (k, v) = item.split_once('=').ok_or("style")?;
            Ok((decode(location, k), decode(location, v)))
        })
        .collect()
}

/// The pieces of one text value by style: `Err` when the text does not have the style's form.
enum Pieces {
    One(String),
    Items(Vec<String>),
    Pairs(Vec<(String, String)>),
}

fn pieces(p: &Param, text: &str) -> Result<Pieces, Unreadable> {
    let loc = p.location;
    let object = matches!(p.shape, Shape::Object(_));
    let array = matches!(p.shape, Shape::Array(_));
    // What follows the style's prefix.
    let body = match p.style {
        Style::Label => text.strip_prefix('.').ok_or("style")?,
        Style::Matrix if p.explode && (array || object) => {
            // `;name=a;name=b` or `;k=v;k2=v2`.
            let rest = text.strip_prefix(';').ok_or("style")?;
            let items: Vec<&str> = rest.split(';').collect();
            if object {
                return assigned(&items, loc).map(Pieces::Pairs);
            }
            let prefix = format!("{}=", p.name);
            return items
                .iter()
                .map(|i| i.strip_prefix(prefix.as_str()).map(|v| decode(loc, v)))
                .collect::<Option<Vec<_>>>()
                .map(Pieces::Items)
                .ok_or("style");
        }
        Style::Matrix => {
            let rest = text.strip_prefix(';').ok_or("style")?;
            let rest = rest.strip_prefix(p.name.as_str()).ok_or("style")?;
            if rest.is_empty() {
                ""
            } else {
                rest.strip_prefix('=').ok_or("style")?
            }
        }
        _ => text,
    };
    if !(array || object) {
        return Ok(Pieces::One(decode(loc, body)));
    }
    if body.is_empty() {
        return Ok(if object {
            Pieces::Pairs(Vec::new())
        } else {
            Pieces::Items(Vec::new())
        });
    }
    let delims: &[&str] = if p.explode && p.style == Style::Label {
        &["."]
    } else {
        delimiters(p.style)
    };
    let raw = split_raw(body, delims);
    if object {
        if p.explode && matches!(p.style, Style::Simple | Style::Label) {
            return assigned(&raw, loc).map(Pieces::Pairs);
        }
        let items = raw.iter().map(|r| decode(loc, r)).collect();
        return alternating(items).map(Pieces::Pairs);
    }
    Ok(Pieces::Items(raw.iter().map(|r| decode(loc, r)).collect()))
}

/// Reads a parameter's value as its style and schema say; `Ok(None)` when absent.
fn read(p: &Param, found: Found) -> Result<Option<(Value, Vec<String>)>, Unreadable> {
    let (texts, pairs) = match found {
        Found::Texts(t) if t.is_empty() => return Ok(None),
        Found::Pairs(pairs) if pairs.is_empty() => return Ok(None),
        Found::Texts(t) => (t, None),
        Found::Pairs(pairs) => (Vec::new(), Some(pairs)),
    };
    let exploded_repeat = p.explode
        && matches!(
            p.style,
            Style::Form | Style::SpaceDelimited | Style::PipeDelimited
        );
    let got = if let Some(pairs) = pairs {
        Pieces::Pairs(pairs)
    } else if exploded_repeat && matches!(p.shape, Shape::Array(_)) {
        // Each repetition is one item.
        Pieces::Items(texts.iter().map(|t| decode(p.location, t)).collect())
    } else {
        let text = match texts.as_slice() {
            [one] => one.clone(),
            // Several header lines are one list.
            _ if p.location == In::Header && matches!(p.shape, Shape::Array(_)) => texts.join(","),
            // A repeated value: backends disagree on which one wins.
            _ => return Err("repeated"),
        };
        pieces(p, &text)?
    };
    let mut seen = Vec::new();
    let value = match (&p.shape, got) {
        (Shape::Scalar(ty), Pieces::One(t)) => {
            seen.push(t.clone());
            scalar(&t, *ty)
        }
        (Shape::Array(ty), Pieces::Items(items)) => {
            let v = items.iter().map(|t| scalar(t, *ty)).collect();
            seen = items;
            Value::Array(v)
        }
        (Shape::Object(props), Pieces::Pairs(pairs)) => {
            let mut map = serde_json::Map::new();
            for (k, t) in pairs {
                let ty = props
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map_or(Scalar::String, |(_, ty)| *ty);
                if map.insert(k, scalar(&t, ty)).is_some() {
                    return Err("repeated");
                }
                seen.push(t);
            }
            Value::Object(map)
        }
        (_, Pieces::One(t)) => {
            seen.push(t.clone());
            Value::String(t)
        }
        (_, Pieces::Items(items)) => {
            let joined = items.join(",");
            seen = items;
            Value::String(joined)
        }
        (_, Pieces::Pairs(_)) => return Err("style"),
    };
    Ok(Some((value, seen)))
}

/// `name[key]` → `key` for a deep object named `name`.
fn deep_key<'q>(name: &str, query_name: &'q str) -> Option<&'q str> {
    query_name
        .strip_prefix(name)?
        .strip_prefix('[')?
        .strip_suffix(']')
}

/// The query names a parameter reads: its own, a deep object's `name[key]`, an exploded form
/// object's properties.
fn reads_query_name(p: &Param, q: &str) -> bool {
    if p.location != In::Query {
        return false;
    }
    match (&p.style, &p.shape) {
        (Style::DeepObject, _) => deep_key(&p.name, q).is_some(),
        (Style::Form, Shape::Object(props)) if p.explode => props.iter().any(|(k, _)| k == q),
        _ => p.name == q,
    }
}

/// Cookies by name, from the `cookie` header(s).
fn cookies(header: &dyn Fn(&str) -> Vec<String>) -> Vec<(String, String)> {
    header("cookie")
        .iter()
        .flat_map(|line| line.split(';'))
        .filter_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Checks the parameters of an operation: presence, repetition, unknown query names, schemas.
pub fn check(
    api: &Api,
    op: &Operation,
    path_vars: &[(String, String)],
    query: &[QueryPair],
    header: &dyn Fn(&str) -> Vec<String>,
    deny_unknown_query: bool,
) -> ParamCheck {
    let mut out = ParamCheck::default();
    let mut jar: Option<Vec<(String, String)>> = None;
    for p in &op.params {
        if out.violations.len() >= MAX_VIOLATIONS {
            break;
        }
        let found = match p.location {
            In::Path => Found::Texts(
                path_vars
                    .iter()
                    .filter(|(k, _)| *k == p.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
            ),
            In::Query => match (&p.style, &p.shape) {
                (Style::DeepObject, _) => Found::Pairs(
                    query
                        .iter()
                        .filter_map(|q| {
                            Some((deep_key(&p.name, &q.name)?.to_string(), q.value.clone()))
                        })
                        .collect(),
                ),
                (Style::Form, Shape::Object(props)) if p.explode => Found::Pairs(
                    query
                        .iter()
                        .filter(|q| props.iter().any(|(k, _)| *k == q.name))
                        .map(|q| (q.name.clone(), q.value.clone()))
                        .collect(),
                ),
                _ => Found::Texts(
                    query
                        .iter()
                        .filter(|q| q.name == p.name)
                        .map(|q| q.raw.clone())
                        .collect(),
                ),
            },
            In::Header => Found::Texts(header(&p.name)),
            In::Cookie => Found::Texts(
                jar.get_or_insert_with(|| cookies(header))
                    .iter()
                    .filter(|(k, _)| *k == p.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
            ),
        };
        let (value, seen) = match read(p, found) {
            Ok(Some(v)) => v,
            Ok(None) => {
                if p.required {
                    out.violations
                        .push(violation(p.location, Some(&p.name), "required"));
                }
                continue;
            }
            Err(rule) => {
                out.violations
                    .push(violation(p.location, Some(&p.name), rule));
                continue;
            }
        };
        for v in seen {
            out.texts.push(ParamText {
                location: p.location,
                name: Some(p.name.clone()),
                schema: p.schema.as_ref().map(|(_, ptr)| ptr.clone()),
                value: v,
            });
        }
        if let Some((idx, _)) = &p.schema {
            if let Err(e) = api.schemas.validate(&value, *idx) {
                violations(
                    &e,
                    p.location.name(),
                    Some(&p.name),
                    &api.known_names,
                    &mut out.violations,
                );
            }
        }
    }
    tidy(&mut out.violations);
    for q in query {
        if op.params.iter().any(|p| reads_query_name(p, &q.name)) {
            continue;
        }
        out.texts.push(ParamText {
            location: In::Query,
            name: None,
            schema: None,
            value: q.value.clone(),
        });
        if deny_unknown_query {
            let v = violation(In::Query, None, "unknown_parameter");
            if !out.violations.contains(&v) && out.violations.len() < MAX_VIOLATIONS {
                out.violations.push(v);
            }
        }
    }
    out
}
