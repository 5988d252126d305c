//! The failed-verification budget of the authenticating filters: per client address, how many
//! credentials that failed (a bad signature for jwt-auth, a token the IdP calls inactive for
//! token-introspection) it may present per period. Once spent, credentials that would need work
//! (a signature check, a call to the IdP) are refused with 429 before that work, so random tokens
//! cannot turn the gateway into a CPU sink or an amplifier against the IdP.
//!
//! The buckets live in a bounded shared-data table ([`crate::slots`]) keyed by a seeded hash of the
//! client address, so every worker of an Envoy charges the same budget.

use serde::Deserialize;

use crate::bucket::{limit_from_config, Limit, Per};
use crate::client_ip::client_ip;
use crate::config::ConfigError;
use crate::host::Host;
use crate::slots;

/// `failed_verification_budget` as configured.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetFile {
    /// Failures allowed per `per`, refilled continuously.
    pub failures: u64,
    pub per: Per,
    /// How many failures may come at once (default `failures`).
    #[serde(default)]
    pub burst: Option<u64>,
    /// Proxies in front of Envoy whose `x-forwarded-for` entries are trusted (default 0: the
    /// connection's peer is the client).
    #[serde(default)]
    pub xff_trusted_hops: u32,
    /// Shared-data entries of the budget table (default 16384).
    #[serde(default)]
    pub slots: Option<u64>,
}

impl BudgetFile {
    /// `failed_verification_budget`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<BudgetFile, ConfigError> {
        use crate::json_config::{object, u32_value, u64_value};
        let o = object(
            v,
            &["failures", "per", "burst", "xff_trusted_hops", "slots"],
        )?;
        Ok(BudgetFile {
            failures: o.need("failures", u64_value)?,
            per: o.need("per", Per::from_json)?,
            burst: o.optional("burst", u64_value)?,
            xff_trusted_hops: o.or("xff_trusted_hops", 0, u32_value)?,
            slots: o.optional("slots", u64_value)?,
        })
    }
}

/// Slots of the budget table when the configuration does not say, and the most it may have.
pub const DEFAULT_BUDGET_SLOTS: u64 = 16_384;
pub const MAX_BUDGET_SLOTS: u64 = 1 << 20;

/// The per-client budget of failed verifications.
#[derive(Debug, Clone)]
pub struct Budget {
    pub limit: Limit,
    pub xff_trusted_hops: u32,
    pub slots: u64,
}

/// Validates `failed_verification_budget`; errors name the field within it.
pub fn build_budget(file: &BudgetFile) -> Result<Budget, ConfigError> {
    let limit = limit_from_config("failures", file.failures, file.per, file.burst)?;
    if file.xff_trusted_hops > 16 {
        return Err(ConfigError::new("xff_trusted_hops", "at most 16"));
    }
    let slots = file.slots.unwrap_or(DEFAULT_BUDGET_SLOTS);
    if slots == 0 || slots > MAX_BUDGET_SLOTS {
        return Err(ConfigError::new(
            "slots",
            format!("must be between 1 and {MAX_BUDGET_SLOTS}"),
        ));
    }
    Ok(Budget {
        limit,
        xff_trusted_hops: file.xff_trusted_hops,
        slots,
    })
}

/// The budget slot of the request's client address: (shared-data key, key fingerprint); `None`
/// without a client address. `seed` comes from [`slots::load_seed`].
pub fn client_slot(
    host: &dyn Host,
    filter: &str,
    plugin: &str,
    seed: u64,
    budget: &Budget,
) -> Option<(String, u64)> {
    let ip = client_ip(host, budget.xff_trusted_hops)?;
    let fp = slots::fingerprint(seed, "failures", &ip);
    let key = slots::slot_key(filter, plugin, "failures", fp % budget.slots);
    Some((key, fp))
}

/// What charging one failure did.
#[derive(Debug, PartialEq, Eq)]
pub enum Charge {
    /// Counted within the budget.
    Charged,
    /// Counted, and the budget is spent.
    Spent,
    /// The shared slot could not be updated.
    Failed,
}

/// Takes one failure from the client's budget (a CAS on its shared slot).
pub fn charge(host: &mut dyn Host, budget: &Budget, slot: &(String, u64)) -> Charge {
    let now_ms = (host as &dyn Host).now_millis();
    match slots::take(host, &slot.0, slot.1, &budget.limit, now_ms) {
        Ok((decision, _)) if !decision.admitted => Charge::Spent,
        Ok(_) => Charge::Charged,
        Err(_) => Charge::Failed,
    }
}

/// `Err(ms until one more failure is allowed)` when the client's budget is spent (one read).
pub fn check(host: &dyn Host, budget: &Budget, slot: &(String, u64)) -> Result<(), u64> {
    let now_ms = host.now_millis();
    slots::peek(host, &slot.0, slot.1, &budget.limit, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;

    #[test]
    fn a_spent_budget_is_refused_until_it_refills() {
        let file: BudgetFile =
            serde_json::from_str(r#"{"failures": 2, "per": "minute", "slots": 8}"#).unwrap();
        let budget = build_budget(&file).unwrap();
        let mut host = MockHost::request("GET", "/", &[]);
        host.properties
            .insert("source\0address".into(), b"10.0.0.1:4000".to_vec());
        let slot = client_slot(&host, "f", "p", 7, &budget).expect("a client address");
        assert_eq!(check(&host, &budget, &slot), Ok(()));
        assert_eq!(charge(&mut host, &budget, &slot), Charge::Charged);
        assert_eq!(charge(&mut host, &budget, &slot), Charge::Charged);
        assert!(check(&host, &budget, &slot).is_err());
        assert_eq!(charge(&mut host, &budget, &slot), Charge::Spent);
        host.advance_ms(30_000);
        assert_eq!(check(&host, &budget, &slot), Ok(()));
        let bad: BudgetFile =
            serde_json::from_str(r#"{"failures": 2, "per": "minute", "slots": 0}"#).unwrap();
        assert_eq!(
            build_budget(&bad).unwrap_err().to_string(),
            format!("slots: must be between 1 and {MAX_BUDGET_SLOTS}")
        );
    }
}
