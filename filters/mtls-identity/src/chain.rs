//! Verification of a forwarded client certificate against configured CA certificates
//! (`from_front_proxy.ca_certificates`): the certificate must be issued **directly** by one of the
//! CAs (its issuer is the CA's subject and the CA's key verifies its signature) and be within its
//! validity period. Intermediates are not followed; revocation, name constraints and extended key
//! usage are not checked.
//!
//! Signatures are verified by shieldwall-jose, the verifier the token filters use (so the
//! one-module build carries one copy): ECDSA P-256 with SHA-256 and P-384 with SHA-384, RSA
//! PKCS#1 v1.5 with SHA-256/384/512 (keys jose accepts: 2048 bits and more), and Ed25519. The
//! signed bytes are the `tbsCertificate` element as it stands in the certificate ([`x509`]
//! reads strict DER and keeps slices of its input).

use serde_json::json;
use shieldwall_jose::{b64url_encode, Alg, Key};

use crate::x509::{self, oid, tag, Certificate, Reader};

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
#[derive(Clone, Debug)]
pub struct TrustedCa {
    /// The DER of the CA's subject, compared with a certificate's issuer.
    subject: Vec<u8>,
    kind: KeyKind,
    /// The CA's public key, imported by the verifier every shieldwall filter shares.
    key: Key,
}

/// Two DER INTEGERs in a SEQUENCE (an RSAPublicKey's modulus and exponent, an ECDSA signature's
/// r and s), as unsigned big-endian bytes without leading zeros.
fn two_integers(der: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let mut outer = Reader::new(der);
    let mut pair = outer.sequence("the pair of integers")?;
    outer.finish("the pair of integers")?;
    let a = x509::unsigned_integer(&mut pair, "the first integer")?;
    let b = x509::unsigned_integer(&mut pair, "the second integer")?;
    pair.finish("the pair of integers")?;
    let trim =
        |x: &'_ [u8]| -> usize { x.iter().take_while(|&&b| b == 0).count().min(x.len() - 1) };
    Ok((
        a.get(trim(a)..).unwrap_or_default(),
        b.get(trim(b)..).unwrap_or_default(),
    ))
}

/// The public key as a JWK for [`Key::from_jwk`].
fn jwk(kind: KeyKind, bits: &[u8]) -> Result<serde_json::Value, String> {
    Ok(match kind {
        KeyKind::Rsa => {
            let (n, e) = two_integers(bits)
                .map_err(|e| format!("the RSA public key cannot be read: {e}"))?;
            json!({"kty": "RSA", "n": b64url_encode(n), "e": b64url_encode(e)})
        }
        KeyKind::P256 | KeyKind::P384 => {
            let coords = bits
                .strip_prefix(&[4u8])
                .ok_or("the EC public key is not an uncompressed point")?;
            let (x, y) = coords.split_at(coords.len() / 2);
            let crv = if kind == KeyKind::P256 {
                "P-256"
            } else {
                "P-384"
            };
            json!({"kty": "EC", "crv": crv, "x": b64url_encode(x), "y": b64url_encode(y)})
        }
        KeyKind::Ed25519 => json!({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(bits)}),
    })
}

/// An X.509 ECDSA signature (DER `SEQUENCE { r, s }`) in the fixed `r || s` form.
fn ecdsa_fixed(der: &[u8], size: usize) -> Option<Vec<u8>> {
    let (r, s) = two_integers(der).ok()?;
    if r.len() > size || s.len() > size {
        return None;
    }
    let mut out = vec![0u8; 2 * size];
    out.get_mut(size - r.len()..size)?.copy_from_slice(r);
    out.get_mut(2 * size - s.len()..)?.copy_from_slice(s);
    Some(out)
}

fn key_kind(cert: &Certificate<'_>) -> Result<KeyKind, String> {
    let spki = &cert.public_key_algorithm;
    let alg = x509::oid_string(spki.oid);
    match alg.as_str() {
        EC_PUBLIC_KEY => {
            let curve = spki.parameters.ok_or("an EC key without its curve")?;
            if curve.tag != tag::OID {
                return Err("an EC key whose curve cannot be read".into());
            }
            match x509::oid_string(curve.content).as_str() {
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
        let is_ca = cert
            .extension(oid::BASIC_CONSTRAINTS)
            .and_then(|e| x509::basic_constraints(e.value).ok())
            .unwrap_or(false);
        if !is_ca {
            return Err("not a CA certificate (basicConstraints cA is not true)".into());
        }
        let kind = key_kind(&cert)?;
        let bits = x509::whole_bytes(cert.public_key, "the public key")?;
        let key = Key::from_jwk(&jwk(kind, bits)?, false)
            .map_err(|e| format!("the public key is refused: {e}"))?;
        Ok(TrustedCa {
            subject: cert.subject.der.to_vec(),
            kind,
            key,
        })
    }

    /// Whether this CA's key verifies `signature` (as in the certificate) over `signed`, made
    /// with the signature algorithm `oid`.
    fn verifies(&self, oid: &str, signed: &[u8], signature: &[u8]) -> bool {
        let (alg, fixed) = match (self.kind, oid) {
            (KeyKind::P256, ECDSA_SHA256) => (Alg::ES256, ecdsa_fixed(signature, 32)),
            (KeyKind::P384, ECDSA_SHA384) => (Alg::ES384, ecdsa_fixed(signature, 48)),
            (KeyKind::Rsa, RSA_SHA256) => (Alg::RS256, None),
            (KeyKind::Rsa, RSA_SHA384) => (Alg::RS384, None),
            (KeyKind::Rsa, RSA_SHA512) => (Alg::RS512, None),
            (KeyKind::Ed25519, ED25519) => (Alg::EdDSA, None),
            _ => return false,
        };
        let is_ecdsa = matches!(alg, Alg::ES256 | Alg::ES384);
        match (is_ecdsa, fixed) {
            (true, None) => false,
            (true, Some(sig)) => self.key.verify(alg, signed, &sig).is_ok(),
            (false, _) => self.key.verify(alg, signed, signature).is_ok(),
        }
    }
}

/// Checks that the certificate (DER) was issued by one of `cas` and is valid at `now_secs`
/// (seconds since the Unix epoch).
pub fn verify(der: &[u8], cas: &[TrustedCa], now_secs: u64) -> Result<(), String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if now_secs < cert.not_before {
        return Err("the certificate is not valid yet".into());
    }
    if now_secs > cert.not_after {
        return Err("the certificate has expired".into());
    }
    if cert.signature_algorithm.der != cert.tbs_signature.der {
        return Err("the two signature algorithms of the certificate differ".into());
    }
    let sig = x509::whole_bytes(cert.signature, "the signature")?;
    let oid = x509::oid_string(cert.signature_algorithm.oid);
    let issuer = cert.issuer.der;
    let mut issuers = cas.iter().filter(|ca| ca.subject == issuer).peekable();
    if issuers.peek().is_none() {
        return Err("the certificate's issuer is none of the configured CAs".into());
    }
    if issuers.any(|ca| ca.verifies(&oid, cert.tbs, sig)) {
        return Ok(());
    }
    Err("the certificate's signature is not by a configured CA".into())
}
