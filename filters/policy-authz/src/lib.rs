//! policy-authz: Rego policies decide each request inside the gateway.
//!
//! Teams whose authorization rules are written in Rego (OPA's policy language), or need logic
//! the fixed rules of scope-authz cannot say (amount limits per tier, time windows, relations
//! between claims and path parameters), put their policies in this filter's configuration. They
//! are compiled once per configuration and worker by regorus, a Rust Rego interpreter, and
//! evaluated per request with an input document built from the identity context, the request
//! line, the listed headers, the client address, the connection and, if asked, the JSON body.
//! No sidecar, no network hop. Anything but a clear decision refuses the request.
//!
//! [`config`] parses and validates the plugin configuration; [`policy`] compiles the policies
//! and reads their answers; [`input`] builds the input document; [`filter`] is the stream glue
//! (rules, body, replies, metrics, logs, shadow mode, the decision record).

pub mod config;
pub mod filter;
pub mod input;
pub mod policy;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;

pub use config::Config;
pub use filter::{PolicyAuthz, PolicyAuthzStream};
pub use policy::{Policies, PolicyError, Verdict};
