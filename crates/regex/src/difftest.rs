//! Differential test against the `regex` crate: random patterns in the common subset of both
//! dialects, written in each, must agree on random haystacks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::{pike, Regex};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A pattern in ECMA-262 syntax and the same pattern in the `regex` crate's syntax.
fn gen(rng: &mut Rng, depth: u32, ecma: &mut String, rust: &mut String) {
    let pick = if depth > 3 {
        rng.below(6)
    } else {
        rng.below(12)
    };
    match pick {
        0..=2 => {
            let c = ["a", "b", "c", "é", "😀", " ", "_", "1"][rng.below(8)];
            ecma.push_str(c);
            rust.push_str(c);
        }
        3 => {
            let (e, r) = [
                ("[ab]", "[ab]"),
                ("[^a]", "[^a]"),
                ("[a-c1]", "[a-c1]"),
                ("\\d", "[0-9]"),
                ("\\w", "[0-9A-Za-z_]"),
                ("\\W", "[^0-9A-Za-z_]"),
                ("\\s", "[\\t-\\r \\u{A0}\\u{1680}\\u{2000}-\\u{200A}\\u{2028}\\u{2029}\\u{202F}\\u{205F}\\u{3000}\\u{FEFF}]"),
                ("\\S", "[^\\t-\\r \\u{A0}\\u{1680}\\u{2000}-\\u{200A}\\u{2028}\\u{2029}\\u{202F}\\u{205F}\\u{3000}\\u{FEFF}]"),
                (".", "[^\\n\\r\\u{2028}\\u{2029}]"),
                ("[^]", "(?s:.)"),
                ("\\p{N}", "\\p{N}"),
                ("\\P{Alphabetic}", "\\P{Alphabetic}"),
                ("\\p{L}", "\\p{L}"),
                ("[\\p{Lu}\\p{Nd}]", "[\\p{Lu}\\p{Nd}]"),
                ("\\P{P}", "\\P{P}"),
            ][rng.below(15)];
            ecma.push_str(e);
            rust.push_str(r);
        }
        4 => {
            let (e, r) = [
                ("^", "^"),
                ("$", "$"),
                ("\\b", "(?-u:\\b)"),
                ("\\B", "(?-u:\\B)"),
            ][rng.below(4)];
            ecma.push_str(e);
            rust.push_str(r);
        }
        5 => {}
        6 | 7 => {
            ecma.push_str("(?:");
            rust.push_str("(?:");
            gen(rng, depth + 1, ecma, rust);
            gen(rng, depth + 1, ecma, rust);
            ecma.push(')');
            rust.push(')');
        }
        8 | 9 => {
            ecma.push_str("(?:");
            rust.push_str("(?:");
            gen(rng, depth + 1, ecma, rust);
            ecma.push('|');
            rust.push('|');
            gen(rng, depth + 1, ecma, rust);
            ecma.push(')');
            rust.push(')');
        }
        _ => {
            ecma.push_str("(?:");
            rust.push_str("(?:");
            gen(rng, depth + 1, ecma, rust);
            ecma.push(')');
            rust.push(')');
            let q = ["*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}", "*?", "+?"][rng.below(9)];
            ecma.push_str(q);
            rust.push_str(q);
        }
    }
}

fn haystack(rng: &mut Rng) -> String {
    let len = rng.below(12);
    (0..len)
        .map(|_| {
            [
                "a", "b", "c", "é", "😀", " ", "_", "1", "\n", "\u{2028}", "٣", "-",
            ][rng.below(12)]
        })
        .collect()
}

#[test]
fn agrees_with_the_regex_crate() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut compared = 0;
    let mut with_dfa = 0;
    for _ in 0..3000 {
        let (mut ecma, mut rust) = (String::new(), String::new());
        for _ in 0..=rng.below(3) {
            gen(&mut rng, 0, &mut ecma, &mut rust);
        }
        let ours = Regex::new(&ecma).unwrap_or_else(|e| panic!("/{ecma}/: {e}"));
        let theirs = regex::Regex::new(&rust).unwrap_or_else(|e| panic!("{rust}: {e}"));
        with_dfa += usize::from(ours.dfa.is_some());
        for _ in 0..20 {
            let hay = haystack(&mut rng);
            let want = theirs.is_match(&hay);
            assert_eq!(
                ours.is_match(&hay),
                want,
                "/{ecma}/ (regex: {rust}) on {hay:?}"
            );
            assert_eq!(
                pike::is_match(&ours.prog, &hay),
                want,
                "/{ecma}/ NFA on {hay:?}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 60_000);
    assert!(
        with_dfa > 1000,
        "most random patterns should get a DFA ({with_dfa})"
    );
}
