//! The client certificate, from the PEM text Envoy exposes as `connection.peer_certificate`.
//!
//! Envoy has already verified the chain against the listener's trusted CA; this module only reads
//! what the filter decides on: every URI and DNS subject alternative name (Envoy's own
//! `uri_san_peer_certificate` gives only the first), the subject, the leaf constraints an X.509
//! SVID must meet, and the SHA-256 of the DER encoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::Certificate;

use shieldwall_core::json_text::hex;

use crate::dn::{canonical_kind, Attribute, Dn};
use crate::spiffe::SpiffeId;

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

/// The DER of the first `CERTIFICATE` block in a PEM text.
fn first_pem_block(pem: &[u8]) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(pem).map_err(|_| "the PEM text is not UTF-8".to_string())?;
    let start = text.find(BEGIN).ok_or("no PEM certificate block")?;
    let rest = text.get(start..).unwrap_or("");
    let end = rest.find(END).ok_or("the PEM block is not closed")? + END.len();
    let block = rest.get(..end).unwrap_or("");
    let (label, der) = x509_cert::der::pem::decode_vec(block.as_bytes())
        .map_err(|e| format!("the PEM block cannot be decoded: {e}"))?;
    if label != "CERTIFICATE" {
        return Err("the PEM block is not a certificate".into());
    }
    Ok(der)
}

/// A certificate subject as a [`Dn`] in RFC 4514 order.
fn subject_of(name: &Name) -> Dn {
    let mut rdns: Vec<Vec<Attribute>> = name
        .0
        .iter()
        .map(|rdn| {
            rdn.0
                .iter()
                .map(|atv| {
                    let oid = atv.oid.to_string();
                    let value = &atv.value;
                    let text = match value.tag() {
                        Tag::Utf8String => Utf8StringRef::try_from(value)
                            .ok()
                            .map(|s| s.as_str().to_string()),
                        Tag::PrintableString => PrintableStringRef::try_from(value)
                            .ok()
                            .map(|s| s.as_str().to_string()),
                        Tag::Ia5String => Ia5StringRef::try_from(value)
                            .ok()
                            .map(|s| s.as_str().to_string()),
                        Tag::TeletexString => TeletexStringRef::try_from(value)
                            .ok()
                            .map(|s| s.as_str().to_string()),
                        _ => None,
                    };
                    Attribute {
                        kind: canonical_kind(&oid).unwrap_or(oid),
                        value: text.unwrap_or_else(|| {
                            format!("#{}", hex(&value.to_der().unwrap_or_default()))
                        }),
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
        let der = first_pem_block(pem)?;
        PeerCertificate::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<PeerCertificate, String> {
        let cert =
            Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.as_ref());
        let tbs = &cert.tbs_certificate;
        let mut out = PeerCertificate {
            sha256,
            subject: subject_of(&tbs.subject),
            uri_sans: Vec::new(),
            dns_sans: Vec::new(),
            is_ca: false,
            can_sign_certificates: false,
        };
        let mut seen = Vec::new();
        for ext in tbs.extensions.iter().flatten() {
            if seen.contains(&ext.extn_id) {
                return Err("an extension appears twice".into());
            }
            seen.push(ext.extn_id);
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == SubjectAltName::OID {
                let san = SubjectAltName::from_der(value)
                    .map_err(|e| format!("subjectAltName cannot be read: {e}"))?;
                for name in san.0 {
                    match name {
                        GeneralName::UniformResourceIdentifier(uri) => {
                            out.uri_sans.push(uri.to_string())
                        }
                        GeneralName::DnsName(dns) => out.dns_sans.push(dns.to_string()),
                        _ => {}
                    }
                }
            } else if ext.extn_id == BasicConstraints::OID {
                let bc = BasicConstraints::from_der(value)
                    .map_err(|e| format!("basicConstraints cannot be read: {e}"))?;
                out.is_ca = bc.ca;
            } else if ext.extn_id == KeyUsage::OID {
                let ku = KeyUsage::from_der(value)
                    .map_err(|e| format!("keyUsage cannot be read: {e}"))?;
                out.can_sign_certificates = ku.key_cert_sign() || ku.crl_sign();
            }
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
