//! audit-log: one record per request, written when the stream ends, in Elastic Common Schema
//! names: who called (the identity context), what they asked for, what every shieldwall filter
//! decided and why, what the client got. Every value taken from the request is masked before it
//! leaves the filter, and each worker's records form an HMAC-SHA256 chain, so a removed, reordered
//! or edited record is detected by `audit-verify`.
//!
//! - [`config`]: the configuration and its validation;
//! - [`mask`]: the detectors (card numbers, e-mail addresses, tokens, IBANs, named fields,
//!   configured patterns) and the keyed hash that keeps masked values correlatable;
//! - [`record`]: the record's fields and its JSON text;
//! - [`chain`]: the HMAC chain, its signing and its verification;
//! - [`filter`]: the root and stream filters.

pub mod chain;
pub mod config;
pub mod filter;
pub mod mask;
pub mod record;
pub mod sink;
#[cfg(test)]
mod sink_tests;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;
