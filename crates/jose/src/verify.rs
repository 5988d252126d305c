//! Signature verification, and the choice of candidate keys for a token.
//!
//! A key verifies only algorithms of its own family (RSA: RS*/PS*; EC P-256: ES256; P-384:
//! ES384; Ed25519: EdDSA; oct: HS*), and only its own `alg` when the JWK names one, so a token
//! can never make a public key act as an HMAC secret or switch padding schemes.
//!
//! Cost per call: HMAC keys are prepared once at import (their padded inner and outer blocks
//! hashed in advance, `digest`).
//! ES256 is verified by the `p256` module, a variable-time implementation (every input of a
//! verification is public) whose key tables are built once at import: ring's P-256 code is
//! written for secret scalars and was the slowest verification in wasm. EdDSA is verified by the
//! `ed25519` module the same way: the key decoded and its tables built at import, the point
//! arithmetic variable time (`curve25519`); ring decoded the key again on every call and walked
//! all 253 bits of both scalars. ES384 is the `p384` module's, on the same principle (the key's
//! table of multiples built at import; ring re-read the key and ran constant-time code on
//! every call, four times slower in V8).
//!
//! RSA keys are prepared at import too, by the `rsa` module: ring 0.17 would rebuild the modulus
//! and R² mod n on every call, on top of arithmetic that is slow in a wasm VM, so RSA signatures
//! are checked by the crate's own Montgomery arithmetic and encoding checks. The hashes and HMAC
//! are the crate's own too (`digest`).

use std::fmt;

use crate::jwk::{EcVerifier, Jwks, Key, KeyMaterial};
use crate::jws::{Alg, Header};
use crate::rsa::{Hash, Padding};

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

impl Key {
    /// Verifies `signature` over `signing_input` with this key and `alg`.
    ///
    /// RS*/PS* take a signature exactly as long as the modulus; PS* use MGF1 with the same hash
    /// and a salt as long as the hash. ES256/ES384 take the JWS `r || s` form only (64 or 96
    /// bytes); HMAC tags are compared in constant time.
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
            KeyMaterial::Rsa { public, .. } => {
                let (padding, hash) = match alg {
                    Alg::RS256 => (Padding::Pkcs1, Hash::Sha256),
                    Alg::RS384 => (Padding::Pkcs1, Hash::Sha384),
                    Alg::RS512 => (Padding::Pkcs1, Hash::Sha512),
                    Alg::PS256 => (Padding::Pss, Hash::Sha256),
                    Alg::PS384 => (Padding::Pss, Hash::Sha384),
                    Alg::PS512 => (Padding::Pss, Hash::Sha512),
                    _ => return Err(VerifyError::AlgNotAllowed),
                };
                public.verify(padding, hash, signing_input, signature)
            }
            // ES256 and ES384 take this crate's variable-time verifiers with the key's table of
            // multiples built at import (see `p256` and `p384`): ring's code is built for secret
            // scalars and several times slower in wasm.
            KeyMaterial::Ec { verifier, .. } => match (verifier, alg) {
                (EcVerifier::P256(key), Alg::ES256) => key.verify(signing_input, signature),
                (EcVerifier::P384(key), Alg::ES384) => key.verify(signing_input, signature),
                _ => return Err(VerifyError::AlgNotAllowed),
            },
            // EdDSA takes this crate's verifier with the key decoded and its tables built at
            // import (see `curve25519`).
            KeyMaterial::Ed25519(key) => key.verify(signing_input, signature),
            KeyMaterial::Oct(_) => match self.hmac_key(alg) {
                Some(key) => key.verify(signing_input, signature),
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

/// Every key worth trying for a token, in the set's order.
///
/// With a `kid` in the header, only keys with exactly that `kid`; without one, every key. In both
/// cases only keys that accept the header's `alg`, so a flood of tokens cannot make the filter
/// try keys that could never verify. A caller bounds the work with `take`, and can tell from
/// what is left whether the bound cut the list short.
pub fn candidate_keys<'a>(
    jwks: &'a Jwks,
    header: &'a Header,
) -> impl Iterator<Item = &'a Key> + 'a {
    jwks.keys
        .iter()
        .filter(move |k| match &header.kid {
            Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .filter(move |k| k.accepts(header.alg))
}

/// The first `max_tries` of [`candidate_keys`].
pub fn select_keys<'a>(
    jwks: &'a Jwks,
    header: &'a Header,
    max_tries: usize,
) -> impl Iterator<Item = &'a Key> + 'a {
    candidate_keys(jwks, header).take(max_tries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::{parse_jwks, JwksOptions};
    use crate::jws::b64url_encode;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use ring::{hmac, signature};

    const OPTS: JwksOptions = JwksOptions {
        allow_symmetric: true,
        max_bytes: 1 << 20,
        max_keys: 32,
    };
    const MSG: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0";
    // RFC 7520 §3.3 public key (2048-bit RSA), for the refusals that need no signature.
    const RSA_N: &str = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";

    struct Fixture {
        jwks: Jwks,
        es256_sig: Vec<u8>,
        es384_sig: Vec<u8>,
        eddsa_sig: Vec<u8>,
        hs256_sig: Vec<u8>,
        hs512_sig: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let rng = SystemRandom::new();
        let p256 = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let p384 = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let k256 = EcdsaKeyPair::from_pkcs8(
            p256,
            EcdsaKeyPair::generate_pkcs8(p256, &rng).unwrap().as_ref(),
            &rng,
        )
        .unwrap();
        let k384 = EcdsaKeyPair::from_pkcs8(
            p384,
            EcdsaKeyPair::generate_pkcs8(p384, &rng).unwrap().as_ref(),
            &rng,
        )
        .unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
            .unwrap();
        let secret = [42u8; 64];
        let ec_jwk = |pk: &[u8], crv: &str, kid: &str| {
            let (x, y) = pk[1..].split_at((pk.len() - 1) / 2);
            format!(
                r#"{{"kty":"EC","crv":"{crv}","x":"{}","y":"{}","kid":"{kid}"}}"#,
                b64url_encode(x),
                b64url_encode(y)
            )
        };
        let doc = format!(
            r#"{{"keys":[{},{},{{"kty":"OKP","crv":"Ed25519","x":"{}","kid":"ed"}},{{"kty":"RSA","n":"{RSA_N}","e":"AQAB","kid":"rsa"}},{{"kty":"RSA","n":"{RSA_N}","e":"AQAB","kid":"rsa-ps256","alg":"PS256"}}]}}"#,
            ec_jwk(k256.public_key().as_ref(), "P-256", "p256"),
            ec_jwk(k384.public_key().as_ref(), "P-384", "p384"),
            b64url_encode(ed.public_key().as_ref()),
        );
        let mut jwks = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        // Symmetric keys cannot share a set with asymmetric ones; import them on their own.
        let oct = format!(
            r#"{{"keys":[{{"kty":"oct","k":"{}","kid":"hs"}},{{"kty":"oct","k":"{}","kid":"hs256-only","alg":"HS256"}}]}}"#,
            b64url_encode(&secret),
            b64url_encode(&secret)
        );
        jwks.keys
            .extend(parse_jwks(oct.as_bytes(), OPTS).unwrap().keys);
        Fixture {
            jwks,
            es256_sig: k256.sign(&rng, MSG).unwrap().as_ref().to_vec(),
            es384_sig: k384.sign(&rng, MSG).unwrap().as_ref().to_vec(),
            eddsa_sig: ed.sign(MSG).as_ref().to_vec(),
            hs256_sig: hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), MSG)
                .as_ref()
                .to_vec(),
            hs512_sig: hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, &secret), MSG)
                .as_ref()
                .to_vec(),
        }
    }

    fn key<'a>(f: &'a Fixture, kid: &str) -> &'a Key {
        f.jwks
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .unwrap()
    }

    #[test]
    fn good_signatures_verify() {
        let f = fixture();
        assert_eq!(
            key(&f, "p256").verify(Alg::ES256, MSG, &f.es256_sig),
            Ok(())
        );
        assert_eq!(
            key(&f, "p384").verify(Alg::ES384, MSG, &f.es384_sig),
            Ok(())
        );
        assert_eq!(key(&f, "ed").verify(Alg::EdDSA, MSG, &f.eddsa_sig), Ok(()));
        assert_eq!(key(&f, "hs").verify(Alg::HS256, MSG, &f.hs256_sig), Ok(()));
        assert_eq!(key(&f, "hs").verify(Alg::HS512, MSG, &f.hs512_sig), Ok(()));
        assert_eq!(
            key(&f, "hs256-only").verify(Alg::HS256, MSG, &f.hs256_sig),
            Ok(())
        );
    }

    #[test]
    fn tampering_fails() {
        let f = fixture();
        let other = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiIn0";
        for (kid, alg, sig) in [
            ("p256", Alg::ES256, &f.es256_sig),
            ("p384", Alg::ES384, &f.es384_sig),
            ("ed", Alg::EdDSA, &f.eddsa_sig),
            ("hs", Alg::HS256, &f.hs256_sig),
        ] {
            let k = key(&f, kid);
            assert_eq!(
                k.verify(alg, other, sig),
                Err(VerifyError::BadSignature),
                "{kid}"
            );
            let mut flipped = sig.clone();
            flipped[3] ^= 1;
            assert_eq!(
                k.verify(alg, MSG, &flipped),
                Err(VerifyError::BadSignature),
                "{kid}"
            );
            assert_eq!(
                k.verify(alg, MSG, &sig[..sig.len() - 1]),
                Err(VerifyError::BadSignature),
                "{kid}"
            );
            let mut longer = sig.clone();
            longer.push(0);
            assert_eq!(
                k.verify(alg, MSG, &longer),
                Err(VerifyError::BadSignature),
                "{kid}"
            );
            assert_eq!(
                k.verify(alg, MSG, &[]),
                Err(VerifyError::BadSignature),
                "{kid}"
            );
        }
    }

    #[test]
    fn ecdsa_takes_only_the_fixed_form() {
        let f = fixture();
        // DER-encode r and s: a valid ASN.1 signature must not be accepted for ES256.
        let (r, s) = f.es256_sig.split_at(32);
        let int = |v: &[u8]| {
            let mut out = vec![0x02];
            let pad = v[0] & 0x80 != 0;
            out.push((v.len() + usize::from(pad)) as u8);
            if pad {
                out.push(0);
            }
            out.extend_from_slice(v);
            out
        };
        let body = [int(r), int(s)].concat();
        let der = [vec![0x30, body.len() as u8], body].concat();
        assert_eq!(
            key(&f, "p256").verify(Alg::ES256, MSG, &der),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn every_key_refuses_every_foreign_alg() {
        let f = fixture();
        let allowed: &[(&str, &[Alg])] = &[
            ("p256", &[Alg::ES256]),
            ("p384", &[Alg::ES384]),
            ("ed", &[Alg::EdDSA]),
            (
                "rsa",
                &[
                    Alg::RS256,
                    Alg::RS384,
                    Alg::RS512,
                    Alg::PS256,
                    Alg::PS384,
                    Alg::PS512,
                ],
            ),
            ("rsa-ps256", &[Alg::PS256]),
            ("hs", &[Alg::HS256, Alg::HS384, Alg::HS512]),
            ("hs256-only", &[Alg::HS256]),
        ];
        for (kid, algs) in allowed {
            let k = key(&f, kid);
            for alg in Alg::ALL {
                assert_eq!(k.accepts(alg), algs.contains(&alg), "{kid} {alg}");
                if !algs.contains(&alg) {
                    // Whatever the signature, a foreign alg is refused before any crypto.
                    for sig in [&f.es256_sig, &f.eddsa_sig, &f.hs256_sig, &f.hs512_sig] {
                        assert_eq!(
                            k.verify(alg, MSG, sig),
                            Err(VerifyError::AlgNotAllowed),
                            "{kid} {alg}"
                        );
                    }
                }
            }
        }
        // The classic confusion: an HMAC over the input keyed with public key bytes.
        let rsa_bytes = crate::jws::b64url_decode(RSA_N).unwrap();
        let forged = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &rsa_bytes), MSG);
        assert_eq!(
            key(&f, "rsa").verify(Alg::HS256, MSG, forged.as_ref()),
            Err(VerifyError::AlgNotAllowed)
        );
        // Right family, wrong curve or hash.
        assert_eq!(
            key(&f, "p256").verify(Alg::ES384, MSG, &f.es384_sig),
            Err(VerifyError::AlgNotAllowed)
        );
        assert_eq!(
            key(&f, "hs256-only").verify(Alg::HS512, MSG, &f.hs512_sig),
            Err(VerifyError::AlgNotAllowed)
        );
    }

    fn header(alg: Alg, kid: Option<&str>) -> Header {
        Header {
            alg,
            kid: kid.map(str::to_owned),
            typ: None,
        }
    }

    fn kids<'a>(it: impl Iterator<Item = &'a Key>) -> Vec<&'a str> {
        it.map(|k| k.kid.as_deref().unwrap_or("-")).collect()
    }

    #[test]
    fn select_by_kid() {
        let f = fixture();
        let h = header(Alg::ES256, Some("p256"));
        assert_eq!(kids(select_keys(&f.jwks, &h, 8)), ["p256"]);
        // A kid that names a key of another type selects nothing.
        let h = header(Alg::ES256, Some("ed"));
        assert!(select_keys(&f.jwks, &h, 8).next().is_none());
        let h = header(Alg::ES256, Some("unknown"));
        assert!(select_keys(&f.jwks, &h, 8).next().is_none());
        // Exact match only.
        let h = header(Alg::ES256, Some("P256"));
        assert!(select_keys(&f.jwks, &h, 8).next().is_none());
        let h = header(Alg::RS256, Some("rsa-ps256"));
        assert!(select_keys(&f.jwks, &h, 8).next().is_none());
        let h = header(Alg::PS256, Some("rsa-ps256"));
        assert_eq!(kids(select_keys(&f.jwks, &h, 8)), ["rsa-ps256"]);
    }

    #[test]
    fn select_without_kid_by_type_and_bounded() {
        let f = fixture();
        assert_eq!(
            kids(select_keys(&f.jwks, &header(Alg::PS256, None), 8)),
            ["rsa", "rsa-ps256"]
        );
        assert_eq!(
            kids(select_keys(&f.jwks, &header(Alg::RS256, None), 8)),
            ["rsa"]
        );
        assert_eq!(
            kids(select_keys(&f.jwks, &header(Alg::HS256, None), 8)),
            ["hs", "hs256-only"]
        );
        assert_eq!(
            kids(select_keys(&f.jwks, &header(Alg::HS512, None), 8)),
            ["hs"]
        );
        assert_eq!(
            kids(select_keys(&f.jwks, &header(Alg::EdDSA, None), 8)),
            ["ed"]
        );
        assert_eq!(
            kids(select_keys(&f.jwks, &header(Alg::PS256, None), 1)),
            ["rsa"]
        );
        assert!(select_keys(&f.jwks, &header(Alg::PS256, None), 0)
            .next()
            .is_none());
    }

    #[test]
    fn keys_without_kid_are_not_selected_by_a_kid() {
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"}}]}}"#);
        let jwks = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        assert!(select_keys(&jwks, &header(Alg::RS256, Some("x")), 8)
            .next()
            .is_none());
        assert_eq!(select_keys(&jwks, &header(Alg::RS256, None), 8).count(), 1);
    }
}
