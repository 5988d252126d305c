//! The verified-token cache of one worker: SHA-256 of the token → what verification established.
//! Bounded (FIFO eviction), an entry never outlives the token's `exp`, and entries whose key left
//! the provider's key set are dropped. A token seen before costs a hash and a lookup.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use serde_json::{Map, Value};
use shieldwall_core::Identity;

pub type TokenHash = [u8; 32];

pub fn hash(token: &str) -> TokenHash {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// What one successful verification established.
#[derive(Debug)]
pub struct Verified {
    pub provider: usize,
    pub claims: Map<String, Value>,
    pub identity: Identity,
    /// `identity` as the JSON written to the identity context, serialised once.
    pub identity_json: Vec<u8>,
    /// The token's payload segment (base64url), for `forward_payload_header`.
    pub payload_b64: String,
    /// The `kid` of the key that verified it (`None`: a key without `kid`).
    pub kid: Option<String>,
    /// The version of the provider's key set that verified it.
    pub key_version: u64,
}

struct Entry {
    verified: Rc<Verified>,
    /// Unix seconds after which the entry is gone.
    expires_s: u64,
}

pub struct TokenCache {
    capacity: usize,
    map: HashMap<TokenHash, Entry>,
    order: VecDeque<TokenHash>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&mut self, key: &TokenHash, now_s: u64) -> Option<Rc<Verified>> {
        let entry = self.map.get(key)?;
        if entry.expires_s <= now_s {
            self.map.remove(key);
            return None;
        }
        Some(entry.verified.clone())
    }

    pub fn insert(&mut self, key: TokenHash, verified: Rc<Verified>, expires_s: u64) {
        if self.capacity == 0 {
            return;
        }
        // `order` may hold hashes already evicted or expired; it is trimmed as it is used.
        while self.map.len() >= self.capacity || self.order.len() >= self.capacity.saturating_mul(2)
        {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        if self
            .map
            .insert(
                key,
                Entry {
                    verified,
                    expires_s,
                },
            )
            .is_none()
        {
            self.order.push_back(key);
        }
    }

    /// Drops every entry of `provider` whose key is not in `kids_still_there` (a key without
    /// `kid` cannot be recognised across versions: its entries are dropped on any change).
    pub fn retain_keys(&mut self, provider: usize, kids_still_there: &[Option<String>]) {
        self.map.retain(|_, e| {
            e.verified.provider != provider
                || (e.verified.kid.is_some() && kids_still_there.contains(&e.verified.kid))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(provider: usize, kid: Option<&str>) -> Rc<Verified> {
        Rc::new(Verified {
            provider,
            claims: Map::new(),
            identity: Identity::default(),
            identity_json: Vec::new(),
            payload_b64: String::new(),
            kid: kid.map(str::to_string),
            key_version: 1,
        })
    }

    #[test]
    fn bounded_and_expiring() {
        let mut c = TokenCache::new(2);
        c.insert(hash("a"), verified(0, Some("k")), 100);
        c.insert(hash("b"), verified(0, Some("k")), 100);
        c.insert(hash("c"), verified(0, Some("k")), 100);
        assert_eq!(c.len(), 2);
        assert!(
            c.get(&hash("a"), 50).is_none(),
            "the oldest entry was evicted"
        );
        assert!(c.get(&hash("c"), 99).is_some());
        assert!(
            c.get(&hash("c"), 100).is_none(),
            "an entry does not outlive exp"
        );
        for i in 0..10_000 {
            c.insert(hash(&i.to_string()), verified(0, None), 100);
        }
        assert_eq!(c.len(), 2);
        assert!(c.order.len() <= 4);
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        let mut c = TokenCache::new(0);
        c.insert(hash("a"), verified(0, None), 100);
        assert!(c.is_empty());
    }

    #[test]
    fn entries_leave_with_their_key() {
        let mut c = TokenCache::new(10);
        c.insert(hash("a"), verified(0, Some("old")), 100);
        c.insert(hash("b"), verified(0, Some("new")), 100);
        c.insert(hash("c"), verified(1, Some("old")), 100);
        c.insert(hash("d"), verified(0, None), 100);
        c.retain_keys(0, &[Some("new".into())]);
        assert!(c.get(&hash("a"), 1).is_none());
        assert!(c.get(&hash("b"), 1).is_some());
        assert!(
            c.get(&hash("c"), 1).is_some(),
            "another provider's entries stay"
        );
        assert!(c.get(&hash("d"), 1).is_none());
    }
}
