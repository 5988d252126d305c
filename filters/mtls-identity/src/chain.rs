//! Verification of a forwarded client certificate against configured CA certificates
//! (`from_front_proxy.ca_certificates`): the certificate must be issued **directly** by one of the
//! CAs (its issuer is the CA's subject and the CA's key verifies its signature) and be within its
//! validity period. Intermediates are not followed; revocation, name constraints and extended key
//! usage are not checked.
//!
//! Signatures are verified with `ring`: ECDSA P-256/P-384 with SHA-256/SHA-384, RSA PKCS#1 v1.5
//! (2048 to 8192 bits) with SHA-256/384/512, and Ed25519. The signed bytes are the DER encoding of
//! `tbsCertificate` as decoded (x509-cert decodes strict DER, so re-encoding gives the bytes that
//! were signed).

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const RSA: &str = "1.2.840.113549.1.1.1";
const ED25519: &str = "1.3.101.112";

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const RSA_SHA512: &str = "1.2.840.113549.1.1.13";

/// The kind of a CA's public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    P256,
    P384,
    Rsa,
    Ed25519,
}

/// A CA certificate a forwarded certificate may be issued by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedCa {
    /// The DER of the CA's subject, compared with a certificate's issuer.
    subject: Vec<u8>,
    kind: KeyKind,
    /// The subjectPublicKey bits: an EC point, an RSAPublicKey, or an Ed25519 key.
    public_key: Vec<u8>,
}

fn key_kind(cert: &Certificate) -> Result<KeyKind, String> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let alg = spki.algorithm.oid.to_string();
    match alg.as_str() {
        EC_PUBLIC_KEY => {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or("an EC key without its curve")?
                .decode_as()
                .map_err(|_| "an EC key whose curve cannot be read".to_string())?;
            match curve.to_string().as_str() {
                P256 => Ok(KeyKind::P256),
                P384 => Ok(KeyKind::P384),
                other => Err(format!("the EC curve {other} is not supported")),
            }
        }
        RSA => Ok(KeyKind::Rsa),
        ED25519 => Ok(KeyKind::Ed25519),
        other => Err(format!("the key algorithm {other} is not supported")),
    }
}

impl TrustedCa {
    /// Reads a CA certificate (PEM). It must be a CA: basicConstraints with `cA` true.
    pub fn from_pem(pem: &str) -> Result<TrustedCa, String> {
        let der = crate::forwarded::pem_to_der(pem)?;
        let cert =
            Certificate::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let tbs = &cert.tbs_certificate;
        let is_ca = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == BasicConstraints::OID)
            .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|bc| bc.ca);
        if !is_ca {
            return Err("not a CA certificate (basicConstraints cA is not true)".into());
        }
        Ok(TrustedCa {
            subject: tbs
                .subject
                .to_der()
                .map_err(|e| format!("the subject cannot be encoded: {e}"))?,
            kind: key_kind(&cert)?,
            public_key: tbs
                .subject_public_key_info
                .subject_public_key
                .as_bytes()
                .ok_or("the public key is not a whole number of bytes")?
                .to_vec(),
        })
    }

    fn algorithm(&self, signature_oid: &str) -> Option<&'static dyn VerificationAlgorithm> {
        Some(match (self.kind, signature_oid) {
            (KeyKind::P256, ECDSA_SHA256) => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyKind::P256, ECDSA_SHA384) => &signature::ECDSA_P256_SHA384_ASN1,
            (KeyKind::P384, ECDSA_SHA256) => &signature::ECDSA_P384_SHA256_ASN1,
            (KeyKind::P384, ECDSA_SHA384) => &signature::ECDSA_P384_SHA384_ASN1,
            (KeyKind::Rsa, RSA_SHA256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, RSA_SHA384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, RSA_SHA512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (KeyKind::Ed25519, ED25519) => &signature::ED25519,
            _ => return None,
        })
    }
}

/// Checks that the certificate (DER) was issued by one of `cas` and is valid at `now_secs`
/// (seconds since the Unix epoch).
pub fn verify(der: &[u8], cas: &[TrustedCa], now_secs: u64) -> Result<(), String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let validity = &tbs.validity;
    let not_before = validity.not_before.to_unix_duration().as_secs();
    let not_after = validity.not_after.to_unix_duration().as_secs();
    if now_secs < not_before {
        return Err("the certificate is not valid yet".into());
    }
    if now_secs > not_after {
        return Err("the certificate has expired".into());
    }
    if cert.signature_algorithm != tbs.signature {
        return Err("the two signature algorithms of the certificate differ".into());
    }
    let issuer = tbs
        .issuer
        .to_der()
        .map_err(|e| format!("the issuer cannot be encoded: {e}"))?;
    let signed = tbs
        .to_der()
        .map_err(|e| format!("the certificate cannot be encoded: {e}"))?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or("the signature is not a whole number of bytes")?;
    let oid = cert.signature_algorithm.oid.to_string();
    let mut issuers = cas.iter().filter(|ca| ca.subject == issuer).peekable();
    if issuers.peek().is_none() {
        return Err("the certificate's issuer is none of the configured CAs".into());
    }
    for ca in issuers {
        if let Some(alg) = ca.algorithm(&oid) {
            if UnparsedPublicKey::new(alg, &ca.public_key)
                .verify(&signed, sig)
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err("the certificate's signature is not by a configured CA".into())
}
