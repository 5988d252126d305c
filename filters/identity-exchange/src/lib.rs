//! identity-exchange: the external caller, as the authenticators before it verified them, mapped
//! to a SPIFFE ID and carried inward as a short-lived internal JWT that the mesh verifies with its
//! native JWT validation.
//!
//! [`config`] parses and validates the configuration (keys included: a bad key is refused at
//! load); [`template`] fills the SPIFFE ID and audience templates under the SPIFFE ID rules;
//! [`keys`] holds the signing key and the published public keys; [`token`] builds the claims,
//! signs the token and caches it per worker; [`filter`] is the stream glue.

pub mod config;
pub mod filter;
pub mod keys;
pub mod template;
#[cfg(test)]
mod tests;
pub mod token;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;

pub use config::Config;
pub use filter::{IdentityExchange, IdentityExchangeStream};
