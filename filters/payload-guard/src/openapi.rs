//! The OpenAPI document: read (a JSON object, or its text in JSON or YAML), checked, its schemas
//! compiled once, and its operations laid out for lookup by method and path.

use std::collections::HashSet;

use serde_json::{Map, Value};
use shieldwall_core::ConfigError;
use shieldwall_jsonschema::{SchemaIndex, Schemas};

use crate::config::{AdditionalProperties, Formats};
use crate::schema::{self, escape, Dialect, Fault};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Where a parameter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    pub fn name(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

/// How a parameter's text becomes a value (OpenAPI's `style`; `explode` is kept beside it).
/// Which styles a location takes is checked when the document is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Query and cookie: `name=a,b` (or, exploded, `name=a&name=b`; an exploded object is one
    /// query parameter per property).
    Form,
    /// Query: `name=a%20b` (exploded: as `form`).
    SpaceDelimited,
    /// Query: `name=a|b` (exploded: as `form`).
    PipeDelimited,
    /// Query, objects: `name[key]=value`.
    DeepObject,
    /// Path and header: `a,b` (an exploded object `k=v,k2=v2`).
    Simple,
    /// Path: `.a,b` (exploded `.a.b`).
    Label,
    /// Path: `;name=a,b` (exploded `;name=a;name=b`, an exploded object `;k=v;k2=v2`).
    Matrix,
}

impl Style {
    fn parse(name: &str) -> Option<Style> {
        Some(match name {
            "form" => Style::Form,
            "spaceDelimited" => Style::SpaceDelimited,
            "pipeDelimited" => Style::PipeDelimited,
            "deepObject" => Style::DeepObject,
            "simple" => Style::Simple,
            "label" => Style::Label,
            "matrix" => Style::Matrix,
            _ => return None,
        })
    }
}

/// The JSON type a parameter's text is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    String,
    Integer,
    Number,
    Boolean,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    Scalar(Scalar),
    Array(Scalar),
    /// An object: its declared properties and the type each one's text is read as (others are
    /// read as strings).
    Object(Vec<(String, Scalar)>),
    /// No schema, or one without a `type` to tell: the text is checked as a string.
    Other,
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub location: In,
    pub required: bool,
    pub style: Style,
    pub explode: bool,
    pub shape: Shape,
    /// The compiled schema and its pointer in the document.
    pub schema: Option<(SchemaIndex, String)>,
}

#[derive(Clone, Debug)]
pub struct Media {
    /// `type/subtype`, `type/*` or `*/*`, lower case.
    pub range: String,
    pub schema: Option<(SchemaIndex, String)>,
}

#[derive(Clone, Debug)]
pub struct Body {
    pub required: bool,
    pub media: Vec<Media>,
}

#[derive(Clone, Debug)]
pub struct Operation {
    /// `operationId`, or `METHOD template`.
    pub id: String,
    pub method: String,
    pub params: Vec<Param>,
    pub body: Option<Body>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

#[derive(Clone, Debug)]
struct PathEntry {
    template: String,
    /// Segments of pieces; a segment of one `Text` is a literal.
    segments: Vec<Vec<Piece>>,
    operations: Vec<Operation>,
}

/// Why a request has no operation.
#[derive(Clone, Debug)]
pub enum Lookup<'a> {
    Found(&'a Operation, Vec<(String, String)>),
    /// The path exists with other methods (for `Allow`).
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// A compiled document.
pub struct Api {
    pub dialect: Dialect,
    /// The document as compiled (3.0 schemas translated, closed schemas closed), for the
    /// injection checks that follow the schema.
    pub doc: Value,
    pub schemas: Schemas,
    /// Property and parameter names the document declares: the only names a reply may print.
    pub known_names: HashSet<String>,
    /// The injection checks' schema walk, remembered per schema location.
    pub walk: crate::inject::WalkCache,
    base_paths: Vec<String>,
    paths: Vec<PathEntry>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("dialect", &self.dialect)
            .field("base_paths", &self.base_paths)
            .field("paths", &self.paths.len())
            .finish()
    }
}

fn fault(pointer: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(
        "",
        format!("at {}: {}", display_pointer(pointer), reason.into()),
    )
}

fn display_pointer(p: &str) -> &str {
    if p.is_empty() {
        "the document root"
    } else {
        p
    }
}

impl From<Fault> for ConfigError {
    fn from(f: Fault) -> ConfigError {
        fault(&f.pointer, f.reason)
    }
}

/// Reads the document from the configuration's `openapi` value.
pub fn load(value: &Value) -> Result<Value, ConfigError> {
    match value {
        Value::Object(_) => Ok(value.clone()),
        Value::String(text) => {
            let t = text.trim_start();
            if t.starts_with('{') {
                serde_json::from_str(t)
                    .map_err(|e| ConfigError::new("", format!("not a JSON document: {e}")))
            } else {
                let y: serde_yaml::Value = serde_yaml::from_str(t)
                    .map_err(|e| ConfigError::new("", format!("not a YAML document: {e}")))?;
                yaml_to_json(y, 0)
            }
        }
        _ => Err(ConfigError::new(
            "",
            "the OpenAPI document as an object, or its text in JSON or YAML",
        )),
    }
}

/// YAML to JSON: keys become strings (`200:` is the key `"200"`), tags are refused.
fn yaml_to_json(v: serde_yaml::Value, depth: usize) -> Result<Value, ConfigError> {
    use serde_yaml::Value as Y;
    if depth > 256 {
        return Err(ConfigError::new(
            "",
            "the YAML document is nested too deeply",
        ));
    }
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| ConfigError::new("", "a YAML number is not finite"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(|i| yaml_to_json(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err(ConfigError::new("", "a YAML key is not a scalar")),
                };
                out.insert(key, yaml_to_json(v, depth + 1)?);
            }
            Value::Object(out)
        }
        Y::Tagged(_) => return Err(ConfigError::new("", "YAML tags are not supported")),
    })
}

/// Follows `$ref` objects (not schemas: parameters, request bodies, path items) to their target.
fn deref(doc: &Value, mut ptr: String) -> Result<(String, &Value), ConfigError> {
    for _ in 0..16 {
        let v = schema::at(doc, &ptr).ok_or_else(|| fault(&ptr, "nothing at this location"))?;
        match v.get("$ref") {
            Some(Value::String(r)) => {
                let target = r.strip_prefix('#').ok_or_else(|| {
                    fault(
                        &format!("{ptr}/$ref"),
                        "remote references are not supported: every `$ref` must point into the document",
                    )
                })?;
                ptr = target.to_string();
            }
            Some(_) => return Err(fault(&format!("{ptr}/$ref"), "`$ref` must be a string")),
            None => return Ok((ptr, v)),
        }
    }
    Err(fault(&ptr, "too many references in a row (a cycle?)"))
}

/// Checks every `$ref` of the document: a string pointing into the document.
fn check_refs(v: &Value, ptr: &mut String) -> Result<(), ConfigError> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&escape(k));
                if k == "$ref" {
                    match child {
                        Value::String(r) if r.contains("://") || r.starts_with("//") => {
                            return Err(fault(
                                ptr,
                                "remote references are not supported: every `$ref` must point into the document",
                            ))
                        }
                        Value::String(_) | Value::Object(_) => {}
                        _ => return Err(fault(ptr, "`$ref` must be a string")),
                    }
                }
                check_refs(child, ptr)?;
                ptr.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = ptr.len();
                ptr.push_str(&format!("/{i}"));
                check_refs(child, ptr)?;
                ptr.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The path part of a server URL (`https://api.example.com/v1` → `/v1`), variables replaced by
/// their defaults; `""` for the root.
fn server_base(url: &str, vars: Option<&Map<String, Value>>) -> Option<String> {
    let mut text = url.to_string();
    if let Some(vars) = vars {
        for (name, var) in vars {
            let default = var.get("default").and_then(Value::as_str).unwrap_or("");
            text = text.replace(&format!("{{{name}}}"), default);
        }
    }
    let path = match text.find("://") {
        Some(i) => {
            let rest = text.get(i + 3..).unwrap_or("");
            rest.find('/').map_or("", |j| rest.get(j..).unwrap_or(""))
        }
        None => text.as_str(),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Some(String::new());
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    shieldwall_core::route::normalize_path(&path, Default::default())
        .ok()
        .map(|p| p.trim_end_matches('/').to_string())
}

fn parse_template(template: &str, ptr: &str) -> Result<Vec<Vec<Piece>>, ConfigError> {
    let rest = template
        .strip_prefix('/')
        .ok_or_else(|| fault(ptr, "a path must start with `/`"))?;
    let mut segments = Vec::new();
    for seg in rest.split('/') {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = seg.chars();
        while let Some(c) = chars.next() {
            if c == '{' {
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                if name.is_empty() {
                    return Err(fault(ptr, "an empty `{}` in the path template"));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                if matches!(pieces.last(), Some(Piece::Var(_))) {
                    return Err(fault(ptr, "two path variables must be separated by text"));
                }
                pieces.push(Piece::Var(name));
            } else if c == '}' {
                return Err(fault(ptr, "an unmatched `}` in the path template"));
            } else {
                text.push(c);
            }
        }
        if !text.is_empty() || pieces.is_empty() {
            pieces.push(Piece::Text(text));
        }
        segments.push(pieces);
    }
    Ok(segments)
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let h = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(h) = h {
                out.push(h);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Matches one segment's pieces against text; variables take at least one character.
fn match_pieces(pieces: &[Piece], text: &str, out: &mut Vec<(String, String)>) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Text(t), rest)) => text
            .strip_prefix(t.as_str())
            .is_some_and(|after| match_pieces(rest, after, out)),
        Some((Piece::Var(name), rest)) => {
            if rest.is_empty() {
                if text.is_empty() {
                    return false;
                }
                out.push((name.clone(), text.to_string()));
                return true;
            }
            // The longest value that lets the rest match (`{name}.{ext}` on `a.b.json`: `a.b`).
            for (i, _) in text
                .char_indices()
                .skip(1)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                let (value, after) = text.split_at(i);
                let mark = out.len();
                if match_pieces(rest, after, out) {
                    out.insert(mark, (name.clone(), value.to_string()));
                    return true;
                }
                out.truncate(mark);
            }
            false
        }
    }
}

impl PathEntry {
    /// Captured variables when the path (below the base path) matches, as written (still
    /// percent-encoded: their style's delimiters are found before decoding).
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut vars = Vec::new();
        for (pieces, part) in self.segments.iter().zip(&parts) {
            if !match_pieces(pieces, part, &mut vars) {
                return None;
            }
        }
        Some(vars)
    }

    /// Literal segments first: concrete paths win over templated ones (OpenAPI's rule).
    fn specificity(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|p| match p.as_slice() {
                [Piece::Text(_)] => 2,
                ps if ps.iter().any(|p| matches!(p, Piece::Text(_))) => 1,
                _ => 0,
            })
            .collect()
    }
}

fn scalar_of(t: Option<&Value>) -> Option<Scalar> {
    let name = match t {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null")?,
        _ => return None,
    };
    Some(match name {
        "integer" => Scalar::Integer,
        "number" => Scalar::Number,
        "boolean" => Scalar::Boolean,
        "string" => Scalar::String,
        _ => return None,
    })
}

/// The type an object property's text is read as (following one local `$ref`).
fn property_scalar(doc: &Value, schema: &Value) -> Scalar {
    let target = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r.strip_prefix('#').and_then(|t| schema::at(doc, t)),
        None => Some(schema),
    };
    target
        .and_then(|t| scalar_of(t.get("type")))
        .unwrap_or(Scalar::String)
}

/// Follows `$ref`s of a schema to read its `type` (for reading parameter text).
fn schema_shape(doc: &Value, ptr: &str) -> Shape {
    let mut cur = ptr.to_string();
    for _ in 0..16 {
        let Some(s) = schema::at(doc, &cur) else {
            return Shape::Other;
        };
        if let Some(Value::String(r)) = s.get("$ref") {
            match r.strip_prefix('#') {
                Some(t) => {
                    cur = t.to_string();
                    continue;
                }
                None => return Shape::Other,
            }
        }
        let is_array = match s.get("type") {
            Some(Value::String(t)) => t == "array",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "array"),
            _ => false,
        };
        if is_array {
            let items = s.get("items");
            let item_type = match items.and_then(|i| i.get("$ref")).and_then(Value::as_str) {
                Some(r) => r
                    .strip_prefix('#')
                    .and_then(|t| schema::at(doc, t))
                    .and_then(|t| scalar_of(t.get("type"))),
                None => items.and_then(|i| scalar_of(i.get("type"))),
            };
            return Shape::Array(item_type.unwrap_or(Scalar::String));
        }
        let is_object = match s.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
            _ => false,
        };
        if is_object {
            let props = s
                .get("properties")
                .and_then(Value::as_object)
                .map(|props| {
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), property_scalar(doc, v)))
                        .collect()
                })
                .unwrap_or_default();
            return Shape::Object(props);
        }
        return match scalar_of(s.get("type")) {
            Some(sc) => Shape::Scalar(sc),
            None => Shape::Other,
        };
    }
    Shape::Other
}

/// A parameter as declared, before its schema is compiled.
#[derive(Clone)]
struct ParamDecl {
    name: String,
    location: In,
    required: bool,
    style: Style,
    explode: bool,
    shape: Shape,
    schema_ptr: Option<String>,
}

/// Whether a location takes a style for a parameter of this shape; the reason when not.
fn style_fits(location: In, style: Style, shape: &Shape) -> Result<(), &'static str> {
    let object = matches!(shape, Shape::Object(_));
    let scalar = matches!(shape, Shape::Scalar(_));
    match (location, style) {
        (In::Path, Style::Simple | Style::Label | Style::Matrix) => Ok(()),
        (In::Path, _) => Err("a path parameter takes the styles simple, label and matrix"),
        (In::Header, Style::Simple) => Ok(()),
        (In::Header, _) => Err("a header parameter takes the style simple"),
        (In::Cookie, Style::Form) if !object => Ok(()),
        (In::Cookie, Style::Form) => Err("an object in a cookie parameter is not supported"),
        (In::Cookie, _) => Err("a cookie parameter takes the style form"),
        (In::Query, Style::Form) => Ok(()),
        (In::Query, Style::SpaceDelimited | Style::PipeDelimited) if !scalar => Ok(()),
        (In::Query, Style::SpaceDelimited | Style::PipeDelimited) => {
            Err("spaceDelimited and pipeDelimited apply to arrays and objects")
        }
        (In::Query, Style::DeepObject) if object => Ok(()),
        (In::Query, Style::DeepObject) => Err("deepObject applies to objects"),
        (In::Query, _) => Err(
            "a query parameter takes the styles form, spaceDelimited, pipeDelimited and deepObject",
        ),
    }
}

fn param_decl(doc: &Value, ptr: String) -> Result<ParamDecl, ConfigError> {
    let (ptr, p) = deref(doc, ptr)?;
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| fault(&ptr, "a parameter needs a `name`"))?
        .to_string();
    let location = match p.get("in").and_then(Value::as_str) {
        Some("path") => In::Path,
        Some("query") => In::Query,
        Some("header") => In::Header,
        Some("cookie") => In::Cookie,
        _ => return Err(fault(&ptr, "`in` must be path, query, header or cookie")),
    };
    let required =
        location == In::Path || p.get("required").and_then(Value::as_bool).unwrap_or(false);
    let style_name = p.get("style").and_then(Value::as_str);
    let default_style = match location {
        In::Query | In::Cookie => "form",
        In::Path | In::Header => "simple",
    };
    let style_name = style_name.unwrap_or(default_style);
    let explode = p
        .get("explode")
        .and_then(Value::as_bool)
        .unwrap_or(style_name == "form");
    let style = Style::parse(style_name).ok_or_else(|| {
        fault(
            &format!("{ptr}/style"),
            format!("unknown parameter style `{style_name}`"),
        )
    })?;
    let schema_ptr = if p.get("schema").is_some() {
        Some(format!("{ptr}/schema"))
    } else if p.get("content").is_some() {
        // A parameter described by `content` (a JSON value in a query parameter) would be
        // checked as plain text: refused rather than half checked.
        return Err(fault(
            &format!("{ptr}/content"),
            "parameters described by `content` are not supported; describe the value with `schema`",
        ));
    } else {
        None
    };
    let shape = schema_ptr
        .as_deref()
        .map_or(Shape::Other, |s| schema_shape(doc, s));
    if let Err(why) = style_fits(location, style, &shape) {
        return Err(fault(&format!("{ptr}/style"), why));
    }
    if style == Style::Form && explode && location == In::Query {
        if let Shape::Object(props) = &shape {
            if props.is_empty() {
                return Err(fault(
                    &format!("{ptr}/schema"),
                    "an exploded form object is read from its properties' query parameters: declare its `properties`",
                ));
            }
        }
    }
    let name = if location == In::Header {
        name.to_ascii_lowercase()
    } else {
        name
    };
    Ok(ParamDecl {
        name,
        location,
        required,
        style,
        explode,
        shape,
        schema_ptr,
    })
}

struct OpDecl {
    id: String,
    method: String,
    params: Vec<ParamDecl>,
    body_required: bool,
    media: Option<Vec<(String, Option<String>)>>,
}

impl Api {
    /// Reads, checks and compiles a document; errors carry the JSON pointer of the fault.
    pub fn compile(
        value: &Value,
        additional: AdditionalProperties,
        formats: Formats,
    ) -> Result<Api, ConfigError> {
        let mut doc = load(value)?;
        let dialect = match doc.get("openapi").and_then(Value::as_str) {
            Some(v) if v.starts_with("3.0.") => Dialect::Oas30,
            Some(v) if v.starts_with("3.1.") => Dialect::Oas31,
            Some(_) => return Err(fault("/openapi", "only OpenAPI 3.0 and 3.1 are supported")),
            None => {
                return Err(fault(
                    "/openapi",
                    "no `openapi` version (Swagger 2.0 documents are not supported)",
                ))
            }
        };
        if dialect == Dialect::Oas31 {
            if let Some(d) = doc.get("jsonSchemaDialect").and_then(Value::as_str) {
                if !matches!(
                    d,
                    "https://spec.openapis.org/oas/3.1/dialect/base"
                        | "https://json-schema.org/draft/2020-12/schema"
                ) {
                    return Err(fault(
                        "/jsonSchemaDialect",
                        "only the draft 2020-12 dialect (and OpenAPI 3.1's base dialect) is supported",
                    ));
                }
            }
        }
        check_refs(&doc, &mut String::new())?;

        let base_paths = base_paths(&doc)?;
        let (mut entries, decls) = read_paths(&doc)?;

        // Every schema the requests use: the seeds of translation, closing and compiling.
        let mut seeds: Vec<String> = Vec::new();
        for ops in &decls {
            for op in ops {
                seeds.extend(op.params.iter().filter_map(|p| p.schema_ptr.clone()));
                for (_, s) in op.media.iter().flatten() {
                    seeds.extend(s.clone());
                }
            }
        }
        seeds.sort();
        seeds.dedup();
        let mut known = schema::prepare(&mut doc, dialect, additional, &seeds)?;
        let (schemas, compiled) = schema::compile(doc.clone(), formats, &seeds)?;
        let index_of = |ptr: &Option<String>| -> Option<(SchemaIndex, String)> {
            let p = ptr.as_ref()?;
            let i = seeds.binary_search(p).ok()?;
            compiled.get(i).map(|idx| (*idx, p.clone()))
        };
        for (entry, ops) in entries.iter_mut().zip(decls) {
            for op in ops {
                let params = op
                    .params
                    .into_iter()
                    .map(|d| {
                        known.insert(d.name.clone());
                        Param {
                            schema: index_of(&d.schema_ptr),
                            name: d.name,
                            location: d.location,
                            required: d.required,
                            style: d.style,
                            explode: d.explode,
                            shape: d.shape,
                        }
                    })
                    .collect();
                let body = op.media.map(|media| Body {
                    required: op.body_required,
                    media: media
                        .into_iter()
                        .map(|(range, s)| Media {
                            range,
                            schema: index_of(&s),
                        })
                        .collect(),
                });
                entry.operations.push(Operation {
                    id: op.id,
                    method: op.method,
                    params,
                    body,
                });
            }
        }
        Ok(Api {
            dialect,
            doc,
            schemas,
            known_names: known,
            walk: crate::inject::WalkCache::default(),
            base_paths,
            paths: entries,
        })
    }

    /// Finds the operation for a method and a normalised path.
    pub fn lookup(&self, method: &str, path: &str) -> Lookup<'_> {
        let mut best: Option<(&PathEntry, Vec<(String, String)>)> = None;
        let mut allowed: Vec<String> = Vec::new();
        let method_lc = method.to_ascii_lowercase();
        for base in &self.base_paths {
            let below = if base.is_empty() {
                Some(path)
            } else {
                path.strip_prefix(base.as_str())
                    .filter(|rest| rest.starts_with('/') || rest.is_empty())
                    .map(|rest| if rest.is_empty() { "/" } else { rest })
            };
            let Some(below) = below else { continue };
            for entry in &self.paths {
                let Some(vars) = entry.matches(below) else {
                    continue;
                };
                for op in &entry.operations {
                    if !allowed.contains(&op.method) {
                        allowed.push(op.method.clone());
                    }
                }
                let has = entry.operations.iter().any(|o| {
                    o.method == method_lc
                        || (method_lc == "head"
                            && o.method == "get"
                            && !entry.operations.iter().any(|o| o.method == "head"))
                });
                if !has {
                    continue;
                }
                let better = match &best {
                    None => true,
                    Some((b, _)) => entry.specificity() > b.specificity(),
                };
                if better {
                    best = Some((entry, vars));
                }
            }
        }
        match best {
            Some((entry, vars)) => {
                let op = entry
                    .operations
                    .iter()
                    .find(|o| o.method == method_lc)
                    .or_else(|| entry.operations.iter().find(|o| o.method == "get"));
                match op {
                    Some(op) => Lookup::Found(op, vars),
                    None => Lookup::NotFound,
                }
            }
            None if !allowed.is_empty() => {
                let mut list: Vec<String> =
                    allowed.iter().map(|m| m.to_ascii_uppercase()).collect();
                if list.iter().any(|m| m == "GET") && !list.iter().any(|m| m == "HEAD") {
                    list.push("HEAD".into());
                }
                list.sort();
                Lookup::MethodNotAllowed(list)
            }
            None => Lookup::NotFound,
        }
    }

    /// The number of operations (for the configuration log line).
    pub fn operation_count(&self) -> usize {
        self.paths.iter().map(|p| p.operations.len()).sum()
    }
}

fn base_paths(doc: &Value) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    if let Some(servers) = doc.get("servers") {
        let Value::Array(list) = servers else {
            return Err(fault("/servers", "must be an array"));
        };
        for (i, s) in list.iter().enumerate() {
            let url = s
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| fault(&format!("/servers/{i}"), "a server needs a `url`"))?;
            let base = server_base(url, s.get("variables").and_then(Value::as_object))
                .ok_or_else(|| fault(&format!("/servers/{i}/url"), "not a usable server URL"))?;
            if !out.contains(&base) {
                out.push(base);
            }
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    // The longest base path first.
    out.sort_by_key(|b| std::cmp::Reverse(b.len()));
    Ok(out)
}

type Decls = Vec<Vec<OpDecl>>;

fn read_paths(doc: &Value) -> Result<(Vec<PathEntry>, Decls), ConfigError> {
    let mut entries = Vec::new();
    let mut decls = Vec::new();
    let Some(paths) = doc.get("paths") else {
        return Ok((entries, decls));
    };
    let Value::Object(paths) = paths else {
        return Err(fault("/paths", "must be an object"));
    };
    for (template, _) in paths {
        if template.starts_with("x-") {
            continue;
        }
        let item_ptr = format!("/paths/{}", escape(template));
        let segments = parse_template(template, &item_ptr)?;
        let (item_ptr, item) = deref(doc, item_ptr)?;
        let Value::Object(item) = item else {
            return Err(fault(&item_ptr, "a path item must be an object"));
        };
        let mut shared = Vec::new();
        if let Some(Value::Array(list)) = item.get("parameters") {
            for i in 0..list.len() {
                shared.push(param_decl(doc, format!("{item_ptr}/parameters/{i}"))?);
            }
        }
        let mut ops = Vec::new();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let op_ptr = format!("{item_ptr}/{method}");
            if !op.is_object() {
                return Err(fault(&op_ptr, "an operation must be an object"));
            }
            let mut params: Vec<ParamDecl> = Vec::new();
            if let Some(Value::Array(list)) = op.get("parameters") {
                for i in 0..list.len() {
                    params.push(param_decl(doc, format!("{op_ptr}/parameters/{i}"))?);
                }
            }
            for s in &shared {
                if !params
                    .iter()
                    .any(|p| p.name == s.name && p.location == s.location)
                {
                    params.push(s.clone());
                }
            }
            // Every path variable must be declared, or the template could never be checked.
            for piece in segments.iter().flatten() {
                if let Piece::Var(v) = piece {
                    if !params
                        .iter()
                        .any(|p| p.location == In::Path && &p.name == v)
                    {
                        return Err(fault(
                            &op_ptr,
                            format!("the path variable `{v}` has no parameter"),
                        ));
                    }
                }
            }
            let (body_required, media) = match op.get("requestBody") {
                None => (false, None),
                Some(_) => {
                    let (rb_ptr, rb) = deref(doc, format!("{op_ptr}/requestBody"))?;
                    let required = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
                    let mut media = Vec::new();
                    if let Some(Value::Object(content)) = rb.get("content") {
                        for (range, m) in content {
                            let mt_ptr = format!("{rb_ptr}/content/{}", escape(range));
                            let range = range
                                .split(';')
                                .next()
                                .unwrap_or("")
                                .trim()
                                .to_ascii_lowercase();
                            let schema = m.get("schema").map(|_| format!("{mt_ptr}/schema"));
                            media.push((range, schema));
                        }
                    }
                    (required, Some(media))
                }
            };
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{} {template}", method.to_ascii_uppercase()));
            ops.push(OpDecl {
                id,
                method: method.to_string(),
                params,
                body_required,
                media,
            });
        }
        entries.push(PathEntry {
            template: template.clone(),
            segments,
            operations: Vec::new(),
        });
        decls.push(ops);
    }
    Ok((entries, decls))
}

impl Api {
    /// The templates of the document's paths (for logs and tests).
    pub fn templates(&self) -> Vec<&str> {
        self.paths.iter().map(|p| p.template.as_str()).collect()
    }
}
