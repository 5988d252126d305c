//! The client certificate, from the PEM text Envoy exposes as `connection.peer_certificate`.
//!
//! Envoy has already verified the chain against the listener's trusted CA; this module only reads
//! what the filter decides on: every URI and DNS subject alternative name (Envoy's own
//! `uri_san_peer_certificate` gives only the first), the subject, the leaf constraints an X.509
//! SVID must meet, and the SHA-256 of the DER encoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use shieldwall_core::json_text::hex;

use crate::dn::{canonical_kind, Attribute, Dn};
use crate::spiffe::SpiffeId;
use crate::x509::{self, oid, tag, Certificate, Name};

/// The largest PEM text read; a client certificate is a few kilobytes.
pub const MAX_PEM_LEN: usize = 64 * 1024;

/// What the filter knows about the client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// SHA-256 of the DER encoding.
    pub sha256: [u8; 32],
    pub subject: Dn,
    /// Every URI SAN, in the certificate's order.
    pub uri_sans: Vec<String>,
    /// Every DNS SAN, in the certificate's order.
    pub dns_sans: Vec<String>,
    /// basicConstraints cA is true.
    pub is_ca: bool,
    /// keyUsage has keyCertSign or cRLSign.
    pub can_sign_certificates: bool,
}

/// Why the certificate is not an X.509 SVID (the SPIFFE identity document).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotSvid {
    NoUriSan,
    SeveralUriSans(usize),
    NotSpiffe(String),
    CaCertificate,
    SigningKeyUsage,
}

impl NotSvid {
    /// The metric and log reason.
    pub fn reason(&self) -> &'static str {
        match self {
            NotSvid::NoUriSan => "no_uri_san",
            NotSvid::SeveralUriSans(_) => "several_uri_sans",
            NotSvid::NotSpiffe(_) => "not_spiffe_uri",
            NotSvid::CaCertificate => "ca_certificate",
            NotSvid::SigningKeyUsage => "signing_key_usage",
        }
    }
}

/// An attribute value as text, for the string types a subject uses: UTF8String, PrintableString
/// (its character set), IA5String and TeletexString (ASCII, as `x509-cert` reads it).
fn attribute_text(value: &x509::Tlv<'_>) -> Option<String> {
    let bytes = value.content;
    let printable = |b: &u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
            )
    };
    let valid = match value.tag {
        tag::UTF8_STRING => true,
        tag::PRINTABLE_STRING => bytes.iter().all(printable),
        tag::IA5_STRING | tag::TELETEX_STRING => bytes.is_ascii(),
        _ => false,
    };
    if !valid {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

/// A certificate name as a [`Dn`] in RFC 4514 order (the certificate's order reversed); a value
/// of another type is written `#` and the hex of its encoding.
fn subject_of(name: &Name<'_>) -> Dn {
    let mut rdns: Vec<Vec<Attribute>> = name
        .rdns
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let dotted = x509::oid_string(atv.oid);
                    Attribute {
                        kind: canonical_kind(&dotted).unwrap_or(dotted),
                        value: attribute_text(&atv.value)
                            .unwrap_or_else(|| format!("#{}", hex(atv.value.der))),
                    }
                })
                .collect()
        })
        .collect();
    rdns.reverse();
    Dn { rdns }
}

impl PeerCertificate {
    /// Reads the first certificate of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<PeerCertificate, String> {
        if pem.len() > MAX_PEM_LEN {
            return Err("the certificate text is too long".into());
        }
        let text = std::str::from_utf8(pem).map_err(|_| "the PEM text is not UTF-8".to_string())?;
        let der = crate::forwarded::pem_block(text)?;
        PeerCertificate::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<PeerCertificate, String> {
        let cert =
            Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let mut out = PeerCertificate {
            sha256: shieldwall_jose::sha256(der),
            subject: subject_of(&cert.subject),
            uri_sans: Vec::new(),
            dns_sans: Vec::new(),
            is_ca: false,
            can_sign_certificates: false,
        };
        if let Some(ext) = cert.extension(oid::SUBJECT_ALT_NAME) {
            let (uris, dns) = x509::subject_alt_names(ext.value)
                .map_err(|e| format!("subjectAltName cannot be read: {e}"))?;
            out.uri_sans = uris;
            out.dns_sans = dns;
        }
        if let Some(ext) = cert.extension(oid::BASIC_CONSTRAINTS) {
            out.is_ca = x509::basic_constraints(ext.value)
                .map_err(|e| format!("basicConstraints cannot be read: {e}"))?;
        }
        if let Some(ext) = cert.extension(oid::KEY_USAGE) {
            out.can_sign_certificates = x509::can_sign_certificates(ext.value)
                .map_err(|e| format!("keyUsage cannot be read: {e}"))?;
        }
        Ok(out)
    }

    /// The SPIFFE ID, if this certificate is an X.509 SVID: exactly one URI SAN, a valid SPIFFE
    /// ID, a leaf (not a CA, no keyCertSign or cRLSign).
    pub fn svid(&self) -> Result<SpiffeId, NotSvid> {
        let uri = match self.uri_sans.as_slice() {
            [] => return Err(NotSvid::NoUriSan),
            [one] => one,
            several => return Err(NotSvid::SeveralUriSans(several.len())),
        };
        let id = SpiffeId::parse(uri).map_err(|e| NotSvid::NotSpiffe(e.to_string()))?;
        if self.is_ca {
            return Err(NotSvid::CaCertificate);
        }
        if self.can_sign_certificates {
            return Err(NotSvid::SigningKeyUsage);
        }
        Ok(id)
    }

    /// Lowercase hex of the SHA-256, as Envoy's `sha256_peer_certificate_digest` and XFCC `Hash`.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// base64url of the SHA-256 without padding: RFC 8705's `x5t#S256` thumbprint.
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }
}
