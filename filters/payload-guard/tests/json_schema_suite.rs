//! The official JSON-Schema-Test-Suite through payload-guard's own compile path: every schema
//! prepared as the filter prepares a document's schemas (`schema::prepare`: draft 2020-12 as
//! OpenAPI 3.1 reads it, draft 7 through the OpenAPI 3.0 translation) and compiled as the filter
//! compiles them (`schema::compile`: formats asserted, nothing loaded from outside the
//! document), then each instance validated.
//!
//! The suite lives beside the repository (`shared/testdata/json-schema-test-suite`). Every
//! failure must be in `KNOWN`, with its reason; a known failure that starts passing fails the
//! test too, so the list stays true.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use payload_guard::config::{AdditionalProperties, Formats};
use payload_guard::schema::{compile, prepare, Dialect};
use serde_json::Value;

fn suite_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/json-schema-test-suite/tests");
    assert!(
        dir.is_dir(),
        "the JSON-Schema-Test-Suite is missing at {}: it sits in the shared folder beside the \
         repository (shared/testdata/json-schema-test-suite).",
        dir.display()
    );
    dir
}

/// Known failures, as `file / group / test` (a `*` test covers the whole group), with why.
const KNOWN: &[(&str, &str)] = &[
    // Remote references are refused by design: the validator loads nothing from outside the
    // document (the suite expects http://localhost:1234/... to be served).
    ("draft2020-12/refRemote.json / * / *", "remote references are refused"),
    ("draft7/refRemote.json / * / *", "remote references are refused"),
    ("draft2020-12/dynamicRef.json / tests for implementation dynamic anchor and reference link / *",
        "remote references are refused (the schema extends one served on localhost:1234)"),
    ("draft2020-12/dynamicRef.json / strict-tree schema, guards against misspelled properties / *",
        "remote references are refused"),
    ("draft2020-12/dynamicRef.json / $ref to $dynamicRef finds detached $dynamicAnchor / *",
        "remote references are refused"),
    ("draft2020-12/dynamicRef.json / $ref and $dynamicAnchor are independent of order - $ref first / *",
        "remote references are refused"),
    ("draft2020-12/dynamicRef.json / $ref and $dynamicAnchor are independent of order - $defs first / *",
        "remote references are refused"),
    // The metaschemas are not built into the module: a `$ref` to one is a remote reference.
    ("draft2020-12/defs.json / validate definition against metaschema / *",
        "the metaschema is not built in"),
    ("draft2020-12/ref.json / remote ref, containing refs itself / *",
        "the metaschema is not built in"),
    ("draft7/definitions.json / validate definition against metaschema / *",
        "the metaschema is not built in"),
    ("draft7/ref.json / remote ref, containing refs itself / *", "the metaschema is not built in"),
    // A custom metaschema (served remotely) as `$schema`: only draft 2020-12 itself (and OpenAPI
    // 3.1's base dialect) is accepted as a schema's dialect.
    ("draft2020-12/vocabulary.json / * / *", "custom metaschemas are refused"),
    // payload-guard asserts `format` by default (`formats: assert`): a gateway that lets an
    // invalid `date-time` or `uuid` through would pass the service what its schema excludes.
    // With `formats: annotate` these pass (`format_as_annotation_passes_the_suite` below).
    ("draft2020-12/format.json / * / * is only an annotation by default", "formats are asserted"),
    // The 3.0 translation renames draft 7's array form of `items` to `prefixItems`, so a pointer
    // written into it (`#/items/0`) no longer resolves; OpenAPI 3.0 has no array form of `items`.
    ("draft7/ref.json / relative pointer ref to array / *", "pointer into a translated keyword"),
];

/// `*` matches any test; `* text` any test whose description ends with ` text`.
fn test_matches(pattern: &str, test: &str) -> bool {
    match pattern.strip_prefix("* ") {
        Some(suffix) => test.ends_with(suffix),
        None => pattern == "*" || pattern == test,
    }
}

struct Outcome {
    passed: usize,
    failures: BTreeSet<String>,
}

fn run(draft: &str, dialect: Dialect, formats: Formats, only: Option<&str>) -> Outcome {
    let dir = suite_dir().join(draft);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Outcome {
        passed: 0,
        failures: BTreeSet::new(),
    };
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let groups: Vec<Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for g in groups {
            let desc = g["description"].as_str().unwrap_or("").to_string();
            let mut doc = g["schema"].clone();
            let compiled = prepare(
                &mut doc,
                dialect,
                AdditionalProperties::Schema,
                &[String::new()],
            )
            .map_err(|f| format!("{}: {}", f.pointer, f.reason))
            .and_then(|_| {
                compile(doc, formats, &[String::new()])
                    .map_err(|f| format!("{}: {}", f.pointer, f.reason))
            });
            for t in g["tests"].as_array().unwrap() {
                let want = t["valid"].as_bool().unwrap();
                let got = match &compiled {
                    Ok((schemas, idx)) => Some(schemas.validate(&t["data"], idx[0]).is_ok()),
                    Err(_) => None,
                };
                if got == Some(want) {
                    out.passed += 1;
                } else {
                    let tdesc = t["description"].as_str().unwrap_or("");
                    let key = format!("{draft}/{name} / {desc} / {tdesc}");
                    let known = KNOWN.iter().any(|(k, _)| {
                        let parts: Vec<&str> = k.splitn(3, " / ").collect();
                        let mine: Vec<&str> = key.splitn(3, " / ").collect();
                        parts.len() == 3
                            && parts[0] == mine[0]
                            && (parts[1] == "*" || parts[1] == mine[1])
                            && test_matches(parts[2], mine[2])
                    });
                    let why = match &compiled {
                        Ok(_) => format!("got valid={}", got == Some(true)),
                        Err(e) => format!("did not compile: {e}"),
                    };
                    if !known {
                        eprintln!("UNEXPECTED {key}: {why}");
                    }
                    out.failures.insert(key);
                }
            }
        }
    }
    out
}

fn check(draft: &str, dialect: Dialect) {
    let out = run(draft, dialect, Formats::Assert, None);
    let mut unexpected = Vec::new();
    for f in &out.failures {
        let mine: Vec<&str> = f.splitn(3, " / ").collect();
        let known = KNOWN.iter().any(|(k, _)| {
            let parts: Vec<&str> = k.splitn(3, " / ").collect();
            parts[0] == mine[0]
                && (parts[1] == "*" || parts[1] == mine[1])
                && test_matches(parts[2], mine[2])
        });
        if !known {
            unexpected.push(f.clone());
        }
    }
    eprintln!(
        "{draft}: {} passed, {} known failures",
        out.passed,
        out.failures.len()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected failures: {unexpected:#?}"
    );
    // Every known failure of this draft still fails (a fix must shorten the list).
    for (k, _) in KNOWN
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{draft}/")))
    {
        let parts: Vec<&str> = k.splitn(3, " / ").collect();
        let hit = out.failures.iter().any(|f| {
            let mine: Vec<&str> = f.splitn(3, " / ").collect();
            parts[0] == mine[0]
                && (parts[1] == "*" || parts[1] == mine[1])
                && test_matches(parts[2], mine[2])
        });
        assert!(
            hit,
            "`{k}` is listed as failing but passes: remove it from KNOWN"
        );
    }
}

#[test]
fn draft2020_12_as_openapi_31_reads_it() {
    check("draft2020-12", Dialect::Oas31);
}

#[test]
fn draft7_through_the_openapi_30_translation() {
    check("draft7", Dialect::Oas30);
}

#[test]
fn format_as_annotation_passes_the_suite() {
    let out = run(
        "draft2020-12",
        Dialect::Oas31,
        Formats::Annotate,
        Some("format.json"),
    );
    assert!(out.passed > 100, "{}", out.passed);
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
}
