//! rate-limit: token buckets per rule and key, kept in shared data so every worker of an Envoy
//! draws from the same bucket, with tiers chosen from the identity context, the IETF draft
//! `RateLimit-Policy`/`RateLimit` headers, and an optional Envoy rate-limit service (RLS v3).
//!
//! - [`bucket`] (from the core): the token-bucket arithmetic (integers only, saturating) and
//!   its binary encoding;
//! - [`table`] (the core's `slots`): the bounded slot table in shared data (hashing, collisions,
//!   idle reclaim);
//! - [`config`]: the configuration and its validation;
//! - [`client_ip`] (from the core): the client address, from the connection or trusted `x-forwarded-for` hops;
//! - [`headers`]: the draft header values;
//! - [`filter`]: the root and stream filters;
//! - [`rls`]: the protobuf codec of the RLS v3 messages.

pub mod config;
pub mod filter;
pub mod headers;
pub mod rls;
pub use shieldwall_core::slots as table;
pub use shieldwall_core::{bucket, client_ip};
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;
