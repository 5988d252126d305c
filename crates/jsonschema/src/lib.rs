//! shieldwall-jsonschema: JSON Schema draft 2020-12 validation, small enough for a wasm module.
//!
//! payload-guard validates request bodies, parameters and headers against JSON Schemas (its own
//! or an OpenAPI document's). This crate is the validator it links: the whole draft 2020-12
//! vocabulary (applicators, `unevaluatedProperties`/`unevaluatedItems`, `$ref`, `$dynamicRef`,
//! `$anchor`, `$id`-scoped resources), draft 7's `definitions` and `dependencies` for older
//! documents, and `format` as an assertion or an annotation. Patterns use
//! [`shieldwall_regex`], an ECMA-262 engine without Unicode tables that matches in linear time;
//! formats are [`format`]'s, written without the IDNA tables.
//!
//! ```
//! use serde_json::json;
//! use shieldwall_jsonschema::{Compiler, Schemas};
//!
//! let doc = json!({
//!     "type": "object",
//!     "required": ["id"],
//!     "properties": { "id": { "type": "integer", "minimum": 1 } },
//!     "additionalProperties": false
//! });
//! let mut schemas = Schemas::new();
//! let root = Compiler::new("https://example.com/order.json", doc).compile("", &mut schemas).unwrap();
//! assert!(schemas.is_valid(&json!({ "id": 7 }), root));
//! let errors = schemas.validate(&json!({ "id": 0, "note": "x" }), root).unwrap_err();
//! let keywords: Vec<&str> = errors.iter().map(|e| e.keyword()).collect();
//! assert_eq!(keywords, ["minimum", "additionalProperties"]);
//! ```
//!
//! # What it does not do
//!
//! - Nothing is loaded from outside the document: a `$ref` to another document (including the
//!   metaschemas) is a compile error, so a schema cannot make the gateway fetch anything.
//! - `$vocabulary` is not honoured: every keyword of the draft 2020-12 vocabularies applies.
//! - Limits keep a hostile or mistaken schema from looping or exhausting the stack: at most
//!   [`MAX_ERRORS`] errors are reported per validation, a chain of references that does not
//!   consume any of the instance is cut after 64 hops, and schemas nest at most 600 deep.

pub mod format;

mod compile;
mod uri;
mod validate;

use serde_json::Value;

pub use compile::{CompileError, Compiler};
pub use validate::{Error, Kind, Token, MAX_ERRORS};

/// A compiled schema inside a [`Schemas`]: what [`Compiler::compile`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SchemaIndex(usize);

/// A custom format check (for formats the [`format`] module does not know, such as OpenAPI's
/// `int32`): called with the instance, whatever its type.
pub type FormatCheck = fn(&Value) -> bool;

/// Compiled schemas: one or more compiled from one [`Compiler`], shared read-only afterwards.
#[derive(Default)]
pub struct Schemas {
    nodes: Vec<compile::Node>,
    /// For each schema resource, its dynamic anchors (name, node).
    dynamic: Vec<Vec<(String, usize)>>,
    /// Whether any schema uses `unevaluatedProperties` or `unevaluatedItems` (otherwise
    /// validation skips collecting what each keyword evaluated).
    uses_unevaluated: bool,
}

impl Schemas {
    pub fn new() -> Schemas {
        Schemas::default()
    }

    /// Validates `instance` against the schema `index`; on failure every error found (at most
    /// [`MAX_ERRORS`]), each with its keyword and where in the instance it is.
    pub fn validate(&self, instance: &Value, index: SchemaIndex) -> Result<(), Vec<Error>> {
        validate::validate(self, instance, index.0)
    }

    /// Whether `instance` is valid: the same answer as [`Schemas::validate`], faster, since it
    /// stops at the first failure and records nothing.
    pub fn is_valid(&self, instance: &Value, index: SchemaIndex) -> bool {
        validate::is_valid(self, instance, index.0)
    }
}
