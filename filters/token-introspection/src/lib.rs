//! token-introspection: opaque bearer tokens checked with the IdP's introspection endpoint
//! (RFC 7662) at the gateway.
//!
//! [`config`] parses and validates the plugin configuration; [`answer`] reads the IdP's answer
//! and checks it on every use; [`cache`] keeps answers in shared data (bounded, keyed by a secret
//! hash of the token); [`flight`] makes one introspection per token serve every worker;
//! [`filter`] puts it together. Token locations, rules, identity and claim headers come from
//! `shieldwall_core`, shared with jwt-auth.

pub mod answer;
pub mod cache;
pub mod config;
pub mod filter;
pub mod flight;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;
