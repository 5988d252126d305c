//! A client certificate forwarded in a header by a TLS terminator in front of the gateway
//! (`from_front_proxy`): which connections may forward one, and how the header is read.
//!
//! The header is read only on a connection whose own certificate is one of the listed front
//! proxies. With `ca_certificates` the forwarded certificate must also be issued by one of those
//! CAs ([`chain`]); without, it is taken as the client certificate the front proxy verified.

use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use crate::cert::{PeerCertificate, MAX_PEM_LEN};
use crate::chain::{self, TrustedCa};
use crate::dn::Dn;

/// How the forwarded header carries the certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Envoy's `x-forwarded-client-cert`: the last element's `Cert=` (URL-encoded PEM), or else
    /// its `Hash`, `Subject`, `URI` and `DNS` fields.
    Xfcc,
    /// The PEM text, URL-encoded or not, with line breaks or spaces.
    Pem,
    /// The DER encoding in base64 (standard or URL-safe alphabet, padded or not), optionally
    /// between colons as an RFC 8941 byte sequence (RFC 9440's `Client-Cert`).
    DerBase64,
}

/// The front proxies, recognised by their own (connection) certificate.
#[derive(Clone, Debug)]
pub struct FrontProxy {
    /// SPIFFE IDs: the connection's certificate is an X.509 SVID with one of these IDs.
    pub spiffe_ids: Vec<String>,
    /// Lowercase hex SHA-256 of the connection certificate's DER.
    pub sha256: Vec<String>,
    /// The header the certificate is forwarded in (lower case).
    pub header: String,
    pub format: Format,
    /// When not empty, a forwarded certificate must be issued directly by one of these.
    pub cas: Vec<TrustedCa>,
}

/// Why a forwarded certificate is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The metric and log reason: `unreadable_certificate` or `unverified_certificate`.
    pub reason: &'static str,
    pub detail: String,
}

impl Refused {
    fn unreadable(detail: impl Into<String>) -> Refused {
        Refused {
            reason: "unreadable_certificate",
            detail: detail.into(),
        }
    }
}

/// A forwarded certificate as it arrived: the certificate itself, or only XFCC's fields.
enum Forwarded {
    Der(Vec<u8>),
    Fields(PeerCertificate),
}

impl FrontProxy {
    /// How the connection's certificate is recognised as a front proxy, or `None` if it is not one.
    pub fn recognise(&self, cert: &PeerCertificate) -> Option<String> {
        if let Ok(id) = cert.svid() {
            if self.spiffe_ids.iter().any(|x| x == id.as_str()) {
                return Some(id.as_str().to_string());
            }
        }
        let hex = cert.sha256_hex();
        self.sha256.contains(&hex).then(|| format!("sha256:{hex}"))
    }

    /// Reads the client certificate from the header's values (every line of the header, in
    /// order), and with `ca_certificates` verifies it at `now_secs`. `Ok(None)` when the header
    /// is absent or empty.
    pub fn read(
        &self,
        values: &[String],
        now_secs: u64,
    ) -> Result<Option<PeerCertificate>, Refused> {
        let Some(forwarded) = self.forwarded(values).map_err(Refused::unreadable)? else {
            return Ok(None);
        };
        match forwarded {
            Forwarded::Fields(cert) => {
                if self.cas.is_empty() {
                    Ok(Some(cert))
                } else {
                    Err(Refused {
                        reason: "unverified_certificate",
                        detail: "the XFCC element has no `Cert`, which `ca_certificates` needs"
                            .into(),
                    })
                }
            }
            Forwarded::Der(der) => {
                let cert = PeerCertificate::from_der(&der).map_err(Refused::unreadable)?;
                if !self.cas.is_empty() {
                    chain::verify(&der, &self.cas, now_secs).map_err(|detail| Refused {
                        reason: "unverified_certificate",
                        detail,
                    })?;
                }
                Ok(Some(cert))
            }
        }
    }

    fn forwarded(&self, values: &[String]) -> Result<Option<Forwarded>, String> {
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Ok(None);
        }
        match self.format {
            Format::Xfcc => {
                // Several XFCC lines are one list; the last element is the nearest proxy's.
                let joined = values.join(",");
                let elements = split_outside_quotes(&joined, ',');
                let Some(last) = elements.last() else {
                    return Ok(None);
                };
                from_xfcc_element(last).map(Some)
            }
            Format::Pem | Format::DerBase64 => {
                let [one] = values.as_slice() else {
                    return Err(format!("`{}` appears more than once", self.header));
                };
                let der = if self.format == Format::Pem {
                    pem_to_der(one)?
                } else {
                    der_from_base64(one)?
                };
                Ok(Some(Forwarded::Der(der)))
            }
        }
    }
}

/// Splits on `sep` outside double quotes (a backslash escapes the next character inside quotes).
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(text.get(start..i).unwrap_or(""));
            start = i + c.len_utf8();
        }
    }
    parts.push(text.get(start..).unwrap_or(""));
    parts
}

/// An XFCC value without its quotes and escapes.
fn unquote(value: &str) -> Result<String, String> {
    let value = value.trim();
    let Some(inner) = value.strip_prefix('"') else {
        if value.contains('"') {
            return Err("a quote inside an unquoted XFCC value".into());
        }
        return Ok(value.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or("an XFCC value whose quote is not closed")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next().ok_or("an XFCC value ending in `\\`")?);
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The key/value pairs of one XFCC element, keys as written.
fn xfcc_pairs(element: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for pair in split_outside_quotes(element, ';') {
        if pair.trim().is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').ok_or("an XFCC field without `=`")?;
        pairs.push((key.trim().to_string(), unquote(value)?));
    }
    Ok(pairs)
}

/// The client certificate of one XFCC element: from `Cert=` when present, else from the fields.
fn from_xfcc_element(element: &str) -> Result<Forwarded, String> {
    let pairs = xfcc_pairs(element)?;
    let field = |name: &'static str| {
        pairs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let certs: Vec<&str> = field("Cert").collect();
    match certs.as_slice() {
        [] => {}
        [pem] => {
            let der = pem_to_der(pem)?;
            // The fields, when present, must describe the same certificate.
            if let Some(hash) = field("Hash").next() {
                if sha256_from_hex(hash) != Some(shieldwall_jose::sha256(&der)) {
                    return Err("the XFCC `Hash` is not the SHA-256 of its `Cert`".into());
                }
            }
            return Ok(Forwarded::Der(der));
        }
        _ => return Err("the XFCC element has several `Cert` fields".into()),
    }
    let hashes: Vec<&str> = field("Hash").collect();
    let [hash] = hashes.as_slice() else {
        return Err("the XFCC element has neither `Cert` nor exactly one `Hash`".into());
    };
    let sha256 = sha256_from_hex(hash).ok_or("the XFCC `Hash` is not a hex SHA-256")?;
    let subjects: Vec<&str> = field("Subject").collect();
    let subject = match subjects.as_slice() {
        [] => Dn::default(),
        [s] => Dn::parse(s).map_err(|e| format!("the XFCC `Subject` cannot be read: {e}"))?,
        _ => return Err("the XFCC element has several `Subject` fields".into()),
    };
    Ok(Forwarded::Fields(PeerCertificate {
        sha256,
        subject,
        uri_sans: field("URI").map(str::to_string).collect(),
        dns_sans: field("DNS").map(str::to_string).collect(),
        // Not in the fields: the front proxy is trusted to have forwarded a leaf certificate.
        is_ca: false,
        can_sign_certificates: false,
    }))
}

fn sha256_from_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Undoes `%XX` escapes (and nothing else: `+` stays, as Envoy and load balancers write it).
fn percent_decode(text: &str) -> Result<String, String> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad `%` escape in the certificate")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the certificate text is not UTF-8".to_string())
}

/// The DER of the first certificate in a PEM text that may be URL-encoded and whose line breaks
/// may have become spaces (as some load balancers put it in a header).
pub fn pem_to_der(text: &str) -> Result<Vec<u8>, String> {
    if text.len() > MAX_PEM_LEN * 3 {
        return Err("the certificate text is too long".into());
    }
    pem_block(&percent_decode(text)?)
}

/// The DER of the first `CERTIFICATE` block of a PEM text; whitespace inside the block is ignored.
pub fn pem_block(text: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = text.find(BEGIN).ok_or("no PEM certificate block")? + BEGIN.len();
    let rest = text.get(start..).unwrap_or("");
    let end = rest.find(END).ok_or("the PEM block is not closed")?;
    let body: String = rest
        .get(..end)
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("the PEM block is not base64: {e}"))
}

/// base64 decoding that accepts padding or its absence.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);

/// The DER of a base64 header value, optionally `:…:` (an RFC 8941 byte sequence).
fn der_from_base64(text: &str) -> Result<Vec<u8>, String> {
    if text.len() > MAX_PEM_LEN {
        return Err("the certificate text is too long".into());
    }
    let inner = text
        .strip_prefix(':')
        .and_then(|t| t.strip_suffix(':'))
        .unwrap_or(text);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    standard
        .decode(inner)
        .or_else(|_| url.decode(inner))
        .map_err(|_| "the certificate is not base64".to_string())
}
