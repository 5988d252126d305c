//! The `format` checks against the JSON-Schema-Test-Suite and against boon, the validator they
//! replace, plus edge cases the suite does not cover.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use shieldwall_jsonschema::format::check;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Suite cases ours gets wrong on purpose: (format, group description, test description, reason).
/// Each reason is a limitation described in the docs of `format`. The test fails on any other
/// wrong answer, on an entry here that now passes (remove it), and on one that names no case.
/// Empty: every string case of the suite passes.
const KNOWN: &[(&str, &str, &str, &str)] = &[];

fn suite_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/json-schema-test-suite/tests/draft2020-12/optional/format");
    assert!(
        dir.is_dir(),
        "JSON-Schema-Test-Suite format tests not found at {} (expected shared/testdata beside the repository)",
        dir.display()
    );
    dir
}

fn boon_valid(format: &str, data: &Value) -> bool {
    let mut compiler = boon::Compiler::new();
    compiler.set_default_draft(boon::Draft::V2020_12);
    compiler.enable_format_assertions();
    let url = "http://example.test/schema.json";
    compiler
        .add_resource(url, serde_json::json!({ "format": format }))
        .unwrap();
    let mut schemas = boon::Schemas::new();
    let idx = compiler.compile(url, &mut schemas).unwrap();
    schemas.validate(data, idx).is_ok()
}

#[derive(Default)]
struct Row {
    tests: usize,
    ours: usize,
    boon: usize,
    skipped: bool,
}

#[test]
fn json_schema_test_suite() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(suite_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in the suite directory");

    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut boon_only_wrong = Vec::new();
    let mut known_seen = vec![false; KNOWN.len()];
    for (i, k) in KNOWN.iter().enumerate() {
        assert!(!k.3.is_empty(), "KNOWN entry without a reason: {k:?}");
        assert!(
            !KNOWN[..i]
                .iter()
                .any(|o| (o.0, o.1, o.2) == (k.0, k.1, k.2)),
            "KNOWN entry listed twice: {k:?}"
        );
    }

    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let groups: Value = serde_json::from_str(&text).unwrap();
        for group in groups.as_array().unwrap() {
            let format = group["schema"]["format"].as_str().unwrap();
            let gdesc = group["description"].as_str().unwrap();
            for test in group["tests"].as_array().unwrap() {
                let Some(data) = test["data"].as_str() else {
                    continue; // non-strings are valid by definition
                };
                let tdesc = test["description"].as_str().unwrap();
                let expected = test["valid"].as_bool().unwrap();
                let row = rows.entry(format.to_string()).or_default();
                row.tests += 1;
                let boon_ok = boon_valid(format, &test["data"]) == expected;
                row.boon += usize::from(boon_ok);
                // `regex` belongs to the caller (the project's regex engine), not this module.
                let ours = match check(format, data) {
                    Some(v) => v,
                    None if format == "regex" => {
                        row.skipped = true;
                        continue;
                    }
                    None => true, // an unknown format is an annotation
                };
                let ours_ok = ours == expected;
                row.ours += usize::from(ours_ok);
                if ours_ok && !boon_ok {
                    boon_only_wrong.push(format!("{format} / {tdesc}: {data:?}"));
                }
                let known = KNOWN
                    .iter()
                    .position(|k| k.0 == format && k.1 == gdesc && k.2 == tdesc);
                if let Some(i) = known {
                    known_seen[i] = true;
                }
                match (ours_ok, known) {
                    (true, None) | (false, Some(_)) => {}
                    (true, Some(_)) => failures.push(format!(
                        "listed in KNOWN but passes: {format} / {gdesc} / {tdesc}"
                    )),
                    (false, None) => failures.push(format!(
                        "{format} / {gdesc} / {tdesc}: {data:?} should be {}, boon {}",
                        if expected { "valid" } else { "invalid" },
                        if boon_ok { "right" } else { "wrong too" }
                    )),
                }
            }
        }
    }
    for (k, seen) in KNOWN.iter().zip(&known_seen) {
        if !seen {
            failures.push(format!(
                "KNOWN entry matches no suite case: {} / {} / {}",
                k.0, k.1, k.2
            ));
        }
    }

    println!(
        "{:<24} {:>6} {:>6} {:>6}",
        "format", "tests", "ours", "boon"
    );
    let (mut t, mut o, mut b) = (0, 0, 0);
    for (format, row) in &rows {
        if row.skipped {
            println!(
                "{format:<24} {:>6} {:>6} {:>6}  (not this module's)",
                row.tests, "-", row.boon
            );
            continue;
        }
        println!(
            "{format:<24} {:>6} {:>6} {:>6}",
            row.tests, row.ours, row.boon
        );
        t += row.tests;
        o += row.ours;
        b += row.boon;
    }
    println!("{:<24} {t:>6} {o:>6} {b:>6}", "total");
    for line in &boon_only_wrong {
        println!("ours right, boon wrong: {line}");
    }
    for (f, g, d, r) in KNOWN {
        println!("known: {f} / {g} / {d}: {r}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
