#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::{check_syntax, pike, Regex};
use std::time::{Duration, Instant};

/// Matches with the DFA (when there is one) and with the NFA simulation, and insists they agree.
fn m(pattern: &str, haystack: &str) -> bool {
    let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    let nfa = pike::is_match(&re.prog, haystack);
    if let Some(dfa) = &re.dfa {
        assert_eq!(
            dfa.is_match(haystack),
            nfa,
            "DFA and NFA disagree: /{pattern}/ on {haystack:?}"
        );
    }
    nfa
}

fn refused(pattern: &str) -> String {
    match Regex::new(pattern) {
        Ok(_) => panic!("/{pattern}/ should be refused"),
        Err(e) => e.reason,
    }
}

#[test]
fn literals_and_search() {
    assert!(m("abc", "xxabcxx"));
    assert!(!m("abc", "ab c"));
    assert!(m("", ""));
    assert!(m("", "anything"));
    assert!(m("^$", ""));
    assert!(!m("^$", "a"));
    assert!(m("^a", "ab"));
    assert!(!m("^a", "ba"));
    assert!(m("a$", "ba"));
    assert!(!m("a$", "ab"));
    // No multiline flag: `$` is the end of the input only, not before a final newline.
    assert!(!m("a$", "a\n"));
    assert!(!m("^b", "a\nb"));
    assert!(m("é", "café"));
    assert!(m("😀+", "x😀😀"));
}

#[test]
fn quantifiers() {
    assert!(m("^a*$", ""));
    assert!(m("^a+$", "aaa"));
    assert!(!m("^a+$", ""));
    assert!(m("^ab?c$", "ac"));
    assert!(m("^ab?c$", "abc"));
    assert!(!m("^ab?c$", "abbc"));
    assert!(m("^a{3}$", "aaa"));
    assert!(!m("^a{3}$", "aa"));
    assert!(!m("^a{3}$", "aaaa"));
    assert!(m("^a{2,}$", "aaaaa"));
    assert!(!m("^a{2,}$", "a"));
    assert!(m("^a{2,4}$", "aaaa"));
    assert!(!m("^a{2,4}$", "aaaaa"));
    assert!(m("^a{0}b$", "b"));
    assert!(m("^(?:ab){2}$", "abab"));
    assert!(m("^a*?b+?$", "aabb"));
    assert!(m("^(?:a|)*$", "aa"));
    assert!(m("^(?:)*$", ""));
    assert!(m("^(a*)*b$", "aaab"));
}

#[test]
fn alternation_and_groups() {
    assert!(m("^(cat|dog)s?$", "dogs"));
    assert!(!m("^(cat|dog)s?$", "cow"));
    assert!(m("^(?<year>\\d{4})-(?<m>\\d\\d)$", "2024-01"));
    assert!(m("a|^$", ""));
    assert!(m("^(?:a|b|c|)$", ""));
    assert!(m("x(?:a|b)+y", "--xababy--"));
}

#[test]
fn ecma_classes_are_ascii_where_ecma_says_so() {
    assert!(m("^\\d$", "7"));
    assert!(!m("^\\d$", "٣"), "\\d is ASCII digits only");
    assert!(m("^\\w+$", "a_Z9"));
    assert!(!m("^\\w$", "é"), "\\w is ASCII only");
    assert!(m("^\\W$", "é"));
    assert!(!m("^\\D$", "0"));
    for ws in [
        "\t", "\n", "\u{0B}", "\u{0C}", "\r", " ", "\u{A0}", "\u{1680}", "\u{2003}", "\u{2028}",
        "\u{2029}", "\u{202F}", "\u{205F}", "\u{3000}", "\u{FEFF}",
    ] {
        assert!(m("^\\s$", ws), "\\s matches {ws:?}");
        assert!(!m("^\\S$", ws));
    }
    assert!(
        !m("^\\s$", "\u{180E}"),
        "U+180E is not white space since Unicode 6.3"
    );
    assert!(!m("^\\s$", "\u{85}"), "NEL is not ECMA white space");
}

#[test]
fn dot_excludes_line_terminators_only() {
    assert!(m("^.$", "a"));
    assert!(m("^.$", "😀"), "one code point, not two UTF-16 units");
    assert!(m("^.$", "\u{85}"));
    for lt in ["\n", "\r", "\u{2028}", "\u{2029}"] {
        assert!(!m("^.$", lt), ". excludes {lt:?}");
    }
}

#[test]
fn bracket_classes() {
    assert!(m("^[a-c]+$", "abcba"));
    assert!(!m("^[a-c]$", "d"));
    assert!(m("^[^a-c]$", "d"));
    assert!(!m("^[^a-c]$", "b"));
    assert!(m("^[\\d\\s]+$", "1 2"));
    assert!(m("^[\\b]$", "\u{8}"), "\\b in a class is backspace");
    assert!(m("^[a\\-z]+$", "-az"));
    assert!(m("^[-a]$", "-"));
    assert!(m("^[a-]$", "-"));
    assert!(m("^[^]$", "x"), "[^] is any code point");
    assert!(m("^[^]$", "\n"));
    assert!(!m("[]", "x"), "[] matches nothing");
    assert!(m("^[\\W\\d]$", "5"));
    assert!(m("^[😀-😂]$", "😁"));
    assert!(m("^[\\u{1F600}-\\u{1F602}]$", "😁"));
}

#[test]
fn escapes() {
    assert!(m("^\\t\\n\\v\\f\\r\\0$", "\t\n\u{0B}\u{0C}\r\0"));
    assert!(m("^\\x41\\u0042\\u{43}$", "ABC"));
    assert!(m("^\\cJ\\cj$", "\n\n"));
    assert!(
        m("^\\uD83D\\uDE00$", "😀"),
        "a surrogate pair is one code point"
    );
    assert!(m(
        "^\\^\\$\\\\\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\/$",
        "^$\\.*+?()[]{}|/"
    ));
}

#[test]
fn word_boundaries() {
    assert!(m("\\bcat\\b", "a cat!"));
    assert!(!m("\\bcat\\b", "concat"));
    assert!(m("\\Bcat", "concat"));
    assert!(!m("^\\b$", ""));
    assert!(m("\\b", "a"));
    assert!(!m("\\b", "éé"), "word boundaries are ASCII");
}

#[test]
fn properties_from_char_methods() {
    assert!(m("^\\p{N}+$", "12٣Ⅻ"));
    assert!(!m("^\\p{N}$", "a"));
    assert!(m("^\\P{N}$", "a"));
    assert!(m("^\\p{General_Category=Number}$", "5"));
    assert!(m("^\\p{Alphabetic}+$", "abcдж中"));
    assert!(m("^\\p{Lowercase}$", "ß"));
    assert!(m("^\\p{Uppercase}$", "Ж"));
    assert!(m("^\\p{White_Space}$", "\u{85}"));
    assert!(m("^\\p{ASCII}+$", "abc~"));
    assert!(!m("^\\p{ASCII}$", "é"));
    assert!(m("^\\p{Any}$", "\u{10FFFF}"));
    assert!(m("^[\\p{N}x]+$", "1x2"));
    assert!(m("^[^\\p{N}]$", "x"));
    assert!(!m("^[^\\p{N}]$", "1"));
    assert!(m("^\\p{Cc}$", "\u{7}"));
}

#[test]
fn general_categories_from_the_table() {
    assert!(m("^\\p{L}+$", "abcДж中ǅ"));
    assert!(m("^\\p{Letter}+$", "école"));
    assert!(!m("^\\p{L}$", "1"));
    assert!(
        !m("^\\p{L}$", "Ⅻ"),
        "a letter number is not a letter (it is Alphabetic)"
    );
    assert!(m("^\\p{Alphabetic}$", "Ⅻ"));
    assert!(m("^\\p{Lu}\\p{Ll}+$", "Élan"));
    assert!(m("^\\p{Lt}$", "ǅ"));
    assert!(m("^\\p{digit}+$", "৪২"), "Bengali digits are Nd");
    assert!(m("^\\p{Nd}+$", "0123٣"));
    assert!(!m("^\\p{Nd}$", "½"));
    assert!(m("^\\p{No}$", "½"));
    assert!(m("^\\p{gc=Sc}$", "€"));
    assert!(m("^\\p{General_Category=Zs}$", "\u{3000}"));
    assert!(m("^\\p{P}+$", "!?«»"));
    assert!(m("^\\p{punct}$", "-"));
    assert!(m("^\\p{Sm}$", "+"));
    assert!(m("^\\p{So}$", "😀"));
    assert!(m("^\\p{Mn}$", "\u{301}"));
    assert!(m("^\\p{Cn}$", "\u{378}"), "U+0378 is unassigned");
    assert!(m("^\\p{Co}$", "\u{E000}"));
    assert!(m("^\\p{Cf}$", "\u{200D}"));
    assert!(m("^\\P{L}+$", "123 !"));
    assert!(m("^[\\p{L}\\p{Nd}_]+$", "abc_123"));
    assert!(m("^[^\\p{L}]$", "1"));
    assert!(
        Regex::new("^\\p{L}+$").unwrap().dfa.is_some(),
        "a category is plain ranges: DFA"
    );
    // Every code point has exactly one two-letter category.
    let each: Vec<Regex> = crate::gc::CATS
        .iter()
        .map(|cat| Regex::new(&format!("^\\p{{{cat}}}$")).unwrap())
        .collect();
    for cp in (0..=0x10FFFFu32).step_by(97) {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let hay = c.to_string();
        assert_eq!(
            each.iter().filter(|re| re.is_match(&hay)).count(),
            1,
            "U+{cp:04X}"
        );
    }
}

#[test]
fn what_cannot_be_matched_in_linear_time_is_refused() {
    assert!(refused("a(?=b)").contains("lookahead"));
    assert!(refused("a(?!b)").contains("negative lookahead"));
    assert!(refused("(?<=a)b").contains("lookbehind"));
    assert!(refused("(?<!a)b").contains("negative lookbehind"));
    assert!(refused("(a)\\1").contains("backreference"));
    assert!(refused("(?<x>a)\\k<x>").contains("named backreference"));
    assert!(refused("\\p{Emoji}").contains("Unicode property `Emoji`"));
    assert!(refused("\\p{Letters}").contains("Unicode property `Letters`"));
    assert!(refused("\\p{gc=Letters}").contains("gc=Letters"));
    assert!(refused("\\p{Script=Greek}").contains("Script=Greek"));
    assert!(refused("(?i:a)").contains("modifier"));
    // ... but they are valid syntax.
    for p in [
        "a(?=b)",
        "(?<!a)b",
        "(a)\\1",
        "(?<x>a)\\k<x>",
        "\\p{L}",
        "\\p{Script=Greek}",
        "(?i:a)",
        "(?i-m:a)",
    ] {
        assert!(check_syntax(p).is_ok(), "{p} is valid ECMA-262");
    }
}

#[test]
fn syntax_errors() {
    for (p, reason) in [
        ("(", "unterminated group"),
        ("a)", "unmatched"),
        ("[a", "unterminated character class"),
        ("*a", "nothing to repeat"),
        ("a**", "nothing to repeat"),
        ("a{2,1}", "out of order"),
        ("[z-a]", "out of order"),
        ("a{", "incomplete quantifier"),
        ("\\", "end of pattern"),
        ("\\c1", "\\c"),
        ("\\x4", "\\x"),
        ("\\u{110000}", "above 10FFFF"),
        ("\\q", "invalid escape"),
        ("\\01", "followed by a digit"),
        ("]", "lone `]`"),
        ("}", "lone `}`"),
        ("^*", "cannot be quantified"),
        ("\\b+", "cannot be quantified"),
        ("[\\d-z]", "end of a range"),
        ("(?<a>x)(?<a>y)", "duplicate group name"),
        ("(?<1a>x)", "invalid group name"),
        ("\\k<nope>", "named"),
        ("(?x:a)", "invalid group"),
        ("(?ii:a)", "repeated flag"),
        ("\\p{}", "property"),
        ("\\p{L", "property"),
    ] {
        let err = check_syntax(p).expect_err(p);
        assert!(
            err.reason.contains(reason),
            "/{p}/: {err} should say {reason:?}"
        );
        assert!(Regex::new(p).is_err());
        assert!(err.to_string().starts_with("at "));
    }
    // Duplicate names are allowed in different alternatives.
    assert!(check_syntax("(?<a>x)|(?<a>y)").is_ok());
    assert!(
        check_syntax("(a)\\2").is_err(),
        "a backreference to a group that does not exist"
    );
}

#[test]
fn limits() {
    let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    assert!(Regex::new(&deep).is_ok());
    let deeper = format!("{}a{}", "(".repeat(101), ")".repeat(101));
    assert!(Regex::new(&deeper)
        .unwrap_err()
        .reason
        .contains("deeper than 100"));
    assert!(check_syntax(&deeper).is_err());
    let err = Regex::new("(?:a{1000}){1000}").unwrap_err();
    assert!(err.reason.contains("too large"), "{err}");
    assert!(Regex::new("a{1000000}").is_err());
    assert!(Regex::new("a{4294967295,}").is_err());
    // Big but allowed.
    assert!(m("^a{5000}$", &"a".repeat(5000)));
    assert!(!m("^a{5000}$", &"a".repeat(4999)));
}

/// Patterns that take exponential time in a backtracking matcher take linear time here.
#[test]
fn pathological_patterns_stay_linear() {
    let budget = Duration::from_secs(2);
    let long_a = "a".repeat(20_000);
    for (p, hay, want) in [
        ("^(a+)+$", format!("{long_a}b"), false),
        ("^(a*)*b$", long_a.clone(), false),
        ("^(a|aa)+$", format!("{long_a}!"), false),
        ("^(a|a?)+$", format!("{long_a}!"), false),
        ("(x+x+)+y", "x".repeat(20_000), false),
        (
            "^(\\w+\\s?)*$",
            format!("{} !", "word ".repeat(4000)),
            false,
        ),
        ("\\b(a+)+\\b!", long_a.clone(), false),
        ("^(a+)+$", long_a.clone(), true),
    ] {
        let re = Regex::new(p).unwrap();
        let t = Instant::now();
        assert_eq!(re.is_match(&hay), want, "/{p}/");
        assert_eq!(pike::is_match(&re.prog, &hay), want, "/{p}/ NFA");
        assert!(t.elapsed() < budget, "/{p}/ took {:?}", t.elapsed());
    }
}

#[test]
fn simple_patterns_get_a_dfa() {
    for p in [
        "^[a-z0-9-]+$",
        "^\\d{4}-\\d{2}-\\d{2}$",
        "abc|def",
        "^.*$",
        "^\\S+@\\S+$",
    ] {
        assert!(
            Regex::new(p).unwrap().dfa.is_some(),
            "/{p}/ should get a DFA"
        );
    }
    for p in ["\\bx", "\\p{Alphabetic}"] {
        assert!(Regex::new(p).unwrap().dfa.is_none(), "/{p}/ needs the NFA");
    }
    assert_eq!(Regex::new("^a").unwrap().as_str(), "^a");
    assert!(format!("{:?}", Regex::new("a").unwrap()).contains("dfa_states"));
}
