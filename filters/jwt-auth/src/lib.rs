//! jwt-auth: verifies bearer JWTs at the gateway.
//!
//! The signature layer is the shared `shieldwall-jose` crate (strict JWS parsing, JWKS import,
//! signature checks); this crate adds what a gateway filter needs around it: [`claims`] validates
//! the registered claims, [`keys`] fetches and shares key sets between workers, [`cache`]
//! remembers verified tokens and [`filter`] puts it together. What every authenticator shares
//! (token locations and extraction, ...) lives in `shieldwall_core`.
//! The names of the signature layer are re-exported here, so callers of jwt-auth need no second
//! dependency.

pub mod cache;
pub mod claims;
pub mod config;
pub mod filter;
pub mod keys;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;

pub use claims::{validate, ClaimError, ClaimRules};
pub use shieldwall_jose::{
    candidate_keys, parse_compact, parse_compact_raw, parse_jwks, select_keys, Alg, AlgFamily,
    Curve, Header, Jwks, JwksError, JwksOptions, Jws, JwsError, Key, RawJws, SkippedKey,
    VerifyError,
};
