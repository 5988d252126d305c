//! The decision record for the audit log: what this filter decided on the request and why, in
//! the stream's filter state `shieldwall.decision.policy_authz` (in Envoy the filter-state key
//! `wasm.shieldwall.decision.policy_authz`, readable by later filters and access logs).
//!
//! Same names as the decision record of shieldwall-core that the other filters are moving to
//! (`Decision::{allow, deny, shadow_deny}`, `host.record_decision(..)`), so this module goes
//! away when that lands.

use serde_json::json;
use shieldwall_core::Host;

/// The property the record is written to.
pub const DECISION_PROPERTY: &str = "shieldwall.decision.policy_authz";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `allow`, `deny` or `shadow_deny`.
    pub outcome: &'static str,
    pub reason: String,
    /// The status of the reply that was (or in shadow mode would have been) sent.
    pub status: Option<u16>,
}

impl Decision {
    pub fn allow(reason: &str) -> Decision {
        Decision {
            outcome: "allow",
            reason: reason.to_string(),
            status: None,
        }
    }
    pub fn deny(reason: &str, status: u16) -> Decision {
        Decision {
            outcome: "deny",
            reason: reason.to_string(),
            status: Some(status),
        }
    }
    pub fn shadow_deny(reason: &str, status: u16) -> Decision {
        Decision {
            outcome: "shadow_deny",
            reason: reason.to_string(),
            status: Some(status),
        }
    }
}

pub trait RecordDecision {
    /// Writes the record; a proxy that refuses the write loses only the record.
    fn record_decision(&mut self, decision: &Decision);
}

impl RecordDecision for dyn Host + '_ {
    fn record_decision(&mut self, decision: &Decision) {
        let record = match decision.status {
            Some(status) => {
                json!({"decision": decision.outcome, "reason": decision.reason, "status": status})
            }
            None => json!({"decision": decision.outcome, "reason": decision.reason}),
        };
        let _ = self.set_property(&[DECISION_PROPERTY], record.to_string().as_bytes());
    }
}
