//! What a failed validation reports (the keyword and the instance location of every failure),
//! what does not compile and why, and the limits that keep a schema from looping.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{json, Value};
use shieldwall_jsonschema::{Compiler, Error, Kind, Schemas, Token};

fn compile(schema: Value) -> (Schemas, shieldwall_jsonschema::SchemaIndex) {
    let mut c = Compiler::new("https://example.invalid/doc.json", schema);
    c.assert_formats(true);
    let mut s = Schemas::new();
    let idx = c.compile("", &mut s).unwrap();
    (s, idx)
}

fn failures(schema: Value, instance: Value) -> Vec<(String, &'static str)> {
    let (s, idx) = compile(schema);
    let errors = s.validate(&instance, idx).unwrap_err();
    assert!(!s.is_valid(&instance, idx));
    let mut out: Vec<(String, &'static str)> =
        errors.iter().map(|e| (place(e), e.keyword())).collect();
    out.sort();
    out
}

fn place(e: &Error) -> String {
    e.instance
        .iter()
        .map(|t| match t {
            Token::Prop(p) => format!("/{p}"),
            Token::Item(i) => format!("/{i}"),
        })
        .collect()
}

fn compile_error(schema: Value) -> String {
    let mut c = Compiler::new("https://example.invalid/doc.json", schema);
    let mut s = Schemas::new();
    match c.compile("", &mut s) {
        Ok(_) => panic!("compiled"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_failure_is_reported_where_it_is() {
    let schema = json!({
        "type": "object",
        "required": ["id", "lines"],
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            "lines": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "properties": {"qty": {"type": "integer", "minimum": 1, "maximum": 10},
                               "sku": {"type": "string", "maxLength": 5}},
                "additionalProperties": false
            }},
            "when": {"type": "string", "format": "date"}
        }
    });
    let got = failures(
        schema,
        json!({"id": "abc", "lines": [{"qty": 0, "sku": "toolong", "x": 1}, {"qty": 2.5}], "when": "2024-02-30"}),
    );
    assert_eq!(
        got,
        vec![
            ("/id".into(), "pattern"),
            ("/lines/0/qty".into(), "minimum"),
            ("/lines/0/sku".into(), "maxLength"),
            ("/lines/0/x".into(), "additionalProperties"),
            ("/lines/1/qty".into(), "type"),
            ("/when".into(), "format"),
        ]
    );
}

#[test]
fn alternatives_are_reported_once_where_they_apply() {
    let got = failures(
        json!({"properties": {"a": {"anyOf": [{"type": "string"}, {"minimum": 3}]},
                              "b": {"oneOf": [{"type": "integer"}, {"minimum": 0}]},
                              "c": {"not": {"type": "null"}},
                              "d": {"contains": {"const": 1}, "maxContains": 1}}}),
        json!({"a": 1, "b": 5, "c": null, "d": [1, 1]}),
    );
    assert_eq!(
        got,
        vec![
            ("/a".into(), "anyOf"),
            ("/b".into(), "oneOf"),
            ("/c".into(), "not"),
            ("/d".into(), "maxContains"),
        ]
    );
}

#[test]
fn closed_objects_report_each_unknown_member() {
    let schema = json!({
        "allOf": [{"properties": {"a": true}}, {"properties": {"b": true}}],
        "unevaluatedProperties": false
    });
    let (s, idx) = compile(schema);
    assert!(s.is_valid(&json!({"a": 1, "b": 2}), idx));
    let errors = s
        .validate(&json!({"a": 1, "c": 2, "d": 3}), idx)
        .unwrap_err();
    let kinds: Vec<(String, Kind)> = errors.iter().map(|e| (place(e), e.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("/c".into(), Kind::UnknownMember),
            ("/d".into(), Kind::UnknownMember)
        ]
    );
    // Items beyond `prefixItems` under `items: false`.
    let got = failures(
        json!({"prefixItems": [true], "items": false}),
        json!([1, 2, 3]),
    );
    assert_eq!(got, vec![("/1".into(), "items"), ("/2".into(), "items")]);
}

#[test]
fn annotations_come_from_every_applicator_that_passed() {
    let schema = json!({
        "properties": {"kind": {"enum": ["a", "b"]}},
        "if": {"properties": {"kind": {"const": "a"}}},
        "then": {"properties": {"alpha": {"type": "integer"}}},
        "else": {"properties": {"beta": {"type": "integer"}}},
        "anyOf": [{"properties": {"x": true}, "required": ["x"]}, {"properties": {"y": true}, "required": ["y"]}],
        "dependentSchemas": {"alpha": {"properties": {"extra": true}}},
        "unevaluatedProperties": false
    });
    let (s, idx) = compile(schema);
    assert!(s.is_valid(
        &json!({"kind": "a", "alpha": 1, "x": 1, "y": 2, "extra": 0}),
        idx
    ));
    assert!(!s.is_valid(&json!({"kind": "a", "beta": 1, "x": 1}), idx));
    assert!(s.is_valid(&json!({"kind": "b", "beta": 1, "y": 1}), idx));
    // A failed alternative contributes nothing.
    assert!(!s.is_valid(&json!({"kind": "b", "beta": 1, "x": "no-y", "z": 1}), idx));
}

#[test]
fn a_schema_that_loops_fails_instead_of_overflowing() {
    let (s, idx) = compile(
        json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
    );
    let errors = s.validate(&json!(1), idx).unwrap_err();
    assert_eq!(errors[0].kind, Kind::Cycle);
    assert!(!s.is_valid(&json!(1), idx));
    // Recursion that moves into the instance is fine as deep as documents go (payload-guard
    // reads bodies at most 128 levels deep); far deeper, it fails rather than exhaust the stack.
    // (A thread with room for the unoptimised test build's frames.)
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let (s, idx) = compile(json!({"type": "array", "items": {"$ref": "#"}}));
            let nest = |levels: usize| {
                let mut deep = json!([]);
                for _ in 0..levels {
                    deep = json!([deep]);
                }
                deep
            };
            assert!(s.is_valid(&nest(128), idx));
            let errors = s.validate(&nest(1000), idx).unwrap_err();
            assert_eq!(errors[0].kind, Kind::TooDeep);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn dynamic_references_follow_the_dynamic_scope() {
    let schema = json!({
        "$id": "https://example.invalid/strict",
        "$dynamicAnchor": "node",
        "$ref": "tree",
        "unevaluatedProperties": false,
        "$defs": {
            "tree": {
                "$id": "tree",
                "$dynamicAnchor": "node",
                "type": "object",
                "properties": {"data": true, "children": {"type": "array", "items": {"$dynamicRef": "#node"}}}
            }
        }
    });
    let (s, idx) = compile(schema);
    assert!(s.is_valid(&json!({"children": [{"data": 1}]}), idx));
    // The strict root's `node` is the outermost one: misspelled members are refused.
    assert!(!s.is_valid(&json!({"children": [{"daat": 1}]}), idx));
}

#[test]
fn numbers_compare_by_value() {
    let (s, idx) = compile(json!({"enum": [1, [2, {"a": 3}]], "multipleOf": 0.5}));
    assert!(s.is_valid(&json!(1.0), idx));
    assert!(s.is_valid(&json!([2.0, {"a": 3.0}]), idx));
    let (s, idx) =
        compile(json!({"maximum": 18446744073709551615_u64, "minimum": -9223372036854775808_i64}));
    assert!(s.is_valid(&json!(18446744073709551615_u64), idx));
    assert!(s.is_valid(&json!(-9223372036854775808_i64), idx));
    let (s, idx) = compile(json!({"type": "integer"}));
    assert!(s.is_valid(&json!(1.0), idx));
    assert!(!s.is_valid(&json!(1.5), idx));
    let (s, idx) = compile(json!({"multipleOf": 0.01}));
    assert!(s.is_valid(&json!(19.99), idx));
    assert!(!s.is_valid(&json!(19.995), idx));
}

#[test]
fn bad_keyword_values_do_not_compile() {
    for (schema, want) in [
        (
            json!({"minLength": -1}),
            "at /minLength: `minLength` must be a non-negative integer",
        ),
        (json!({"type": "float"}), "at /type:"),
        (json!({"type": ["string", "string"]}), "at /type:"),
        (json!({"required": "a"}), "at /required:"),
        (
            json!({"multipleOf": 0}),
            "at /multipleOf: `multipleOf` must be greater than 0",
        ),
        (
            json!({"properties": {"a": 1}}),
            "at /properties/a: a schema must be an object or a boolean",
        ),
        (json!({"allOf": []}), "at /allOf:"),
        (json!({"pattern": "("}), "at /pattern:"),
        (
            json!({"patternProperties": {"[": true}}),
            "at /patternProperties:",
        ),
        (
            json!({"$ref": "https://elsewhere.invalid/s.json"}),
            "remote references are not supported",
        ),
        (json!({"$ref": "#/$defs/missing"}), "does not resolve"),
        (json!({"$ref": "#nowhere"}), "no anchor `nowhere`"),
        (
            json!({"$defs": {"a": {"$id": "x.json#frag"}}, "$ref": "x.json"}),
            "must not have a fragment",
        ),
        (json!({"$anchor": "1a"}), "`$anchor` must be a name"),
    ] {
        let got = compile_error(schema.clone());
        assert!(got.contains(want), "{schema}: {got}");
    }
}

#[test]
fn references_resolve_against_the_nearest_id() {
    let schema = json!({
        "$id": "https://example.invalid/root.json",
        "$defs": {
            "a": {"$id": "dir/a.json", "$defs": {"b": {"$id": "b.json", "type": "integer"}}, "$ref": "b.json"},
            "c": {"$anchor": "here", "type": "string"}
        },
        "properties": {
            "x": {"$ref": "dir/a.json"},
            "y": {"$ref": "https://example.invalid/dir/b.json"},
            "z": {"$ref": "#here"},
            "w": {"$ref": "#/$defs/c"}
        }
    });
    let (s, idx) = compile(schema);
    assert!(s.is_valid(&json!({"x": 1, "y": 2, "z": "s", "w": "t"}), idx));
    let got = failures(
        json!({"$id": "https://example.invalid/root.json",
               "$defs": {"a": {"$id": "dir/a.json", "$defs": {"b": {"$id": "b.json", "type": "integer"}}, "$ref": "b.json"}},
               "properties": {"x": {"$ref": "dir/a.json"}}}),
        json!({"x": "no"}),
    );
    assert_eq!(got, vec![("/x".into(), "type")]);
}

#[test]
fn formats_are_annotations_unless_asserted_and_callers_add_their_own() {
    let schema = json!({"format": "date", "properties": {"n": {"format": "int8"}}});
    let mut c = Compiler::new("https://example.invalid/doc.json", schema.clone());
    let mut s = Schemas::new();
    let idx = c.compile("", &mut s).unwrap();
    assert!(s.is_valid(&json!("not a date"), idx));
    let mut c = Compiler::new("https://example.invalid/doc.json", schema);
    c.assert_formats(true);
    c.register_format("int8", |v| {
        v.as_i64().is_none_or(|i| (-128..=127).contains(&i))
    });
    let mut s = Schemas::new();
    let idx = c.compile("", &mut s).unwrap();
    assert!(!s.is_valid(&json!("not a date"), idx));
    assert!(s.is_valid(&json!("2024-02-29"), idx));
    assert!(!s.is_valid(&json!({"n": 200}), idx));
    assert!(s.is_valid(&json!({"n": -5}), idx));
    // Formats apply to strings only (a registered one sees every value).
    assert!(s.is_valid(&json!(12), idx));
}

#[test]
fn many_failures_are_capped() {
    let (s, idx) = compile(json!({"items": {"type": "string"}}));
    let list: Vec<Value> = (0..500).map(|i| json!(i)).collect();
    let errors = s.validate(&Value::Array(list), idx).unwrap_err();
    assert_eq!(errors.len(), shieldwall_jsonschema::MAX_ERRORS);
}
