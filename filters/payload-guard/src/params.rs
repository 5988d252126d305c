//! Parameters: the text of path variables, query parameters and headers read as the values their
//! schemas describe (OpenAPI `style`/`explode`, the common cases), then validated.

use serde_json::{Number, Value};

use crate::openapi::{Api, In, Operation, Scalar, Shape, Style};
use crate::schema::{tidy, violations, Violation, MAX_VIOLATIONS};

/// One query pair, decoded (`+` is a space).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPair {
    pub name: String,
    pub value: String,
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
    for p in &op.params {
        if out.violations.len() >= MAX_VIOLATIONS {
            break;
        }
        let values: Vec<String> = match p.location {
            In::Path => path_vars
                .iter()
                .filter(|(k, _)| *k == p.name)
                .map(|(_, v)| v.clone())
                .collect(),
            In::Query => query
                .iter()
                .filter(|q| q.name == p.name)
                .map(|q| q.value.clone())
                .collect(),
            In::Header => header(&p.name),
            In::Cookie => continue,
        };
        if values.is_empty() {
            if p.required {
                out.violations
                    .push(violation(p.location, Some(&p.name), "required"));
            }
            continue;
        }
        for v in &values {
            out.texts.push(ParamText {
                location: p.location,
                name: Some(p.name.clone()),
                schema: p.schema.as_ref().map(|(_, ptr)| ptr.clone()),
                value: v.clone(),
            });
        }
        let value = match (p.shape, p.style) {
            (_, Style::Unsupported) => continue,
            (Shape::Array(item), Style::FormExplode) => {
                Value::Array(values.iter().map(|v| scalar(v, item)).collect())
            }
            (Shape::Array(item), _) => {
                if values.len() > 1 {
                    out.violations
                        .push(violation(p.location, Some(&p.name), "repeated"));
                    continue;
                }
                let text = values.first().map(String::as_str).unwrap_or("");
                if text.is_empty() {
                    Value::Array(Vec::new())
                } else {
                    Value::Array(text.split(',').map(|v| scalar(v, item)).collect())
                }
            }
            (shape, _) => {
                // One value: a repeated scalar is refused (backends disagree on which one wins).
                if values.len() > 1 {
                    out.violations
                        .push(violation(p.location, Some(&p.name), "repeated"));
                    continue;
                }
                let text = values.first().map(String::as_str).unwrap_or("");
                match shape {
                    Shape::Scalar(s) => scalar(text, s),
                    _ => Value::String(text.to_string()),
                }
            }
        };
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
        let declared = op
            .params
            .iter()
            .any(|p| p.location == In::Query && p.name == q.name);
        if declared {
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
