//! The official JSON-Schema-Test-Suite, draft 2020-12: every test of the required files and
//! of the optional ones (the format files are `tests/formats.rs`'s), through
//! [`Schemas::validate`] and [`Schemas::is_valid`], which must agree.
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
use std::path::{Path, PathBuf};

use serde_json::Value;
use shieldwall_jsonschema::{Compiler, Schemas};

fn suite_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/json-schema-test-suite/tests/draft2020-12");
    assert!(
        dir.is_dir(),
        "the JSON-Schema-Test-Suite is missing at {}: it sits in the shared folder beside the \
         repository (shared/testdata/json-schema-test-suite).",
        dir.display()
    );
    dir
}

/// Known failures as `file / group / test` (`*` for every group or test), with why.
const KNOWN: &[(&str, &str)] = &[
    // Nothing is loaded from outside the document: the suite expects a server on
    // localhost:1234 for these.
    ("refRemote.json / * / *", "remote references are refused"),
    ("dynamicRef.json / tests for implementation dynamic anchor and reference link / *",
        "remote references are refused"),
    ("dynamicRef.json / strict-tree schema, guards against misspelled properties / *",
        "remote references are refused"),
    ("dynamicRef.json / $ref to $dynamicRef finds detached $dynamicAnchor / *",
        "remote references are refused"),
    ("dynamicRef.json / $ref and $dynamicAnchor are independent of order - $ref first / *",
        "remote references are refused"),
    ("dynamicRef.json / $ref and $dynamicAnchor are independent of order - $defs first / *",
        "remote references are refused"),
    // The metaschemas are not built in: a reference to one is a remote reference.
    ("defs.json / validate definition against metaschema / *", "the metaschema is not built in"),
    ("ref.json / remote ref, containing refs itself / *", "the metaschema is not built in"),
    ("optional/cross-draft.json / * / *", "other drafts' metaschemas are remote references"),
    // `$schema` naming a custom metaschema (with its `$vocabulary`) is not read: every schema is
    // draft 2020-12 with all its vocabularies.
    ("vocabulary.json / schema that uses custom metaschema with with no validation vocabulary / no validation: invalid number, but it still validates",
        "custom metaschemas and vocabularies are not read"),
    ("optional/format-assertion.json / * / *", "custom metaschemas and vocabularies are not read"),
];

fn matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(3, " / ").collect();
    let k: Vec<&str> = key.splitn(3, " / ").collect();
    p.len() == 3
        && k.len() == 3
        && p[0] == k[0]
        && (p[1] == "*" || p[1] == k[1])
        && (p[2] == "*" || p[2] == k[2])
}

/// Runs one file; returns (passed, failures as `file / group / test`).
fn run_file(path: &Path, name: &str) -> (usize, BTreeSet<String>) {
    let groups: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut passed = 0;
    let mut failures = BTreeSet::new();
    for g in groups {
        let desc = g["description"].as_str().unwrap_or("");
        let mut c = Compiler::new("https://example.invalid/schema.json", g["schema"].clone());
        let mut schemas = Schemas::new();
        let compiled = c.compile("", &mut schemas);
        for t in g["tests"].as_array().unwrap() {
            let want = t["valid"].as_bool().unwrap();
            let (full, quick) = match &compiled {
                Ok(idx) => (
                    Some(schemas.validate(&t["data"], *idx).is_ok()),
                    Some(schemas.is_valid(&t["data"], *idx)),
                ),
                Err(_) => (None, None),
            };
            assert_eq!(
                full, quick,
                "{name} / {desc}: validate and is_valid disagree"
            );
            if full == Some(want) {
                passed += 1;
            } else {
                let key = format!(
                    "{name} / {desc} / {}",
                    t["description"].as_str().unwrap_or("")
                );
                if !KNOWN.iter().any(|(k, _)| matches(k, &key)) {
                    eprintln!(
                        "UNEXPECTED {key}: {}",
                        match &compiled {
                            Ok(_) => format!("got valid={}", full == Some(true)),
                            Err(e) => format!("did not compile: {e}"),
                        }
                    );
                }
                failures.insert(key);
            }
        }
    }
    (passed, failures)
}

fn check(sub: &str) {
    let dir = suite_dir().join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let prefix = if sub.is_empty() {
        String::new()
    } else {
        format!("{sub}/")
    };
    let mut passed = 0;
    let mut failures = BTreeSet::new();
    for f in &files {
        let name = format!("{prefix}{}", f.file_name().unwrap().to_string_lossy());
        let (p, fails) = run_file(f, &name);
        passed += p;
        failures.extend(fails);
    }
    eprintln!(
        "draft2020-12/{sub}: {passed} passed, {} known failures",
        failures.len()
    );
    let unexpected: Vec<&String> = failures
        .iter()
        .filter(|f| !KNOWN.iter().any(|(k, _)| matches(k, f)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected failures: {unexpected:#?}"
    );
    for (k, _) in KNOWN.iter().filter(|(k, _)| {
        let file = k.split(" / ").next().unwrap_or("");
        file.strip_prefix(&prefix).is_some_and(|f| !f.contains('/'))
    }) {
        assert!(
            failures.iter().any(|f| matches(k, f)),
            "`{k}` is listed as failing but passes: remove it from KNOWN"
        );
    }
    assert!(passed > 0);
}

#[test]
fn draft2020_12() {
    check("");
}

#[test]
fn draft2020_12_optional() {
    check("optional");
}
