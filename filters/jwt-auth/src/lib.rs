//! jwt-auth: verifies bearer JWTs at the gateway.
//!
//! The verification layer is pure and host-independent: [`jws`] parses compact JWS strictly,
//! [`jwk`] imports a JWKS into ready-to-verify keys, [`verify`] checks signatures (RSA and ES256
//! with the crate's own arithmetic on keys prepared at import, the rest with ring) and selects
//! candidate keys, [`claims`] validates the registered claims. With the `jwt-compact` feature,
//! `compact` offers the verifiers as jwt-compact `Algorithm`s.

pub mod cache;
pub mod claims;
#[cfg(feature = "jwt-compact")]
pub mod compact;
pub mod config;
pub mod extract;
pub mod filter;
pub mod jwk;
pub mod jws;
pub mod keys;
mod p256;
mod rsa;
#[cfg(test)]
mod tests;
pub mod verify;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;

pub use claims::{validate, ClaimError, ClaimRules};
pub use jwk::{parse_jwks, Jwk, Jwks, JwksError, JwksOptions, SkippedKey};
pub use jws::{
    parse_compact, parse_compact_raw, Alg, AlgFamily, Curve, Header, Jws, JwsError, RawJws,
};
pub use verify::{select_keys, VerifyError};
