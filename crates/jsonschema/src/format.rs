//! The `format` keyword's assertions (JSON Schema draft 2020-12, validation §7.3), written for a
//! wasm module: `std` only, no Unicode tables beyond the ones `std` already carries, no
//! allocation on the common paths.
//!
//! [`check`] answers `None` for a format it does not know (the caller then treats the keyword as
//! an annotation) and for `regex`, which the caller checks with its own engine. Every other
//! answer follows the RFC the specification names, as the JSON-Schema-Test-Suite's
//! `optional/format` tests read it:
//!
//! - **date-time**, **date**, **time** (RFC 3339 §5.6): `full-date "T" full-time`, `full-date`,
//!   `full-time`. Four-digit years, month lengths with Gregorian leap years, hours 00–23,
//!   minutes 00–59, seconds 00–60 with an optional fraction of any length, a required offset
//!   (`Z`, or `+hh:mm`/`-hh:mm` with hh ≤ 23 and mm ≤ 59). `T` and `Z` may be lower case. Second
//!   60 (a leap second) is accepted only when the time is 23:59:60 in UTC once the offset is
//!   taken off (`-00:00` counts as UTC); whether that day had a leap second is not checked. A
//!   space in place of `T` (allowed by a note of RFC 3339, not by its grammar) is refused.
//! - **duration** (RFC 3339 Appendix A): `P`, then either weeks alone (`P2W`), or date parts
//!   then an optional `T` and time parts. Each part is digits and a unit; the date units run
//!   `Y M D` and the time units `H M S` in order without a gap (`P1Y2D` and `PT1H2S` are
//!   refused), `T` needs at least one time part and the whole at least one part. No fractions,
//!   no signs.
//! - **email** (RFC 5321 §4.1.2 `Mailbox`): a local part of at most 64 octets, either a
//!   dot-atom (atext runs separated by single dots) or a quoted string (printable ASCII, `\`
//!   quoting one printable character); `@`; a domain that is a `hostname` below or an address
//!   literal `[1.2.3.4]` or `[IPv6:…]` (no other standardised tag exists). Comments, folding
//!   white space and display names (RFC 5322) are not addresses and are refused.
//! - **idn-email** (RFC 6531): the same, with any non-ASCII character allowed in the local part
//!   (atext and qtext) and an `idn-hostname` as the domain.
//! - **hostname** (RFC 1123 §2.1, with RFC 5890's A-labels): ASCII labels of 1–63 letters,
//!   digits and hyphens, not starting or ending with a hyphen, separated by single dots, at most
//!   253 characters (no trailing dot). A label starting `xn--` (any case) must be an A-label: its
//!   Punycode (RFC 3492, written here) must decode, re-encode to the same text, contain a
//!   non-ASCII character, and the decoded U-label must pass the `idn-hostname` label rules.
//! - **idn-hostname** (RFC 5890–5893, IDNA2008): labels separated by `.` or one of the other
//!   three full stops (U+3002, U+FF0E, U+FF61). An ASCII label follows `hostname`; a label with
//!   non-ASCII characters is a U-label: no hyphen at the start, the end or in the 3rd and 4th
//!   positions, no combining mark first, at most 63 octets once encoded as an A-label, and the
//!   whole name at most 253 octets in its ASCII form. Each character must be allowed (see the
//!   approximation below), and the contextual rules of RFC 5892 Appendix A are applied in full:
//!   ZERO WIDTH NON-JOINER after a virama or between joining letters, ZERO WIDTH JOINER after a
//!   virama, MIDDLE DOT between two `l`, Greek KERAIA before a Greek letter, Hebrew GERESH and
//!   GERSHAYIM after a Hebrew letter, KATAKANA MIDDLE DOT in a label with Hiragana, Katakana or
//!   Han, Arabic-Indic digits not mixed with Extended Arabic-Indic digits. When a label holds a
//!   right-to-left character the Bidi rule of RFC 5893 §2 is applied to every label.
//! - **ipv4** (RFC 2673 §3.2 dotted quad): four decimal numbers 0–255 of ASCII digits, without
//!   leading zeros.
//! - **ipv6** (RFC 4291 §2.2): eight groups of one to four hex digits, at most one `::` standing
//!   for one or more zero groups, optionally ending with a dotted quad (which counts as two
//!   groups). No zone id, no prefix length, no brackets.
//! - **uri**, **uri-reference** (RFC 3986 §3, §4.1): the generic syntax, checked component by
//!   component: scheme, authority (userinfo, a bracketed IPv6 address or IPvFuture, or a
//!   reg-name, a numeric port), path, query and fragment, with well-formed percent-encodings. A
//!   `uri` needs a scheme; in a relative reference the first path segment may not hold a colon.
//!   A host like `999.999.999.999` is a valid reg-name, so it passes.
//! - **iri**, **iri-reference** (RFC 3987 §2.2): the same, also allowing `ucschar` everywhere a
//!   URI allows unreserved characters, and `iprivate` (private-use characters) in the query.
//! - **uri-template** (RFC 6570 §2): literals (the ABNF's characters, plus the apostrophe, a
//!   sub-delim the prose of §2.1 allows and the test suite accepts, plus non-ASCII `ucschar` and
//!   `iprivate`, plus percent-encodings) and expressions `{[operator] varspec *("," varspec)}`
//!   with the level 2 and 3 operators `+ # . / ; ? &`, dotted variable names of letters,
//!   digits, `_` and percent-encodings, and the `:1`–`:9999` prefix or `*` explode modifiers.
//!   The operators RFC 6570 reserves for future use (`= , ! @ |`) are refused, as no processor
//!   can expand them.
//! - **uuid** (RFC 4122 §3): 8-4-4-4-12 hex digits of either case; version and variant are not
//!   checked.
//! - **json-pointer** (RFC 6901 §3): empty, or `/`-prefixed tokens where `~` is always followed
//!   by `0` or `1`.
//! - **relative-json-pointer** (draft-handrews-relative-json-pointer-01 §3, the one the suite
//!   and boon follow): a non-negative integer without leading zeros, then `#` or a JSON
//!   pointer. The index manipulation (`0+1/…`) of the later draft-bhutton-…-00 is refused.
//!
//! # What idn-hostname cannot check without tables
//!
//! IDNA2008 decides whether a code point may appear in a label from its Unicode properties
//! (RFC 5892's derived property), and this module carries no property tables of its own. It
//! derives the property from what `std` already knows, plus short explicit lists:
//!
//! - a non-ASCII character is allowed when it is printable (`std`'s test for `Debug`: not
//!   unassigned, control, format, private-use, surrogate or space), not upper case (the few
//!   titlecase letters are in the list below), and it is alphabetic, a combining mark (the grapheme-extending characters,
//!   which `char::escape_debug` escapes, plus the listed spacing marks) or a decimal digit
//!   (a numeric character in the first ten of a run of numeric characters: other numbers are
//!   disallowed); RFC 5892's exceptions (§2.6) are applied; and a list of blocks and runs
//!   refuses the compatibility characters NFKC or case folding would change (fullwidth and
//!   halfwidth forms, presentation forms, compatibility ideographs, enclosed and mathematical
//!   alphanumerics, superscripts, Hangul jamo, variation selectors, …).
//! - ASCII capitals are refused in a U-label (they are DISALLOWED), while an ASCII label, A-label
//!   included, is case-insensitive. An ASCII label with hyphens in the 3rd and 4th positions
//!   that is not an A-label (`ab--cd`) passes as a `hostname` label: IDNA2008 reserves such
//!   labels but RFC 1123 allows them.
//!
//! Measured against the IDNA2008 derived property for Unicode 17 (Python's `idna` 3.13) with
//! Rust 1.95's `std`: no code point is allowed that IDNA2008 disallows, and 10 are refused that
//! it allows (the second run of digits of Myanmar Extended-C, U+116DA–116E3). The rest depends
//! on the toolchain's Unicode version for characters assigned later.
//!
//! What it does not check: normalisation (a U-label must be in NFC; a label with a base letter
//! and a combining accent where NFC has one precomposed character passes). The Bidi classes
//! are approximated by blocks: the right-to-left blocks (Hebrew through the Arabic extensions,
//! presentation forms, the supplementary right-to-left ranges) are R/AL, the Arabic and few
//! other Arabic-like digits AN, ASCII and Extended Arabic-Indic digits EN, the grapheme-extending
//! characters NSM (a few spacing marks among them are in fact L), a few modifier letters ON, the
//! rest L. Joining types (for ZERO WIDTH NON-JOINER) are exact for the Basic Multilingual
//! Plane's joining scripts (Arabic, Syriac, N'Ko, Mandaic, Mongolian, Phags-pa); the letters of
//! the supplementary planes' ones are taken as dual-joining. The virama are the code points of
//! canonical combining class 9 and the spacing marks those of general category Mc, as of
//! Unicode 14.

use std::cmp::Ordering;

/// Checks `value` (a JSON string's content) against `format`: `Some(valid)` for the formats
/// listed in the module docs, `None` for any other name and for `regex`.
pub fn check(format: &str, value: &str) -> Option<bool> {
    let valid = match format {
        "date-time" => date_time(value),
        "date" => full_date(value.as_bytes()),
        "time" => full_time(value.as_bytes()),
        "duration" => duration(value),
        "email" => email(value, false),
        "idn-email" => email(value, true),
        "hostname" => hostname(value),
        "idn-hostname" => domain(value, true),
        "ipv4" => ipv4(value),
        "ipv6" => ipv6(value),
        "uri" => uri(value, true, false),
        "uri-reference" => uri(value, false, false),
        "iri" => uri(value, true, true),
        "iri-reference" => uri(value, false, true),
        "uri-template" => uri_template(value),
        "uuid" => uuid(value),
        "json-pointer" => json_pointer(value),
        "relative-json-pointer" => relative_json_pointer(value),
        _ => return None,
    };
    Some(valid)
}

// ---------------------------------------------------------------------------------------------
// Dates and times (RFC 3339)

fn two_digits(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn date_time(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.get(..10), b.get(10), b.get(11..)) {
        (Some(date), Some(b'T' | b't'), Some(time)) => full_date(date) && full_time(time),
        _ => false,
    }
}

fn full_date(b: &[u8]) -> bool {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = b else {
        return false;
    };
    let (Some(century), Some(year), Some(month), Some(day)) = (
        two_digits(y0, y1),
        two_digits(y2, y3),
        two_digits(m0, m1),
        two_digits(d0, d1),
    ) else {
        return false;
    };
    let year = century * 100 + year;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

fn full_time(b: &[u8]) -> bool {
    let &[h0, h1, b':', m0, m1, b':', s0, s1, ref rest @ ..] = b else {
        return false;
    };
    let (Some(hour), Some(minute), Some(second)) =
        (two_digits(h0, h1), two_digits(m0, m1), two_digits(s0, s1))
    else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let rest = match rest.split_first() {
        Some((b'.', fraction)) => {
            let n = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            match fraction.get(n..) {
                Some(offset) if n > 0 => offset,
                _ => return false,
            }
        }
        _ => rest,
    };
    // The offset in minutes east of UTC.
    let offset = match *rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), a, b, b':', c, d] => {
            let (Some(hours), Some(minutes)) = (two_digits(a, b), two_digits(c, d)) else {
                return false;
            };
            if hours > 23 || minutes > 59 {
                return false;
            }
            let minutes = i64::from(hours * 60 + minutes);
            if sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return false,
    };
    // A leap second is the 61st second of 23:59 UTC.
    second < 60 || (i64::from(hour * 60 + minute) - offset).rem_euclid(24 * 60) == 23 * 60 + 59
}

/// `P` (date parts [`T` time parts] | time parts | weeks), RFC 3339 Appendix A.
fn duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('P') else {
        return false;
    };
    if let Some(weeks) = rest.strip_suffix('W') {
        return all_digits(weeks);
    }
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let Some(date_parts) = duration_parts(date, b"YMD") else {
        return false;
    };
    match time {
        None => date_parts > 0,
        Some(time) => duration_parts(time, b"HMS").is_some_and(|n| n > 0),
    }
}

/// The number of `digits unit` parts of `s`, `None` unless the units are consecutive letters of
/// `units` in order.
fn duration_parts(s: &str, units: &[u8]) -> Option<usize> {
    let mut rest = s.as_bytes();
    let mut previous: Option<usize> = None;
    let mut count = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (unit, tail) = rest.get(digits..)?.split_first()?;
        let position = units.iter().position(|u| u == unit)?;
        if digits == 0 || previous.is_some_and(|p| position != p + 1) {
            return None;
        }
        previous = Some(position);
        count += 1;
        rest = tail;
    }
    Some(count)
}

// ---------------------------------------------------------------------------------------------
// IP addresses

fn ipv4(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        parts += 1;
        if parts > 4 || !dec_octet(part) {
            return false;
        }
    }
    parts == 4
}

/// `0`–`255` in ASCII digits without a leading zero (RFC 3986's `dec-octet`).
fn dec_octet(s: &str) -> bool {
    all_digits(s)
        && s.len() <= 3
        && !(s.len() > 1 && s.starts_with('0'))
        && s.parse::<u16>().is_ok_and(|n| n <= 255)
}

fn ipv6(s: &str) -> bool {
    match s.split_once("::") {
        Some((head, tail)) => match (ipv6_groups(head, false), ipv6_groups(tail, true)) {
            (Some(h), Some(t)) => h + t <= 7,
            _ => false,
        },
        None => ipv6_groups(s, true) == Some(8),
    }
}

/// The number of 16-bit groups in `s` (colon-separated hex groups, the last possibly a dotted
/// quad counting two when `v4_tail`), `None` if malformed. Empty is zero groups.
fn ipv6_groups(s: &str, v4_tail: bool) -> Option<usize> {
    if s.is_empty() {
        return Some(0);
    }
    let mut count = 0;
    let mut pieces = s.split(':').peekable();
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        if last && v4_tail && piece.contains('.') {
            if !ipv4(piece) {
                return None;
            }
            count += 2;
        } else if (1..=4).contains(&piece.len()) && piece.bytes().all(|b| b.is_ascii_hexdigit()) {
            count += 1;
        } else {
            return None;
        }
    }
    Some(count)
}

// ---------------------------------------------------------------------------------------------
// Host names (RFC 1123, IDNA2008)

fn hostname(s: &str) -> bool {
    s.is_ascii() && domain(s, false)
}

/// U+3002 IDEOGRAPHIC FULL STOP, U+FF0E FULLWIDTH FULL STOP, U+FF61 HALFWIDTH IDEOGRAPHIC FULL
/// STOP: label separators besides `.` in an internationalized name (RFC 3490 §3.1).
fn is_idn_separator(c: char) -> bool {
    matches!(c, '\u{3002}' | '\u{FF0E}' | '\u{FF61}')
}

/// A `hostname` (`idn` false, ASCII only) or an `idn-hostname`.
fn domain(s: &str, idn: bool) -> bool {
    // Each character is at least one octet of the ASCII form, which may not exceed 253: this
    // also bounds the work of the Punycode encoding below.
    if s.is_empty() || s.chars().count() > 253 {
        return false;
    }
    let separator = |c: char| c == '.' || (idn && is_idn_separator(c));
    let mut length = 0;
    let mut right_to_left = false;
    for (i, text) in s.split(separator).enumerate() {
        let Some(label) = label(text) else {
            return false;
        };
        length += label.ascii_len + usize::from(i > 0);
        right_to_left |= label.right_to_left;
    }
    // RFC 5893 §2: in a name with a right-to-left label, every label follows the Bidi rule.
    length <= 253
        && (!right_to_left
            || s.split(separator).all(|text| match unicode_label(text) {
                Some(chars) => bidi_rule(&chars),
                None => false,
            }))
}

struct Label {
    /// Its length as an A-label or LDH label.
    ascii_len: usize,
    /// Whether it holds an R, AL or AN character (RFC 5893's RTL label).
    right_to_left: bool,
}

/// Checks one label (plain LDH, A-label or U-label).
fn label(text: &str) -> Option<Label> {
    if text.is_ascii() {
        if text.len() > 63 || !ldh_label(text) {
            return None;
        }
        let mut right_to_left = false;
        if let Some(puny) = strip_ace_prefix(text) {
            let chars = a_label_decode(puny)?;
            // An A-label encodes a non-ASCII label, in the one way the encoder writes it.
            if chars.iter().all(char::is_ascii)
                || !punycode_encode(&chars)?.eq_ignore_ascii_case(puny)
                || !u_label(&chars)
            {
                return None;
            }
            right_to_left = chars.iter().any(|&c| bidi_class(c).is_right_to_left());
        }
        return Some(Label {
            ascii_len: text.len(),
            right_to_left,
        });
    }
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > 63 || !u_label(&chars) {
        return None;
    }
    let ascii_len = 4 + punycode_encode(&chars)?.len();
    (ascii_len <= 63).then(|| Label {
        ascii_len,
        right_to_left: chars.iter().any(|&c| bidi_class(c).is_right_to_left()),
    })
}

/// The characters of a label, an A-label decoded.
fn unicode_label(text: &str) -> Option<Vec<char>> {
    match strip_ace_prefix(text) {
        Some(puny) if text.is_ascii() => a_label_decode(puny),
        _ => Some(text.chars().collect()),
    }
}

/// An A-label's U-label. Like any DNS label an A-label is compared without regard to case, so
/// it is lower-cased first: `XN--BCHER-KVA` is `bücher`.
fn a_label_decode(puny: &str) -> Option<Vec<char>> {
    punycode_decode(&puny.to_ascii_lowercase())
}

fn strip_ace_prefix(text: &str) -> Option<&str> {
    match (text.get(..4), text.get(4..)) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("xn--") => Some(rest),
        _ => None,
    }
}

/// Letters, digits and hyphens, not starting or ending with a hyphen (RFC 1123 §2.1).
fn ldh_label(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('-')
        && !text.ends_with('-')
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The label rules of RFC 5891 §4.2.2 and §4.2.3 (code points, hyphens, leading combining mark,
/// contextual rules), as far as they can be checked without tables (see the module docs). The
/// Bidi rule, which depends on the other labels, is the caller's.
fn u_label(chars: &[char]) -> bool {
    let (Some(&first), Some(&last)) = (chars.first(), chars.last()) else {
        return false;
    };
    if first == '-'
        || last == '-'
        || (chars.get(2) == Some(&'-') && chars.get(3) == Some(&'-'))
        || is_mark(first)
    {
        return false;
    }
    let mut arabic_indic = false;
    let mut extended_arabic_indic = false;
    let mut katakana_middle_dot = false;
    let mut kana_or_han = false;
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let after = chars.get(i + 1).copied();
        let allowed = match c {
            // ASCII capitals are DISALLOWED in a U-label (RFC 5892 §2.2, unstable under case
            // folding), though an ASCII label may have them.
            'a'..='z' | '0'..='9' | '-' => true,
            // RFC 5892 Appendix A.1: ZERO WIDTH NON-JOINER.
            '\u{200C}' => before.is_some_and(is_virama) || zwnj_between_joining(chars, i),
            // A.2: ZERO WIDTH JOINER.
            '\u{200D}' => before.is_some_and(is_virama),
            // A.3: MIDDLE DOT, only in Catalan's l·l.
            '\u{B7}' => before == Some('l') && after == Some('l'),
            // A.4: GREEK LOWER NUMERAL SIGN (KERAIA).
            '\u{375}' => after.is_some_and(is_greek),
            // A.5, A.6: HEBREW PUNCTUATION GERESH and GERSHAYIM.
            '\u{5F3}' | '\u{5F4}' => before.is_some_and(is_hebrew),
            // A.7: KATAKANA MIDDLE DOT, checked after the loop.
            '\u{30FB}' => {
                katakana_middle_dot = true;
                true
            }
            // A.8, A.9: ARABIC-INDIC DIGITS and EXTENDED ARABIC-INDIC DIGITS, not both.
            '\u{660}'..='\u{669}' => {
                arabic_indic = true;
                true
            }
            '\u{6F0}'..='\u{6F9}' => {
                extended_arabic_indic = true;
                true
            }
            _ => {
                kana_or_han |= is_kana_or_han(c);
                is_allowed(c)
            }
        };
        if !allowed {
            return false;
        }
    }
    !(arabic_indic && extended_arabic_indic) && (!katakana_middle_dot || kana_or_han)
}

/// The approximation of RFC 5892's PVALID for a character without contextual rule.
fn is_allowed(c: char) -> bool {
    if c.is_ascii() {
        return false; // the allowed ASCII ones are handled by the caller
    }
    let cp = u32::from(c);
    // RFC 5892 §2.6, the exceptions that are PVALID: ß, ς, ۽, ۾, ་, 〇.
    if matches!(cp, 0xDF | 0x3C2 | 0x6FD | 0x6FE | 0xF0B | 0x3007) {
        return true;
    }
    if in_ranges(DISALLOWED, cp) || !is_printable(c) {
        return false;
    }
    // Cherokee capitals are what case folding maps the small letters to.
    if (0x13A0..=0x13F5).contains(&cp) {
        return true;
    }
    if c.is_uppercase() {
        return false;
    }
    if c.is_numeric() {
        return is_decimal_digit(c);
    }
    c.is_alphabetic() || is_mark(c)
}

/// Whether a numeric character is a decimal digit (Nd, allowed) rather than a letter-like (Nl)
/// or other (No) number (disallowed), without the general category. Decimal digits come in
/// runs of ten, zero to nine. Letter-like numbers are alphabetic; of the other numbers, those
/// outside [`DISALLOWED`] only ever follow their script's ten digits in one run of numeric
/// characters. So a digit is one of the first ten of a run of at least ten.
fn is_decimal_digit(c: char) -> bool {
    let numeric = |cp: u32| {
        char::from_u32(cp).is_some_and(|c| c.is_numeric() && !c.is_alphabetic())
            && !in_ranges(DISALLOWED, cp)
    };
    let cp = u32::from(c);
    if !numeric(cp) {
        return false;
    }
    let start = (1..=10)
        .map(|back| cp.saturating_sub(back))
        .take_while(|&p| numeric(p))
        .last()
        .unwrap_or(cp);
    let end = (1..=10)
        .map(|ahead| cp + ahead)
        .take_while(|&p| numeric(p))
        .last()
        .unwrap_or(cp);
    cp - start < 10 && end - start >= 9
}

/// Ranges of code points refused although they are alphanumeric or marks, printable and not
/// upper case: RFC 5892's DISALLOWED exceptions (§2.6), and the main blocks and runs of
/// characters that NFKC or case folding changes (§2.2 Unstable) or that are default
/// ignorable or in an ignorable block (§2.3, §2.4), and the old Hangul jamo (§2.9). Sorted.
const DISALLOWED: &[(u32, u32)] = &[
    (0xA0, 0xB6), // Latin-1 symbols and compatibility characters (ª, ², µ, ¼, …) but MIDDLE DOT
    (0xB8, 0xBF),
    (0x132, 0x133), // ĳ
    (0x13F, 0x140), // ŀ
    (0x149, 0x149), // ŉ
    (0x17F, 0x17F), // ſ
    (0x1C4, 0x1CC), // ǆ, ǉ, ǌ
    (0x1F1, 0x1F3), // ǳ
    (0x2B0, 0x2B8), // modifier letters
    (0x2E0, 0x2E4),
    (0x340, 0x341), // combining marks with singleton decompositions
    (0x343, 0x345),
    (0x34F, 0x34F), // COMBINING GRAPHEME JOINER
    (0x374, 0x374),
    (0x37A, 0x37A),
    (0x3D0, 0x3D6), // Greek symbol variants
    (0x3F0, 0x3F2),
    (0x3F4, 0x3F5),
    (0x3F9, 0x3F9),
    (0x488, 0x489), // enclosing marks (Me is not among RFC 5892's LetterDigits)
    (0x587, 0x587),
    (0x640, 0x640), // ARABIC TATWEEL (§2.6)
    (0x675, 0x678),
    (0x7FA, 0x7FA), // NKO LAJANYALAN (§2.6)
    (0x958, 0x95F), // Indic letters with nukta excluded from composition
    (0x9DC, 0x9DD),
    (0x9DF, 0x9DF),
    (0xA33, 0xA33),
    (0xA36, 0xA36),
    (0xA59, 0xA5B),
    (0xA5E, 0xA5E),
    (0xB5C, 0xB5D),
    (0xE33, 0xE33),
    (0xEB3, 0xEB3),
    (0xEDC, 0xEDD),
    (0xF0C, 0xF0C),
    (0xF43, 0xF43), // Tibetan letters and marks excluded from composition
    (0xF4D, 0xF4D),
    (0xF52, 0xF52),
    (0xF57, 0xF57),
    (0xF5C, 0xF5C),
    (0xF69, 0xF69),
    (0xF73, 0xF73),
    (0xF75, 0xF79),
    (0xF81, 0xF81),
    (0xF93, 0xF93),
    (0xF9D, 0xF9D),
    (0xFA2, 0xFA2),
    (0xFA7, 0xFA7),
    (0xFAC, 0xFAC),
    (0xFB9, 0xFB9),
    (0x10FC, 0x10FC),
    (0x1100, 0x11FF), // Hangul Jamo
    (0x1369, 0x137C), // Ethiopic numbers
    (0x13F8, 0x13FD), // Cherokee small letters (case folding maps them to capitals)
    (0x17B4, 0x17B5),
    (0x17F0, 0x17F9), // Khmer numeric symbols
    (0x180B, 0x180F), // Mongolian variation selectors
    (0x1ABE, 0x1ABE),
    (0x1C80, 0x1C88), // Cyrillic letter variants (case folding maps them to the usual ones)
    (0x1D2C, 0x1D2E), // phonetic modifier letters
    (0x1D30, 0x1D3A),
    (0x1D3C, 0x1D4D),
    (0x1D4F, 0x1D6A),
    (0x1D78, 0x1D78),
    (0x1D9B, 0x1DBF),
    (0x1E9A, 0x1E9B),
    (0x1F71, 0x1F71), // Greek letters with oxia (canonically the ones with tonos)
    (0x1F73, 0x1F73),
    (0x1F75, 0x1F75),
    (0x1F77, 0x1F77),
    (0x1F79, 0x1F79),
    (0x1F7B, 0x1F7B),
    (0x1F7D, 0x1F7D),
    (0x1F80, 0x1FAF), // Greek letters with ypogegrammeni (case folding writes an iota)
    (0x1FB2, 0x1FB4),
    (0x1FB7, 0x1FB7),
    (0x1FBC, 0x1FBE), // and the titlecase letters with prosgegrammeni
    (0x1FC2, 0x1FC4),
    (0x1FC7, 0x1FC7),
    (0x1FCC, 0x1FCC),
    (0x1FD3, 0x1FD3),
    (0x1FE3, 0x1FE3),
    (0x1FF2, 0x1FF4),
    (0x1FF7, 0x1FF7),
    (0x1FFC, 0x1FFC),
    (0x2070, 0x209F), // superscripts and subscripts
    (0x20D0, 0x20FF), // combining marks for symbols
    (0x2100, 0x214D), // letterlike symbols
    (0x2150, 0x2183), // number forms
    (0x2185, 0x218F),
    (0x2460, 0x24FF), // enclosed alphanumerics
    (0x2776, 0x2793), // dingbat circled digits
    (0x2C7C, 0x2C7D),
    (0x2D6F, 0x2D6F),
    (0x3021, 0x3029), // Hangzhou numerals
    (0x302E, 0x302F), // Hangul tone marks (§2.6)
    (0x3031, 0x3035), // vertical kana repeat marks (§2.6)
    (0x3038, 0x303B), // 303B VERTICAL IDEOGRAPHIC ITERATION MARK (§2.6)
    (0x309F, 0x309F),
    (0x30FF, 0x30FF),
    (0x3131, 0x319F), // Hangul compatibility jamo, kanbun
    (0x3200, 0x33FF), // enclosed CJK letters, CJK compatibility
    (0xA670, 0xA672),
    (0xA69C, 0xA69D),
    (0xA770, 0xA770),
    (0xA7F1, 0xA7F4),
    (0xA7F8, 0xA7F9),
    (0xA960, 0xA97F), // Hangul Jamo Extended-A
    (0xAB5C, 0xAB5F),
    (0xAB69, 0xAB69),
    (0xAB70, 0xABBF), // Cherokee small letters
    (0xD7B0, 0xD7FF), // Hangul Jamo Extended-B
    (0xF900, 0xFA0D), // CJK compatibility ideographs, but the twelve unified ones
    (0xFA10, 0xFA10),
    (0xFA12, 0xFA12),
    (0xFA15, 0xFA1E),
    (0xFA20, 0xFA20),
    (0xFA22, 0xFA22),
    (0xFA25, 0xFA26),
    (0xFA2A, 0xFAFF),
    (0xFB00, 0xFB1D), // ligatures, Hebrew presentation forms but FB1E
    (0xFB1F, 0xFDFF), // and Arabic presentation forms A
    (0xFE00, 0xFE1F), // variation selectors, vertical forms
    (0xFE30, 0xFE72), // CJK compatibility forms, small forms, Arabic presentation forms B
    (0xFE74, 0xFEFF),
    (0xFF00, 0xFFEF),   // halfwidth and fullwidth forms
    (0x10107, 0x10133), // Aegean numbers
    (0x102E1, 0x102FB), // Coptic epact numbers
    (0x10781, 0x107BA), // Latin modifier letters
    (0x109C0, 0x109FF), // Meroitic cursive numbers
    (0x10E60, 0x10E7E), // Rumi numerals
    (0x10F1D, 0x10F26), // Old Sogdian numbers
    (0x11052, 0x11065), // Brahmi numbers
    (0x111E1, 0x111F4), // Sinhala archaic numbers
    (0x11FC0, 0x11FD4), // Tamil fractions
    (0x16E80, 0x16E96), // Medefaidrin numbers
    (0x1CCF0, 0x1CCF9), // outlined digits
    (0x1D100, 0x1D24F), // musical symbols
    (0x1D2C0, 0x1D2F3), // Kaktovik and Mayan numerals
    (0x1D360, 0x1D378), // counting rod numerals
    (0x1D400, 0x1D7FF), // mathematical alphanumerics
    (0x1E030, 0x1E06D), // Cyrillic modifier letters
    (0x1EC71, 0x1ECB4), // Indic Siyaq numbers
    (0x1ED01, 0x1ED3D), // Ottoman Siyaq numbers
    (0x1EE00, 0x1EEFF), // Arabic mathematical alphabetic symbols
    (0x1F100, 0x1F1FF), // enclosed alphanumerics supplement
    (0x1FBF0, 0x1FBF9), // segmented digits
    (0x2F800, 0x2FA1F), // CJK compatibility ideographs supplement
    (0xE0000, 0xE0FFF), // tags, variation selectors supplement
];

/// The spacing combining marks (general category Mc) as of Unicode 14, as ranges that may also
/// cover nonspacing marks and unassigned code points between them. (The nonspacing and
/// enclosing ones are found by [`is_grapheme_extend`].)
const SPACING_MARKS: &[(u32, u32)] = &[
    (0x903, 0x903),
    (0x93B, 0x93B),
    (0x93E, 0x94F),
    (0x982, 0x983),
    (0x9BE, 0x9CC),
    (0x9D7, 0x9D7),
    (0xA03, 0xA03),
    (0xA3E, 0xA40),
    (0xA83, 0xA83),
    (0xABE, 0xACC),
    (0xB02, 0xB03),
    (0xB3E, 0xB57),
    (0xBBE, 0xBCC),
    (0xBD7, 0xBD7),
    (0xC01, 0xC03),
    (0xC41, 0xC44),
    (0xC82, 0xC83),
    (0xCBE, 0xCD6),
    (0xD02, 0xD03),
    (0xD3E, 0xD4C),
    (0xD57, 0xD57),
    (0xD82, 0xD83),
    (0xDCF, 0xDDF),
    (0xDF2, 0xDF3),
    (0xF3E, 0xF3F),
    (0xF7F, 0xF7F),
    (0x102B, 0x103C),
    (0x1056, 0x1057),
    (0x1062, 0x1064),
    (0x1067, 0x106D),
    (0x1083, 0x108C),
    (0x108F, 0x108F),
    (0x109A, 0x109C),
    (0x1715, 0x1715),
    (0x1734, 0x1734),
    (0x17B6, 0x17C8),
    (0x1923, 0x1938),
    (0x1A19, 0x1A1A),
    (0x1A55, 0x1A72),
    (0x1B04, 0x1B04),
    (0x1B35, 0x1B44),
    (0x1B82, 0x1B82),
    (0x1BA1, 0x1BAA),
    (0x1BE7, 0x1BF3),
    (0x1C24, 0x1C35),
    (0x1CE1, 0x1CE1),
    (0x1CF7, 0x1CF7),
    (0x302E, 0x302F),
    (0xA823, 0xA827),
    (0xA880, 0xA881),
    (0xA8B4, 0xA8C3),
    (0xA952, 0xA953),
    (0xA983, 0xA983),
    (0xA9B4, 0xA9C0),
    (0xAA2F, 0xAA34),
    (0xAA4D, 0xAA4D),
    (0xAA7B, 0xAA7D),
    (0xAAEB, 0xAAEF),
    (0xAAF5, 0xAAF5),
    (0xABE3, 0xABEA),
    (0xABEC, 0xABEC),
    (0x11000, 0x11002),
    (0x11082, 0x11082),
    (0x110B0, 0x110B8),
    (0x1112C, 0x1112C),
    (0x11145, 0x11146),
    (0x11182, 0x11182),
    (0x111B3, 0x111C0),
    (0x111CE, 0x111CE),
    (0x1122C, 0x11235),
    (0x112E0, 0x112E2),
    (0x11302, 0x11303),
    (0x1133E, 0x1134D),
    (0x11357, 0x11357),
    (0x11362, 0x11363),
    (0x11435, 0x11445),
    (0x114B0, 0x114C1),
    (0x115AF, 0x115BE),
    (0x11630, 0x1163E),
    (0x116AC, 0x116B6),
    (0x11720, 0x11726),
    (0x1182C, 0x11838),
    (0x11930, 0x1193D),
    (0x11940, 0x11940),
    (0x11942, 0x11942),
    (0x119D1, 0x119DF),
    (0x119E4, 0x119E4),
    (0x11A39, 0x11A39),
    (0x11A57, 0x11A58),
    (0x11A97, 0x11A97),
    (0x11C2F, 0x11C3E),
    (0x11CA9, 0x11CB4),
    (0x11D8A, 0x11D96),
    (0x11EF5, 0x11EF6),
    (0x16F51, 0x16F87),
    (0x16FF0, 0x16FF1),
];

/// The code points of canonical combining class 9 (Virama), Unicode 14.
const VIRAMA: &[u32] = &[
    0x94D, 0x9CD, 0xA4D, 0xACD, 0xB4D, 0xBCD, 0xC4D, 0xCCD, 0xD3B, 0xD3C, 0xD4D, 0xDCA, 0xE3A,
    0xEBA, 0xF84, 0x1039, 0x103A, 0x1714, 0x1715, 0x1734, 0x17D2, 0x1A60, 0x1B44, 0x1BAA, 0x1BAB,
    0x1BF2, 0x1BF3, 0x2D7F, 0xA806, 0xA82C, 0xA8C4, 0xA953, 0xA9C0, 0xAAF6, 0xABED, 0x10A3F,
    0x11046, 0x11070, 0x1107F, 0x110B9, 0x11133, 0x11134, 0x111C0, 0x11235, 0x112EA, 0x1134D,
    0x11442, 0x114C2, 0x115BF, 0x1163F, 0x116B6, 0x1172B, 0x11839, 0x1193D, 0x1193E, 0x119E0,
    0x11A34, 0x11A47, 0x11A99, 0x11C3F, 0x11D44, 0x11D45, 0x11D97,
];

fn in_ranges(ranges: &[(u32, u32)], cp: u32) -> bool {
    ranges
        .binary_search_by(|&(low, high)| {
            if high < cp {
                Ordering::Less
            } else if low > cp {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `std` prints `c` as itself inside a string: false for unassigned, control, format,
/// private-use, surrogate and separator (but ASCII space) code points. `str::escape_debug`
/// escapes a later character only when it is not printable.
fn is_printable(c: char) -> bool {
    let mut buf = [b'a'; 5];
    let encoded = match buf.get_mut(1..) {
        Some(tail) => c.encode_utf8(tail).len(),
        None => return false,
    };
    match buf.get(..=encoded).map(std::str::from_utf8) {
        Some(Ok(text)) => text.escape_debug().count() == 2,
        _ => false,
    }
}

/// Grapheme_Extend (nonspacing and enclosing marks and a few others): `char::escape_debug`
/// escapes these, and the unprintable ones, because they would combine with a quote.
fn is_grapheme_extend(c: char) -> bool {
    !c.is_ascii() && c.escape_debug().count() > 1 && is_printable(c)
}

/// A combining mark (general category M), approximately (see [`SPACING_MARKS`]).
fn is_mark(c: char) -> bool {
    is_grapheme_extend(c) || in_ranges(SPACING_MARKS, u32::from(c))
}

fn is_virama(c: char) -> bool {
    VIRAMA.contains(&u32::from(c))
}

/// Greek script letters (Greek and Coptic block but Coptic, Greek Extended).
fn is_greek(c: char) -> bool {
    matches!(
        u32::from(c),
        0x370..=0x373
            | 0x376..=0x377
            | 0x37B..=0x37D
            | 0x37F
            | 0x386
            | 0x388..=0x3E1
            | 0x3F0..=0x3FF
            | 0x1F00..=0x1FFE
    )
}

/// Hebrew script: the Hebrew block's points, letters and punctuation, and the presentation
/// forms.
fn is_hebrew(c: char) -> bool {
    matches!(u32::from(c), 0x591..=0x5F4 | 0xFB1D..=0xFB4F)
}

/// Hiragana, Katakana or Han script, by blocks (with a few of their Common neighbours).
fn is_kana_or_han(c: char) -> bool {
    matches!(u32::from(c),
        0x3041..=0x309F // Hiragana
        | 0x30A1..=0x30FA | 0x30FD..=0x30FF | 0x31F0..=0x31FF // Katakana
        | 0xFF66..=0xFF9D | 0x1AFF0..=0x1B16F
        | 0x2E80..=0x2FDF | 0x3005 | 0x3007 | 0x3021..=0x3029 | 0x3038..=0x303B // Han
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3FFFF)
}

/// RFC 5892 A.1's regular expression around the ZERO WIDTH NON-JOINER at `i`:
/// `(Joining_Type:{L,D})(Joining_Type:T)*\u200C(Joining_Type:T)*(Joining_Type:{R,D})`.
fn zwnj_between_joining(chars: &[char], i: usize) -> bool {
    let transparent = |c: &&char| **c != '\u{200C}' && is_grapheme_extend(**c);
    let before = chars
        .get(..i)
        .and_then(|b| b.iter().rev().find(|c| !transparent(c)));
    let after = chars
        .get(i + 1..)
        .and_then(|a| a.iter().find(|c| !transparent(c)));
    match (before, after) {
        (Some(&b), Some(&a)) => {
            joining(b).is_some_and(|j| j.left) && joining(a).is_some_and(|j| j.right)
        }
        _ => false,
    }
}

/// A joining letter's ability to join the character after it in logical order (`left`: its
/// Joining_Type is L or D) and the one before (`right`: R or D).
#[derive(Clone, Copy)]
struct Joining {
    left: bool,
    right: bool,
}

fn joining(c: char) -> Option<Joining> {
    const DUAL: Joining = Joining {
        left: true,
        right: true,
    };
    const RIGHT: Joining = Joining {
        left: false,
        right: true,
    };
    const LEFT: Joining = Joining {
        left: true,
        right: false,
    };
    match u32::from(c) {
        // Arabic, Syriac, N'Ko, Mandaic and their extensions (U+0600–08FF), Mongolian and
        // Phags-pa: Joining_Type R (alef, dal, reh, waw, teh marbuta and their variants, …)…
        0x622..=0x625
        | 0x627
        | 0x629
        | 0x62F..=0x632
        | 0x648
        | 0x671..=0x673
        | 0x675..=0x677
        | 0x688..=0x699
        | 0x6C0
        | 0x6C3..=0x6CB
        | 0x6CD
        | 0x6CF
        | 0x6D2..=0x6D3
        | 0x6D5
        | 0x6EE..=0x6EF
        | 0x710
        | 0x715..=0x719
        | 0x71E
        | 0x728
        | 0x72A
        | 0x72C
        | 0x72F
        | 0x74D
        | 0x759..=0x75B
        | 0x76B..=0x76C
        | 0x771
        | 0x773..=0x774
        | 0x778..=0x779
        | 0x840
        | 0x846..=0x847
        | 0x849
        | 0x854
        | 0x856..=0x858
        | 0x867
        | 0x869..=0x86A
        | 0x870..=0x882
        | 0x88E
        | 0x8AA..=0x8AC
        | 0x8AE
        | 0x8B1..=0x8B2
        | 0x8B9 => Some(RIGHT),
        // … and D (most letters).
        0x620
        | 0x626
        | 0x628
        | 0x62A..=0x62E
        | 0x633..=0x63F
        | 0x641..=0x647
        | 0x649..=0x64A
        | 0x66E..=0x66F
        | 0x678..=0x687
        | 0x69A..=0x6BF
        | 0x6C1..=0x6C2
        | 0x6CC
        | 0x6CE
        | 0x6D0..=0x6D1
        | 0x6FA..=0x6FC
        | 0x6FF
        | 0x712..=0x714
        | 0x71A..=0x71D
        | 0x71F..=0x727
        | 0x729
        | 0x72B
        | 0x72D..=0x72E
        | 0x74E..=0x758
        | 0x75C..=0x76A
        | 0x76D..=0x770
        | 0x772
        | 0x775..=0x777
        | 0x77A..=0x77F
        | 0x7CA..=0x7EA
        | 0x841..=0x845
        | 0x848
        | 0x84A..=0x853
        | 0x855
        | 0x860
        | 0x862..=0x865
        | 0x868
        | 0x886
        | 0x889..=0x88D
        | 0x88F
        | 0x8A0..=0x8A9
        | 0x8AF..=0x8B0
        | 0x8B3..=0x8B8
        | 0x8BA..=0x8C8
        | 0x1807
        | 0x1820..=0x1878
        | 0x1887..=0x18A8
        | 0x18AA
        | 0xA840..=0xA871 => Some(DUAL),
        0xA872 => Some(LEFT),
        // The letters of the supplementary planes' joining scripts, taken as dual-joining.
        0x10AC0..=0x10AEF // Manichaean
        | 0x10B80..=0x10BAF // Psalter Pahlavi
        | 0x10D00..=0x10D23 // Hanifi Rohingya
        | 0x10EC2..=0x10EC7 // Arabic Extended-C
        | 0x10F30..=0x10F54 // Sogdian
        | 0x10F70..=0x10F81 // Old Uyghur
        | 0x10FB0..=0x10FCB // Chorasmian
        | 0x1E900..=0x1E943 => Some(DUAL), // Adlam
        _ => None,
    }
}

/// The Bidi_Class of a label character, approximated by blocks (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bidi {
    /// L
    LeftToRight,
    /// R or AL
    RightToLeft,
    /// AN
    ArabicNumber,
    /// EN
    EuropeanNumber,
    /// NSM
    NonspacingMark,
    /// ES, CS, ET, ON, BN: the hyphen, the contextual punctuation, the joiners.
    Neutral,
}

impl Bidi {
    fn is_right_to_left(self) -> bool {
        matches!(self, Bidi::RightToLeft | Bidi::ArabicNumber)
    }
}

fn bidi_class(c: char) -> Bidi {
    match u32::from(c) {
        0x30..=0x39 | 0x6F0..=0x6F9 => Bidi::EuropeanNumber,
        0x600..=0x605
        | 0x660..=0x669
        | 0x66B..=0x66C
        | 0x6DD
        | 0x890..=0x891
        | 0x8E2
        | 0x10D30..=0x10D39
        | 0x10E60..=0x10E7E => Bidi::ArabicNumber,
        0x2D | 0xB7 | 0x375 | 0x30FB | 0x200C | 0x200D => Bidi::Neutral,
        // Modifier letters of Bidi class ON.
        0x2B9..=0x2BA | 0x2C6..=0x2CF | 0x2EC | 0x2E2F | 0xA67F | 0xA717..=0xA71F | 0xA788 => {
            Bidi::Neutral
        }
        _ if is_grapheme_extend(c) => Bidi::NonspacingMark,
        0x590..=0x8FF
        | 0xFB1D..=0xFDFF
        | 0xFE70..=0xFEFF
        | 0x10800..=0x10FFF
        | 0x1E800..=0x1EFFF => Bidi::RightToLeft,
        _ => Bidi::LeftToRight,
    }
}

/// RFC 5893 §2's six conditions.
fn bidi_rule(chars: &[char]) -> bool {
    let Some(&first) = chars.first() else {
        return false;
    };
    let Some(&last) = chars
        .iter()
        .rev()
        .find(|&&c| bidi_class(c) != Bidi::NonspacingMark)
    else {
        return false;
    };
    let has = |class: Bidi| chars.iter().any(|&c| bidi_class(c) == class);
    match bidi_class(first) {
        // 1, 5, 6: a left-to-right label has no R, AL or AN and ends with L or EN (then NSM).
        Bidi::LeftToRight => {
            !chars.iter().any(|&c| bidi_class(c).is_right_to_left())
                && matches!(bidi_class(last), Bidi::LeftToRight | Bidi::EuropeanNumber)
        }
        // 1–4: a right-to-left label has no L, not both EN and AN, and ends with R, AL, EN or
        // AN (then NSM).
        Bidi::RightToLeft => {
            if has(Bidi::LeftToRight) || (has(Bidi::EuropeanNumber) && has(Bidi::ArabicNumber)) {
                return false;
            }
            matches!(
                bidi_class(last),
                Bidi::RightToLeft | Bidi::EuropeanNumber | Bidi::ArabicNumber
            )
        }
        _ => false,
    }
}

// Punycode (RFC 3492 §5, §6).

const BASE: u32 = 36;
const T_MIN: u32 = 1;
const T_MAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 0x80;

fn adapt(delta: u32, points: u32, first: bool) -> u32 {
    let mut delta = if first { delta / DAMP } else { delta / 2 };
    delta += delta / points.max(1);
    let mut k = 0;
    while delta > ((BASE - T_MIN) * T_MAX) / 2 {
        delta /= BASE - T_MIN;
        k += BASE;
    }
    k + (BASE - T_MIN + 1) * delta / (delta + SKEW)
}

fn threshold(k: u32, bias: u32) -> u32 {
    k.saturating_sub(bias).clamp(T_MIN, T_MAX)
}

/// Decodes the part of an A-label after `xn--`; `None` on a malformed or overflowing input.
fn punycode_decode(input: &str) -> Option<Vec<char>> {
    let (basic, extended) = input.rsplit_once('-').unwrap_or(("", input));
    if !basic.is_ascii() {
        return None;
    }
    let mut output: Vec<char> = basic.chars().collect();
    let (mut n, mut i, mut bias) = (INITIAL_N, 0u32, INITIAL_BIAS);
    let mut digits = extended.bytes();
    let mut next = digits.next();
    while next.is_some() {
        let old_i = i;
        let mut weight = 1u32;
        let mut k = BASE;
        loop {
            let digit = match next? {
                b @ b'a'..=b'z' => u32::from(b - b'a'),
                b @ b'A'..=b'Z' => u32::from(b - b'A'),
                b @ b'0'..=b'9' => u32::from(b - b'0') + 26,
                _ => return None,
            };
            next = digits.next();
            i = i.checked_add(digit.checked_mul(weight)?)?;
            let t = threshold(k, bias);
            if digit < t {
                break;
            }
            weight = weight.checked_mul(BASE - t)?;
            k += BASE;
        }
        let length = u32::try_from(output.len()).ok()? + 1;
        bias = adapt(i - old_i, length, old_i == 0);
        n = n.checked_add(i / length)?;
        i %= length;
        output.insert(usize::try_from(i).ok()?, char::from_u32(n)?);
        i += 1;
    }
    Some(output)
}

/// Encodes a label's characters as the part of an A-label after `xn--`.
fn punycode_encode(chars: &[char]) -> Option<String> {
    let mut output: String = chars.iter().filter(|c| c.is_ascii()).collect();
    let basic = u32::try_from(output.len()).ok()?;
    let total = u32::try_from(chars.len()).ok()?;
    if basic > 0 {
        output.push('-');
    }
    let (mut n, mut delta, mut bias, mut handled) = (INITIAL_N, 0u32, INITIAL_BIAS, basic);
    while handled < total {
        let m = chars
            .iter()
            .map(|&c| u32::from(c))
            .filter(|&c| c >= n)
            .min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for &c in chars {
            let c = u32::from(c);
            if c < n {
                delta = delta.checked_add(1)?;
            } else if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = threshold(k, bias);
                    if q < t {
                        break;
                    }
                    output.push(punycode_digit(t + (q - t) % (BASE - t))?);
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                output.push(punycode_digit(q)?);
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n += 1;
    }
    Some(output)
}

fn punycode_digit(d: u32) -> Option<char> {
    match d {
        0..=25 => char::from_u32(u32::from(b'a') + d),
        26..=35 => char::from_u32(u32::from(b'0') + d - 26),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// E-mail addresses (RFC 5321, RFC 6531)

fn email(s: &str, international: bool) -> bool {
    // A quoted local part may hold `@`, a domain never does.
    let Some((local, domain_part)) = s.rsplit_once('@') else {
        return false;
    };
    local_part(local, international) && mail_domain(domain_part, international)
}

fn local_part(local: &str, international: bool) -> bool {
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    if let Some(quoted) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            let allowed = match c {
                '\\' => chars.next().is_some_and(|q| matches!(q, ' '..='~')),
                ' ' | '!' | '#'..='[' | ']'..='~' => true,
                _ => international && !c.is_ascii(),
            };
            if !allowed {
                return false;
            }
        }
        return true;
    }
    local.split('.').all(|atom| {
        !atom.is_empty()
            && atom.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || "!#$%&'*+-/=?^_`{|}~".contains(c)
                    || (international && !c.is_ascii())
            })
    })
}

fn mail_domain(d: &str, international: bool) -> bool {
    if let Some(literal) = d.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return match (literal.get(..5), literal.get(5..)) {
            (Some(tag), Some(address)) if tag.eq_ignore_ascii_case("IPv6:") => ipv6(address),
            _ => ipv4(literal),
        };
    }
    if international {
        domain(d, true)
    } else {
        hostname(d)
    }
}

// ---------------------------------------------------------------------------------------------
// URIs and IRIs (RFC 3986, RFC 3987)

/// `absolute`: a scheme is required (`uri`, `iri`); `iri`: `ucschar` and `iprivate` allowed.
fn uri(s: &str, absolute: bool, iri: bool) -> bool {
    let (rest, fragment) = match s.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (s, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    if fragment.is_some_and(|f| !uri_chars(f, ":@/?", iri, false))
        || query.is_some_and(|q| !uri_chars(q, ":@/?", iri, true))
    {
        return false;
    }
    let (hier, has_scheme) = match rest.split_once(':') {
        Some((scheme, hier)) if is_scheme(scheme) => (hier, true),
        _ if absolute => return false,
        _ => (rest, false),
    };
    if let Some(after) = hier.strip_prefix("//") {
        let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
        return uri_authority(authority, iri) && uri_chars(path, ":@/", iri, false);
    }
    // Without a scheme, a colon in the first segment would read as one (`path-noscheme`).
    let first_segment = hier.split('/').next().unwrap_or_default();
    (has_scheme || !first_segment.contains(':')) && uri_chars(hier, ":@/", iri, false)
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn uri_authority(authority: &str, iri: bool) -> bool {
    let host_port = match authority.split_once('@') {
        Some((userinfo, host_port)) => {
            if !uri_chars(userinfo, ":", iri, false) {
                return false;
            }
            host_port
        }
        None => authority,
    };
    let port = if let Some(literal) = host_port.strip_prefix('[') {
        let Some((address, after)) = literal.split_once(']') else {
            return false;
        };
        if !(ipv6(address) || ip_future(address)) {
            return false;
        }
        match after {
            "" => "",
            _ => match after.strip_prefix(':') {
                Some(port) => port,
                None => return false,
            },
        }
    } else {
        let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
        if !uri_chars(host, "", iri, false) {
            return false;
        }
        port
    };
    port.bytes().all(|b| b.is_ascii_digit())
}

/// `"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn ip_future(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else {
        return false;
    };
    let Some((version, address)) = rest.split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_hexdigit())
        && !address.is_empty()
        && !address.contains('%')
        && uri_chars(address, ":", false, false)
}

/// Whether `s` is only unreserved characters, sub-delims, percent-encodings and the ASCII
/// characters of `extra`; with `iri`, also `ucschar`, and `iprivate` with `private`.
fn uri_chars(s: &str, extra: &str, iri: bool, private: bool) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let allowed = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' | '~' => true,
            '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '=' => true,
            '%' => percent_encoded(&mut chars),
            _ if c.is_ascii() => extra.contains(c),
            _ => iri && (is_ucschar(c) || (private && is_iprivate(c))),
        };
        if !allowed {
            return false;
        }
    }
    true
}

/// The two hex digits after a `%`.
fn percent_encoded(chars: &mut std::str::Chars<'_>) -> bool {
    chars.next().is_some_and(|c| c.is_ascii_hexdigit())
        && chars.next().is_some_and(|c| c.is_ascii_hexdigit())
}

/// RFC 3987's `ucschar`: the non-ASCII characters but the surrogates, private-use code points,
/// specials and the last two code points of each plane.
fn is_ucschar(c: char) -> bool {
    let cp = u32::from(c);
    match cp {
        0xA0..=0xD7FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFEF => true,
        0x10000..=0xDFFFF => cp & 0xFFFF <= 0xFFFD,
        0xE1000..=0xEFFFD => true,
        _ => false,
    }
}

fn is_iprivate(c: char) -> bool {
    matches!(u32::from(c), 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD)
}

// ---------------------------------------------------------------------------------------------
// URI templates (RFC 6570)

fn uri_template(s: &str) -> bool {
    let mut rest = s;
    loop {
        let (literals, expression) = match rest.split_once('{') {
            Some((literals, expression)) => (literals, Some(expression)),
            None => (rest, None),
        };
        if !template_literals(literals) {
            return false;
        }
        let Some(expression) = expression else {
            return true;
        };
        let Some((body, after)) = expression.split_once('}') else {
            return false;
        };
        if !template_expression(body) {
            return false;
        }
        rest = after;
    }
}

fn template_literals(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let allowed = match c {
            '%' => percent_encoded(&mut chars),
            '!' | '#' | '$' | '&'..=';' | '=' | '?'..='[' | ']' | '_' | 'a'..='z' | '~' => true,
            _ if c.is_ascii() => false,
            _ => is_ucschar(c) || is_iprivate(c),
        };
        if !allowed {
            return false;
        }
    }
    true
}

fn template_expression(body: &str) -> bool {
    let variables = match body.strip_prefix(['+', '#', '.', '/', ';', '?', '&']) {
        Some(variables) => variables,
        None => body,
    };
    variables.split(',').all(|spec| {
        let name = if let Some(name) = spec.strip_suffix('*') {
            name
        } else if let Some((name, max_length)) = spec.split_once(':') {
            if !(all_digits(max_length) && max_length.len() <= 4 && !max_length.starts_with('0')) {
                return false;
            }
            name
        } else {
            spec
        };
        name.split('.').all(|part| {
            let mut chars = part.chars();
            let mut any = false;
            while let Some(c) = chars.next() {
                any = true;
                let allowed = match c {
                    '%' => percent_encoded(&mut chars),
                    _ => c.is_ascii_alphanumeric() || c == '_',
                };
                if !allowed {
                    return false;
                }
            }
            any
        })
    })
}

// ---------------------------------------------------------------------------------------------
// UUIDs and JSON pointers

fn uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn json_pointer(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let Some(tokens) = s.strip_prefix('/') else {
        return false;
    };
    let mut chars = tokens.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

fn relative_json_pointer(s: &str) -> bool {
    let digits = s.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && s.starts_with('0')) {
        return false;
    }
    match s.get(digits..) {
        Some(rest) => rest == "#" || json_pointer(rest),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(format: &str, value: &str) -> bool {
        check(format, value).unwrap_or_else(|| panic!("{format} is not known"))
    }

    /// Asserts each of `good` passes and each of `bad` fails `format`.
    fn cases(format: &str, good: &[&str], bad: &[&str]) {
        for v in good {
            assert!(valid(format, v), "{format}: {v:?} should be valid");
        }
        for v in bad {
            assert!(!valid(format, v), "{format}: {v:?} should be invalid");
        }
    }

    #[test]
    fn known_and_unknown_names() {
        for name in [
            "date-time",
            "date",
            "time",
            "duration",
            "email",
            "idn-email",
            "hostname",
            "idn-hostname",
            "ipv4",
            "ipv6",
            "uri",
            "uri-reference",
            "iri",
            "iri-reference",
            "uri-template",
            "uuid",
            "json-pointer",
            "relative-json-pointer",
        ] {
            assert!(check(name, "").is_some(), "{name}");
        }
        for name in ["regex", "period", "int32", "Date", ""] {
            assert_eq!(check(name, "x"), None, "{name}");
        }
    }

    #[test]
    fn tables_are_sorted() {
        for table in [DISALLOWED, SPACING_MARKS] {
            assert!(table.iter().all(|(low, high)| low <= high));
            assert!(table.windows(2).all(|w| w[0].1 < w[1].0), "{:x?}", table);
        }
        assert!(VIRAMA.windows(2).all(|w| w[0] < w[1]));
    }

    /// What the code-point checks lean on in `std`: if a toolchain changes how `escape_debug`
    /// treats these, the approximation needs another look.
    #[test]
    fn std_character_properties() {
        assert!(is_printable('é') && is_printable('\u{301}') && is_printable('실'));
        assert!(!is_printable('\u{3040}')); // unassigned
        assert!(!is_printable('\u{200B}') && !is_printable('\u{AD}')); // format
        assert!(!is_printable('\u{E000}') && !is_printable('\u{85}') && !is_printable('\u{3000}'));
        assert!(is_grapheme_extend('\u{301}') && is_grapheme_extend('\u{94D}'));
        assert!(is_grapheme_extend('\u{488}') && is_grapheme_extend('\u{5B0}'));
        assert!(
            !is_grapheme_extend('a') && !is_grapheme_extend('é') && !is_grapheme_extend('\u{3040}')
        );
        assert!(
            is_mark('\u{903}') && is_mark('\u{300}') && is_mark('\u{488}') && is_mark('\u{11000}')
        );
        assert!(!is_mark('क') && !is_mark('ß'));
    }

    #[test]
    fn code_points() {
        // Letters, digits and marks of many scripts.
        for c in "ßς་〇àçøþāœəɐαωяђաאبپکڭ०९ক੦ગଓழతಕമසกກཀကა가ぁァ中𠀀ꙁ߀३௧๙᠑".chars()
        {
            assert!(is_allowed(c), "{c} {:x}", u32::from(c));
        }
        for c in ['\u{301}', '\u{94D}', '\u{903}', '\u{5B0}', '\u{64B}'] {
            assert!(is_allowed(c), "{:x}", u32::from(c));
        }
        // Capitals, compatibility characters, symbols, punctuation, other numbers, spaces,
        // unassigned, private use.
        for c in [
            'A', 'É', 'Σ', 'Ж', 'K', 'ª', '²', '½', 'ﬁ', 'ｆ', '１', 'ㄱ', 'ᄀ', 'ſ', 'ǆ', 'Ⅻ',
            'ⅻ', '①', '፩', '〡', '𝟎', '\u{640}', '\u{7FA}', '\u{302E}', '\u{3031}', '\u{303B}',
            '€', '©', '！', '、', '\u{3000}', '\u{200B}', '\u{3040}', '\u{E000}', '\u{FE0F}',
            '\u{20DD}', '😀',
        ] {
            assert!(!is_allowed(c), "{c} {:x}", u32::from(c));
        }
        assert!(is_decimal_digit('٣') && is_decimal_digit('੦') && is_decimal_digit('༩'));
        assert!(!is_decimal_digit('༪') && !is_decimal_digit('௰') && !is_decimal_digit('a'));
    }

    /// RFC 3492 §7.1's samples (those that are valid labels) and others, both ways.
    #[test]
    fn punycode_round_trips() {
        for (unicode, ascii) in [
            ("bücher", "bcher-kva"),
            ("münchen", "mnchen-3ya"),
            ("他们为什么不说中文", "ihqwcrb4cv8a8dqg056pqjye"),
            ("ليهمابتكلموشعربي؟", "egbpdaj6bu4bxfgehfvwxn"),
            ("3年B組金八先生", "3B-ww4c5e180e575a65lsy2b"),
            (
                "安室奈美恵-with-SUPER-MONKEYS",
                "-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n",
            ),
            (
                "Hello-Another-Way-それぞれの場所",
                "Hello-Another-Way--fc4qua05auwb3674vfr0b",
            ),
            ("Pročprostěnemluvíčesky", "Proprostnemluvesky-uyb24dma41a"),
            ("ひとつ屋根の下2", "2-u9tlzr9756bt3uc0v"),
            ("MajiでKoiする5秒前", "MajiKoi5-783gue6qz075azm5e"),
            ("そのスピードで", "d9juau41awczczp"),
            ("\u{10FFFF}", "dn32g"),
            ("a\u{10FFFF}", "a-h023p"),
        ] {
            let chars: Vec<char> = unicode.chars().collect();
            assert_eq!(punycode_encode(&chars).as_deref(), Some(ascii), "{unicode}");
            assert_eq!(punycode_decode(ascii), Some(chars), "{ascii}");
        }
        assert_eq!(punycode_decode(""), Some(vec![]));
        assert_eq!(punycode_decode("abc-"), Some("abc".chars().collect()));
        // A digit sequence cut short, a character outside the digits, overflows, a code point
        // past U+10FFFF, a non-ASCII basic part.
        for bad in [
            "x",
            "bcher-k",
            "bcher-kv!a",
            "99999999999",
            "zzzzzzzzzzz",
            "dn32h",
            "ü-kva",
        ] {
            assert_eq!(punycode_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        let label = |c: &str, n: usize| c.repeat(n);
        let name_253 = [
            label("a", 63),
            label("b", 63),
            label("c", 63),
            label("d", 61),
        ]
        .join(".");
        let name_254 = [
            label("a", 63),
            label("b", 63),
            label("c", 63),
            label("d", 62),
        ]
        .join(".");
        assert_eq!(name_253.len(), 253);
        cases(
            "hostname",
            &[
                &name_253,
                "a",
                "A-B.c0m",
                "ab--cd",
                "xn--bcher-kva.de",
                "XN--BCHER-KVA.DE",
                "0",
            ],
            &[
                &name_254,
                "a..b",
                "a_b",
                "a b",
                "-a",
                "a-",
                "xn--",
                "xn--abc",
                "xn--bcher-kva-",
                "bücher.de",
            ],
        );
        // 253 counts the A-label form: 19 labels `bücher` are 132 characters, 265 octets.
        let long_idn = vec!["bücher"; 19].join(".");
        let fits_idn = vec!["bücher"; 18].join(".");
        cases(
            "idn-hostname",
            &[
                &name_253,
                &fits_idn,
                &"ü".repeat(57),
                "bücher.de",
                "xn--bcher-kva.de",
                "münchen。de",
                "例え．テスト",
                "ab--cd",
                "cafe\u{301}", // e and a combining acute: not NFC, which is not checked
                "l·l",
            ],
            &[
                &long_idn,
                &"ü".repeat(58),
                &name_254,
                "Bücher.de",
                "BÜCHER.de",
                "bü--cher",
                "bü_cher",
                "bü cher",
                "a\u{200B}b",
                "a\u{AD}b",
                "\u{5BE}",
                "ﬁ.com",
                "ｅｘａｍｐｌｅ.com",
                "\u{301}a",
                "a.\u{94D}",
            ],
        );
    }

    #[test]
    fn idn_contextual_rules() {
        cases(
            "idn-hostname",
            &[
                "\u{915}\u{94D}\u{200D}\u{937}",
                "\u{628}\u{64A}\u{200C}\u{628}\u{64A}",
                "\u{628}\u{64B}\u{200C}\u{64B}\u{628}", // transparent marks around the joiner
                "\u{3041}\u{30FB}",
                "\u{5D0}\u{5F4}\u{5D1}",
                "\u{3B1}\u{375}\u{3B2}",
                "\u{628}\u{660}",
            ],
            &[
                // ALEF joins only on its right: no ZERO WIDTH NON-JOINER after it.
                "\u{627}\u{200C}\u{628}",
                "\u{628}\u{200C}",
                "\u{200C}\u{628}",
                "a\u{200C}b",
                "\u{915}\u{200D}",
                "\u{30FB}a",
                "a\u{B7}",
                "\u{375}",
                "\u{660}\u{6F0}\u{628}",
            ],
        );
    }

    #[test]
    fn idn_bidi_rule() {
        cases(
            "idn-hostname",
            &[
                "\u{5D0}\u{5D1}.com",
                "\u{5D0}1",
                "\u{628}\u{660}",
                "\u{5D0}\u{5B0}", // a Hebrew point (NSM) after the last letter
                "a1.\u{5D0}",
                "\u{6F0}\u{6F1}", // EN only: not a right-to-left label
            ],
            &[
                "1a.\u{5D0}",      // in a Bidi name, an LTR label starts with L
                "a-.\u{5D0}",      // (and a hyphen may not end a label anyway)
                "\u{5D0}a",        // an RTL label has no L
                "a\u{5D0}",        // an LTR label has no R
                "\u{5D0}-",        // nor ends with a neutral
                "\u{628}1\u{660}", // EN and AN together
                "1\u{5D0}",        // a digit first
                "\u{660}\u{628}",  // an AN first
            ],
        );
    }

    #[test]
    fn dates_and_times() {
        cases(
            "date-time",
            &[
                "2000-02-29T00:00:00Z",
                "2024-02-29t12:00:00.5z",
                "1998-12-31T23:59:60+00:00",
                "1998-12-31T23:59:60-00:00",
                "1999-01-01T00:29:60+00:30",
                "1998-12-31T18:59:60-05:00",
                "0000-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999999999+23:59",
            ],
            &[
                "1900-02-29T00:00:00Z",
                "2023-02-29T00:00:00Z",
                "2000-02-29 00:00:00Z",
                "2000-02-29T00:00:00.Z",
                "2000-02-29T00:00:00",
                "2000-02-29T00:00Z",
                "2000-02-29T00:00:60Z",
                "2000-02-29T00:00:00+2400",
                "2000-02-29T00:00:00+24:00",
                "2000-02-29T",
                "2000-02-29",
                "2000-02-29TZ",
            ],
        );
        cases(
            "date",
            &["2000-02-29", "2400-02-29"],
            &["1900-02-29", "2000-02-30", "2000-2-1"],
        );
        cases(
            "time",
            &["00:00:00z", "23:59:60Z", "12:00:00.000001-12:00"],
            &[
                "23:59:60+01:00",
                "12:00:00.+01:00",
                "12:00:00+01:00:00",
                "12:00:00+1:00",
            ],
        );
    }

    #[test]
    fn durations() {
        cases(
            "duration",
            &[
                "P1Y",
                "P1M",
                "P1D",
                "P1W",
                "PT1H",
                "PT1M",
                "PT1S",
                "P1Y2M",
                "P1M2D",
                "P1Y2M3D",
                "P1YT1S",
                "P1DT1H2M3S",
                "PT1H2M",
                "PT1M2S",
                "P0W",
                "P00D",
            ],
            &[
                "P", "PT", "P1DT", "PW", "P1W1W", "P1DW", "PTW", "P1WT1H", "P1Y1W", "PT1S1M",
                "P1M1Y", "P1Y2D", "PT1H2S", "P1H", "PT1D", "P1.5D", "P1,5D", "p1D", "P1d",
                "P1DT1H1", "PT1HT1M",
            ],
        );
    }

    #[test]
    fn ip_addresses() {
        cases(
            "ipv4",
            &["0.0.0.0", "1.2.3.4", "255.255.255.255", "10.0.0.250"],
            &[
                "1.2.3.04",
                "1.2.3.256",
                "1.2.3",
                "1.2.3.4.5",
                "1..2.3",
                "a.b.c.d",
                "1.2.3.4 ",
                "0000.0.0.0",
            ],
        );
        cases(
            "ipv6",
            &[
                "::",
                "::1",
                "1::",
                "1:2:3:4:5:6:7::",
                "::2:3:4:5:6:7:8",
                "1:2:3:4:5:6::8",
                "1:2:3:4:5:6:7:8",
                "FFFF:ffff::",
                "0000:0000:0000:0000:0000:0000:0000:0000",
                "::1.2.3.4",
                "::ffff:1.2.3.4",
                "1::1.2.3.4",
                "1:2:3:4:5:6:1.2.3.4",
                "1:2:3:4:5::1.2.3.4",
            ],
            &[
                "",
                ":",
                ":::",
                "1:::2",
                "::1::",
                "1::2::3",
                "1:2:3:4:5:6:7:8::",
                "::1:2:3:4:5:6:7:8",
                "1:2:3:4:5:6:7:8:9",
                "1:2:3:4:5:6:7",
                "12345::",
                "1:2:3:4:5:6:7:1.2.3.4",
                "1.2.3.4::",
                "1.2.3.4:1::",
                "::1.2.3",
                "::1.2.3.04",
                "::%1",
                "::1%eth0",
                "::g",
                "[::1]",
                "::\u{FF11}",
            ],
        );
    }

    #[test]
    fn emails() {
        cases(
            "email",
            &[
                "a@b",
                "a.b+c@example.com",
                "\"a\\\"b\"@example.com",
                "\"a@b\"@example.com",
                "\"\"@example.com",
                "a@[IPv6:::1]",
                "a@[ipv6:2001:db8::1]",
                "a@[192.0.2.1]",
                "a@xn--bcher-kva.example",
                &format!("{}@example.com", "a".repeat(64)),
            ],
            &[
                &format!("{}@example.com", "a".repeat(65)),
                "a@[1.2.3]",
                "a@[IPv4:1.2.3.4]",
                "a@[IPv6:1.2.3.4]",
                "a@[::1]",
                "a@b..c",
                "a@-b.c",
                "a@bücher.example",
                "ä@example.com",
                "\"ä\"@example.com",
                "\"a\"b\"@example.com",
                "\"a\\\"@example.com",
                "a(comment)@example.com",
                "a@example.com ",
            ],
        );
        cases(
            "idn-email",
            &["ä@bücher.example", "\"ä b\"@example.com", "a@例え．テスト"],
            &["a@BÜCHER.example", "ä@-b", "\"ä\u{7F}\"@example.com"],
        );
    }

    #[test]
    fn uris() {
        cases(
            "uri",
            &[
                "foo:",
                "a+b-c.d:x",
                "http://[::1]:8080/",
                "http://[v7.fe80::1]/",
                "http://[V7.a+b]",
                "http://user:pass@host:80/p/a/t/h?q=1&r=2#f/?",
                "http://host:/",
                "http://%41%42/",
                "file:///etc/hosts",
                "urn:isbn:0451450523",
            ],
            &[
                "http://[v.x]/",
                "http://[vg.x]/",
                "http://[v1.]/",
                "http://[v1.%41]/",
                "http://[::1]x/",
                "http://[::1/",
                "http://host:8a/",
                "http://exa mple/",
                "http://host#a#b",
                "urn:%4",
                "http://ü/",
                "http://host/?ü",
                "-a:b",
                "http://host/?q=[1]",
                "",
            ],
        );
        cases(
            "uri-reference",
            &[
                "", "a", "./a:b", "a/b:c", "?", "#", "//host", "//[::1]", "/a//b",
            ],
            &[":a", "1a:b", "%", "a b", "/ü", "a[1]"],
        );
        cases(
            "iri",
            &[
                "http://例え.テスト/パス?クエリ#断片",
                "http://x/?\u{E000}",
                "http://x/?\u{10FFFD}",
                "http://ü@x/",
            ],
            &[
                "http://x/\u{E000}",
                "http://x/#\u{E000}",
                "http://x/\u{FFFE}",
                "http://x/\u{A0}\u{1}",
            ],
        );
        cases(
            "iri-reference",
            &["//例え", "例え", "#ü"],
            &["例え:", "\u{1}", "例 え"],
        );
    }

    #[test]
    fn uri_templates() {
        cases(
            "uri-template",
            &[
                "{+path}/here",
                "{x:9999}",
                "{a%2Fb}",
                "{a.b.c,d_e*}",
                "http://x/{;x,y}{?q*}{&r:3}{#f}",
                "%7B",
                "\u{E000}",
            ],
            &[
                "{=x}", "{!x}", "{@x}", "{|x}", "{x:1*}", "{a.}", "{.a.}", "{a..b}", "{{x}}",
                "{x}}", "%zz", "{x", "{x:}", "{x*:1}", "a{b c}", "<", "\u{FFFE}",
            ],
        );
    }

    #[test]
    fn pointers_and_uuids() {
        cases(
            "json-pointer",
            &["", "/", "/~0~1", "/a/~01"],
            &["~", "/~", "/~a", "#/a"],
        );
        cases(
            "relative-json-pointer",
            &["0", "0#", "0/", "10/a", "9#"],
            &["0+1/a", "0-1#", "00", "#", "0#/", "0 "],
        );
        cases(
            "uuid",
            &["01234567-89AB-cdef-0123-456789abcdef"],
            &[
                "01234567-89ab-cdef-0123-456789abcde",
                "01234567+89ab-cdef-0123-456789abcdef",
                "{01234567-89ab-cdef-0123-456789abcdef}",
            ],
        );
    }
}
