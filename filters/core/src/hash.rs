//! A cheap hasher for the maps whose keys no client chooses: ids the proxy hands out (contexts,
//! callout tokens), names fixed by the filters' code (metric events), and values that are already
//! keyed hashes (a token's SipHash under a per-worker random key, a rate-limit key's fingerprint
//! under the plugin's random seed).
//!
//! std's default hasher, SipHash-1-3 under a random key, keeps a map fast when its keys are
//! chosen to collide; these keys cannot be, and the maps are looked up several times per request
//! (the adapter finds the stream's state for every callback). Here a key costs one multiply per
//! 8 bytes. A map keyed by request data itself (a header value, a client address, a token's
//! text) keeps the default.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply and rotate over 64-bit words (the scheme of the Rust compiler's own hasher; the
/// constant is 2^64 divided by the golden ratio, made odd). Not keyed: use it only for keys no
/// client chooses (see the module's documentation).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.add(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            for (to, from) in w.iter_mut().zip(rest) {
                *to = *from;
            }
            // The length too, so "a" and "a\0" differ.
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type IdBuildHasher = BuildHasherDefault<IdHasher>;
/// A map whose keys no client chooses (see the module's documentation).
pub type IdMap<K, V> = HashMap<K, V, IdBuildHasher>;
/// A set whose members no client chooses.
pub type IdSet<K> = HashSet<K, IdBuildHasher>;

/// Whether two byte strings are equal, compared eight bytes at a time. The wasm target's `==` on
/// slices is `memcmp`, which compiler-builtins implements a byte at a time: comparing a cached
/// token (several hundred bytes) with the request's was a sixth of jwt-auth's instructions on a
/// cache hit.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let ((wa, ra), (wb, rb)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    wa.iter()
        .zip(wb)
        .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && ra.iter().zip(rb).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
        IdBuildHasher::default().hash_one(value)
    }

    #[test]
    fn same_bytes_is_equality() {
        let text: Vec<u8> = (0..=255u8).cycle().take(601).collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 599, 600] {
            let a = &text[..len];
            assert!(same_bytes(a, a));
            let copy = Vec::from(a);
            assert!(same_bytes(a, &copy));
            assert!(!same_bytes(a, &text[..len + 1]));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "len {len}, byte {at}");
            }
        }
    }

    #[test]
    fn equal_keys_hash_equal_and_small_changes_differ() {
        assert_eq!(hash(&7u32), hash(&7u32));
        assert_eq!(hash("allowed"), hash(&"allowed".to_string()));
        assert_ne!(hash(&7u32), hash(&8u32));
        assert_ne!(hash("a"), hash("a\0"));
        assert_ne!(hash("denied.expired"), hash("denied.expires"));
        assert_ne!(hash(&(1usize, 5u64)), hash(&(5usize, 1u64)));
    }

    #[test]
    fn sequential_context_ids_spread_over_the_buckets() {
        // The proxy numbers contexts 1, 2, 3, …: both the low bits (the bucket) and the top 7
        // bits (hashbrown's tag) must vary among neighbours.
        let low: IdSet<u64> = (1u32..=1024).map(|id| hash(&id) & 1023).collect();
        assert!(low.len() > 1000, "{} distinct buckets of 1024", low.len());
        let tags: IdSet<u64> = (1u32..=1024).map(|id| hash(&id) >> 57).collect();
        assert_eq!(tags.len(), 128);
    }

    #[test]
    fn a_map_keyed_by_ids_and_names_works_as_a_map() {
        let mut streams: IdMap<u32, &str> = IdMap::default();
        for id in 1..=10_000u32 {
            streams.insert(id, "s");
        }
        for id in (1..=10_000u32).step_by(2) {
            streams.remove(&id);
        }
        assert_eq!(streams.len(), 5000);
        assert!(streams.contains_key(&10_000) && !streams.contains_key(&9_999));
        let mut names: IdMap<String, u32> = IdMap::default();
        names.insert("rule.api.admitted".into(), 1);
        assert_eq!(names.get("rule.api.admitted"), Some(&1));
    }
}
