//! shieldwall-jose: the signature code every shieldwall filter shares.
//!
//! One crate checks JSON Web Signatures for the whole project, so no filter carries signature
//! code of its own: [`jws`] parses compact JWS strictly, [`jwk`] imports a JWKS into
//! ready-to-verify [`Key`]s (refusing weak and malformed keys one by one), [`verify`] checks
//! signatures and selects candidate keys for a token. RSA, ES256, ES384 and EdDSA use this crate's
//! own variable-time arithmetic on keys prepared at import (every input of a verification is
//! public); the SHA-2 hashes and HMAC are the crate's own too (`digest`, HMAC tags compared in
//! constant time), so no module links ring through this crate (the tests use it as a reference).
//! With the `jwt-compact` feature, [`compact`] offers the verifiers as jwt-compact
//! `Algorithm`s.
//!
//! The small public surface: [`Key::from_jwk`] (one JWK), [`parse_jwks`] (a set),
//! [`Key::verify`], [`parse_compact`] / [`parse_compact_raw`] (the parsed compact token) and
//! [`select_keys`]. README.md says what is checked and how it is tested.

#[cfg(feature = "jwt-compact")]
pub mod compact;
mod curve25519;
mod digest;
mod ed25519;
pub mod jwk;
pub mod jws;
mod p256;
mod p384;
mod rsa;
mod testutil;
pub mod verify;

pub use digest::{sha256, HmacSha256};
pub use jwk::{parse_jwks, Jwks, JwksError, JwksOptions, Key, SkippedKey};
pub use jws::{
    b64url_decode, b64url_encode, parse_compact, parse_compact_raw, Alg, AlgFamily, Curve, Header,
    Jws, JwsError, RawJws,
};
pub use verify::{candidate_keys, select_keys, VerifyError};
