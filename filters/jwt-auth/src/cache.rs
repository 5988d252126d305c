//! The verified-token cache of one worker: token → what verification established. Bounded (FIFO
//! eviction), an entry never outlives the token's `exp`, and entries whose key left the
//! provider's key set are dropped. A token seen before costs a hash, a lookup and a comparison.
//!
//! The map is keyed by a 64-bit SipHash of the token under a per-worker random key, and each entry
//! keeps the token itself: a hit requires the whole token to be equal, so no collision (chosen or
//! accidental) can make one token pass as another. (A SHA-256 key did the same job without the
//! comparison but cost several µs per request inside wasm; an entry now holds the token too.)

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::rc::Rc;

use shieldwall_core::hash::IdMap;
use shieldwall_core::Identity;

pub type TokenHash = u64;

/// What one successful verification established.
#[derive(Debug)]
pub struct Verified {
    pub provider: usize,
    /// The identity the token establishes; its `claims` are the token's, checked again on
    /// every hit. Shared with the identity context it is written to (the one-module chain keeps
    /// the value for its later stages).
    pub identity: Rc<Identity>,
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
    token: Box<str>,
    verified: Rc<Verified>,
    /// Unix seconds after which the entry is gone.
    expires_s: u64,
}

pub struct TokenCache {
    capacity: usize,
    hasher: RandomState,
    /// By the token's keyed hash, not hashed again with SipHash ([`IdMap`]).
    map: IdMap<TokenHash, Entry>,
    order: VecDeque<TokenHash>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
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

    /// The cache key of a token (keyed per worker).
    pub fn key(&self, token: &str) -> TokenHash {
        self.hasher.hash_one(token)
    }

    /// The verification of exactly this token, if cached and not expired.
    pub fn get(&mut self, key: &TokenHash, token: &str, now_s: u64) -> Option<Rc<Verified>> {
        let entry = self.map.get(key)?;
        if !shieldwall_core::hash::same_bytes(entry.token.as_bytes(), token.as_bytes()) {
            return None;
        }
        if entry.expires_s <= now_s {
            self.map.remove(key);
            return None;
        }
        Some(entry.verified.clone())
    }

    /// Stores a verification; a different token under the same key replaces the older one.
    pub fn insert(&mut self, key: TokenHash, token: &str, verified: Rc<Verified>, expires_s: u64) {
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
                    token: token.into(),
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
            identity: Rc::default(),
            identity_json: Vec::new(),
            payload_b64: String::new(),
            kid: kid.map(str::to_string),
            key_version: 1,
        })
    }

    #[test]
    fn bounded_and_expiring() {
        let mut c = TokenCache::new(2);
        c.insert(c.key("a"), "a", verified(0, Some("k")), 100);
        c.insert(c.key("b"), "b", verified(0, Some("k")), 100);
        c.insert(c.key("c"), "c", verified(0, Some("k")), 100);
        assert_eq!(c.len(), 2);
        assert!(
            c.get(&c.key("a"), "a", 50).is_none(),
            "the oldest entry was evicted"
        );
        assert!(c.get(&c.key("c"), "c", 99).is_some());
        assert!(
            c.get(&c.key("c"), "c", 100).is_none(),
            "an entry does not outlive exp"
        );
        for i in 0..10_000 {
            let t = i.to_string();
            c.insert(c.key(&t), &t, verified(0, None), 100);
        }
        assert_eq!(c.len(), 2);
        assert!(c.order.len() <= 4);
    }

    #[test]
    fn a_hit_needs_the_same_token_not_just_the_same_key() {
        let mut c = TokenCache::new(10);
        c.insert(7, "token-a", verified(0, Some("k")), 100);
        assert!(c.get(&7, "token-a", 1).is_some());
        assert!(c.get(&7, "token-b", 1).is_none(), "same key, other token");
        // A colliding token replaces the entry rather than sharing it.
        c.insert(7, "token-b", verified(1, Some("k")), 100);
        assert!(c.get(&7, "token-a", 1).is_none());
        assert_eq!(c.get(&7, "token-b", 1).map(|v| v.provider), Some(1));
        assert_eq!(c.len(), 1);
        assert_ne!(c.key("token-a"), c.key("token-b"));
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        let mut c = TokenCache::new(0);
        c.insert(c.key("a"), "a", verified(0, None), 100);
        assert!(c.is_empty());
    }

    #[test]
    fn entries_leave_with_their_key() {
        let mut c = TokenCache::new(10);
        c.insert(c.key("a"), "a", verified(0, Some("old")), 100);
        c.insert(c.key("b"), "b", verified(0, Some("new")), 100);
        c.insert(c.key("c"), "c", verified(1, Some("old")), 100);
        c.insert(c.key("d"), "d", verified(0, None), 100);
        c.retain_keys(0, &[Some("new".into())]);
        assert!(c.get(&c.key("a"), "a", 1).is_none());
        assert!(c.get(&c.key("b"), "b", 1).is_some());
        assert!(
            c.get(&c.key("c"), "c", 1).is_some(),
            "another provider's entries stay"
        );
        assert!(c.get(&c.key("d"), "d", 1).is_none());
    }
}
