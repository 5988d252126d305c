//! The false-positive rate of the SQL and XSS checks on ordinary text: names, addresses and
//! order comments written for this test (`tests/data/ordinary.txt`, one sample a line), each read
//! as `where: all_strings` reads a string. The README reports what this prints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use payload_guard::config::{Injection, Where};
use payload_guard::inject::scan_text;

#[test]
fn ordinary_text_is_not_refused() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ordinary.txt"),
    )
    .unwrap();
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let inj = Injection {
        sql: true,
        nosql: true,
        xss: true,
        where_: Where::AllStrings,
        skip_formats: vec![],
    };
    let flagged: Vec<(&str, &str)> = samples
        .iter()
        .filter_map(|s| scan_text(s, &inj).map(|c| (*s, c.rule())))
        .collect();
    eprintln!(
        "false positives: {} of {} ordinary samples ({:.1}%): {flagged:?}",
        flagged.len(),
        samples.len(),
        100.0 * flagged.len() as f64 / samples.len() as f64
    );
    // Measured: see the README. A rise means the detector or its use changed.
    assert!(flagged.is_empty(), "{flagged:?}");
}
