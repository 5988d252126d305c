//! Distinguished names (a certificate's subject) as RFC 4514 strings, and their comparison after
//! normalising: attribute types by name or OID regardless of case, values without leading,
//! trailing or repeated spaces and regardless of case, multi-valued RDNs as sets. That is what
//! LDAP's caseIgnoreMatch does for the usual subject attributes, and what an operator expects
//! when writing `CN=partner-1, O=Partner Ltd` for a certificate made with `/O=Partner Ltd/CN=partner-1`.

use std::fmt::Write;

/// Short names of the attribute types seen in certificate subjects, with their OIDs.
const NAMES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("TITLE", "2.5.4.12"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
];

/// One attribute: its type (a short name from [`NAMES`] in upper case, or a dotted OID) and value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attribute {
    pub kind: String,
    pub value: String,
}

/// A distinguished name in RFC 4514 order (the most specific RDN, usually `CN`, first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dn {
    pub rdns: Vec<Vec<Attribute>>,
}

/// The canonical name of an attribute type: a known short name, or the dotted OID.
pub fn canonical_kind(kind: &str) -> Option<String> {
    let kind = kind.trim();
    if let Some((name, _)) = NAMES
        .iter()
        .find(|(name, oid)| name.eq_ignore_ascii_case(kind) || *oid == kind)
    {
        return Some((*name).to_string());
    }
    let kind = kind
        .strip_prefix("OID.")
        .or_else(|| kind.strip_prefix("oid."))
        .unwrap_or(kind);
    let dotted = !kind.is_empty()
        && kind.split('.').count() >= 2
        && kind
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    dotted.then(|| kind.to_string())
}

fn hex_value(h: u8) -> Option<u8> {
    match h {
        b'0'..=b'9' => Some(h - b'0'),
        b'a'..=b'f' => Some(h - b'a' + 10),
        b'A'..=b'F' => Some(h - b'A' + 10),
        _ => None,
    }
}

/// Splits on `sep` where it is not escaped with `\`.
fn split_unescaped(text: &str, sep: u8) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'\\') => i += 2,
            Some(b) if *b == sep => {
                parts.push(text.get(start..i).unwrap_or(""));
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    parts.push(text.get(start..).unwrap_or(""));
    parts
}

/// The value of an RFC 4514 attribute with its escapes undone. `#…` (a hex-encoded BER value) is
/// kept as written, in lower case.
fn unescape(raw: &str) -> Result<String, String> {
    let raw = raw.trim_matches(' ');
    if let Some(hex) = raw.strip_prefix('#') {
        if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a `#` value is not hex".into());
        }
        return Ok(raw.to_ascii_lowercase());
    }
    let bytes = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let next = bytes.get(i + 1).copied();
        let after = bytes.get(i + 2).copied();
        match (next.and_then(hex_value), after.and_then(hex_value)) {
            (Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 3;
            }
            _ => match next {
                Some(c) if b" \"#+,;<=>\\".contains(&c) => {
                    out.push(c);
                    i += 2;
                }
                _ => return Err("a `\\` escape is not valid".into()),
            },
        }
    }
    String::from_utf8(out).map_err(|_| "an escaped value is not UTF-8".to_string())
}

/// A value as compared: spaces trimmed and runs of spaces made one, then in lower case.
fn normalise_value(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Dn {
    /// Parses an RFC 4514 string (`CN=partner-1,O=Partner Ltd`).
    pub fn parse(text: &str) -> Result<Dn, String> {
        if text.trim().is_empty() {
            return Err("the distinguished name is empty".into());
        }
        let mut rdns = Vec::new();
        for rdn in split_unescaped(text, b',') {
            let mut attributes = Vec::new();
            for atv in split_unescaped(rdn, b'+') {
                let (kind, value) = atv
                    .split_once('=')
                    .ok_or_else(|| format!("`{}` is not `type=value`", atv.trim()))?;
                let kind = canonical_kind(kind)
                    .ok_or_else(|| format!("`{}` is not a known attribute type", kind.trim()))?;
                attributes.push(Attribute {
                    kind,
                    value: unescape(value)?,
                });
            }
            rdns.push(attributes);
        }
        Ok(Dn { rdns })
    }

    /// The form two names are compared in.
    fn normalised(&self) -> Vec<Vec<Attribute>> {
        self.rdns
            .iter()
            .map(|rdn| {
                let mut set: Vec<Attribute> = rdn
                    .iter()
                    .map(|a| Attribute {
                        kind: a.kind.clone(),
                        value: normalise_value(&a.value),
                    })
                    .collect();
                set.sort();
                set
            })
            .collect()
    }

    /// Equal after normalising (see the module documentation).
    pub fn matches(&self, other: &Dn) -> bool {
        self.normalised() == other.normalised()
    }

    /// The RFC 4514 string.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, a) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                out.push_str(&a.kind);
                out.push('=');
                escape_into(&mut out, &a.value);
            }
        }
        out
    }
}

/// RFC 4514 §2.4 escaping of an attribute value (a `#…` hex value is written as it is).
fn escape_into(out: &mut String, value: &str) {
    if value.starts_with('#')
        && value.len() > 1
        && value.bytes().skip(1).all(|b| b.is_ascii_hexdigit())
    {
        out.push_str(value);
        return;
    }
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
}
