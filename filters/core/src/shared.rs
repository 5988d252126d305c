//! Shared data: namespaced keys, a bounded CAS loop, and a once-per-Envoy lease for background work.
//!
//! Envoy's shared data is one store per vm_id, shared by every worker, with no delete and no
//! expiry. Every read-modify-write goes through [`update`], which retries a bounded number of times.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::host::{Host, HostError};

/// `shieldwall/<filter>/<plugin name>/<key>`: two configs of one filter never collide.
pub fn key(filter: &str, plugin: &str, key: &str) -> String {
    format!("shieldwall/{filter}/{plugin}/{key}")
}

/// How many times a CAS loop retries before it gives up. Contention beyond this means many
/// workers hammer one key at once; giving up (and counting it) beats spinning on the hot path.
pub const CAS_RETRIES: usize = 16;

#[derive(Debug, PartialEq, Eq)]
pub enum UpdateError {
    /// Every attempt lost the race.
    Contended,
    /// The closure declined to write (returned `None`).
    Declined,
    Host(HostError),
}

/// Read-modify-write with CAS. `f` gets the current bytes (or `None`) and returns the new bytes
/// and a result, or `None` to leave the value alone. Returns the result of the attempt that won.
pub fn update<R>(
    host: &mut dyn Host,
    key: &str,
    mut f: impl FnMut(Option<&[u8]>) -> Option<(Vec<u8>, R)>,
) -> Result<R, UpdateError> {
    for _ in 0..CAS_RETRIES {
        let (current, cas) = host.shared_get(key).map_err(UpdateError::Host)?;
        let exists = current.is_some();
        // An empty value is a creation placeholder of earlier versions (a module of one may share
        // the store during a configuration update): it reads as absent.
        let current = current.filter(|b| !b.is_empty());
        let Some((next, result)) = f(current.as_deref()) else {
            return Err(UpdateError::Declined);
        };
        // Envoy accepts any CAS for a key that does not exist yet, so two workers creating it at
        // once could both "win" and one update be lost: `create` closes that.
        if !exists {
            match create(host, key, &next)? {
                true => return Ok(result),
                false => continue,
            }
        }
        match host.shared_set(key, &next, cas) {
            Ok(()) => return Ok(result),
            Err(HostError::CasMismatch) => continue,
            Err(e) => return Err(UpdateError::Host(e)),
        }
    }
    Err(UpdateError::Contended)
}

/// The CAS a creation writes with. Envoy (proxy-wasm-cpp-host) checks a CAS only against an
/// existing key, under the store's lock: on a missing key any CAS writes, on an existing one
/// only its own. An entry's CAS comes from one counter per Envoy that skips 0, so it is this
/// value for one write in 2³²; a creation racing with exactly that write is the only one that
/// could still overwrite.
const CREATE_CAS: u32 = u32::MAX;

/// Creates a key race-free: written with [`CREATE_CAS`], the value lands only if the key is
/// still missing when the host takes its lock. `false` when another worker created it first (the
/// caller re-reads and updates that value by CAS). An earlier version wrote an empty placeholder
/// with CAS 0 after checking that the key was missing; a worker that created the key between
/// the check and that write lost its update, which let two workers admit a few requests more than
/// one rate-limit bucket holds.
fn create(host: &mut dyn Host, key: &str, value: &[u8]) -> Result<bool, UpdateError> {
    match host.shared_set(key, value, CREATE_CAS) {
        Ok(()) => Ok(true),
        Err(HostError::CasMismatch) => Ok(false),
        Err(e) => Err(UpdateError::Host(e)),
    }
}

/// Reads a JSON value; `None` when absent, empty (a placeholder) or not parseable.
pub fn get_json<T: DeserializeOwned>(host: &dyn Host, key: &str) -> Option<(T, u32)> {
    let (bytes, cas) = host.shared_get(key).ok()?;
    let bytes = bytes.filter(|b| !b.is_empty())?;
    serde_json::from_slice(&bytes).ok().map(|v| (v, cas))
}

/// Writes a JSON value unconditionally.
pub fn set_json<T: Serialize>(host: &mut dyn Host, key: &str, value: &T) -> Result<(), HostError> {
    let bytes = serde_json::to_vec(value).map_err(|_| HostError::Failed)?;
    host.shared_set(key, &bytes, 0)
}

/// A lease in shared data: the worker that holds it does the background work (a JWKS refresh,
/// log shipping), the others don't. It expires by itself, so a worker that dies frees it.
/// Value: `<holder id> <expiry ms>`.
pub struct Lease {
    key: String,
    holder: u64,
}

impl Lease {
    /// `holder` must differ between workers; use [`worker_id`].
    pub fn new(key: String, holder: u64) -> Lease {
        Lease { key, holder }
    }

    fn parse(bytes: &[u8]) -> Option<(u64, u64)> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (holder, expiry) = text.split_once(' ')?;
        Some((holder.parse().ok()?, expiry.parse().ok()?))
    }

    /// Takes (or renews) the lease for `ttl_ms` if it is free, expired, or already ours.
    pub fn try_acquire(&self, host: &mut dyn Host, ttl_ms: u64) -> bool {
        let now = host.now_millis();
        let mine = self.holder;
        update(host, &self.key, |current| {
            if let Some((holder, expiry)) = current.and_then(Lease::parse) {
                if holder != mine && expiry > now {
                    return None;
                }
            }
            Some((
                format!("{mine} {}", now.saturating_add(ttl_ms)).into_bytes(),
                (),
            ))
        })
        .is_ok()
    }

    /// Gives the lease up early (the work is done), so another worker need not wait for expiry.
    pub fn release(&self, host: &mut dyn Host) {
        let mine = self.holder;
        let _ = update(host, &self.key, |current| {
            match current.and_then(Lease::parse) {
                Some((holder, _)) if holder == mine => Some((format!("{mine} 0").into_bytes(), ())),
                _ => None,
            }
        });
    }

    pub fn is_held_by_me(&self, host: &dyn Host) -> bool {
        let now = host.now_millis();
        match host.shared_get(&self.key) {
            Ok((Some(bytes), _)) => {
                Lease::parse(&bytes).is_some_and(|(h, e)| h == self.holder && e > now)
            }
            _ => false,
        }
    }
}

/// A random id for this VM (worker), for leases. std's RandomState draws its keys from the
/// host's random source (WASI `random_get`), which differs per VM.
pub fn worker_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// 32 random bytes from the host's random source (WASI `random_get` in a module), for the keys
/// a filter makes at start (token-introspection's cache-key secret, audit-log's chain name and
/// masking key). Should the source fail, the bytes come from std's per-VM hash keys, which the
/// same source seeded and which still differ per worker.
pub fn random_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    if getrandom::getrandom(&mut out).is_err() {
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let v = worker_id() ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            chunk.copy_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;

    #[test]
    fn random_bytes_differ_each_time() {
        let (a, b) = (random_bytes(), random_bytes());
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn keys_are_namespaced() {
        assert_eq!(
            key("jwt_auth", "edge", "jwks/idp"),
            "shieldwall/jwt_auth/edge/jwks/idp"
        );
    }

    #[test]
    fn update_creates_and_increments() {
        let mut host = MockHost::new();
        for i in 1..=5u32 {
            let got = update(&mut host, "k", |cur| {
                let n: u32 = cur
                    .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                    .unwrap_or(0);
                Some(((n + 1).to_string().into_bytes(), n + 1))
            })
            .unwrap();
            assert_eq!(got, i);
        }
        assert_eq!(host.shared_get("k").unwrap().0.unwrap(), b"5");
    }

    #[test]
    fn update_retries_on_cas_mismatch_and_gives_up() {
        let mut host = MockHost::new();
        host.shared_set("k", b"1", 0).unwrap();
        // Every write in between bumps the CAS: the loop must retry, then give up, never overwrite.
        host.interfere_with_cas = Some(usize::MAX);
        let r = update(&mut host, "k", |_| Some((b"2".to_vec(), ())));
        assert_eq!(r, Err(UpdateError::Contended));
        host.interfere_with_cas = Some(3);
        update(&mut host, "k", |_| Some((b"3".to_vec(), ()))).unwrap();
        assert_eq!(host.shared_get("k").unwrap().0.unwrap(), b"3");
    }

    #[test]
    fn a_creation_never_overwrites_another_workers_value() {
        let count = |cur: Option<&[u8]>| {
            let n: u32 = cur
                .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                .unwrap_or(0);
            Some(((n + 1).to_string().into_bytes(), n + 1))
        };
        let mut host = MockHost::new();
        // Another worker creates the key (its count: 1) between this worker's read, which found
        // it missing, and this worker's write.
        host.create_first = Some(b"1".to_vec());
        assert_eq!(update(&mut host, "k", count), Ok(2));
        assert_eq!(host.create_first, None, "the race was staged");
        assert_eq!(host.shared_get("k").unwrap().0.unwrap(), b"2");
        // Without the race the first update creates the key.
        let mut host = MockHost::new();
        assert_eq!(update(&mut host, "k", count), Ok(1));
    }

    #[test]
    fn an_earlier_versions_placeholder_reads_as_missing() {
        let mut host = MockHost::new();
        host.shared_set("k", b"", 0).unwrap();
        let seen = update(&mut host, "k", |cur| Some((b"v".to_vec(), cur.is_none()))).unwrap();
        assert!(seen);
        assert_eq!(host.shared_get("k").unwrap().0.unwrap(), b"v");
    }

    #[test]
    fn declined_update_writes_nothing() {
        let mut host = MockHost::new();
        assert_eq!(
            update(&mut host, "k", |_| None::<(Vec<u8>, ())>),
            Err(UpdateError::Declined)
        );
        assert_eq!(host.shared_get("k").unwrap().0, None);
    }

    #[test]
    fn lease_is_exclusive_until_expiry() {
        let mut host = MockHost::new();
        let a = Lease::new("lease".into(), 1);
        let b = Lease::new("lease".into(), 2);
        assert!(a.try_acquire(&mut host, 1000));
        assert!(a.is_held_by_me(&host));
        assert!(!b.try_acquire(&mut host, 1000));
        assert!(a.try_acquire(&mut host, 1000), "the holder renews");
        host.advance_ms(1001);
        assert!(b.try_acquire(&mut host, 1000), "an expired lease is free");
        assert!(!a.is_held_by_me(&host));
        b.release(&mut host);
        assert!(a.try_acquire(&mut host, 1000), "a released lease is free");
    }

    #[test]
    fn json_values() {
        let mut host = MockHost::new();
        assert!(get_json::<Vec<u32>>(&host, "j").is_none());
        set_json(&mut host, "j", &vec![1u32, 2]).unwrap();
        assert_eq!(get_json::<Vec<u32>>(&host, "j").unwrap().0, vec![1, 2]);
    }

    #[test]
    fn worker_ids_differ() {
        assert_ne!(worker_id(), worker_id());
    }
}
