//! The answer cache in shared data, shared by every worker of an Envoy.
//!
//! A token is never stored or used as a key. Its cache key is HMAC-SHA256 under a random
//! secret created once per Envoy (in shared data), over the endpoint (cluster, URI, client, hint)
//! and the token: nobody outside can compute or reverse it. 128 bits of it identify the entry.
//!
//! Memory is bounded: a table is a fixed set of shared-data keys (`buckets`), each holding at most
//! `ways` entries; a new entry takes the place of an expired one, else of the oldest of its bucket.
//! Active and inactive answers live in separate tables, the inactive one smaller, so a flood of
//! random tokens (all inactive) can only evict other inactive answers.
//!
//! A bucket's value is one line per entry: `<key hex> <expires s> <stored ms> <payload>`, where
//! the payload is the answer's JSON (one line: serde_json escapes newlines) or `-`.

use shieldwall_core::{shared, Host};
use shieldwall_jose::HmacSha256;

use crate::config::TableSize;

pub const FILTER: &str = "token_introspection";

/// A token's cache key for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenKey {
    /// 128 bits of the HMAC, hex.
    pub id: String,
    /// Another 64 bits of it, to pick a bucket or slot.
    pub index: u64,
}

/// The HMAC key of token keys: 32 random bytes, created once per Envoy, read by every worker.
pub struct Keyer {
    key: HmacSha256,
}

impl Keyer {
    pub fn load(host: &mut dyn Host, plugin: &str, fresh: [u8; 32]) -> Keyer {
        let key = shared::key(FILTER, plugin, "secret");
        let _ = shared::update(host, &key, |current| match current {
            Some(b) if b.len() == 32 => None,
            _ => Some((fresh.to_vec(), ())),
        });
        let secret = match host.shared_get(&key) {
            Ok((Some(bytes), _)) if bytes.len() == 32 => bytes,
            _ => fresh.to_vec(),
        };
        Keyer {
            key: HmacSha256::new(&secret),
        }
    }

    pub fn token_key(&self, endpoint: &str, token: &str) -> TokenKey {
        let tag = self.key.sign(&[
            &(endpoint.len() as u64).to_le_bytes(),
            endpoint.as_bytes(),
            token.as_bytes(),
        ]);
        let bytes = tag.as_slice();
        let mut id = String::with_capacity(32);
        for b in bytes.iter().take(16) {
            id.push_str(&format!("{b:02x}"));
        }
        let mut index = [0u8; 8];
        for (dst, src) in index.iter_mut().zip(bytes.iter().skip(16)) {
            *dst = *src;
        }
        TokenKey {
            id,
            index: u64::from_le_bytes(index),
        }
    }
}

/// One table (active or inactive answers of one provider).
pub struct Table {
    prefix: String,
    size: TableSize,
}

/// One entry of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry<'a> {
    id: &'a str,
    expires_s: u64,
    stored_ms: u64,
    payload: &'a str,
}

fn parse_line(line: &str) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, ' ');
    let id = parts.next()?;
    let expires_s = parts.next()?.parse().ok()?;
    let stored_ms = parts.next()?.parse().ok()?;
    let payload = parts.next()?;
    Some(Entry {
        id,
        expires_s,
        stored_ms,
        payload,
    })
}

impl Table {
    pub fn new(plugin: &str, provider: &str, kind: &str, size: TableSize) -> Table {
        Table {
            prefix: shared::key(FILTER, plugin, &format!("{provider}/{kind}")),
            size,
        }
    }

    pub fn size(&self) -> TableSize {
        self.size
    }

    fn bucket_key(&self, key: &TokenKey) -> String {
        format!("{}/{}", self.prefix, key.index % self.size.buckets.max(1))
    }

    /// The payload stored for `key` and its expiry, if not expired (`now_s < expires`).
    pub fn get(&self, host: &dyn Host, key: &TokenKey, now_s: u64) -> Option<(String, u64)> {
        let (bytes, _) = host.shared_get(&self.bucket_key(key)).ok()?;
        let bytes = bytes?;
        let text = std::str::from_utf8(&bytes).ok()?;
        text.lines()
            .filter_map(parse_line)
            .find(|e| e.id == key.id && now_s < e.expires_s)
            .map(|e| (e.payload.to_string(), e.expires_s))
    }

    /// Stores `payload` for `key` until `expires_s`. Replaces the key's old entry, else an
    /// expired one, else the oldest of the bucket. Returns whether an entry was evicted.
    pub fn put(
        &self,
        host: &mut dyn Host,
        key: &TokenKey,
        expires_s: u64,
        payload: &str,
    ) -> Result<bool, shared::UpdateError> {
        if payload.contains('\n') {
            return Err(shared::UpdateError::Declined);
        }
        let now_ms = (host as &dyn Host).now_millis();
        let now_s = now_ms / 1000;
        let ways = usize::try_from(self.size.ways).unwrap_or(1).max(1);
        let bucket = self.bucket_key(key);
        shared::update(host, &bucket, |current| {
            let text = current
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("");
            let mut entries: Vec<Entry<'_>> = text
                .lines()
                .filter_map(parse_line)
                .filter(|e| e.id != key.id && e.expires_s > now_s)
                .collect();
            let mut evicted = false;
            while entries.len() >= ways {
                let oldest = entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.stored_ms)
                    .map(|(i, _)| i)?;
                entries.remove(oldest);
                evicted = true;
            }
            entries.push(Entry {
                id: &key.id,
                expires_s,
                stored_ms: now_ms,
                payload,
            });
            let mut out = String::new();
            for e in &entries {
                out.push_str(&format!(
                    "{} {} {} {}\n",
                    e.id, e.expires_s, e.stored_ms, e.payload
                ));
            }
            Some((out.into_bytes(), evicted))
        })
    }

    /// How many live entries the table holds (reads every bucket: for tests and diagnostics).
    pub fn count(&self, host: &dyn Host, now_s: u64) -> u64 {
        (0..self.size.buckets)
            .map(|i| match host.shared_get(&format!("{}/{i}", self.prefix)) {
                Ok((Some(b), _)) => std::str::from_utf8(&b)
                    .map(|t| {
                        t.lines()
                            .filter_map(parse_line)
                            .filter(|e| e.expires_s > now_s)
                            .count() as u64
                    })
                    .unwrap_or(0),
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shieldwall_core::testing::MockHost;

    fn keyer(host: &mut MockHost) -> Keyer {
        Keyer::load(host, "test", shared::random_bytes())
    }

    #[test]
    fn keys_are_secret_and_depend_on_endpoint_and_token() {
        let mut host = MockHost::new();
        let a = keyer(&mut host);
        let b = keyer(&mut host);
        let k = a.token_key("idp\n/introspect", "tok");
        assert_eq!(
            k,
            b.token_key("idp\n/introspect", "tok"),
            "one secret per Envoy"
        );
        assert_ne!(k, a.token_key("idp\n/introspect", "tok2"));
        assert_ne!(k, a.token_key("idp\n/other", "tok"));
        assert_eq!(k.id.len(), 32);
        assert!(!k.id.contains("746f6b"), "not the token's bytes");
        let mut other_envoy = MockHost::new();
        let c = keyer(&mut other_envoy);
        assert_ne!(k, c.token_key("idp\n/introspect", "tok"), "another secret");
    }

    #[test]
    fn entries_expire_and_buckets_evict_the_oldest() {
        let mut host = MockHost::new();
        let keyer = keyer(&mut host);
        let table = Table::new(
            "test",
            "idp",
            "active",
            TableSize {
                buckets: 1,
                ways: 2,
            },
        );
        let now = (&host as &dyn Host).now_secs();
        let k1 = keyer.token_key("e", "1");
        let k2 = keyer.token_key("e", "2");
        let k3 = keyer.token_key("e", "3");
        assert_eq!(table.put(&mut host, &k1, now + 10, "{\"a\":1}"), Ok(false));
        host.advance_ms(1);
        assert_eq!(table.put(&mut host, &k2, now + 10, "two"), Ok(false));
        assert_eq!(
            table.get(&host, &k1, now),
            Some(("{\"a\":1}".to_string(), now + 10))
        );
        host.advance_ms(1);
        assert_eq!(table.put(&mut host, &k3, now + 10, "three"), Ok(true));
        assert_eq!(table.get(&host, &k1, now), None, "the oldest left");
        assert_eq!(
            table.get(&host, &k2, now).map(|e| e.0).as_deref(),
            Some("two")
        );
        assert_eq!(table.count(&host, now), 2);
        assert_eq!(table.get(&host, &k2, now + 10), None, "expired");
        assert_eq!(table.count(&host, now + 10), 0);
        // Replacing an entry does not duplicate it.
        assert_eq!(table.put(&mut host, &k3, now + 20, "new"), Ok(false));
        assert_eq!(
            table.get(&host, &k3, now).map(|e| e.0).as_deref(),
            Some("new")
        );
        assert_eq!(table.count(&host, now), 2);
        assert!(table.put(&mut host, &k1, now + 1, "a\nb").is_err());
    }
}
