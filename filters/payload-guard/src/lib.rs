//! payload-guard: requests checked against the API's OpenAPI document, size and structure
//! limits, and injection strings, before the body reaches the service.
//!
//! [`config`] parses and validates the configuration and compiles the document
//! ([`openapi`], [`schema`]); [`json`] is the strict, limited body parser; [`params`] reads
//! path, query and header parameters as their schemas describe; [`inject`] holds the SQL, XSS
//! and NoSQL checks; [`filter`] is the stream glue (replies, metrics, logs, shadow mode).

pub mod config;
pub mod filter;
pub mod inject;
pub mod json;
pub mod openapi;
pub mod params;
pub mod schema;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;

pub use config::Config;
pub use filter::{PayloadGuard, PayloadGuardStream};
