//! Signature verification with ring, and the choice of candidate keys for a token.
//!
//! A key verifies only algorithms of its own family (RSA: RS*/PS*; EC P-256: ES256; P-384:
//! ES384; Ed25519: EdDSA; oct: HS*), and only its own `alg` when the JWK names one, so a token
//! can never make a public key act as an HMAC secret or switch padding schemes.
//!
//! Cost per call: HMAC keys are prepared once at import (ring keeps the padded key states). For
//! RSA, ECDSA and Ed25519 ring 0.17 offers no public pre-parsed verification key, so the stored
//! bytes (already validated at import) are handed to ring, which re-reads them on each call; that
//! is small next to the signature arithmetic.

use std::fmt;

use ring::{hmac, signature};

use crate::jwk::{Jwk, Jwks, KeyMaterial};
use crate::jws::{Alg, Header};

/// Why a signature did not verify. [`VerifyError::code`] is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The key may not be used with this algorithm (wrong family, or not the key's own `alg`).
    AlgNotAllowed,
    /// The signature does not match.
    BadSignature,
}

impl VerifyError {
    pub fn code(self) -> &'static str {
        match self {
            VerifyError::AlgNotAllowed => "alg_not_allowed",
            VerifyError::BadSignature => "bad_signature",
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for VerifyError {}

impl Jwk {
    /// Verifies `signature` over `signing_input` with this key and `alg`.
    ///
    /// ES256/ES384 take the JWS `r || s` form only (64 or 96 bytes); PS* use a salt as long as
    /// the hash; HMAC tags are compared in constant time.
    pub fn verify(
        &self,
        alg: Alg,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        if !self.accepts(alg) {
            return Err(VerifyError::AlgNotAllowed);
        }
        let ok = match &self.key {
            KeyMaterial::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(VerifyError::AlgNotAllowed),
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, signing_input, signature)
                    .is_ok()
            }
            KeyMaterial::Ec { point, .. } => {
                let verifier: &'static dyn signature::VerificationAlgorithm = match alg {
                    Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Alg::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return Err(VerifyError::AlgNotAllowed),
                };
                signature::UnparsedPublicKey::new(verifier, point)
                    .verify(signing_input, signature)
                    .is_ok()
            }
            KeyMaterial::Ed25519(x) => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(signing_input, signature)
                .is_ok(),
            KeyMaterial::Oct(_) => match self.hmac_key(alg) {
                Some(key) => hmac::verify(key, signing_input, signature).is_ok(),
                None => return Err(VerifyError::AlgNotAllowed),
            },
        };
        if ok {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

/// The keys worth trying for a token, at most `max_tries` of them.
///
/// With a `kid` in the header, only keys with exactly that `kid`; without one, every key. In both
/// cases only keys that accept the header's `alg`, so a flood of tokens cannot make the filter
/// try keys that could never verify.
pub fn select_keys<'a>(
    jwks: &'a Jwks,
    header: &'a Header,
    max_tries: usize,
) -> impl Iterator<Item = &'a Jwk> + 'a {
    jwks.keys
        .iter()
        .filter(move |k| match &header.kid {
            Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .filter(move |k| k.accepts(header.alg))
        .take(max_tries)
}
