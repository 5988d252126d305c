//! A strict DER reader for the parts of an X.509 certificate (RFC 5280) this filter decides on.
//!
//! The filter reads a certificate on every request that carries one, in a module that must stay
//! small, so it does not link a general ASN.1 library: this reader walks the certificate's
//! structure once, checks that it is well-formed distinguished encoding (definite, minimal
//! lengths; low tag numbers; minimal INTEGERs; BOOLEANs as 00/FF; BIT STRINGs with zero unused
//! bits; no DEFAULT value encoded; nothing after the end), and keeps slices of the input for the
//! fields used: the signed `tbsCertificate` bytes, the algorithms, issuer and subject, validity,
//! the public key, the extensions, the signature.
//!
//! It is at least as strict as the RustCrypto `x509-cert` crate: the tests read the same
//! certificates, and every mutation of them, with both, and whatever this reader accepts that
//! crate accepts too, with the same fields.

/// DER tags used here (universal class unless noted).
pub mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0c;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const TELETEX_STRING: u8 = 0x14;
    pub const IA5_STRING: u8 = 0x16;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
}

/// The largest length read (three length octets); a certificate is a few kilobytes.
const MAX_LEN: usize = 0xff_ffff;

/// One element: its tag, its content, and its whole encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub der: &'a [u8],
}

/// Whether a tag is one the certificate reader takes: the universal types X.509 and its
/// attribute values use (in their DER form: strings and times primitive, SEQUENCE and SET
/// constructed) and every application, context-specific and private tag. `x509-cert` reads the
/// same set; UniversalString, for one, is in neither.
fn known_tag(tag: u8) -> bool {
    matches!(
        tag,
        0x01..=0x06 | 0x09 | 0x0a | 0x0c | 0x12..=0x18 | 0x1a | 0x1e | 0x30 | 0x31 | 0x40..=0xfe
    )
}

/// Reads elements one after the other from a slice.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element, any tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, String> {
        let data = self.rest;
        let (&tag, after_tag) = data.split_first().ok_or("the encoding ends early")?;
        if tag & 0x1f == 0x1f {
            return Err("a high tag number".into());
        }
        if !known_tag(tag) {
            return Err(format!("an unknown tag {tag:#04x}"));
        }
        let (&first, after_len) = after_tag.split_first().ok_or("the encoding ends early")?;
        let (len, after_len) = if first < 0x80 {
            (usize::from(first), after_len)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 {
                return Err("an indefinite length".into());
            }
            if count > 3 {
                return Err("a length too large".into());
            }
            let bytes = after_len.get(..count).ok_or("the encoding ends early")?;
            if bytes.first() == Some(&0) {
                return Err("a length with a leading zero octet".into());
            }
            let len = bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
            if len < 0x80 {
                return Err("a long-form length below 128".into());
            }
            (len, after_len.get(count..).unwrap_or_default())
        };
        if len > MAX_LEN {
            return Err("a length too large".into());
        }
        let content = after_len.get(..len).ok_or("the encoding ends early")?;
        let header = data.len() - after_len.len();
        let der = data.get(..header + len).ok_or("the encoding ends early")?;
        self.rest = after_len.get(len..).unwrap_or_default();
        Ok(Tlv { tag, content, der })
    }

    /// The next element, which must have `tag`.
    pub fn element(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, String> {
        let tlv = self.any().map_err(|e| format!("{what}: {e}"))?;
        if tlv.tag != tag {
            return Err(format!("{what}: an unexpected tag {:#04x}", tlv.tag));
        }
        Ok(tlv)
    }

    /// The next element if it has `tag`.
    pub fn optional(&mut self, tag: u8, what: &str) -> Result<Option<Tlv<'a>>, String> {
        if self.peek_tag() == Some(tag) {
            self.element(tag, what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The content of the next element, a SEQUENCE, as a reader.
    pub fn sequence(&mut self, what: &str) -> Result<Reader<'a>, String> {
        Ok(Reader::new(self.element(tag::SEQUENCE, what)?.content))
    }

    /// Fails when anything is left.
    pub fn finish(&self, what: &str) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: data after the end"))
        }
    }
}

/// The shortest and longest OBJECT IDENTIFIER read (octets), as `x509-cert`'s OID type reads
/// them.
const MIN_OID_LEN: usize = 3;
const MAX_OID_LEN: usize = 39;

/// An OBJECT IDENTIFIER's content, checked: 3 to 39 octets, the first two arcs in one octet
/// (first arc at most 2, second at most 39), every arc minimally encoded and within 32 bits, the
/// last octet ending an arc.
pub fn check_oid(content: &[u8]) -> Result<(), String> {
    if content.len() < MIN_OID_LEN {
        return Err("an object identifier too short".into());
    }
    if content.len() > MAX_OID_LEN {
        return Err("an object identifier too long".into());
    }
    if content.first().is_some_and(|&b| b >= 120) {
        return Err("an object identifier whose first arcs are out of range".into());
    }
    let arcs = oid_arcs(content)?;
    if arcs.iter().any(|&arc| arc > u64::from(u32::MAX)) {
        return Err("an object identifier arc too large".into());
    }
    // `x509-cert` also refuses an arc of five octets whose last octet is 0x10 or more.
    let mut octets = 0;
    for &b in content {
        octets += 1;
        if octets > 4 && b >= 0x10 {
            return Err("an object identifier arc too large".into());
        }
        if b & 0x80 == 0 {
            octets = 0;
        }
    }
    Ok(())
}

fn oid_arcs(content: &[u8]) -> Result<Vec<u64>, String> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    let mut in_arc = false;
    for &b in content {
        if !in_arc && b == 0x80 {
            return Err("an object identifier arc with a leading zero".into());
        }
        if value > u64::MAX >> 7 {
            return Err("an object identifier arc too large".into());
        }
        value = (value << 7) | u64::from(b & 0x7f);
        in_arc = b & 0x80 != 0;
        if !in_arc {
            arcs.push(value);
            value = 0;
        }
    }
    if in_arc {
        return Err("an object identifier ends inside an arc".into());
    }
    Ok(arcs)
}

/// The dotted form of an OBJECT IDENTIFIER's content (`2.5.29.17`).
pub fn oid_string(content: &[u8]) -> String {
    let arcs = oid_arcs(content).unwrap_or_default();
    let mut out = String::new();
    for (i, arc) in arcs.iter().enumerate() {
        if i == 0 {
            // The first octet holds the first two arcs: 40 × first + second.
            let first = (*arc / 40).min(2);
            out.push_str(&first.to_string());
            out.push('.');
            out.push_str(&(*arc - 40 * first).to_string());
        } else {
            out.push('.');
            out.push_str(&arc.to_string());
        }
    }
    out
}

/// A DER INTEGER's content, checked minimal; returns it as written (two's complement).
fn check_integer(content: &[u8]) -> Result<(), String> {
    match content {
        [] => Err("an empty INTEGER".into()),
        [0x00, next, ..] if *next < 0x80 => Err("an INTEGER with a superfluous 00".into()),
        [0xff, next, ..] if *next >= 0x80 => Err("an INTEGER with a superfluous FF".into()),
        _ => Ok(()),
    }
}

/// An unsigned INTEGER as big-endian bytes without the sign octet (a key's modulus, a signature's
/// r). Negative values are refused.
pub fn unsigned_integer<'a>(reader: &mut Reader<'a>, what: &str) -> Result<&'a [u8], String> {
    let content = reader.element(tag::INTEGER, what)?.content;
    check_integer(content).map_err(|e| format!("{what}: {e}"))?;
    match content {
        [0x00, rest @ ..] if !rest.is_empty() => Ok(rest),
        [first, ..] if *first >= 0x80 => Err(format!("{what}: a negative INTEGER")),
        _ => Ok(content),
    }
}

/// A small non-negative INTEGER (a version, a path length).
fn small_integer(reader: &mut Reader<'_>, what: &str, max: u64) -> Result<u64, String> {
    let bytes = unsigned_integer(reader, what)?;
    if bytes.len() > 8 {
        return Err(format!("{what}: too large"));
    }
    let value = bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
    if value > max {
        return Err(format!("{what}: too large"));
    }
    Ok(value)
}

/// A BIT STRING's content whose bit count is whole bytes: the bytes.
pub fn whole_bytes<'a>(content: &'a [u8], what: &str) -> Result<&'a [u8], String> {
    match content.split_first() {
        Some((0, bytes)) => Ok(bytes),
        Some(_) => Err(format!("{what}: not a whole number of bytes")),
        None => Err(format!("{what}: an empty BIT STRING")),
    }
}

/// A BIT STRING's content checked for DER: the unused-bits count below 8, 0 when there are no
/// bits, and the unused bits zero. Returns the bytes and the count of unused bits.
fn bit_string<'a>(content: &'a [u8], what: &str) -> Result<(&'a [u8], u8), String> {
    let (&unused, bytes) = content
        .split_first()
        .ok_or_else(|| format!("{what}: an empty BIT STRING"))?;
    if unused > 7 || (bytes.is_empty() && unused != 0) {
        return Err(format!("{what}: a bad count of unused bits"));
    }
    let last = bytes.last().copied().unwrap_or(0);
    if last & ((1u8 << unused) - 1) != 0 {
        return Err(format!("{what}: unused bits that are not zero"));
    }
    Ok((bytes, unused))
}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmIdentifier<'a> {
    /// The OID's content octets.
    pub oid: &'a [u8],
    pub parameters: Option<Tlv<'a>>,
    /// The whole encoding.
    pub der: &'a [u8],
}

fn algorithm<'a>(reader: &mut Reader<'a>, what: &str) -> Result<AlgorithmIdentifier<'a>, String> {
    let tlv = reader.element(tag::SEQUENCE, what)?;
    let mut inner = Reader::new(tlv.content);
    let oid = inner.element(tag::OID, what)?.content;
    check_oid(oid).map_err(|e| format!("{what}: {e}"))?;
    let parameters = if inner.is_empty() {
        None
    } else {
        Some(inner.any().map_err(|e| format!("{what}: {e}"))?)
    };
    inner.finish(what)?;
    Ok(AlgorithmIdentifier {
        oid,
        parameters,
        der: tlv.der,
    })
}

/// One attribute of a name: its type (OID content) and value (any element).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAttribute<'a> {
    pub oid: &'a [u8],
    pub value: Tlv<'a>,
}

/// `Name ::= SEQUENCE OF RelativeDistinguishedName`, each RDN a SET OF attributes, in the
/// certificate's order (the least specific RDN first). The attributes of a multi-valued RDN are
/// kept in the order written (names are compared with RDNs as sets, [`crate::dn`]); the same
/// attribute twice in one RDN is refused, as `x509-cert` refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name<'a> {
    pub rdns: Vec<Vec<NameAttribute<'a>>>,
    /// The whole encoding.
    pub der: &'a [u8],
}

fn name<'a>(reader: &mut Reader<'a>, what: &str) -> Result<Name<'a>, String> {
    let tlv = reader.element(tag::SEQUENCE, what)?;
    let mut rdns_reader = Reader::new(tlv.content);
    let mut rdns = Vec::new();
    while !rdns_reader.is_empty() {
        let set = rdns_reader.element(tag::SET, what)?;
        let mut items = Reader::new(set.content);
        let mut rdn: Vec<(&[u8], NameAttribute<'a>)> = Vec::new();
        while !items.is_empty() {
            let atv = items.element(tag::SEQUENCE, what)?;
            let mut fields = Reader::new(atv.content);
            let oid = fields.element(tag::OID, what)?.content;
            check_oid(oid).map_err(|e| format!("{what}: {e}"))?;
            let value = fields.any().map_err(|e| format!("{what}: {e}"))?;
            fields.finish(what)?;
            rdn.push((atv.der, NameAttribute { oid, value }));
        }
        if rdn.is_empty() {
            return Err(format!("{what}: an empty relative distinguished name"));
        }
        if rdn
            .iter()
            .enumerate()
            .any(|(i, a)| rdn.iter().skip(i + 1).any(|b| a.0 == b.0))
        {
            return Err(format!("{what}: an attribute twice in one RDN"));
        }
        rdns.push(rdn.into_iter().map(|(_, atv)| atv).collect());
    }
    Ok(Name { rdns, der: tlv.der })
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// `Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }` in the forms RFC 5280
/// allows (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSSZ`), as seconds since the Unix epoch. Dates before
/// 1970 are refused, as `x509-cert` refuses them.
fn time(reader: &mut Reader<'_>, what: &str) -> Result<u64, String> {
    let tlv = reader.any().map_err(|e| format!("{what}: {e}"))?;
    let text = tlv.content;
    let (year, rest) = match (tlv.tag, text.len()) {
        (tag::UTC_TIME, 13) => {
            let yy = digits(text.get(..2).unwrap_or_default());
            // RFC 5280: 50–99 are 1950–1999, 00–49 are 2000–2049.
            (
                yy.map(|y| if y >= 50 { 1900 + y } else { 2000 + y }),
                text.get(2..),
            )
        }
        (tag::GENERALIZED_TIME, 15) => (digits(text.get(..4).unwrap_or_default()), text.get(4..)),
        (tag::UTC_TIME | tag::GENERALIZED_TIME, _) => {
            return Err(format!("{what}: not of the form RFC 5280 allows"))
        }
        _ => return Err(format!("{what}: not a time")),
    };
    let rest = rest.unwrap_or_default();
    let field = |at: usize| digits(rest.get(at..at + 2).unwrap_or_default());
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (year, field(0), field(2), field(4), field(6), field(8))
    else {
        return Err(format!("{what}: not of the form RFC 5280 allows"));
    };
    if rest.get(10) != Some(&b'Z') {
        return Err(format!("{what}: not in UTC (`Z`)"));
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if year < 1970 || day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return Err(format!("{what}: not a valid date and time from 1970"));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    u64::try_from(secs).map_err(|_| format!("{what}: before 1970"))
}

/// An optional `BOOLEAN DEFAULT FALSE` named `field`: absent is false, `FF` true; `00` is refused
/// (DER does not encode a DEFAULT value), as is any other content.
fn default_false(reader: &mut Reader<'_>, what: &str, field: &str) -> Result<bool, String> {
    match reader.optional(tag::BOOLEAN, what)? {
        None => Ok(false),
        Some(b) => match b.content {
            [0xff] => Ok(true),
            [0x00] => Err(format!("{what}: `{field}` FALSE encoded (DER omits it)")),
            _ => Err(format!("{what}: a BOOLEAN that is not 00 or FF")),
        },
    }
}

/// `Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    pub oid: &'a [u8],
    pub critical: bool,
    /// The OCTET STRING's content: the extension's own encoding.
    pub value: &'a [u8],
}

fn extension<'a>(reader: &mut Reader<'a>) -> Result<Extension<'a>, String> {
    const WHAT: &str = "an extension";
    let mut fields = reader.sequence(WHAT)?;
    let oid = fields.element(tag::OID, WHAT)?.content;
    check_oid(oid).map_err(|e| format!("{WHAT}: {e}"))?;
    let critical = default_false(&mut fields, WHAT, "critical")?;
    let value = fields.element(tag::OCTET_STRING, WHAT)?.content;
    fields.finish(WHAT)?;
    Ok(Extension {
        oid,
        critical,
        value,
    })
}

/// The fields of a certificate this filter uses, as slices of its encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// The whole `tbsCertificate` element: the bytes the signature covers.
    pub tbs: &'a [u8],
    /// `tbsCertificate.signature`, which must equal `signature_algorithm`.
    pub tbs_signature: AlgorithmIdentifier<'a>,
    pub issuer: Name<'a>,
    pub not_before: u64,
    pub not_after: u64,
    pub subject: Name<'a>,
    pub public_key_algorithm: AlgorithmIdentifier<'a>,
    /// The subject public key's BIT STRING content (the unused-bits octet included).
    pub public_key: &'a [u8],
    pub extensions: Vec<Extension<'a>>,
    pub signature_algorithm: AlgorithmIdentifier<'a>,
    /// The signature's BIT STRING content (the unused-bits octet included).
    pub signature: &'a [u8],
}

/// Context-specific tags of `TBSCertificate`'s optional fields.
const VERSION: u8 = 0xa0;
const ISSUER_UNIQUE_ID: u8 = 0x81;
const SUBJECT_UNIQUE_ID: u8 = 0x82;
const EXTENSIONS: u8 = 0xa3;

impl<'a> Certificate<'a> {
    /// Reads a DER certificate; anything after it is refused.
    pub fn from_der(der: &'a [u8]) -> Result<Certificate<'a>, String> {
        let mut outer = Reader::new(der);
        let mut cert = outer.sequence("the certificate")?;
        outer.finish("the certificate")?;

        let tbs_tlv = cert.element(tag::SEQUENCE, "tbsCertificate")?;
        let signature_algorithm = algorithm(&mut cert, "signatureAlgorithm")?;
        let signature = cert.element(tag::BIT_STRING, "signatureValue")?.content;
        bit_string(signature, "signatureValue")?;
        cert.finish("the certificate")?;

        let mut tbs = Reader::new(tbs_tlv.content);
        // version [0] EXPLICIT INTEGER DEFAULT v1: present means v2 (1) or v3 (2).
        let version = match tbs.optional(VERSION, "version")? {
            None => 0,
            Some(v) => {
                let mut inner = Reader::new(v.content);
                let version = small_integer(&mut inner, "version", 2)?;
                inner.finish("version")?;
                if version == 0 {
                    return Err("version: v1 encoded (DER omits it)".into());
                }
                version
            }
        };
        let serial = tbs.element(tag::INTEGER, "serialNumber")?.content;
        check_integer(serial).map_err(|e| format!("serialNumber: {e}"))?;
        // RFC 5280: at most 20 octets; one more for a leading 00, as x509-cert reads it.
        if serial.len() > 21 {
            return Err("serialNumber: longer than 20 octets".into());
        }
        let tbs_signature = algorithm(&mut tbs, "signature")?;
        let issuer = name(&mut tbs, "issuer")?;
        let mut validity = tbs.sequence("validity")?;
        let not_before = time(&mut validity, "notBefore")?;
        let not_after = time(&mut validity, "notAfter")?;
        validity.finish("validity")?;
        let subject = name(&mut tbs, "subject")?;
        let mut spki = tbs.sequence("subjectPublicKeyInfo")?;
        let public_key_algorithm = algorithm(&mut spki, "subjectPublicKeyInfo")?;
        let public_key = spki.element(tag::BIT_STRING, "subjectPublicKey")?.content;
        bit_string(public_key, "subjectPublicKey")?;
        spki.finish("subjectPublicKeyInfo")?;
        for (unique_tag, what) in [
            (ISSUER_UNIQUE_ID, "issuerUniqueID"),
            (SUBJECT_UNIQUE_ID, "subjectUniqueID"),
        ] {
            if let Some(id) = tbs.optional(unique_tag, what)? {
                if version < 1 {
                    return Err(format!("{what}: in a v1 certificate"));
                }
                bit_string(id.content, what)?;
            }
        }
        let mut extensions = Vec::new();
        if let Some(wrapper) = tbs.optional(EXTENSIONS, "extensions")? {
            if version < 2 {
                return Err("extensions: in a certificate before v3".into());
            }
            let mut explicit = Reader::new(wrapper.content);
            let mut list = explicit.sequence("extensions")?;
            explicit.finish("extensions")?;
            if list.is_empty() {
                return Err("extensions: an empty list".into());
            }
            while !list.is_empty() {
                let ext = extension(&mut list)?;
                if extensions.iter().any(|e: &Extension<'_>| e.oid == ext.oid) {
                    return Err("an extension appears twice".into());
                }
                extensions.push(ext);
            }
        }
        tbs.finish("tbsCertificate")?;
        Ok(Certificate {
            tbs: tbs_tlv.der,
            tbs_signature,
            issuer,
            not_before,
            not_after,
            subject,
            public_key_algorithm,
            public_key,
            extensions,
            signature_algorithm,
            signature,
        })
    }

    /// The extension with this OID (content octets), if present.
    pub fn extension(&self, oid: &[u8]) -> Option<&Extension<'a>> {
        self.extensions.iter().find(|e| e.oid == oid)
    }
}

/// Extension OIDs (content octets).
pub mod oid {
    /// 2.5.29.15
    pub const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    /// 2.5.29.17
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// 2.5.29.19
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
}

/// Whether every octet is ASCII (IA5String).
fn ia5(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// The URI and DNS names of a subjectAltName extension, in its order.
pub fn subject_alt_names(value: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    const WHAT: &str = "subjectAltName";
    let mut outer = Reader::new(value);
    let mut names = outer.sequence(WHAT)?;
    outer.finish(WHAT)?;
    let (mut uris, mut dns) = (Vec::new(), Vec::new());
    while !names.is_empty() {
        let name = names.any().map_err(|e| format!("{WHAT}: {e}"))?;
        match name.tag {
            // rfc822Name [1], dNSName [2], uniformResourceIdentifier [6]: IA5String.
            0x81 | 0x82 | 0x86 => {
                let text = ia5(name.content)
                    .ok_or_else(|| format!("{WHAT}: a name that is not IA5String"))?;
                match name.tag {
                    0x82 => dns.push(text.to_string()),
                    0x86 => uris.push(text.to_string()),
                    _ => {}
                }
            }
            // otherName [0]: `type-id OID, value [0] EXPLICIT ANY`.
            0xa0 => {
                let mut fields = Reader::new(name.content);
                let type_id = fields.element(tag::OID, WHAT)?.content;
                check_oid(type_id).map_err(|e| format!("{WHAT}: {e}"))?;
                let value = fields.element(0xa0, WHAT)?;
                let mut inner = Reader::new(value.content);
                let any = inner.any().map_err(|e| format!("{WHAT}: {e}"))?;
                inner.finish(WHAT)?;
                if any.tag & 0x20 != 0 {
                    check_nested(any.content).map_err(|e| format!("{WHAT}: an otherName: {e}"))?;
                }
                fields.finish(WHAT)?;
            }
            // directoryName [4]: EXPLICIT Name.
            0xa4 => {
                let mut inner = Reader::new(name.content);
                self::name(&mut inner, WHAT)?;
                inner.finish(WHAT)?;
            }
            // ediPartyName [5]: `nameAssigner [0] DirectoryString OPTIONAL, partyName [1]
            // DirectoryString`.
            0xa5 => {
                let mut fields = Reader::new(name.content);
                if let Some(assigner) = fields.optional(0xa0, WHAT)? {
                    directory_string(assigner.content)?;
                }
                directory_string(fields.element(0xa1, WHAT)?.content)?;
                fields.finish(WHAT)?;
            }
            // x400Address [3]: constructed, read as well-formed elements.
            0xa3 => {
                check_nested(name.content).map_err(|e| format!("{WHAT}: an x400Address: {e}"))?
            }
            // iPAddress [7] OCTET STRING, registeredID [8] OID.
            0x87 => {}
            0x88 => check_oid(name.content).map_err(|e| format!("{WHAT}: {e}"))?,
            other => return Err(format!("{WHAT}: an unknown name tag {other:#04x}")),
        }
    }
    Ok((uris, dns))
}

/// One DirectoryString (TeletexString, PrintableString, UniversalString, UTF8String or
/// BMPString) and nothing else.
fn directory_string(content: &[u8]) -> Result<(), String> {
    let mut reader = Reader::new(content);
    let string = reader.any()?;
    reader.finish("a DirectoryString")?;
    match string.tag {
        0x14 | 0x13 | 0x1c | 0x0c | 0x1e => Ok(()),
        other => Err(format!("a DirectoryString with the tag {other:#04x}")),
    }
}

/// How deep [`check_nested`] follows constructed elements: the values it checks (an otherName's
/// value, an x400Address) nest a few levels in practice, and a certificate made to nest
/// thousands deep must not exhaust the module's stack.
const MAX_NESTING: usize = 16;

/// Checks that `content` is a run of well-formed elements, recursing into constructed ones (at
/// most [`MAX_NESTING`] levels).
fn check_nested(content: &[u8]) -> Result<(), String> {
    check_nested_at(content, 0)
}

fn check_nested_at(content: &[u8], depth: usize) -> Result<(), String> {
    if depth > MAX_NESTING {
        return Err("elements nested too deeply".into());
    }
    let mut reader = Reader::new(content);
    while !reader.is_empty() {
        let tlv = reader.any()?;
        if tlv.tag & 0x20 != 0 {
            check_nested_at(tlv.content, depth + 1)?;
        }
    }
    Ok(())
}

/// basicConstraints: `cA` (DEFAULT FALSE) and the path length (0–255, as `x509-cert` reads it).
pub fn basic_constraints(value: &[u8]) -> Result<bool, String> {
    const WHAT: &str = "basicConstraints";
    let mut outer = Reader::new(value);
    let mut fields = outer.sequence(WHAT)?;
    outer.finish(WHAT)?;
    let ca = default_false(&mut fields, WHAT, "cA")?;
    if fields.peek_tag().is_some() {
        small_integer(&mut fields, WHAT, 255)?;
    }
    fields.finish(WHAT)?;
    Ok(ca)
}

/// keyUsage: whether keyCertSign (bit 5) or cRLSign (bit 6) is set. More than 16 bits are
/// refused, as `x509-cert` refuses them; bits past decipherOnly (8) are ignored.
pub fn can_sign_certificates(value: &[u8]) -> Result<bool, String> {
    const WHAT: &str = "keyUsage";
    let mut outer = Reader::new(value);
    let content = outer.element(tag::BIT_STRING, WHAT)?.content;
    outer.finish(WHAT)?;
    let (bytes, _) = bit_string(content, WHAT)?;
    let bits = match bytes {
        [] => 0u16,
        [a] => u16::from(*a) << 8,
        [a, b] => (u16::from(*a) << 8) | u16::from(*b),
        _ => return Err(format!("{WHAT}: longer than 16 bits")),
    };
    // Bit n of the BIT STRING is the (15 − n)th bit of `bits`.
    Ok(bits & (1 << (15 - 5)) != 0 || bits & (1 << (15 - 6)) != 0)
}
