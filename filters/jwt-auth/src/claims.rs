//! Validation of the registered claims: shared with token-introspection, so it lives in
//! `shieldwall_core::claims`; re-exported here for callers of jwt-auth.

pub use shieldwall_core::claims::{validate, ClaimError, ClaimRules};
