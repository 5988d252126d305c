//! Token buckets per key in shared data, in a bounded table: per rule (or per budget), a fixed
//! table of `slots` shared-data entries, so every worker of an Envoy draws from the same bucket. A key's bucket
//! lives in slot `hash(key) % slots`, and the slot stores the key's 64-bit fingerprint so that
//! another key landing there is recognised.
//!
//! Shared data has no delete, so the table never grows past `slots` entries per rule, however
//! many distinct keys arrive. When a key finds its slot held by another key:
//! - if the other key's bucket would be full by now (idle: it carries no history), the slot is
//!   reclaimed and the new key starts with a full bucket, exactly as if it had its own slot;
//! - otherwise the two keys share the occupant's bucket. Sharing can only make limiting stricter
//!   (every admitted request still took a token from a bucket), never looser, so no choice of keys
//!   lets a client escape its limit by filling the table; the cost is that an innocent key that
//!   collides with a busy one is limited together with it.
//!
//! The hash is keyed by a random seed kept in shared data (one per Envoy), so a client cannot
//! choose keys that collide with someone else's slot.

use std::hash::{Hash, Hasher};

use crate::shared::{self, UpdateError};
use crate::Host;

use crate::bucket::{Bucket, Decision, Limit, Slot};

/// How the request found its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotUse {
    /// The slot was this key's.
    Own,
    /// The slot was empty.
    Fresh,
    /// The slot held another key's idle bucket and was taken over.
    Reclaimed,
    /// The slot holds another key's active bucket; both share it.
    Shared,
}

/// The shared-data key of a rule's slot; `filter` names the filter owning the table.
pub fn slot_key(filter: &str, plugin: &str, rule: &str, index: u64) -> String {
    SlotKeys::new(filter, plugin, rule).key(index)
}

/// The slot keys of one rule: the part before the slot's index made once (at configuration), so
/// a request only appends the index's digits, without the formatting machinery.
#[derive(Debug, Clone)]
pub struct SlotKeys {
    prefix: String,
}

impl SlotKeys {
    pub fn new(filter: &str, plugin: &str, rule: &str) -> SlotKeys {
        let mut prefix = shared::key(filter, plugin, rule);
        prefix.push('/');
        SlotKeys { prefix }
    }

    /// The key of slot `index` (as [`slot_key`]).
    pub fn key(&self, index: u64) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 20);
        key.push_str(&self.prefix);
        crate::json_text::push_u64(&mut key, index);
        key
    }
}

/// The seed of the key hash: created once per Envoy (race-free), read by every worker.
pub fn load_seed(host: &mut dyn Host, filter: &str, plugin: &str, fresh: u64) -> u64 {
    let key = shared::key(filter, plugin, "seed");
    let parse = |b: &[u8]| -> Option<u64> { Some(u64::from_le_bytes(b.try_into().ok()?)) };
    let _ = shared::update(host, &key, |current| match current.and_then(parse) {
        Some(_) => None,
        None => Some((fresh.to_le_bytes().to_vec(), ())),
    });
    match host.shared_get(&key) {
        Ok((Some(bytes), _)) => parse(&bytes).unwrap_or(fresh),
        _ => fresh,
    }
}

/// The fingerprint of a rule's key: 64 bits of SipHash over the seed, the rule and the key.
pub fn fingerprint(seed: u64, rule: &str, key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    rule.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

/// Takes one token from the key's bucket (one CAS loop on its slot).
pub fn take(
    host: &mut dyn Host,
    slot_key: &str,
    fingerprint: u64,
    limit: &Limit,
    now_ms: u64,
) -> Result<(Decision, SlotUse), UpdateError> {
    take_up_to(host, slot_key, fingerprint, limit, now_ms, 1, 0).map(|(d, using, _)| (d, using))
}

/// Takes up to `want` tokens (at least one) from the key's bucket in one CAS loop on its slot,
/// after putting back `returning` tokens an earlier take of this key did not spend (only into
/// the key's own bucket: a slot another key took over since does not get them): what it
/// decided, how the slot was found, and how many tokens it took (0 when refused).
pub fn take_up_to(
    host: &mut dyn Host,
    slot_key: &str,
    fingerprint: u64,
    limit: &Limit,
    now_ms: u64,
    want: u64,
    returning: u64,
) -> Result<(Decision, SlotUse, u64), UpdateError> {
    shared::update(host, slot_key, |current| {
        let current = current.and_then(Slot::decode);
        let (bucket, using, owner, owner_full_at) = match current {
            None => (Bucket::full(limit, now_ms), SlotUse::Fresh, fingerprint, 0),
            Some(s) if s.fingerprint == fingerprint => (
                s.bucket.returned(limit, now_ms, returning),
                SlotUse::Own,
                fingerprint,
                0,
            ),
            Some(s) if now_ms >= s.full_at_ms => (
                Bucket::full(limit, now_ms),
                SlotUse::Reclaimed,
                fingerprint,
                0,
            ),
            Some(s) => (s.bucket, SlotUse::Shared, s.fingerprint, s.full_at_ms),
        };
        let (bucket, decision, taken) = bucket.take_up_to(limit, now_ms, want);
        let full_at_ms = now_ms
            .saturating_add(decision.full_in_ms)
            .max(owner_full_at);
        let slot = Slot {
            fingerprint: owner,
            bucket,
            full_at_ms,
        };
        Some((slot.encode(), (decision, using, taken)))
    })
}

/// Whether the key's bucket holds a whole token now, without taking it (one shared-data read).
/// `Err(ms)` is how long until it will. A slot held by another key's active bucket answers for
/// that bucket, as [`take`] would share it.
pub fn peek(
    host: &dyn Host,
    slot_key: &str,
    fingerprint: u64,
    limit: &Limit,
    now_ms: u64,
) -> Result<(), u64> {
    let slot = match host.shared_get(slot_key) {
        Ok((Some(bytes), _)) => Slot::decode(&bytes),
        _ => None,
    };
    let bucket = match slot {
        Some(s) if s.fingerprint == fingerprint || now_ms < s.full_at_ms => s.bucket,
        _ => return Ok(()),
    };
    let (_, decision) = bucket.take(limit, now_ms);
    if decision.admitted {
        Ok(())
    } else {
        Err(decision.retry_after_ms.max(1))
    }
}

/// Gives back a token taken by [`take`] from this slot (another rule refused the request).
pub fn give_back(host: &mut dyn Host, slot_key: &str, limit: &Limit, now_ms: u64) {
    let _ = shared::update(host, slot_key, |current| {
        let mut slot = current.and_then(Slot::decode)?;
        slot.bucket = slot.bucket.give_back(limit, now_ms);
        Some((slot.encode(), ()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys made from the prefix are the keys the formatting made before: a table written by
    /// one build is read by the next.
    #[test]
    fn slot_keys_match_the_formatted_key() {
        let keys = SlotKeys::new("rate_limit", "edge", "per-ip");
        for index in [0, 7, 9, 10, 99, 100, 4095, 123_456_789, u64::MAX] {
            assert_eq!(
                keys.key(index),
                format!("shieldwall/rate_limit/edge/per-ip/{index}")
            );
            assert_eq!(
                slot_key("rate_limit", "edge", "per-ip", index),
                keys.key(index)
            );
        }
    }
}
