//! The IETF draft rate-limit fields (draft-ietf-httpapi-ratelimit-headers-10, the structured-field
//! syntax introduced in draft 08): `RateLimit-Policy: "per-ip";q=100;w=60` and
//! `RateLimit: "per-ip";r=42;t=10`, one list member per rule that applied. Rule names are limited
//! to `[A-Za-z0-9_-]` by the configuration, so they are valid sf-strings as they are.

use crate::bucket::{Decision, Limit};

/// A `RateLimit-Policy` member: quota `q` requests per window `w` seconds.
pub fn policy_item(name: &str, limit: &Limit) -> String {
    format!("\"{name}\";q={};w={}", limit.requests, limit.window_s())
}

/// A `RateLimit` member: `r` whole requests remaining, `t` seconds until the quota is fully back.
pub fn limit_item(name: &str, decision: &Decision) -> String {
    format!(
        "\"{name}\";r={};t={}",
        decision.remaining,
        ceil_secs(decision.full_in_ms)
    )
}

/// Milliseconds as whole seconds, rounded up (a client that waits that long is never early).
pub fn ceil_secs(ms: u64) -> u64 {
    ms / 1000 + u64::from(!ms.is_multiple_of(1000))
}

/// `Retry-After` in seconds: at least 1 (0 would invite an immediate retry that fails).
pub fn retry_after_secs(ms: u64) -> u64 {
    ceil_secs(ms).max(1)
}
