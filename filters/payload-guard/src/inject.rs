//! Injection checks: SQL and XSS with libinjection's algorithms (the `libinjectionrs` port) on
//! the strings `where` chooses, and NoSQL operator names (`$ne`, `$where`, dotted paths) as
//! object keys the schema does not declare. Nothing is rewritten: a request passes or is
//! refused.
//!
//! `where: free_text` reads the schema beside the body: a string is free text unless every
//! schema that may apply to it constrains it by `enum`, `const`, `format` or `pattern`, or says
//! it is not a string. Where the schema cannot tell (no document, a member matched only by
//! `patternProperties`, a reference loop) the string is treated as free text: checked.

use serde_json::{Map, Value};

use crate::config::{Injection, Where};
use crate::schema::{at, escape};

/// Which check found something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Sql,
    Xss,
    NoSql,
}

impl Check {
    pub fn rule(self) -> &'static str {
        match self {
            Check::Sql => "sqli",
            Check::Xss => "xss",
            Check::NoSql => "nosql",
        }
    }
}

/// A finding: the check and where (a JSON pointer in the body; `*` for undeclared names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub pointer: String,
}

/// SQL then XSS on one string, as configured.
pub fn scan_text(text: &str, inj: &Injection) -> Option<Check> {
    if inj.sql && libinjectionrs::detect_sqli(text.as_bytes()).is_injection() {
        return Some(Check::Sql);
    }
    if inj.xss && libinjectionrs::detect_xss(text.as_bytes()).is_injection() {
        return Some(Check::Xss);
    }
    None
}

/// A key that a document store reads as an operator or a path.
pub fn nosql_key(key: &str) -> bool {
    key.starts_with('$') || key.contains('.')
}

/// A query parameter name in the bracket syntax some frameworks turn into objects (`a[$ne]`).
pub fn nosql_query_name(name: &str) -> bool {
    name.starts_with('$') || name.contains("[$")
}

/// How deep the schema walk follows references and compositions before it stops knowing.
const MAX_SCHEMA_HOPS: usize = 24;

/// The schemas (pointers into the document) that may apply to one value.
#[derive(Clone, Debug)]
struct Applicable {
    /// `None`: unknown (no schema, or one the walk cannot follow).
    ptrs: Option<Vec<String>>,
}

impl Applicable {
    fn unknown() -> Applicable {
        Applicable { ptrs: None }
    }
}

/// The schema objects a pointer stands for, with `$ref` and `allOf` followed (each applies).
fn expand<'a>(
    doc: &'a Value,
    ptr: &str,
    hops: usize,
    out: &mut Vec<&'a Map<String, Value>>,
) -> bool {
    if hops > MAX_SCHEMA_HOPS {
        return false;
    }
    let Some(v) = at(doc, ptr) else { return false };
    let Value::Object(obj) = v else {
        return true; // a boolean schema says nothing about strings
    };
    out.push(obj);
    if let Some(Value::String(r)) = obj.get("$ref") {
        match r.strip_prefix('#') {
            Some(t) if t.is_empty() || t.starts_with('/') => {
                if !expand(doc, t, hops + 1, out) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    if let Some(Value::Array(list)) = obj.get("allOf") {
        for i in 0..list.len() {
            if !expand(doc, &format!("{ptr}/allOf/{i}"), hops + 1, out) {
                return false;
            }
        }
    }
    true
}

/// The pointer of each schema object found by `expand` (kept in step with it).
fn expand_ptrs(doc: &Value, ptr: &str, hops: usize, out: &mut Vec<String>) -> bool {
    if hops > MAX_SCHEMA_HOPS {
        return false;
    }
    let Some(v) = at(doc, ptr) else { return false };
    let Value::Object(obj) = v else { return true };
    out.push(ptr.to_string());
    if let Some(Value::String(r)) = obj.get("$ref") {
        match r.strip_prefix('#') {
            Some(t) if t.is_empty() || t.starts_with('/') => {
                if !expand_ptrs(doc, t, hops + 1, out) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    if let Some(Value::Array(list)) = obj.get("allOf") {
        for i in 0..list.len() {
            if !expand_ptrs(doc, &format!("{ptr}/allOf/{i}"), hops + 1, out) {
                return false;
            }
        }
    }
    true
}

/// Whether a string under the schema at `ptr` is constrained (not free text), and the formats
/// it has.
fn constrained(doc: &Value, ptr: &str, hops: usize, skip_formats: &[String]) -> (bool, bool) {
    // Returns (constrained, skipped by format).
    if hops > MAX_SCHEMA_HOPS {
        return (false, false);
    }
    let mut objs = Vec::new();
    if !expand(doc, ptr, hops, &mut objs) {
        return (false, false);
    }
    let mut is_constrained = false;
    let mut skipped = false;
    for o in &objs {
        if let Some(Value::String(f)) = o.get("format") {
            if skip_formats.iter().any(|s| s == f) {
                skipped = true;
            }
            is_constrained = true;
        }
        if o.contains_key("enum") || o.contains_key("const") || o.contains_key("pattern") {
            is_constrained = true;
        }
        let not_string = match o.get("type") {
            Some(Value::String(t)) => t != "string",
            Some(Value::Array(ts)) => !ts.iter().any(|t| t == "string"),
            _ => false,
        };
        if not_string {
            is_constrained = true;
        }
    }
    if is_constrained || skipped {
        return (is_constrained, skipped);
    }
    // Alternatives: constrained only if every alternative is.
    let mut ptrs = Vec::new();
    if !expand_ptrs(doc, ptr, hops, &mut ptrs) {
        return (false, false);
    }
    let mut any_alt = false;
    for p in &ptrs {
        let Some(Value::Object(o)) = at(doc, p) else {
            continue;
        };
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(list)) = o.get(key) {
                any_alt = true;
                for i in 0..list.len() {
                    let (c, s) =
                        constrained(doc, &format!("{p}/{key}/{i}"), hops + 1, skip_formats);
                    if !c && !s {
                        return (false, false);
                    }
                }
            }
        }
    }
    (any_alt, false)
}

/// The schemas that may apply to a member (`key`) or an item (`index`) of a value.
fn child(doc: &Value, parent: &Applicable, key: Option<&str>, index: usize) -> Applicable {
    let Some(ptrs) = &parent.ptrs else {
        return Applicable::unknown();
    };
    let mut out = Vec::new();
    let mut all = Vec::new();
    for p in ptrs {
        if !expand_ptrs(doc, p, 0, &mut all) {
            return Applicable::unknown();
        }
    }
    // Alternatives' children too (a superset: checking more is the safe side).
    let mut i = 0;
    while let Some(p) = all.get(i).cloned() {
        i += 1;
        if all.len() > 256 {
            return Applicable::unknown();
        }
        if let Some(Value::Object(o)) = at(doc, &p) {
            for k in ["anyOf", "oneOf"] {
                if let Some(Value::Array(list)) = o.get(k) {
                    for j in 0..list.len() {
                        if !expand_ptrs(doc, &format!("{p}/{k}/{j}"), 0, &mut all) {
                            return Applicable::unknown();
                        }
                    }
                }
            }
        }
    }
    for p in &all {
        let Some(Value::Object(o)) = at(doc, p) else {
            continue;
        };
        match key {
            Some(k) => {
                if let Some(Value::Object(props)) = o.get("properties") {
                    if props.contains_key(k) {
                        out.push(format!("{p}/properties/{}", escape(k)));
                        continue;
                    }
                }
                if o.contains_key("patternProperties") {
                    return Applicable::unknown();
                }
                if let Some(ap) = o.get("additionalProperties") {
                    if ap.is_object() {
                        out.push(format!("{p}/additionalProperties"));
                    }
                }
            }
            None => {
                if let Some(Value::Array(prefix)) = o.get("prefixItems") {
                    if index < prefix.len() {
                        out.push(format!("{p}/prefixItems/{index}"));
                        continue;
                    }
                }
                if let Some(items) = o.get("items") {
                    if items.is_object() {
                        out.push(format!("{p}/items"));
                    }
                }
            }
        }
    }
    if out.is_empty() {
        Applicable::unknown()
    } else {
        Applicable { ptrs: Some(out) }
    }
}

/// Whether a member name is declared by a schema that may apply to its object.
fn declared(doc: &Value, parent: &Applicable, key: &str) -> bool {
    let Some(ptrs) = &parent.ptrs else {
        return false;
    };
    let mut all = Vec::new();
    for p in ptrs {
        if !expand_ptrs(doc, p, 0, &mut all) {
            return false;
        }
    }
    all.iter().any(|p| {
        at(doc, &format!("{p}/properties"))
            .and_then(Value::as_object)
            .is_some_and(|props| props.contains_key(key))
    })
}

/// Decides for one string whether SQL/XSS checks read it.
pub fn reads(doc: Option<&Value>, schema_ptr: Option<&str>, inj: &Injection) -> bool {
    match inj.where_ {
        Where::Off => false,
        Where::AllStrings | Where::FreeText => {
            let (Some(doc), Some(ptr)) = (doc, schema_ptr) else {
                return true;
            };
            let (c, skipped) = constrained(doc, ptr, 0, &inj.skip_formats);
            if skipped {
                return false;
            }
            inj.where_ == Where::AllStrings || !c
        }
    }
}

/// Scans a parsed body. `schema` is the pointer of the body's schema in `doc`, when known.
pub fn scan_body(
    body: &Value,
    doc: Option<&Value>,
    schema: Option<&str>,
    inj: &Injection,
    known: &dyn Fn(&str) -> bool,
) -> Option<Finding> {
    let start = match (doc, schema) {
        (Some(_), Some(p)) => Applicable {
            ptrs: Some(vec![p.to_string()]),
        },
        _ => Applicable::unknown(),
    };
    let mut pointer = String::new();
    walk(body, doc, &start, inj, known, &mut pointer)
}

fn token(pointer: &mut String, t: &str, known: &dyn Fn(&str) -> bool) {
    pointer.push('/');
    if t.bytes().all(|b| b.is_ascii_digit()) || known(t) {
        pointer.push_str(&escape(t));
    } else {
        pointer.push('*');
    }
}

fn walk(
    v: &Value,
    doc: Option<&Value>,
    here: &Applicable,
    inj: &Injection,
    known: &dyn Fn(&str) -> bool,
    pointer: &mut String,
) -> Option<Finding> {
    match v {
        Value::String(s) => {
            if inj.where_ == Where::Off || !(inj.sql || inj.xss) {
                return None;
            }
            let read = match (doc, &here.ptrs) {
                (Some(d), Some(ptrs)) => {
                    // Skipped by format under any applicable schema, or constrained by all.
                    let mut skip = false;
                    let mut all_constrained = true;
                    for p in ptrs {
                        let (c, s) = constrained(d, p, 0, &inj.skip_formats);
                        skip |= s;
                        all_constrained &= c;
                    }
                    !skip && (inj.where_ == Where::AllStrings || !all_constrained)
                }
                _ => true,
            };
            if read {
                if let Some(check) = scan_text(s, inj) {
                    return Some(Finding {
                        check,
                        pointer: pointer.clone(),
                    });
                }
            }
            None
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let sub = match doc {
                    Some(d) => child(d, here, None, i),
                    None => Applicable::unknown(),
                };
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                let found = walk(item, doc, &sub, inj, known, pointer);
                pointer.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Object(map) => {
            for (k, item) in map {
                if inj.nosql && nosql_key(k) && !doc.is_some_and(|d| declared(d, here, k)) {
                    return Some(Finding {
                        check: Check::NoSql,
                        pointer: pointer.clone(),
                    });
                }
                let sub = match doc {
                    Some(d) => child(d, here, Some(k), 0),
                    None => Applicable::unknown(),
                };
                let len = pointer.len();
                token(pointer, k, known);
                let found = walk(item, doc, &sub, inj, known, pointer);
                pointer.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inj(where_: Where) -> Injection {
        Injection {
            sql: true,
            nosql: true,
            xss: true,
            where_,
            skip_formats: vec!["password".into()],
        }
    }

    #[test]
    fn libinjection_samples() {
        let i = inj(Where::AllStrings);
        for s in [
            "1' OR '1'='1",
            "1 UNION SELECT username, password FROM users--",
            "admin'--",
            "1; DROP TABLE orders",
        ] {
            assert_eq!(scan_text(s, &i), Some(Check::Sql), "{s}");
        }
        for s in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "\"><script>alert(document.cookie)</script>",
        ] {
            assert_eq!(scan_text(s, &i), Some(Check::Xss), "{s}");
        }
        for s in [
            "O'Brien",
            "Please leave the parcel at the back door.",
            "Zoë Müller",
            "12 Rue de l'Église, 75004 Paris",
        ] {
            assert_eq!(scan_text(s, &i), None, "{s}");
        }
    }

    #[test]
    fn free_text_follows_the_schema() {
        let doc = json!({"s": {"type": "object", "properties": {
            "comment": {"type": "string"},
            "status": {"type": "string", "enum": ["1' OR '1'='1"]},
            "password": {"type": "string", "format": "password"},
            "tags": {"type": "array", "items": {"$ref": "#/tag"}},
            "either": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "string"}]}}},
            "tag": {"type": "string", "pattern": "^.*$"}});
        let known = |k: &str| ["comment", "status", "password", "tags", "either"].contains(&k);
        let free = inj(Where::FreeText);
        let scan = |body: Value, i: &Injection| scan_body(&body, Some(&doc), Some("/s"), i, &known);
        let f = scan(json!({"comment": "1' OR '1'='1"}), &free).unwrap();
        assert_eq!((f.check, f.pointer.as_str()), (Check::Sql, "/comment"));
        assert_eq!(scan(json!({"status": "1' OR '1'='1"}), &free), None);
        assert_eq!(
            scan(json!({"tags": ["<script>alert(1)</script>"]}), &free),
            None
        );
        assert_eq!(
            scan(
                json!({"tags": ["<script>alert(1)</script>"]}),
                &inj(Where::AllStrings)
            )
            .map(|f| f.pointer),
            Some("/tags/0".into())
        );
        assert_eq!(
            scan(json!({"password": "1' OR '1'='1"}), &inj(Where::AllStrings)),
            None
        );
        assert!(scan(json!({"either": "<script>alert(1)</script>"}), &free).is_some());
        assert_eq!(
            scan(json!({"comment": "1' OR '1'='1"}), &inj(Where::Off)),
            None
        );
        // An undeclared member: checked, and its name is not printed.
        let f = scan(json!({"<b>": "<script>alert(1)</script>"}), &free).unwrap();
        assert_eq!(f.pointer, "/*");
    }

    #[test]
    fn nosql_operators_where_the_schema_does_not_declare_them() {
        let doc = json!({"s": {"type": "object", "properties": {
            "password": {"type": "string"}, "$meta": {"type": "object"}}}});
        let known = |k: &str| k == "password";
        let i = inj(Where::FreeText);
        let f = scan_body(
            &json!({"password": {"$ne": null}}),
            Some(&doc),
            Some("/s"),
            &i,
            &known,
        )
        .unwrap();
        assert_eq!((f.check, f.pointer.as_str()), (Check::NoSql, "/password"));
        assert!(scan_body(&json!({"a.b": 1}), None, None, &i, &known).is_some());
        assert_eq!(
            scan_body(&json!({"$meta": {}}), Some(&doc), Some("/s"), &i, &known),
            None
        );
        assert!(nosql_query_name("user[$ne]"));
        assert!(!nosql_query_name("user[name]"));
    }
}
