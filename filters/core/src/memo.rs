//! A per-worker memo of what was established about exact tokens, for the hot path of the
//! authenticating filters: a hit costs a hash, a lookup and a comparison of the whole token, so no
//! collision (chosen or accidental) can make one token pass as another. Bounded (the oldest entry
//! leaves first), and an entry never outlives the expiry it was stored with.
//!
//! The map is keyed by a 64-bit SipHash under a per-worker random key. The tokens live only in
//! this worker's memory: never in shared data, a shared-data key or a log.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;

use crate::hash::IdMap;

struct Entry<V> {
    token: Box<str>,
    value: V,
    /// Unix seconds from which the entry is gone.
    expires_s: u64,
}

pub struct TokenMemo<V> {
    capacity: usize,
    hasher: RandomState,
    /// By the token's keyed hash, not hashed again ([`IdMap`]).
    map: IdMap<u64, Entry<V>>,
    order: VecDeque<u64>,
}

impl<V: Clone> TokenMemo<V> {
    /// A memo of at most `capacity` tokens (0: it remembers nothing).
    pub fn new(capacity: usize) -> TokenMemo<V> {
        TokenMemo {
            capacity,
            hasher: RandomState::new(),
            map: IdMap::default(),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// What was stored for exactly this token, if it has not expired (`now_s < expires`).
    pub fn get(&mut self, token: &str, now_s: u64) -> Option<V> {
        let key = self.hasher.hash_one(token);
        let entry = self.map.get(&key)?;
        if !crate::hash::same_bytes(entry.token.as_bytes(), token.as_bytes()) {
            return None;
        }
        if entry.expires_s <= now_s {
            self.map.remove(&key);
            return None;
        }
        Some(entry.value.clone())
    }

    /// Remembers `value` for `token` until `expires_s`; a token under the same hash replaces it.
    pub fn insert(&mut self, token: &str, value: V, expires_s: u64) {
        if self.capacity == 0 {
            return;
        }
        let key = self.hasher.hash_one(token);
        // `order` may hold hashes already replaced or expired; it is trimmed as it is used.
        while self.map.len() >= self.capacity || self.order.len() >= self.capacity.saturating_mul(2)
        {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        let entry = Entry {
            token: token.into(),
            value,
            expires_s,
        };
        if self.map.insert(key, entry).is_none() {
            self.order.push_back(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_expiring_and_exact() {
        let mut m = TokenMemo::new(2);
        m.insert("a", 1, 100);
        m.insert("b", 2, 100);
        m.insert("c", 3, 100);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("a", 50), None, "the oldest left");
        assert_eq!(m.get("c", 99), Some(3));
        assert_eq!(m.get("c", 100), None, "never past its expiry");
        assert_eq!(m.get("cc", 1), None);
        for i in 0..10_000 {
            m.insert(&i.to_string(), i, 100);
        }
        assert_eq!(m.len(), 2);
        assert!(m.order.len() <= 4);
        let mut off = TokenMemo::new(0);
        off.insert("a", 1, 100);
        assert!(off.is_empty());
    }
}
