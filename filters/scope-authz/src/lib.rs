//! scope-authz: the policy enforcement point after authentication.
//!
//! It reads the identity context that an authenticator wrote (jwt-auth today; token
//! introspection and mTLS identity later) and decides, rule by rule, whether this caller may do
//! this method on this path: scopes, tenant boundaries (against broken object-level
//! authorization), claims and allowed mTLS callers. Whatever no rule covers is refused unless the
//! configuration says otherwise, explicitly.
//!
//! [`config`] parses and validates the plugin configuration; [`policy`] is the pure decision (a
//! function of the compiled rules, the request line and the identity); [`filter`] is the stream
//! glue (replies, metrics, logs, shadow mode, the path handed upstream).

pub mod config;
pub mod filter;
pub mod policy;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;

pub use config::Config;
pub use filter::{ScopeAuthz, ScopeAuthzStream};
pub use policy::{Decision, Denial};
