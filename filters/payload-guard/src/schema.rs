//! Schemas: the OpenAPI dialects brought to JSON Schema draft 2020-12, closed where the
//! configuration asks, compiled by `shieldwall-jsonschema`, and validation errors turned into violations that
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

use serde_json::{Map, Value};
use shieldwall_jsonschema::{Compiler, Error, Kind, SchemaIndex, Schemas, Token};

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
    prepare_places(doc, dialect, additional, seeds, true)
}

/// [`prepare`], with the copying of reference targets into places of use on or off (off: the
/// references stay and are closed as written, which the tests compare against).
fn prepare_places(
    doc: &mut Value,
    dialect: Dialect,
    additional: AdditionalProperties,
    seeds: &[String],
    inline: bool,
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
    let deny = additional == AdditionalProperties::Deny;
    let mut pure_refs: Vec<String> = Vec::new();
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
        if role == Role::Use && deny {
            if local_reference(obj).is_some() {
                // Closed below, once every place inside its target is.
                if !pure_refs.contains(&ptr) {
                    pure_refs.push(ptr);
                }
            } else {
                close(obj);
            }
        }
    }
    if inline {
        inline_references(doc, pure_refs);
    } else {
        for ptr in pure_refs {
            close_at(doc, &ptr);
        }
    }
    Ok(names)
}

/// Closes one schema at a place of use (`additional_properties: deny`), unless it already says
/// what other members may be.
fn close(obj: &mut Map<String, Value>) {
    if !obj.contains_key("additionalProperties")
        && !obj.contains_key("unevaluatedProperties")
        && describes_objects(obj)
    {
        obj.insert(closing_keyword(obj).into(), Value::Bool(false));
    }
}

/// Annotations that may stand beside a `$ref` without changing what the reference validates.
const ANNOTATIONS: [&str; 9] = [
    "description",
    "summary",
    "title",
    "$comment",
    "example",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// The target pointer of a schema that is a reference into the document and nothing else
/// (annotations aside).
fn local_reference(obj: &Map<String, Value>) -> Option<String> {
    let Some(Value::String(r)) = obj.get("$ref") else {
        return None;
    };
    let target = document_pointer(r)?;
    obj.keys()
        .all(|k| k == "$ref" || ANNOTATIONS.contains(&k.as_str()))
        .then_some(target)
}

/// The JSON pointer (decoded) of a reference into the document itself (`#` or `#/…`); `None` for
/// any other reference (an embedded `$id`, an anchor, another document).
fn document_pointer(reference: &str) -> Option<String> {
    let target = reference.strip_prefix('#')?;
    (target.is_empty() || target.starts_with('/')).then(|| percent_decode(target))
}

/// Values one inlined target may hold, and all inlined copies of a document together: the copies
/// cost memory for as long as the configuration lives.
const MAX_INLINED_TARGET: usize = 2_000;
const MAX_INLINED_TOTAL: usize = 200_000;
/// References followed from one place (a reference to a reference …) before it is left as is.
const MAX_INLINE_HOPS: usize = 8;

/// Places of use that are a reference alone (`{"$ref": "#/components/schemas/Item"}`, the
/// common form) get a copy of their target in place of the reference, and are then closed like
/// any other place. Validating the reference costs the validator a scope per value and, with
/// `unevaluatedProperties: false` beside it, a set of unevaluated members per object (for a
/// request body of small objects, a sixth of the validation's instructions); the copy of a plain
/// target is closed with `additionalProperties: false` and costs neither. It validates the same:
/// a reference applies its target's keywords to the value in place, and the copy keeps every
/// reference inside the target (all of them `#/…` pointers, resolved against the same document).
/// A target is copied only when nothing in it depends on where it sits (`$id`, anchors, dynamic
/// references) and once every place of use inside it is closed, so the copy is closed too; a
/// target that contains the place itself (a recursive schema) is left referenced.
fn inline_references(doc: &mut Value, places: Vec<String>) {
    let mut budget = MAX_INLINED_TOTAL;
    let mut pending: Vec<(String, usize)> = places.into_iter().map(|p| (p, 0)).collect();
    loop {
        let mut progressed = false;
        let mut open: Vec<String> = pending.iter().map(|(p, _)| p.clone()).collect();
        for (ptr, hops) in std::mem::take(&mut pending) {
            match inline_step(doc, &ptr, hops, &open, &mut budget) {
                Step::Closed => {
                    open.retain(|p| *p != ptr);
                    progressed = true;
                }
                Step::Copied => {
                    // The copy may itself be a reference alone: it is looked at again.
                    pending.push((ptr, hops + 1));
                    progressed = true;
                }
                Step::Waits => pending.push((ptr, hops)),
            }
        }
        if !progressed {
            break;
        }
    }
    // Left: references whose targets contain them. Closed as written.
    for (ptr, _) in pending {
        close_at(doc, &ptr);
    }
}

enum Step {
    /// The place is closed (as copied, or as written): done.
    Closed,
    /// The place now holds a copy of its target.
    Copied,
    /// A place inside the target is not done yet.
    Waits,
}

fn inline_step(
    doc: &mut Value,
    ptr: &str,
    hops: usize,
    open: &[String],
    budget: &mut usize,
) -> Step {
    let Some(target) = doc
        .pointer(ptr)
        .and_then(Value::as_object)
        .and_then(local_reference)
    else {
        close_at(doc, ptr);
        return Step::Closed;
    };
    let inside = |p: &String| {
        *p == target
            || p.strip_prefix(target.as_str())
                .is_some_and(|r| r.starts_with('/'))
    };
    if open.iter().any(inside) {
        return Step::Waits;
    }
    let copy = doc
        .pointer(&target)
        .filter(|t| t.is_object() && hops < MAX_INLINE_HOPS)
        .and_then(|t| {
            position_free_size(t)
                .filter(|n| *n <= MAX_INLINED_TARGET && *n <= *budget)
                .map(|n| (t.clone(), n))
        });
    let Some((copy, size)) = copy else {
        close_at(doc, ptr);
        return Step::Closed;
    };
    *budget -= size;
    if let Some(place) = doc.pointer_mut(ptr) {
        *place = copy;
    }
    Step::Copied
}

fn close_at(doc: &mut Value, ptr: &str) {
    if let Some(Value::Object(obj)) = doc.pointer_mut(ptr) {
        close(obj);
    }
}

/// The number of values in a schema, or `None` when something in it depends on where it sits:
/// an `$id`, an anchor, a dynamic or recursive reference, a `$schema`, or a reference that is not
/// a `#/…` pointer into the document.
fn position_free_size(v: &Value) -> Option<usize> {
    match v {
        Value::Object(m) => {
            let mut n = 1usize;
            for (k, sub) in m {
                match k.as_str() {
                    "$id" | "$anchor" | "$dynamicAnchor" | "$dynamicRef" | "$recursiveAnchor"
                    | "$recursiveRef" | "$schema" => return None,
                    "$ref" => {
                        document_pointer(sub.as_str()?)?;
                    }
                    _ => {}
                }
                n = n.checked_add(position_free_size(sub)?)?;
            }
            Some(n)
        }
        Value::Array(items) => items
            .iter()
            .try_fold(1usize, |n, sub| n.checked_add(position_free_size(sub)?)),
        _ => Some(1),
    }
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
        if let Some(target) = document_pointer(r) {
            todo.push((target, Role::Part));
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

fn int_format(v: &Value, min: i64, max: i64) -> bool {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => (min..=max).contains(&i),
            (None, Some(_), _) => false,
            (None, None, Some(f)) => f.fract() != 0.0 || (f >= min as f64 && f <= max as f64),
            _ => true,
        },
        _ => true,
    }
}

fn int32(v: &Value) -> bool {
    int_format(v, i64::from(i32::MIN), i64::from(i32::MAX))
}

fn int64(v: &Value) -> bool {
    int_format(v, i64::MIN, i64::MAX)
}

fn byte(v: &Value) -> bool {
    let Value::String(s) = v else { return true };
    let b = s.as_bytes();
    let body = b.iter().rposition(|c| *c != b'=').map_or(0, |i| i + 1);
    b.len() % 4 == 0
        && b.len() - body <= 2
        && b.get(..body)
            .unwrap_or_default()
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// Compiles the schemas at `pointers` of a prepared document: draft 2020-12, nothing loaded
/// from outside the document, formats asserted (with OpenAPI's `int32`, `int64` and `byte`)
/// unless annotating. OpenAPI's other formats (`binary`, `float`, `double`, `password`) are
/// annotations, as any format the validator does not know.
pub fn compile(
    doc: Value,
    formats: Formats,
    pointers: &[String],
) -> Result<(Schemas, Vec<SchemaIndex>), Fault> {
    // Every component schema and every schema in use is indexed first, so a reference by
    // `$id` or anchor finds its target wherever in the document it sits.
    let components: Vec<String> = match doc.pointer("/components/schemas") {
        Some(Value::Object(m)) => m
            .keys()
            .map(|k| format!("/components/schemas/{}", escape(k)))
            .collect(),
        _ => Vec::new(),
    };
    let mut c = Compiler::new(DOCUMENT_URL, doc);
    if formats == Formats::Assert {
        c.assert_formats(true);
        c.register_format("int32", int32);
        c.register_format("int64", int64);
        c.register_format("byte", byte);
    }
    for p in components.iter().chain(pointers) {
        c.index(p)
            .map_err(|e| Fault::new(p.clone(), e.to_string()))?;
    }
    let mut schemas = Schemas::new();
    let mut out = Vec::with_capacity(pointers.len());
    for p in pointers {
        let idx = c
            .compile(p, &mut schemas)
            .map_err(|e| Fault::new(p.clone(), e.to_string()))?;
        out.push(idx);
    }
    Ok((schemas, out))
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
    // Entries that print the same (one per unknown member of one object, from
    // `unevaluatedProperties`, which reports each member where `additionalProperties` reports
    // the object once) are listed once.
    let mut printed: Vec<(&'static str, Option<String>, String, &'static str)> = Vec::new();
    list.retain(|v| {
        let key = (v.in_, v.name.clone(), v.pointer.clone(), v.rule);
        let first = !printed.contains(&key);
        if first {
            printed.push(key);
        }
        first
    });
    list.truncate(MAX_VIOLATIONS);
}

/// The failures of a validation as violations (at most [`MAX_VIOLATIONS`] after [`tidy`]).
pub fn violations(
    errors: &[Error],
    in_: &'static str,
    name: Option<&str>,
    known: &HashSet<String>,
    out: &mut Vec<Violation>,
) {
    for err in errors {
        if out.len() >= MAX_COLLECTED {
            return;
        }
        let mut tokens: Vec<String> = err
            .instance
            .iter()
            .map(|t| match t {
                Token::Prop(p) => p.clone(),
                Token::Item(i) => i.to_string(),
            })
            .collect();
        let raw: String = tokens.iter().map(|t| format!("/{}", escape(t))).collect();
        let mut member = None;
        match err.kind {
            // A member that a closed schema does not list: point at the object, not at the
            // member's name (the client's text).
            Kind::UnknownMember => {
                tokens.pop();
                member = Some(tokens.iter().map(|t| format!("/{}", escape(t))).collect());
            }
            // An item beyond what the schema allows: point at the array.
            Kind::ExtraItem => {
                tokens.pop();
            }
            _ => {}
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
            rule: err.keyword(),
            member,
            member_raw: Some(raw),
        };
        if !out.contains(&v) {
            out.push(v);
        }
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

    /// Copying reference targets into places of use changes no outcome: every document below
    /// (plain targets, a chain of references, a composed target, a recursive schema, pattern and
    /// additional members, alternatives, an anchored target, a nested reference) gives every
    /// body the same verdict and the same violations with the copies as with the references.
    #[test]
    fn inlined_references_validate_as_the_references_do() {
        let item = json!({"type": "object", "required": ["sku"],
                          "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}});
        let docs = [
            json!({"s": {"type": "object", "properties": {"item": {"$ref": "#/d/item"},
                     "list": {"type": "array", "items": {"$ref": "#/d/item", "description": "x"}}}},
                   "d": {"item": item}}),
            json!({"s": {"$ref": "#/d/a"}, "d": {"a": {"$ref": "#/d/b"}, "b": item}}),
            json!({"s": {"properties": {"item": {"$ref": "#/d/ext"}}},
                   "d": {"ext": {"allOf": [{"$ref": "#/d/item"},
                                           {"properties": {"name": {"type": "string"}}}]},
                         "item": item}}),
            json!({"s": {"$ref": "#/d/node"},
                   "d": {"node": {"type": "object", "properties": {"name": {"type": "string"},
                         "children": {"type": "array", "items": {"$ref": "#/d/node"}}}}}}),
            json!({"s": {"properties": {"item": {"$ref": "#/d/p"}, "list": {"$ref": "#/d/q"}}},
                   "d": {"p": {"properties": {"sku": {}}, "patternProperties": {"^x-": {"type": "string"}}},
                         "q": {"additionalProperties": {"type": "integer"}}}}),
            json!({"s": {"oneOf": [{"$ref": "#/d/item"}, {"$ref": "#/d/named"}]},
                   "d": {"item": item, "named": {"type": "object", "required": ["name"],
                                                  "properties": {"name": {"type": "string"}}}}}),
            json!({"s": {"properties": {"item": {"$ref": "#/d/anchored"}}},
                   "d": {"anchored": {"$anchor": "A", "properties": {"sku": {"type": "string"}}}}}),
            json!({"s": {"$ref": "#/d/order"},
                   "d": {"order": {"type": "object", "properties": {"item": {"$ref": "#/d/item"},
                                   "name": {"type": "string"}}},
                         "item": item}}),
        ];
        let bodies = [
            json!({}),
            json!({"sku": "A"}),
            json!({"sku": "A", "qty": 2}),
            json!({"sku": "A", "extra": 1}),
            json!({"sku": 1}),
            json!({"qty": 1}),
            json!({"name": "n"}),
            json!({"name": "n", "extra": true}),
            json!({"name": "n", "children": [{"name": "c"}, {"name": "d", "children": []}]}),
            json!({"name": "n", "children": [{"name": "c", "extra": 1}]}),
            json!({"x-a": "s", "sku": 1}),
            json!({"x-a": 1}),
            json!({"item": {"sku": "A"}}),
            json!({"item": {"sku": "A", "extra": 1}}),
            json!({"item": {"sku": "A", "name": "n"}}),
            json!({"item": {"sku": "A", "name": "n", "extra": 1}}),
            json!({"item": {"x-a": "s"}}),
            json!({"item": {"x-a": 2, "other": 1}}),
            json!({"item": {"qty": 1}}),
            json!({"list": [{"sku": "A"}, {"sku": "B", "qty": 1}]}),
            json!({"list": [{"sku": "A"}, {"sku": "B", "extra": 1}]}),
            json!({"list": {"a": 1, "b": "x"}}),
            json!({"item": {"sku": "A"}, "other": 1}),
            json!("text"),
        ];
        let mut inlined_somewhere = false;
        for doc in docs {
            let mut outcomes = Vec::new();
            for inline in [true, false] {
                let mut d = doc.clone();
                let names = prepare_places(
                    &mut d,
                    Dialect::Oas31,
                    AdditionalProperties::Deny,
                    &["/s".into()],
                    inline,
                )
                .unwrap();
                if inline
                    && d.to_string().matches("$ref").count()
                        < doc.to_string().matches("$ref").count()
                {
                    inlined_somewhere = true;
                }
                let (schemas, idx) = compile(d, Formats::Assert, &["/s".into()]).unwrap();
                let per_body: Vec<Option<Vec<(String, &'static str)>>> = bodies
                    .iter()
                    .map(|b| {
                        schemas.validate(b, idx[0]).err().map(|err| {
                            let mut out = Vec::new();
                            violations(&err, "body", None, &names, &mut out);
                            tidy(&mut out);
                            let mut p: Vec<(String, &'static str)> =
                                out.iter().map(|v| (v.pointer.clone(), v.rule)).collect();
                            p.sort();
                            p
                        })
                    })
                    .collect();
                outcomes.push(per_body);
            }
            for (i, body) in bodies.iter().enumerate() {
                let (copied, referenced) = (&outcomes[0][i], &outcomes[1][i]);
                assert_eq!(
                    copied.is_some(),
                    referenced.is_some(),
                    "document {doc}, body {body}"
                );
                let (Some(copied), Some(referenced)) = (copied, referenced) else {
                    continue;
                };
                // The same reports, except that through a reference a closed object also reports
                // its declared members when a member's own value fails (2020-12 keeps no
                // annotations of a failed reference): an echo the copy does not make.
                for v in copied {
                    assert!(referenced.contains(v), "document {doc}, body {body}: {v:?}");
                }
                for (at, rule) in referenced.iter().filter(|v| !copied.contains(v)) {
                    assert_eq!(*rule, "additionalProperties", "document {doc}, body {body}");
                    assert!(
                        copied.iter().any(|(p, _)| p.starts_with(&format!("{at}/"))),
                        "document {doc}, body {body}: {at}"
                    );
                }
            }
        }
        assert!(inlined_somewhere);
    }

    #[test]
    fn deny_copies_plain_targets_and_leaves_recursive_ones_referenced() {
        let doc = prepared(
            json!({"s": {"type": "object", "properties": {"item": {"$ref": "#/d/item"},
                         "node": {"$ref": "#/d/node"}, "a": {"$ref": "#/d/anchored"}}},
                   "d": {"item": {"properties": {"sku": {"type": "string"}}},
                         "node": {"properties": {"next": {"$ref": "#/d/node"}}},
                         "anchored": {"$anchor": "A", "properties": {"x": {}}}}}),
            Dialect::Oas31,
            AdditionalProperties::Deny,
        );
        assert_eq!(
            doc["s"]["properties"]["item"],
            json!({"properties": {"sku": {"type": "string"}}, "additionalProperties": false})
        );
        // The target itself stays open: it is a part other schemas may compose.
        assert!(doc["d"]["item"].get("additionalProperties").is_none());
        // A schema that contains a use of itself keeps its references, closed as written.
        assert_eq!(
            doc["s"]["properties"]["node"],
            json!({"$ref": "#/d/node", "unevaluatedProperties": false})
        );
        assert_eq!(
            doc["s"]["properties"]["a"],
            json!({"$ref": "#/d/anchored", "unevaluatedProperties": false})
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
