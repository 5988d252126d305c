//! From a document to [`Node`]s: the schema resources and anchors indexed, references
//! resolved to nodes, keyword values checked.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use serde_json::{Map, Value};
use shieldwall_regex::Regex;

use crate::{uri, FormatCheck, SchemaIndex, Schemas};

/// Why a schema does not compile, and where (a JSON pointer into the document).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub pointer: String,
    pub reason: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "at {}: {}", self.pointer, self.reason)
        }
    }
}

impl std::error::Error for CompileError {}

fn fault(pointer: &str, reason: impl Into<String>) -> CompileError {
    CompileError {
        pointer: pointer.to_string(),
        reason: reason.into(),
    }
}

/// JSON types as bits of [`Node::types`].
pub(crate) const NULL: u8 = 1;
pub(crate) const BOOLEAN: u8 = 2;
pub(crate) const OBJECT: u8 = 4;
pub(crate) const ARRAY: u8 = 8;
pub(crate) const NUMBER: u8 = 16;
pub(crate) const STRING: u8 = 32;
pub(crate) const INTEGER: u8 = 64;

fn type_bit(name: &str) -> Option<u8> {
    Some(match name {
        "null" => NULL,
        "boolean" => BOOLEAN,
        "object" => OBJECT,
        "array" => ARRAY,
        "number" => NUMBER,
        "string" => STRING,
        "integer" => INTEGER,
        _ => return None,
    })
}

/// How a `format` is asserted.
#[derive(Clone, Debug)]
pub(crate) enum Format {
    /// One of [`crate::format`]'s (strings only).
    Builtin(String),
    /// `regex`: the ECMA-262 syntax (strings only).
    Regex,
    /// Registered by the caller (every instance).
    Custom(FormatCheck),
}

#[derive(Debug, Default)]
pub(crate) struct NumberChecks {
    pub minimum: Option<serde_json::Number>,
    pub maximum: Option<serde_json::Number>,
    pub exclusive_minimum: Option<serde_json::Number>,
    pub exclusive_maximum: Option<serde_json::Number>,
    pub multiple_of: Option<serde_json::Number>,
}

#[derive(Debug, Default)]
pub(crate) struct StringChecks {
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub pattern: Option<Regex>,
}

#[derive(Debug, Default)]
pub(crate) struct ArrayChecks {
    pub prefix_items: Vec<usize>,
    pub items: Option<usize>,
    pub contains: Option<usize>,
    pub min_contains: Option<usize>,
    pub max_contains: Option<usize>,
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
    pub unique_items: bool,
}

#[derive(Debug, Default)]
pub(crate) struct ObjectChecks {
    /// Sorted by name.
    pub properties: Vec<(String, usize)>,
    pub pattern_properties: Vec<(Regex, usize)>,
    pub additional_properties: Option<usize>,
    pub property_names: Option<usize>,
    pub required: Vec<String>,
    pub dependent_required: Vec<(String, Vec<String>)>,
    pub dependent_schemas: Vec<(String, usize)>,
    pub min_properties: Option<usize>,
    pub max_properties: Option<usize>,
}

/// One compiled schema.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// The schema resource it belongs to (for `$dynamicRef`'s dynamic scope).
    pub resource: usize,
    /// A boolean schema.
    pub boolean: Option<bool>,
    /// Allowed types as bits (0: any).
    pub types: u8,
    pub enumeration: Option<Vec<Value>>,
    pub constant: Option<Value>,
    pub reference: Option<usize>,
    /// The statically resolved target, and the anchor name when it is dynamic.
    pub dynamic_reference: Option<(usize, Option<String>)>,
    pub number: Option<Box<NumberChecks>>,
    pub string: Option<Box<StringChecks>>,
    pub array: Option<Box<ArrayChecks>>,
    pub object: Option<Box<ObjectChecks>>,
    pub format: Option<Format>,
    pub all_of: Vec<usize>,
    pub any_of: Vec<usize>,
    pub one_of: Vec<usize>,
    pub not: Option<usize>,
    /// `if`, `then`, `else`.
    pub condition: Option<(usize, Option<usize>, Option<usize>)>,
    pub unevaluated_properties: Option<usize>,
    pub unevaluated_items: Option<usize>,
}

/// A schema resource: a document, or a subschema with its own `$id`.
#[derive(Debug)]
struct Resource {
    uri: String,
    pointer: String,
    anchors: Vec<(String, String)>,
    dynamic_anchors: Vec<(String, String)>,
}

/// What [`Compiler::res`] gives for an index it does not have (never, as resources are only
/// added): a resource with no anchors.
static NO_RESOURCE: Resource = Resource {
    uri: String::new(),
    pointer: String::new(),
    anchors: Vec::new(),
    dynamic_anchors: Vec::new(),
};

/// Keywords whose value is one subschema.
const SCHEMA_KEYWORDS: [&str; 12] = [
    "additionalProperties",
    "propertyNames",
    "items",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
    "additionalItems",
];
/// Keywords whose value is an object of subschemas (`definitions` as draft 7 and OpenAPI 3.0
/// documents write `$defs`).
const MAP_KEYWORDS: [&str; 5] = [
    "properties",
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];
/// Keywords whose value is an array of subschemas.
const ARRAY_KEYWORDS: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];

/// One JSON-pointer token, escaped (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn valid_anchor(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Compiles the schemas of one document.
pub struct Compiler {
    doc: Rc<Value>,
    assert_formats: bool,
    formats: Vec<(String, FormatCheck)>,
    resources: Vec<Resource>,
    by_uri: HashMap<String, usize>,
    /// Every schema location indexed so far → its resource.
    located: HashMap<String, usize>,
    /// Pointer → node, for everything compiled into the [`Schemas`] in use.
    compiled: HashMap<String, usize>,
    /// Anchor names some `$dynamicRef` may resolve dynamically.
    dynamic_names: Vec<String>,
    /// What indexing the document found wrong, reported by the first compile.
    broken: Option<CompileError>,
}

impl Compiler {
    fn res(&self, r: usize) -> &Resource {
        self.resources.get(r).unwrap_or(&NO_RESOURCE)
    }

    /// A compiler for `doc`, whose base URI is `base` (never fetched; embedded `$id`s resolve
    /// against it).
    pub fn new(base: &str, doc: Value) -> Compiler {
        let base = uri::split_fragment(base).0.to_string();
        let mut c = Compiler {
            doc: Rc::new(doc),
            assert_formats: false,
            formats: Vec::new(),
            resources: vec![Resource {
                uri: base.clone(),
                pointer: String::new(),
                anchors: Vec::new(),
                dynamic_anchors: Vec::new(),
            }],
            by_uri: HashMap::from([(base, 0)]),
            located: HashMap::new(),
            compiled: HashMap::new(),
            dynamic_names: Vec::new(),
            broken: None,
        };
        // The document itself, as a schema (its `$id`, anchors, embedded resources). Errors
        // surface when something is compiled.
        c.broken = c.index("").err();
        c
    }

    /// `format` as an assertion (the default: an annotation).
    pub fn assert_formats(&mut self, on: bool) {
        self.assert_formats = on;
    }

    /// A format of the caller's, asserted whenever formats are.
    pub fn register_format(&mut self, name: &str, check: FormatCheck) {
        self.formats.push((name.to_string(), check));
    }

    /// Indexes the schema at `pointer` and everything under it (its `$id`s and anchors), so
    /// references by URI or anchor find them even when nothing compiled refers to it by pointer.
    pub fn index(&mut self, pointer: &str) -> Result<(), CompileError> {
        if self.located.contains_key(pointer) {
            return Ok(());
        }
        let resource = self.resource_of(pointer);
        let doc = Rc::clone(&self.doc);
        let Some(value) = doc.pointer(pointer) else {
            return Err(fault(pointer, "no schema at this location"));
        };
        self.walk(value, pointer.to_string(), resource)
    }

    /// The resource holding `pointer`: that of the longest indexed prefix (the document's when
    /// none).
    fn resource_of(&self, pointer: &str) -> usize {
        let mut p = pointer;
        loop {
            if let Some(&r) = self.located.get(p) {
                return r;
            }
            match p.rfind('/') {
                Some(i) => p = p.get(..i).unwrap_or_default(),
                None => return 0,
            }
        }
    }

    fn walk(&mut self, value: &Value, pointer: String, parent: usize) -> Result<(), CompileError> {
        let Value::Object(obj) = value else {
            self.located.entry(pointer).or_insert(parent);
            return Ok(());
        };
        let mut resource = parent;
        if let Some(id) = obj.get("$id") {
            let Value::String(id) = id else {
                return Err(fault(&pointer, "`$id` must be a string"));
            };
            let resolved = uri::resolve(&self.res(parent).uri, id);
            let (uri, fragment) = uri::split_fragment(&resolved);
            if fragment.is_some() {
                return Err(fault(
                    &pointer,
                    "`$id` must not have a fragment (use `$anchor`)",
                ));
            }
            match self.by_uri.get(uri) {
                Some(&r) if self.res(r).pointer == pointer => resource = r,
                Some(_) => {
                    return Err(fault(
                        &pointer,
                        format!("`$id` `{id}` names two schemas in the document"),
                    ))
                }
                None => {
                    resource = self.resources.len();
                    self.resources.push(Resource {
                        uri: uri.to_string(),
                        pointer: pointer.clone(),
                        anchors: Vec::new(),
                        dynamic_anchors: Vec::new(),
                    });
                    self.by_uri.insert(uri.to_string(), resource);
                }
            }
        }
        if self.located.contains_key(&pointer) {
            return Ok(());
        }
        self.located.insert(pointer.clone(), resource);
        for (keyword, dynamic) in [("$anchor", false), ("$dynamicAnchor", true)] {
            if let Some(a) = obj.get(keyword) {
                let Some(name) = a.as_str().filter(|n| valid_anchor(n)) else {
                    return Err(fault(
                        &pointer,
                        format!("`{keyword}` must be a name (a letter or `_`, then letters, digits, `-`, `_`, `.`)"),
                    ));
                };
                let Some(r) = self.resources.get_mut(resource) else {
                    return Err(fault(&pointer, "internal error: no resource"));
                };
                if r.anchors.iter().any(|(n, p)| n == name && *p != pointer) {
                    return Err(fault(&pointer, format!("anchor `{name}` is defined twice")));
                }
                r.anchors.push((name.to_string(), pointer.clone()));
                if dynamic {
                    r.dynamic_anchors.push((name.to_string(), pointer.clone()));
                }
            }
        }
        for (k, v) in obj {
            let here = format!("{pointer}/{}", escape(k));
            if SCHEMA_KEYWORDS.contains(&k.as_str()) {
                self.walk(v, here, resource)?;
            } else if MAP_KEYWORDS.contains(&k.as_str()) {
                if let Value::Object(m) = v {
                    for (name, s) in m {
                        self.walk(s, format!("{here}/{}", escape(name)), resource)?;
                    }
                }
            } else if k == "dependencies" {
                // Draft 7's form: schemas among the arrays of names.
                if let Value::Object(m) = v {
                    for (name, s) in m.iter().filter(|(_, s)| !s.is_array()) {
                        self.walk(s, format!("{here}/{}", escape(name)), resource)?;
                    }
                }
            } else if ARRAY_KEYWORDS.contains(&k.as_str()) || k == "items" {
                if let Value::Array(list) = v {
                    for (i, s) in list.iter().enumerate() {
                        self.walk(s, format!("{here}/{i}"), resource)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Compiles the schema at `pointer` (a JSON pointer into the document) into `schemas`.
    pub fn compile(
        &mut self,
        pointer: &str,
        schemas: &mut Schemas,
    ) -> Result<SchemaIndex, CompileError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        self.index(pointer)?;
        let mut todo = Vec::new();
        let root = self.node_at(pointer, schemas, &mut todo);
        loop {
            while let Some((p, n)) = todo.pop() {
                self.build(&p, n, schemas, &mut todo)?;
            }
            // Every resource's dynamic anchors that a `$dynamicRef` may land on.
            for name in self.dynamic_names.clone() {
                for r in 0..self.resources.len() {
                    let targets: Vec<String> = self
                        .res(r)
                        .dynamic_anchors
                        .iter()
                        .filter(|(n, _)| *n == name)
                        .map(|(_, p)| p.clone())
                        .collect();
                    for p in targets {
                        let n = self.node_at(&p, schemas, &mut todo);
                        if schemas.dynamic.len() <= r {
                            schemas.dynamic.resize_with(r + 1, Vec::new);
                        }
                        if let Some(list) = schemas.dynamic.get_mut(r) {
                            if !list.iter().any(|(x, _)| *x == name) {
                                list.push((name.clone(), n));
                            }
                        }
                    }
                }
            }
            if todo.is_empty() {
                break;
            }
        }
        if schemas.dynamic.len() < self.resources.len() {
            schemas.dynamic.resize_with(self.resources.len(), Vec::new);
        }
        Ok(SchemaIndex(root))
    }

    /// The node for `pointer`, allocated (and queued to be built) on first use.
    fn node_at(
        &mut self,
        pointer: &str,
        schemas: &mut Schemas,
        todo: &mut Vec<(String, usize)>,
    ) -> usize {
        if let Some(&n) = self.compiled.get(pointer) {
            return n;
        }
        let n = schemas.nodes.len();
        schemas.nodes.push(Node::default());
        self.compiled.insert(pointer.to_string(), n);
        todo.push((pointer.to_string(), n));
        n
    }

    /// Resolves a reference written at `pointer` to the pointer of its target.
    fn resolve(
        &mut self,
        pointer: &str,
        reference: &str,
    ) -> Result<(String, Option<String>), CompileError> {
        let base = self.res(self.resource_of(pointer)).uri.clone();
        let absolute = uri::resolve(&base, reference);
        let (u, fragment) = uri::split_fragment(&absolute);
        let Some(&r) = self.by_uri.get(u) else {
            return Err(fault(
                pointer,
                format!(
                    "remote references are not supported (`{reference}` is not in the document)"
                ),
            ));
        };
        let root = self.res(r).pointer.clone();
        let (target, anchor) = match fragment {
            None => (root, None),
            Some(f) if f.starts_with('/') => (format!("{root}{f}"), None),
            Some(name) => {
                let Some((_, p)) = self.res(r).anchors.iter().find(|(n, _)| *n == name) else {
                    return Err(fault(
                        pointer,
                        format!("reference `{reference}`: no anchor `{name}`"),
                    ));
                };
                let dynamic = self.res(r).dynamic_anchors.iter().any(|(n, _)| *n == name);
                (p.clone(), dynamic.then_some(name))
            }
        };
        if self.doc.pointer(&target).is_none() {
            return Err(fault(
                pointer,
                format!("reference `{reference}` does not resolve"),
            ));
        }
        self.index(&target)?;
        Ok((target, anchor))
    }

    fn build(
        &mut self,
        pointer: &str,
        n: usize,
        schemas: &mut Schemas,
        todo: &mut Vec<(String, usize)>,
    ) -> Result<(), CompileError> {
        self.index(pointer)?;
        let resource = self.resource_of(pointer);
        let doc = Rc::clone(&self.doc);
        let value = doc.pointer(pointer);
        let mut node = Node {
            resource,
            ..Node::default()
        };
        let obj = match value {
            Some(Value::Bool(b)) => {
                node.boolean = Some(*b);
                put(schemas, n, node);
                return Ok(());
            }
            Some(Value::Object(obj)) => obj,
            Some(_) => return Err(fault(pointer, "a schema must be an object or a boolean")),
            None => return Err(fault(pointer, "no schema at this location")),
        };
        let at = |k: &str| format!("{pointer}/{}", escape(k));
        let sub = |c: &mut Compiler,
                   p: String,
                   schemas: &mut Schemas,
                   todo: &mut Vec<(String, usize)>|
         -> Result<usize, CompileError> {
            match c.doc.pointer(&p) {
                Some(Value::Object(_) | Value::Bool(_)) => Ok(c.node_at(&p, schemas, todo)),
                _ => Err(fault(&p, "a schema must be an object or a boolean")),
            }
        };

        if let Some(t) = obj.get("type") {
            node.types = types(t).ok_or_else(|| {
                fault(
                    &at("type"),
                    "`type` must be a type name or an array of distinct type names",
                )
            })?;
        }
        if let Some(e) = obj.get("enum") {
            let Value::Array(list) = e else {
                return Err(fault(&at("enum"), "`enum` must be an array"));
            };
            node.enumeration = Some(list.clone());
        }
        if let Some(c) = obj.get("const") {
            node.constant = Some(c.clone());
        }
        if let Some(r) = obj.get("$ref") {
            let Value::String(r) = r else {
                return Err(fault(&at("$ref"), "`$ref` must be a string"));
            };
            let (target, _) = self.resolve(pointer, r)?;
            node.reference = Some(self.node_at(&target, schemas, todo));
        }
        if let Some(r) = obj.get("$dynamicRef") {
            let Value::String(r) = r else {
                return Err(fault(&at("$dynamicRef"), "`$dynamicRef` must be a string"));
            };
            let (target, anchor) = self.resolve(pointer, r)?;
            let t = self.node_at(&target, schemas, todo);
            if let Some(name) = &anchor {
                if !self.dynamic_names.contains(name) {
                    self.dynamic_names.push(name.clone());
                }
            }
            node.dynamic_reference = Some((t, anchor));
        }

        // Numbers.
        let mut num = NumberChecks::default();
        for (k, slot) in [
            ("minimum", &mut num.minimum),
            ("maximum", &mut num.maximum),
            ("exclusiveMinimum", &mut num.exclusive_minimum),
            ("exclusiveMaximum", &mut num.exclusive_maximum),
            ("multipleOf", &mut num.multiple_of),
        ] {
            if let Some(v) = obj.get(k) {
                let Value::Number(x) = v else {
                    return Err(fault(&at(k), format!("`{k}` must be a number")));
                };
                if k == "multipleOf" && x.as_f64().is_none_or(|f| f <= 0.0) {
                    return Err(fault(&at(k), "`multipleOf` must be greater than 0"));
                }
                *slot = Some(x.clone());
            }
        }
        if num.minimum.is_some()
            || num.maximum.is_some()
            || num.exclusive_minimum.is_some()
            || num.exclusive_maximum.is_some()
            || num.multiple_of.is_some()
        {
            node.number = Some(Box::new(num));
        }

        // Strings.
        let mut s = StringChecks {
            min_length: count(obj, "minLength", pointer)?,
            max_length: count(obj, "maxLength", pointer)?,
            pattern: None,
        };
        if let Some(p) = obj.get("pattern") {
            let Value::String(p) = p else {
                return Err(fault(&at("pattern"), "`pattern` must be a string"));
            };
            s.pattern =
                Some(Regex::new(p).map_err(|e| fault(&at("pattern"), format!("`pattern`: {e}")))?);
        }
        if s.min_length.is_some() || s.max_length.is_some() || s.pattern.is_some() {
            node.string = Some(Box::new(s));
        }
        if let Some(f) = obj.get("format") {
            let Value::String(f) = f else {
                return Err(fault(&at("format"), "`format` must be a string"));
            };
            if let Some((_, check)) = self.formats.iter().find(|(n, _)| n == f) {
                node.format = Some(Format::Custom(*check));
            } else if self.assert_formats {
                if f == "regex" {
                    node.format = Some(Format::Regex);
                } else if crate::format::check(f, "").is_some() {
                    node.format = Some(Format::Builtin(f.clone()));
                }
            }
        }

        // Arrays.
        let mut a = ArrayChecks {
            min_contains: count(obj, "minContains", pointer)?,
            max_contains: count(obj, "maxContains", pointer)?,
            min_items: count(obj, "minItems", pointer)?,
            max_items: count(obj, "maxItems", pointer)?,
            ..ArrayChecks::default()
        };
        if let Some(p) = obj.get("prefixItems") {
            let Value::Array(list) = p else {
                return Err(fault(
                    &at("prefixItems"),
                    "`prefixItems` must be an array of schemas",
                ));
            };
            for i in 0..list.len() {
                a.prefix_items.push(sub(
                    self,
                    format!("{}/{i}", at("prefixItems")),
                    schemas,
                    todo,
                )?);
            }
        }
        if obj.contains_key("items") {
            a.items = Some(sub(self, at("items"), schemas, todo)?);
        }
        if obj.contains_key("contains") {
            a.contains = Some(sub(self, at("contains"), schemas, todo)?);
        }
        if let Some(u) = obj.get("uniqueItems") {
            a.unique_items = u
                .as_bool()
                .ok_or_else(|| fault(&at("uniqueItems"), "`uniqueItems` must be a boolean"))?;
        }
        if !a.prefix_items.is_empty()
            || a.items.is_some()
            || a.contains.is_some()
            || a.min_items.is_some()
            || a.max_items.is_some()
            || a.unique_items
        {
            node.array = Some(Box::new(a));
        }

        // Objects.
        let mut o = ObjectChecks {
            min_properties: count(obj, "minProperties", pointer)?,
            max_properties: count(obj, "maxProperties", pointer)?,
            ..ObjectChecks::default()
        };
        for (k, is_pattern) in [
            ("properties", false),
            ("patternProperties", true),
            ("dependentSchemas", false),
        ] {
            let Some(m) = obj.get(k) else { continue };
            let Value::Object(m) = m else {
                return Err(fault(&at(k), format!("`{k}` must be an object of schemas")));
            };
            for name in m.keys() {
                let idx = sub(self, format!("{}/{}", at(k), escape(name)), schemas, todo)?;
                if is_pattern {
                    let re = Regex::new(name)
                        .map_err(|e| fault(&at(k), format!("`patternProperties` `{name}`: {e}")))?;
                    o.pattern_properties.push((re, idx));
                } else if k == "properties" {
                    o.properties.push((name.clone(), idx));
                } else {
                    o.dependent_schemas.push((name.clone(), idx));
                }
            }
        }
        // Draft 7's `dependencies`, as documents written for it use it: an array of names is
        // `dependentRequired`, a schema `dependentSchemas`.
        if let Some(d) = obj.get("dependencies") {
            let Value::Object(d) = d else {
                return Err(fault(
                    &at("dependencies"),
                    "`dependencies` must be an object",
                ));
            };
            for (name, dep) in d {
                if dep.is_array() {
                    let list = strings(dep).ok_or_else(|| {
                        fault(
                            &at("dependencies"),
                            "`dependencies` arrays must hold distinct strings",
                        )
                    })?;
                    o.dependent_required.push((name.clone(), list));
                } else {
                    let idx = sub(
                        self,
                        format!("{}/{}", at("dependencies"), escape(name)),
                        schemas,
                        todo,
                    )?;
                    o.dependent_schemas.push((name.clone(), idx));
                }
            }
        }
        o.properties.sort_by(|x, y| x.0.cmp(&y.0));
        if obj.contains_key("additionalProperties") {
            o.additional_properties = Some(sub(self, at("additionalProperties"), schemas, todo)?);
        }
        if obj.contains_key("propertyNames") {
            o.property_names = Some(sub(self, at("propertyNames"), schemas, todo)?);
        }
        if let Some(r) = obj.get("required") {
            o.required = strings(r).ok_or_else(|| {
                fault(
                    &at("required"),
                    "`required` must be an array of distinct strings",
                )
            })?;
        }
        if let Some(d) = obj.get("dependentRequired") {
            let Value::Object(d) = d else {
                return Err(fault(
                    &at("dependentRequired"),
                    "`dependentRequired` must be an object of string arrays",
                ));
            };
            for (name, list) in d {
                let list = strings(list).ok_or_else(|| {
                    fault(
                        &at("dependentRequired"),
                        "`dependentRequired` must be an object of string arrays",
                    )
                })?;
                o.dependent_required.push((name.clone(), list));
            }
        }
        if !o.properties.is_empty()
            || !o.pattern_properties.is_empty()
            || o.additional_properties.is_some()
            || o.property_names.is_some()
            || !o.required.is_empty()
            || !o.dependent_required.is_empty()
            || !o.dependent_schemas.is_empty()
            || o.min_properties.is_some()
            || o.max_properties.is_some()
        {
            node.object = Some(Box::new(o));
        }

        // Applicators.
        for (k, list) in [("allOf", 0), ("anyOf", 1), ("oneOf", 2)] {
            let Some(v) = obj.get(k) else { continue };
            let Value::Array(items) = v else {
                return Err(fault(
                    &at(k),
                    format!("`{k}` must be a non-empty array of schemas"),
                ));
            };
            if items.is_empty() {
                return Err(fault(
                    &at(k),
                    format!("`{k}` must be a non-empty array of schemas"),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for i in 0..items.len() {
                out.push(sub(self, format!("{}/{i}", at(k)), schemas, todo)?);
            }
            match list {
                0 => node.all_of = out,
                1 => node.any_of = out,
                _ => node.one_of = out,
            }
        }
        if obj.contains_key("not") {
            node.not = Some(sub(self, at("not"), schemas, todo)?);
        }
        if obj.contains_key("if") {
            let i = sub(self, at("if"), schemas, todo)?;
            let t = if obj.contains_key("then") {
                Some(sub(self, at("then"), schemas, todo)?)
            } else {
                None
            };
            let e = if obj.contains_key("else") {
                Some(sub(self, at("else"), schemas, todo)?)
            } else {
                None
            };
            node.condition = Some((i, t, e));
        }
        if obj.contains_key("unevaluatedProperties") {
            node.unevaluated_properties =
                Some(sub(self, at("unevaluatedProperties"), schemas, todo)?);
            schemas.uses_unevaluated = true;
        }
        if obj.contains_key("unevaluatedItems") {
            node.unevaluated_items = Some(sub(self, at("unevaluatedItems"), schemas, todo)?);
            schemas.uses_unevaluated = true;
        }
        put(schemas, n, node);
        Ok(())
    }
}

fn put(schemas: &mut Schemas, n: usize, node: Node) {
    if let Some(slot) = schemas.nodes.get_mut(n) {
        *slot = node;
    }
}

fn types(v: &Value) -> Option<u8> {
    match v {
        Value::String(s) => type_bit(s),
        Value::Array(list) => {
            let mut bits = 0u8;
            for t in list {
                let b = type_bit(t.as_str()?)?;
                if bits & b != 0 {
                    return None;
                }
                bits |= b;
            }
            // An empty list allows nothing: keep it distinct from "any" (0).
            Some(if list.is_empty() { 0x80 } else { bits })
        }
        _ => None,
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    let Value::Array(list) = v else { return None };
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for s in list {
        let s = s.as_str()?;
        if out.iter().any(|x| x == s) {
            return None;
        }
        out.push(s.to_string());
    }
    Some(out)
}

/// A non-negative integer keyword (`2.0` counts, as draft 2020-12 reads integers).
fn count(obj: &Map<String, Value>, k: &str, pointer: &str) -> Result<Option<usize>, CompileError> {
    let Some(v) = obj.get(k) else { return Ok(None) };
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| {
                    if f > u64::MAX as f64 {
                        u64::MAX
                    } else {
                        f as u64
                    }
                })
        }),
        _ => None,
    };
    let Some(n) = n else {
        return Err(fault(
            &format!("{pointer}/{}", escape(k)),
            format!("`{k}` must be a non-negative integer"),
        ));
    };
    Ok(Some(usize::try_from(n).unwrap_or(usize::MAX)))
}
