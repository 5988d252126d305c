//! Text written by hand (JSON strings, numbers, hex), for the values a filter writes on every
//! request (decisions, audit records, digests): no value tree, no formatting machinery.

/// Appends `s` as a JSON string literal. Runs of characters that need no escape are copied as one
/// slice; `"`, `\` and the control characters are escaped (`\n`, `\r`, `\t` by name, the others as
/// `\u00XX`).
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let named = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped here is ASCII, so `i` is a character boundary of `s`.
        out.push_str(s.get(run..i).unwrap_or_default());
        if named.is_empty() {
            out.push_str("\\u00");
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 15));
        } else {
            out.push_str(named);
        }
        run = i + 1;
    }
    out.push_str(s.get(run..).unwrap_or_default());
    out.push('"');
}

/// Appends the decimal digits of `n`.
pub fn push_u64(out: &mut String, n: u64) {
    // The highest power of ten not above `n`, then one digit per power.
    let mut power = 1u64;
    while power <= n / 10 {
        power *= 10;
    }
    let mut rest = n;
    while power > 0 {
        out.push(char::from(b'0' + (rest / power) as u8));
        rest %= power;
        power /= 10;
    }
}

/// Appends `bytes` as lower-case hex, two digits a byte.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 15));
    }
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// The lower-case hex digit of `n` (0–15).
pub fn hex_digit(n: u8) -> char {
    let n = n & 15;
    char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, s);
        out
    }

    #[test]
    fn strings_round_trip_through_a_json_parser() {
        let samples = [
            "",
            "plain",
            "a\"b\\c",
            "line\nbreak\r\ttab",
            "\u{0}\u{1}\u{1f}\u{7f}",
            "ünïcödé € 𝄞 and \"quotes\" at the end\\",
            "\\",
            "\"",
        ];
        for s in samples {
            let text = quoted(s);
            let back: String = serde_json::from_str(&text).unwrap();
            assert_eq!(back, s, "{text}");
        }
        assert_eq!(quoted("a\u{1}b"), "\"a\\u0001b\"");
        assert_eq!(quoted("x\ny"), "\"x\\ny\"");
    }

    #[test]
    fn every_control_character_is_escaped() {
        for b in 0u8..0x20 {
            let s = String::from(char::from(b));
            let text = quoted(&s);
            assert!(text.bytes().all(|c| c >= 0x20), "{text:?}");
            let back: String = serde_json::from_str(&text).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
        let mut out = String::from("x");
        push_hex(&mut out, &[0x12]);
        assert_eq!(out, "x12");
    }

    #[test]
    fn numbers_print_as_display_does() {
        for n in [0u64, 7, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
