//! Schemas: the OpenAPI dialects brought to JSON Schema draft 2020-12, closed where the
//! configuration asks, compiled by `boon`, and validation errors turned into violations that
//! name schema locations and rules, never the client's values.
//!
//! One path for both OpenAPI versions. A 3.1 document's schemas are draft 2020-12 already; a
//! 3.0 document's are translated in place before compiling (`nullable`, boolean
//! `exclusiveMinimum`/`exclusiveMaximum`, `$ref` siblings ignored as 3.0 says, and the draft-4 to
//! draft-7 forms such documents also use: `items` arrays, `additionalItems`, `dependencies`,
//! `$id: "#name"` anchors). Translating to 2020-12 rather than compiling as draft 7 lets
//! `additional_properties: deny` close composed schemas correctly: `unevaluatedProperties: false`
//! at the place a schema is used sees the members that `allOf` branches and `$ref` targets
//! evaluated, where `additionalProperties: false` on each branch would refuse the others'.

use std::collections::{BTreeSet, HashSet};

use boon::{Compiler, Draft, ErrorKind, InstanceToken, SchemaIndex, Schemas, ValidationError};
use serde_json::{Map, Value};

use crate::config::{AdditionalProperties, Formats};

/// The base URL of the document inside the validator (never fetched).
pub const DOCUMENT_URL: &str = "https://payload-guard.invalid/openapi.json";

/// The schema dialect of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAPI 3.0's schema object (an extended subset of JSON Schema draft-wright-00).
    Oas30,
    /// OpenAPI 3.1: JSON Schema draft 2020-12 (plus annotations).
    Oas31,
}

/// A fault in the document: the JSON pointer where it is and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub pointer: String,
    pub reason: String,
}

impl Fault {
    pub fn new(pointer: impl Into<String>, reason: impl Into<String>) -> Fault {
        Fault {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// Escapes one JSON-pointer token (RFC 6901).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Unescapes one JSON-pointer token.
pub fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The value at a JSON pointer (`""` is the whole document).
pub fn at<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    doc.pointer(pointer)
}

/// Where a schema sits: a place that uses it (a body, a parameter, a property's value, array
/// items, an `anyOf`/`oneOf` alternative) or one that only defines or composes it (component
/// schemas, `$ref` targets, `allOf` branches). Only places of use are closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Use,
    Part,
}

const OAS31_DIALECTS: [&str; 2] = [
    "https://spec.openapis.org/oas/3.1/dialect/base",
    "https://json-schema.org/draft/2020-12/schema",
];

/// Translates and closes every schema reachable from `seeds` (pointers of schemas in use), in
/// place. Returns the names of every property any of them declares.
pub fn prepare(
    doc: &mut Value,
    dialect: Dialect,
    additional: AdditionalProperties,
    seeds: &[String],
) -> Result<HashSet<String>, Fault> {
    // Discover first (reading), then rewrite each place (writing), so `$ref` targets anywhere in
    // the document are found whatever order the walk meets them in.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut places: Vec<(String, Role)> = Vec::new();
    let mut todo: Vec<(String, Role)> = seeds.iter().map(|s| (s.clone(), Role::Use)).collect();
    let mut names = HashSet::new();
    while let Some((ptr, role)) = todo.pop() {
        if !seen.insert(format!("{ptr}\u{0}{role:?}")) {
            continue;
        }
        let Some(schema) = at(doc, &ptr) else {
            if role == Role::Use && seeds.contains(&ptr) {
                return Err(Fault::new(ptr, "no schema at this location"));
            }
            // A pointer relative to an embedded `$id` resource: the validator resolves it.
            continue;
        };
        let Value::Object(obj) = schema else {
            if !schema.is_boolean() {
                return Err(Fault::new(ptr, "a schema must be an object or a boolean"));
            }
            continue;
        };
        places.push((ptr.clone(), role));
        children(obj, &ptr, dialect, &mut todo, &mut names)?;
    }
    for (ptr, role) in places {
        let Some(Value::Object(obj)) = doc.pointer_mut(&ptr) else {
            continue;
        };
        if dialect == Dialect::Oas30 {
            translate_30(obj, &ptr)?;
        } else if let Some(Value::String(s)) = obj.get("$schema") {
            if OAS31_DIALECTS.contains(&s.as_str()) {
                obj.remove("$schema");
            } else {
                return Err(Fault::new(
                    format!("{ptr}/$schema"),
                    "only the draft 2020-12 dialect (and OpenAPI 3.1's base dialect) is supported",
                ));
            }
        }
        if role == Role::Use
            && additional == AdditionalProperties::Deny
            && !obj.contains_key("additionalProperties")
            && !obj.contains_key("unevaluatedProperties")
            && describes_objects(obj)
        {
            obj.insert(closing_keyword(obj).into(), Value::Bool(false));
        }
    }
    Ok(names)
}

/// The keywords that apply other schemas to the same value, whose evaluated members
/// `unevaluatedProperties` sees and `additionalProperties` does not.
const IN_PLACE_APPLICATORS: [&str; 10] = [
    "$ref",
    "$dynamicRef",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
];

/// How `additional_properties: deny` closes one schema. Without in-place applicators the members
/// a schema evaluates are those of its `properties` and `patternProperties`, so
/// `additionalProperties: false` refuses exactly what `unevaluatedProperties: false` would and
/// gives the same annotations; the validator then has no unevaluated members to track for each
/// object of every body, which is most of its work on plain schemas.
fn closing_keyword(obj: &Map<String, Value>) -> &'static str {
    if IN_PLACE_APPLICATORS.iter().any(|k| obj.contains_key(*k)) {
        "unevaluatedProperties"
    } else {
        "additionalProperties"
    }
}

/// Whether a schema is about objects: it lists properties, says `type: object`, or composes
/// or refers to other schemas (whose members its closing must see).
fn describes_objects(obj: &Map<String, Value>) -> bool {
    let typed_object = match obj.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => false,
    };
    let typed_other = matches!(obj.get("type"), Some(Value::String(t)) if t != "object");
    !typed_other
        && (typed_object
            || obj.contains_key("properties")
            || obj.contains_key("required")
            || obj.contains_key("$ref")
            || obj.contains_key("allOf")
            || obj.contains_key("anyOf")
            || obj.contains_key("oneOf"))
}

/// Queues the subschemas of one schema with their roles, and `#/…` reference targets.
fn children(
    obj: &Map<String, Value>,
    ptr: &str,
    dialect: Dialect,
    todo: &mut Vec<(String, Role)>,
    names: &mut HashSet<String>,
) -> Result<(), Fault> {
    if let Some(r) = obj.get("$ref") {
        let Value::String(r) = r else {
            return Err(Fault::new(format!("{ptr}/$ref"), "`$ref` must be a string"));
        };
        // Other references (to an embedded `$id`, or outside the document) are left to the
        // validator, whose loader refuses anything that is not in the document.
        if let Some(target) = r.strip_prefix('#') {
            if target.starts_with('/') || target.is_empty() {
                let decoded = percent_decode(target);
                todo.push((decoded, Role::Part));
            }
        }
        if dialect == Dialect::Oas30 {
            // 3.0: the siblings of `$ref` are ignored, so their subschemas are not walked.
            return Ok(());
        }
    }
    let mut push = |key: &str, role: Role| todo.push((format!("{ptr}/{}", escape(key)), role));
    for key in [
        "additionalProperties",
        "items",
        "additionalItems",
        "unevaluatedItems",
        "unevaluatedProperties",
        "propertyNames",
        "contains",
        "not",
        "if",
        "then",
        "else",
        "contentSchema",
    ] {
        if let Some(v) = obj.get(key) {
            if v.is_object() || v.is_boolean() {
                let role = if matches!(key, "additionalProperties" | "items" | "additionalItems") {
                    Role::Use
                } else {
                    Role::Part
                };
                push(key, role);
            }
        }
    }
    for key in [
        "properties",
        "patternProperties",
        "$defs",
        "definitions",
        "dependentSchemas",
        "dependencies",
    ] {
        if let Some(Value::Object(m)) = obj.get(key) {
            for (name, sub) in m {
                if key == "properties" {
                    names.insert(name.clone());
                }
                if sub.is_object() || sub.is_boolean() {
                    let role = if matches!(key, "properties" | "patternProperties") {
                        Role::Use
                    } else {
                        Role::Part
                    };
                    todo.push((format!("{ptr}/{key}/{}", escape(name)), role));
                }
            }
        }
    }
    if let Some(Value::Array(req)) = obj.get("required") {
        names.extend(req.iter().filter_map(Value::as_str).map(str::to_string));
    }
    for key in ["allOf", "anyOf", "oneOf", "prefixItems", "items"] {
        if let Some(Value::Array(list)) = obj.get(key) {
            let role = if key == "allOf" {
                Role::Part
            } else {
                Role::Use
            };
            for i in 0..list.len() {
                todo.push((format!("{ptr}/{key}/{i}"), role));
            }
        }
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(h) = hex {
                out.push(h);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// One 3.0 (or draft 4–7) schema object rewritten as draft 2020-12.
fn translate_30(obj: &mut Map<String, Value>, ptr: &str) -> Result<(), Fault> {
    if obj.contains_key("$ref") {
        // 3.0 and draft 7: a `$ref` object is the reference alone.
        obj.retain(|k, _| k == "$ref");
        return Ok(());
    }
    obj.remove("$schema");
    if obj.get("nullable") == Some(&Value::Bool(true)) {
        match obj.get_mut("type") {
            Some(Value::String(t)) => {
                let t = Value::String(std::mem::take(t));
                obj.insert("type".into(), Value::Array(vec![t, "null".into()]));
            }
            Some(Value::Array(ts)) if !ts.iter().any(|t| t == "null") => ts.push("null".into()),
            _ => {}
        }
    }
    obj.remove("nullable");
    for (bound, exclusive) in [
        ("minimum", "exclusiveMinimum"),
        ("maximum", "exclusiveMaximum"),
    ] {
        match obj.get(exclusive) {
            Some(Value::Bool(true)) => {
                let Some(limit) = obj.remove(bound) else {
                    return Err(Fault::new(
                        format!("{ptr}/{exclusive}"),
                        format!("`{exclusive}: true` needs `{bound}`"),
                    ));
                };
                obj.insert(exclusive.into(), limit);
            }
            Some(Value::Bool(false)) => {
                obj.remove(exclusive);
            }
            _ => {}
        }
    }
    if let Some(Value::Array(_)) = obj.get("items") {
        if let Some(items) = obj.remove("items") {
            obj.insert("prefixItems".into(), items);
        }
        if let Some(more) = obj.remove("additionalItems") {
            obj.insert("items".into(), more);
        }
    } else {
        obj.remove("additionalItems");
    }
    if let Some(Value::Object(deps)) = obj.remove("dependencies") {
        let mut required = Map::new();
        let mut schemas = Map::new();
        for (k, v) in deps {
            if v.is_array() {
                required.insert(k, v);
            } else {
                schemas.insert(k, v);
            }
        }
        if !required.is_empty() {
            obj.insert("dependentRequired".into(), Value::Object(required));
        }
        if !schemas.is_empty() {
            obj.insert("dependentSchemas".into(), Value::Object(schemas));
        }
    }
    if let Some(Value::String(id)) = obj.get("$id") {
        if let Some(anchor) = id.strip_prefix('#') {
            let anchor = Value::String(anchor.to_string());
            obj.remove("$id");
            obj.insert("$anchor".into(), anchor);
        }
    }
    Ok(())
}

/// A validator loader that loads nothing: every schema must be in the document.
struct NoRemote;

impl boon::UrlLoader for NoRemote {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("remote references are not supported (`{url}`)").into())
    }
}

fn int_format(v: &Value, min: i64, max: i64) -> Result<(), Box<dyn std::error::Error>> {
    match v {
        Value::Number(n) => {
            let fits = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => (min..=max).contains(&i),
                (None, Some(_), _) => false,
                (None, None, Some(f)) => f.fract() != 0.0 || (f >= min as f64 && f <= max as f64),
                _ => true,
            };
            if fits {
                Ok(())
            } else {
                Err("out of range".into())
            }
        }
        _ => Ok(()),
    }
}

fn int32(v: &Value) -> Result<(), Box<dyn std::error::Error>> {
    int_format(v, i64::from(i32::MIN), i64::from(i32::MAX))
}

fn int64(v: &Value) -> Result<(), Box<dyn std::error::Error>> {
    int_format(v, i64::MIN, i64::MAX)
}

fn byte(v: &Value) -> Result<(), Box<dyn std::error::Error>> {
    let Value::String(s) = v else { return Ok(()) };
    let b = s.as_bytes();
    let body = b.iter().rposition(|c| *c != b'=').map_or(0, |i| i + 1);
    let ok = b.len() % 4 == 0
        && b.len() - body <= 2
        && b.get(..body)
            .unwrap_or_default()
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/');
    if ok {
        Ok(())
    } else {
        Err("not base64".into())
    }
}

fn anything(_: &Value) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}

/// The validator as payload-guard sets it up: draft 2020-12, nothing loaded from outside the
/// document, formats asserted (with OpenAPI's `int32`, `int64` and `byte`) unless annotating.
fn compiler(formats: Formats) -> Compiler {
    let mut c = Compiler::new();
    c.set_default_draft(Draft::V2020_12);
    c.use_loader(Box::new(NoRemote));
    if formats == Formats::Assert {
        c.enable_format_assertions();
        for (name, func) in [
            (
                "int32",
                int32 as fn(&Value) -> Result<(), Box<dyn std::error::Error>>,
            ),
            ("int64", int64),
            ("byte", byte),
            ("binary", anything),
            ("float", anything),
            ("double", anything),
            ("password", anything),
        ] {
            c.register_format(boon::Format { name, func });
        }
    }
    c
}

/// Compiles the schemas at `pointers` of a prepared document.
pub fn compile(
    doc: Value,
    formats: Formats,
    pointers: &[String],
) -> Result<(Schemas, Vec<SchemaIndex>), Fault> {
    let mut c = compiler(formats);
    c.add_resource(DOCUMENT_URL, doc)
        .map_err(|e| Fault::new("", e.to_string()))?;
    let mut schemas = Schemas::new();
    let mut out = Vec::with_capacity(pointers.len());
    for p in pointers {
        let loc = format!("{DOCUMENT_URL}#{}", pointer_to_fragment(p));
        let idx = c
            .compile(&loc, &mut schemas)
            .map_err(|e| Fault::new(p.clone(), compile_reason(&e)))?;
        out.push(idx);
    }
    Ok((schemas, out))
}

/// A JSON pointer as a URI fragment: characters outside the fragment set percent-encoded.
fn pointer_to_fragment(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn compile_reason(e: &boon::CompileError) -> String {
    // The alternate form adds the cause (which keyword, which reference).
    let text = format!("{e:#}");
    text.replace(DOCUMENT_URL, "").replace('\n', "; ")
}

/// One reason a request was refused, for the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `body`, `query`, `path` or `header`.
    pub in_: &'static str,
    /// The parameter's name (for parameters).
    pub name: Option<String>,
    /// Where in the value (a JSON pointer); tokens that are neither array indexes nor names the
    /// document declares are written `*`, so no client text is echoed.
    pub pointer: String,
    pub rule: &'static str,
    /// For a closed object's unknown member: the object's location, unprinted (for [`tidy`]).
    pub member: Option<String>,
    /// The violation's own location, unprinted (for [`tidy`]).
    pub member_raw: Option<String>,
}

/// How many violations a reply lists at most.
pub const MAX_VIOLATIONS: usize = 10;

/// How many leaves are collected before [`tidy`] keeps the first [`MAX_VIOLATIONS`].
const MAX_COLLECTED: usize = 64;

/// Drops the unknown-member reports of objects that hold another violation, then keeps the first
/// [`MAX_VIOLATIONS`]. Draft 2020-12 keeps no annotations of a failed subschema, so when a member
/// fails (or a `$ref` target fails anywhere) every member it evaluated reads as unevaluated:
/// those reports would only echo the real fault.
pub fn tidy(list: &mut Vec<Violation>) {
    let raws: Vec<String> = list
        .iter()
        .filter(|v| v.member.is_none())
        .filter_map(|v| v.member_raw.clone())
        .collect();
    list.retain(|v| match &v.member {
        Some(object) => !raws
            .iter()
            .any(|r| r == object || r.starts_with(&format!("{object}/"))),
        None => true,
    });
    list.truncate(MAX_VIOLATIONS);
}

fn rule_of(kind: &ErrorKind) -> &'static str {
    use ErrorKind::*;
    match kind {
        Group | Schema { .. } | RefCycle { .. } => "schema",
        ContentSchema => "contentSchema",
        PropertyName { .. } => "propertyNames",
        Reference { kw, .. } => kw,
        FalseSchema => "false",
        Type { .. } => "type",
        Enum { .. } => "enum",
        Const { .. } => "const",
        Format { .. } => "format",
        MinProperties { .. } => "minProperties",
        MaxProperties { .. } => "maxProperties",
        AdditionalProperties { .. } => "additionalProperties",
        Required { .. } => "required",
        Dependency { .. } => "dependencies",
        DependentRequired { .. } => "dependentRequired",
        MinItems { .. } => "minItems",
        MaxItems { .. } => "maxItems",
        Contains => "contains",
        MinContains { .. } => "minContains",
        MaxContains { .. } => "maxContains",
        UniqueItems { .. } => "uniqueItems",
        AdditionalItems { .. } => "additionalItems",
        MinLength { .. } => "minLength",
        MaxLength { .. } => "maxLength",
        Pattern { .. } => "pattern",
        ContentEncoding { .. } => "contentEncoding",
        ContentMediaType { .. } => "contentMediaType",
        Minimum { .. } => "minimum",
        Maximum { .. } => "maximum",
        ExclusiveMinimum { .. } => "exclusiveMinimum",
        ExclusiveMaximum { .. } => "exclusiveMaximum",
        MultipleOf { .. } => "multipleOf",
        Not => "not",
        AllOf => "allOf",
        AnyOf => "anyOf",
        OneOf(_) => "oneOf",
    }
}

/// The leaves of a validation error as violations (at most [`MAX_VIOLATIONS`]).
pub fn violations(
    err: &ValidationError,
    in_: &'static str,
    name: Option<&str>,
    known: &HashSet<String>,
    out: &mut Vec<Violation>,
) {
    let descend =
        !err.causes.is_empty() && !matches!(err.kind, ErrorKind::AnyOf | ErrorKind::OneOf(_));
    if descend {
        for c in &err.causes {
            violations(c, in_, name, known, out);
        }
        return;
    }
    if out.len() >= MAX_COLLECTED {
        return;
    }
    let mut tokens: Vec<String> = err
        .instance_location
        .tokens
        .iter()
        .map(|t| match t {
            InstanceToken::Prop(p) => p.to_string(),
            InstanceToken::Item(i) => i.to_string(),
        })
        .collect();
    let raw: String = tokens.iter().map(|t| format!("/{}", escape(t))).collect();
    let mut member = None;
    let mut rule = rule_of(&err.kind);
    // A member that a closed schema does not list: point at the object, not at the member's
    // name (the client's text), and say which rule closed it.
    if matches!(err.kind, ErrorKind::FalseSchema)
        && (err.schema_url.ends_with("/unevaluatedProperties")
            || err.schema_url.ends_with("/additionalProperties"))
    {
        tokens.pop();
        rule = "additionalProperties";
        member = Some(tokens.iter().map(|t| format!("/{}", escape(t))).collect());
    } else if matches!(err.kind, ErrorKind::AdditionalProperties { .. }) {
        // The same report from `additionalProperties: false`, made at the object itself.
        member = Some(raw.clone());
    } else if matches!(err.kind, ErrorKind::FalseSchema)
        && (err.schema_url.ends_with("/unevaluatedItems") || err.schema_url.ends_with("/items"))
    {
        tokens.pop();
        rule = "items";
    }
    let mut pointer = String::new();
    for t in tokens {
        pointer.push('/');
        if t.bytes().all(|b| b.is_ascii_digit()) || known.contains(&t) {
            pointer.push_str(&escape(&t));
        } else {
            pointer.push('*');
        }
    }
    let v = Violation {
        in_,
        name: name.map(str::to_string),
        pointer,
        rule,
        member,
        member_raw: Some(raw),
    };
    if !out.contains(&v) {
        out.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepared(mut doc: Value, dialect: Dialect, ap: AdditionalProperties) -> Value {
        prepare(&mut doc, dialect, ap, &["/s".to_string()]).unwrap();
        doc
    }

    #[test]
    fn nullable_and_exclusive_bounds_of_30() {
        let doc = prepared(
            json!({"s": {"type": "object", "properties": {
                "a": {"type": "integer", "nullable": true, "minimum": 1, "exclusiveMinimum": true},
                "b": {"type": "number", "maximum": 5, "exclusiveMaximum": false},
                "c": {"$ref": "#/c", "nullable": true}}},
                   "c": {"type": "string", "nullable": true}}),
            Dialect::Oas30,
            AdditionalProperties::Schema,
        );
        assert_eq!(
            doc["s"]["properties"]["a"],
            json!({"type": ["integer", "null"], "exclusiveMinimum": 1})
        );
        assert_eq!(
            doc["s"]["properties"]["b"],
            json!({"type": "number", "maximum": 5})
        );
        assert_eq!(doc["s"]["properties"]["c"], json!({"$ref": "#/c"}));
        assert_eq!(doc["c"], json!({"type": ["string", "null"]}));
    }

    #[test]
    fn deny_closes_places_of_use_not_parts() {
        let doc = prepared(
            json!({"s": {"allOf": [{"$ref": "#/base"}, {"properties": {"x": {"type": "object"}}}]},
                   "base": {"type": "object", "properties": {"id": {"type": "string"},
                            "tags": {"type": "array", "items": {"properties": {"k": {}}}}}}}),
            Dialect::Oas31,
            AdditionalProperties::Deny,
        );
        assert_eq!(doc["s"]["unevaluatedProperties"], json!(false));
        assert!(doc["base"].get("unevaluatedProperties").is_none());
        assert!(doc["s"]["allOf"][1].get("unevaluatedProperties").is_none());
        // Schemas that apply nothing else in place are closed by `additionalProperties`.
        assert_eq!(
            doc["s"]["allOf"][1]["properties"]["x"]["additionalProperties"],
            json!(false)
        );
        assert!(doc["s"]["allOf"][1]["properties"]["x"]
            .get("unevaluatedProperties")
            .is_none());
        assert!(doc["base"]["properties"]["id"]
            .get("unevaluatedProperties")
            .is_none());
        assert_eq!(
            doc["base"]["properties"]["tags"]["items"]["additionalProperties"],
            json!(false)
        );
    }

    #[test]
    fn remote_refs_are_refused() {
        let doc = json!({"s": {"$ref": "https://example.com/schema.json"}});
        let Err(e) = compile(doc, Formats::Assert, &["/s".into()]) else {
            panic!("a remote reference compiled");
        };
        assert_eq!(e.pointer, "/s");
        assert!(e.reason.contains("remote"), "{}", e.reason);
        let doc = json!({"s": {"$ref": "other.json#/x"}});
        let Err(e) = compile(doc, Formats::Assert, &["/s".into()]) else {
            panic!("a relative reference to another document compiled");
        };
        assert_eq!(e.pointer, "/s");
        assert!(e.reason.contains("remote"), "{}", e.reason);
    }

    #[test]
    fn violations_name_schema_places_only() {
        let mut doc = json!({"s": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "qty": {"type": "integer", "maximum": 10}}}},
            "note": {"type": "string"}}, "required": ["note"]}});
        let names = prepare(
            &mut doc,
            Dialect::Oas31,
            AdditionalProperties::Deny,
            &["/s".into()],
        )
        .unwrap();
        let (schemas, idx) = compile(doc, Formats::Assert, &["/s".into()]).unwrap();
        let check = |body: Value| {
            let err = schemas.validate(&body, idx[0]).unwrap_err();
            let mut out = Vec::new();
            violations(&err, "body", None, &names, &mut out);
            tidy(&mut out);
            out
        };
        let pairs = |out: &[Violation]| -> Vec<(String, &'static str)> {
            let mut p: Vec<(String, &'static str)> =
                out.iter().map(|v| (v.pointer.clone(), v.rule)).collect();
            p.sort();
            p
        };
        // Unknown members of an object that holds another fault are not reported (they would
        // only echo it); the other faults are.
        let out = check(json!({"items": [{"qty": 11, "<script>": 1}], "extra": 2}));
        assert_eq!(
            pairs(&out),
            vec![("".into(), "required"), ("/items/0/qty".into(), "maximum")]
        );
        let out = check(json!({"items": [{"qty": 1, "<script>": 1}], "note": "x", "extra": 2}));
        assert_eq!(
            pairs(&out),
            vec![
                ("".into(), "additionalProperties"),
                ("/items/0".into(), "additionalProperties")
            ]
        );
        let printed: Vec<&str> = out.iter().map(|v| v.pointer.as_str()).collect();
        assert!(!format!("{printed:?}").contains("script"));
        assert!(!format!("{printed:?}").contains("extra"));
    }
}
