//! Sets of code points: sorted ranges, plus the few Unicode properties that `char` methods give.
//! General_Category values become ranges, from the generated table in `gc`.

use std::cmp::Ordering;

use crate::gc;

/// The largest code point.
pub(crate) const MAX_CP: u32 = 0x10_FFFF;

/// A Unicode property that a `char` method computes exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prop {
    /// The Alphabetic property: `char::is_alphabetic`.
    Alphabetic,
    /// The White_Space property: `char::is_whitespace`.
    WhiteSpace,
    /// The Lowercase property: `char::is_lowercase`.
    Lowercase,
    /// The Uppercase property: `char::is_uppercase`.
    Uppercase,
}

impl Prop {
    fn test(self, cp: u32) -> bool {
        let Some(c) = char::from_u32(cp) else {
            return false;
        };
        match self {
            Prop::Alphabetic => c.is_alphabetic(),
            Prop::WhiteSpace => c.is_whitespace(),
            Prop::Lowercase => c.is_lowercase(),
            Prop::Uppercase => c.is_uppercase(),
        }
    }
}

/// A set of code points: `(ranges ∪ props) XOR negated`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Class {
    /// Sorted, disjoint and non-adjacent inclusive ranges.
    pub ranges: Vec<(u32, u32)>,
    /// Properties, each possibly negated (`\P{…}`).
    pub props: Vec<(Prop, bool)>,
    /// Whether the whole set is complemented (only ever set when `props` is not empty: without
    /// properties the ranges themselves are complemented).
    pub negated: bool,
}

impl Class {
    /// A class of the given ranges, in any order.
    pub fn of(ranges: &[(u32, u32)]) -> Class {
        let mut c = Class {
            ranges: ranges.to_vec(),
            ..Class::default()
        };
        c.canonicalize();
        c
    }

    /// Sorts and merges the ranges.
    pub fn canonicalize(&mut self) {
        self.ranges.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(self.ranges.len());
        for &(lo, hi) in &self.ranges {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        self.ranges = out;
    }

    /// Complements the set.
    pub fn negate(&mut self) {
        if self.props.is_empty() {
            self.ranges = complement(&self.ranges);
        } else {
            self.negated = !self.negated;
        }
    }

    /// Whether the code point `cp` is in the set.
    pub fn contains(&self, cp: u32) -> bool {
        let in_ranges = self
            .ranges
            .binary_search_by(|&(lo, hi)| {
                if hi < cp {
                    Ordering::Less
                } else if lo > cp {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }
            })
            .is_ok();
        (in_ranges || self.props.iter().any(|&(p, neg)| p.test(cp) != neg)) != self.negated
    }
}

/// The complement of sorted, disjoint ranges within `0..=MAX_CP`.
pub(crate) fn complement(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    let mut next = 0u32;
    for &(lo, hi) in ranges {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = hi.saturating_add(1);
    }
    if next <= MAX_CP {
        out.push((next, MAX_CP));
    }
    out
}

/// `\d`.
pub(crate) const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
/// `\w`.
pub(crate) const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];
/// `\s`: ECMA-262's WhiteSpace and LineTerminator.
pub(crate) const SPACE: &[(u32, u32)] = &[
    (0x09, 0x0D),
    (0x20, 0x20),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
];
/// `.`: everything but the line terminators.
pub(crate) const DOT: &[(u32, u32)] = &[(0, 0x09), (0x0B, 0x0C), (0x0E, 0x2027), (0x202A, MAX_CP)];

/// Whether `c` is an ASCII word character, for `\b` and `\B`.
pub(crate) fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The General_Category values and their aliases (as in Unicode's PropertyValueAliases, which
/// ECMA-262 follows), each with the two-letter categories it covers.
const GC_VALUES: &[(&[&str], &[&str])] = &[
    (&["C", "Other"], &["Cc", "Cf", "Cn", "Co", "Cs"]),
    (&["Cc", "Control", "cntrl"], &["Cc"]),
    (&["Cf", "Format"], &["Cf"]),
    (&["Cn", "Unassigned"], &["Cn"]),
    (&["Co", "Private_Use"], &["Co"]),
    (&["Cs", "Surrogate"], &["Cs"]),
    (&["L", "Letter"], &["Ll", "Lm", "Lo", "Lt", "Lu"]),
    (&["LC", "Cased_Letter"], &["Ll", "Lt", "Lu"]),
    (&["Ll", "Lowercase_Letter"], &["Ll"]),
    (&["Lm", "Modifier_Letter"], &["Lm"]),
    (&["Lo", "Other_Letter"], &["Lo"]),
    (&["Lt", "Titlecase_Letter"], &["Lt"]),
    (&["Lu", "Uppercase_Letter"], &["Lu"]),
    (&["M", "Mark", "Combining_Mark"], &["Mc", "Me", "Mn"]),
    (&["Mc", "Spacing_Mark"], &["Mc"]),
    (&["Me", "Enclosing_Mark"], &["Me"]),
    (&["Mn", "Nonspacing_Mark"], &["Mn"]),
    (&["N", "Number"], &["Nd", "Nl", "No"]),
    (&["Nd", "Decimal_Number", "digit"], &["Nd"]),
    (&["Nl", "Letter_Number"], &["Nl"]),
    (&["No", "Other_Number"], &["No"]),
    (
        &["P", "Punctuation", "punct"],
        &["Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps"],
    ),
    (&["Pc", "Connector_Punctuation"], &["Pc"]),
    (&["Pd", "Dash_Punctuation"], &["Pd"]),
    (&["Pe", "Close_Punctuation"], &["Pe"]),
    (&["Pf", "Final_Punctuation"], &["Pf"]),
    (&["Pi", "Initial_Punctuation"], &["Pi"]),
    (&["Po", "Other_Punctuation"], &["Po"]),
    (&["Ps", "Open_Punctuation"], &["Ps"]),
    (&["S", "Symbol"], &["Sc", "Sk", "Sm", "So"]),
    (&["Sc", "Currency_Symbol"], &["Sc"]),
    (&["Sk", "Modifier_Symbol"], &["Sk"]),
    (&["Sm", "Math_Symbol"], &["Sm"]),
    (&["So", "Other_Symbol"], &["So"]),
    (&["Z", "Separator"], &["Zl", "Zp", "Zs"]),
    (&["Zl", "Line_Separator"], &["Zl"]),
    (&["Zp", "Paragraph_Separator"], &["Zp"]),
    (&["Zs", "Space_Separator"], &["Zs"]),
];

/// The code points of a General_Category value (`L`, `Letter`, `Nd`, `digit`, …), as ranges.
fn general_category(value: &str) -> Option<Class> {
    let (_, cats) = GC_VALUES.iter().find(|(names, _)| names.contains(&value))?;
    let wanted: Vec<u8> = gc::CATS
        .iter()
        .enumerate()
        .filter(|(_, c)| cats.contains(c))
        .map(|(i, _)| i as u8)
        .collect();
    let mut ranges = Vec::new();
    let ends = gc::STARTS.iter().skip(1).map(|&s| s - 1).chain([MAX_CP]);
    for ((&start, end), cat) in gc::STARTS.iter().zip(ends).zip(gc::CAT) {
        if wanted.contains(&cat) {
            ranges.push((start, end));
        }
    }
    Some(Class::of(&ranges))
}

/// The set a property escape `\p{name}` or `\p{name=value}` denotes, when supported: every
/// General_Category value (from the table in `gc`), and the binary properties that `char`
/// methods give exactly.
pub(crate) fn property(name: &str, value: Option<&str>) -> Option<Class> {
    if let Some(v) = value {
        return match name {
            "General_Category" | "gc" => general_category(v),
            _ => None,
        };
    }
    if let Some(set) = general_category(name) {
        return Some(set);
    }
    let prop = match name {
        "Alphabetic" | "Alpha" => Prop::Alphabetic,
        "White_Space" | "space" => Prop::WhiteSpace,
        "Lowercase" | "Lower" => Prop::Lowercase,
        "Uppercase" | "Upper" => Prop::Uppercase,
        "Any" => return Some(Class::of(&[(0, MAX_CP)])),
        "ASCII" => return Some(Class::of(&[(0, 0x7F)])),
        "ASCII_Hex_Digit" | "AHex" => {
            return Some(Class::of(&[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)]))
        }
        _ => return None,
    };
    Some(Class {
        props: vec![(prop, false)],
        ..Class::default()
    })
}
