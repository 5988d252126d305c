//! The crate's verifiers as [`jwt_compact::Algorithm`]s (feature `jwt-compact`), for Rust code
//! that handles tokens with jwt-compact and wants the same checks the filter makes.
//!
//! [`Verifier`] verifies one JWS algorithm with a [`Key`] imported by [`crate::parse_jwks`]: the
//! key's family and its own `alg` are enforced exactly as in the filter (an RSA key never verifies
//! an HMAC tag, a key with `alg: RS256` never a PS256 signature), and every Wycheproof vector the
//! filter is tested with also runs through this adapter. It verifies only: shieldwall never signs,
//! so its signing key type has no values.
//!
//! ```
//! use shieldwall_jose::compact::Verifier;
//! use shieldwall_jose::{parse_jwks, Alg, JwksOptions};
//! use jwt_compact::{AlgorithmExt, Claims, UntrustedToken};
//!
//! # fn check(token: &str, jwks_json: &[u8]) -> anyhow::Result<()> {
//! let opts = JwksOptions { allow_symmetric: false, max_bytes: 64 * 1024, max_keys: 16 };
//! let jwks = parse_jwks(jwks_json, opts)?;
//! let untrusted = UntrustedToken::new(token)?;
//! let key = &jwks.keys[0];
//! let token = Verifier::new(Alg::RS256)
//!     .validator::<serde_json::Value>(key)
//!     .validate(&untrusted)?;
//! let _claims: &Claims<serde_json::Value> = token.claims();
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;

use jwt_compact::{Algorithm, AlgorithmSignature};

use crate::jwk::Key;
use crate::jws::Alg;

/// One JWS algorithm, verified with this crate's verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verifier {
    alg: Alg,
}

impl Verifier {
    pub fn new(alg: Alg) -> Verifier {
        Verifier { alg }
    }
}

/// shieldwall only verifies: there is no signing key.
#[derive(Debug)]
pub enum NoSigningKey {}

/// A signature as the token carries it (the length is checked by the verifier: an RSA
/// signature as long as the modulus, `r || s` of the curve's size, 64 bytes for Ed25519).
#[derive(Clone, Debug)]
pub struct Signature(Vec<u8>);

impl AlgorithmSignature for Signature {
    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        Ok(Signature(slice.to_vec()))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
}

impl Algorithm for Verifier {
    type SigningKey = NoSigningKey;
    type VerifyingKey = Key;
    type Signature = Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.alg.as_str())
    }

    fn sign(&self, signing_key: &NoSigningKey, _message: &[u8]) -> Signature {
        match *signing_key {}
    }

    fn verify_signature(&self, signature: &Signature, key: &Key, message: &[u8]) -> bool {
        key.verify(self.alg, message, &signature.0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use jwt_compact::{AlgorithmExt, UntrustedToken, ValidationError};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::{json, Value};

    use super::*;
    use crate::jws::b64url_encode;
    use crate::{parse_jwks, JwksOptions};

    const OPTS: JwksOptions = JwksOptions {
        allow_symmetric: true,
        max_bytes: 1 << 16,
        max_keys: 8,
    };

    fn es256_token_and_jwks() -> (String, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
            "x": b64url_encode(&point[1..33]), "y": b64url_encode(&point[33..65])}]});
        let header = b64url_encode(br#"{"alg":"ES256","kid":"k1"}"#);
        let claims = b64url_encode(
            json!({"sub": "alice", "exp": 4_000_000_000u64})
                .to_string()
                .as_bytes(),
        );
        let input = format!("{header}.{claims}");
        let sig = pair.sign(&rng, input.as_bytes()).unwrap();
        (
            format!("{input}.{}", b64url_encode(sig.as_ref())),
            jwks.to_string().into_bytes(),
        )
    }

    #[test]
    fn jwt_compact_validates_a_token_with_the_filters_verifier() {
        let (token, jwks) = es256_token_and_jwks();
        let jwks = parse_jwks(&jwks, OPTS).unwrap();
        let key = &jwks.keys[0];
        let untrusted = UntrustedToken::new(&token).unwrap();
        let valid = Verifier::new(Alg::ES256)
            .validator::<Value>(key)
            .validate(&untrusted)
            .unwrap();
        assert_eq!(valid.claims().custom["sub"], "alice");

        // One character of the signature changed: refused.
        let cut = token.rfind('.').unwrap() + 5;
        let mut bad = token.into_bytes();
        bad[cut] = if bad[cut] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        let untrusted = UntrustedToken::new(&bad).unwrap();
        let err = Verifier::new(Alg::ES256)
            .validator::<Value>(key)
            .validate(&untrusted)
            .unwrap_err();
        assert!(matches!(err, ValidationError::InvalidSignature), "{err:?}");
    }

    #[test]
    fn a_key_verifies_only_its_own_family_through_the_adapter() {
        let (token, jwks) = es256_token_and_jwks();
        let jwks = parse_jwks(&jwks, OPTS).unwrap();
        // An ES256 token presented as ES384 (whose curve this key is not on) or RS256: refused.
        for alg in [Alg::ES384, Alg::RS256, Alg::HS256] {
            let header = b64url_encode(format!(r#"{{"alg":"{}"}}"#, alg.as_str()).as_bytes());
            let rest = token.split_once('.').unwrap().1;
            let relabelled = format!("{header}.{rest}");
            let untrusted = UntrustedToken::new(&relabelled).unwrap();
            assert!(
                Verifier::new(alg)
                    .validator::<Value>(&jwks.keys[0])
                    .validate(&untrusted)
                    .is_err(),
                "{alg:?}"
            );
        }
    }
}
