//! The per-worker view of each provider's key set, and the JWKS life cycle in shared data.
//!
//! Shared data holds, per remote provider, `…/jwks/<provider>/keys` (the usable keys as JWKS
//! JSON) and `…/jwks/<provider>/meta` (version, fetch times, the in-flight marker). The meta
//! record doubles as the single-flight lease and the refetch rate limit: a worker may fetch only
//! after winning a CAS update of it, so one fetch serves every worker and a flood of unknown
//! `kid`s costs the IdP at most one fetch per `refetch_min_interval_s`.

use std::rc::Rc;

use serde::Serialize;
use shieldwall_core::{shared, CalloutResponse, Host};

use crate::config::{remote_jwks_options, KeySource, Provider, RemoteJwks};
use shieldwall_jose::{parse_jwks, Jwks};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// Bumped on every successful fetch; 0 = no key set yet.
    pub version: u64,
    pub fetched_ms: u64,
    /// When the last fetch started (success or not).
    pub attempt_ms: u64,
    /// A fetch is in flight until then (its timeout plus a margin).
    pub fetching_until_ms: u64,
    pub failures: u32,
    pub error: Option<String>,
}

impl Meta {
    /// The record as written (JSON, every member optional); `None` when it is not one. Read by
    /// hand: serde's derived reader would be the last one in the module.
    pub fn parse(bytes: &[u8]) -> Option<Meta> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let m = value.as_object()?;
        let number = |key: &str| match m.get(key) {
            None => Some(0),
            Some(v) => v.as_u64(),
        };
        Some(Meta {
            version: number("version")?,
            fetched_ms: number("fetched_ms")?,
            attempt_ms: number("attempt_ms")?,
            fetching_until_ms: number("fetching_until_ms")?,
            failures: u32::try_from(number("failures")?).ok()?,
            error: match m.get("error") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(v.as_str()?.to_string()),
            },
        })
    }
}

/// Why a fetch is wanted; each has its own rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchReason {
    /// No key set anywhere yet (start, or every fetch so far failed).
    Missing,
    /// The key set is close to `cache_duration_s` old.
    Refresh,
    /// A token names a `kid` the key set lacks: perhaps the IdP rotated its keys.
    UnknownKid,
}

impl FetchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchReason::Missing => "initial",
            FetchReason::Refresh => "refresh",
            FetchReason::UnknownKid => "unknown_kid",
        }
    }
}

pub fn meta_key(plugin: &str, provider: &str) -> String {
    shared::key("jwt_auth", plugin, &format!("jwks/{provider}/meta"))
}

pub fn keys_key(plugin: &str, provider: &str) -> String {
    shared::key("jwt_auth", plugin, &format!("jwks/{provider}/keys"))
}

/// How long after a failed first fetch the next may start: 1 s, 2 s, 4 s … up to the provider's
/// `refetch_min_interval_s`.
fn retry_after_failure_ms(remote: &RemoteJwks, failures: u32) -> u64 {
    (1000u64 << failures.min(6)).min(remote.refetch_min_interval_ms)
}

/// Refresh this long before `cache_duration_s` runs out, so no request ever sees an expired set.
fn refresh_lead_ms(remote: &RemoteJwks) -> u64 {
    (remote.cache_duration_ms / 10).min(60_000)
}

/// Decides, on the meta record alone, whether a fetch for `reason` may start now.
pub fn may_fetch(meta: &Meta, remote: &RemoteJwks, reason: FetchReason, now_ms: u64) -> bool {
    if meta.fetching_until_ms > now_ms {
        return false;
    }
    let since_attempt = now_ms.saturating_sub(meta.attempt_ms);
    match reason {
        FetchReason::Missing => {
            meta.version == 0
                && (meta.attempt_ms == 0
                    || since_attempt >= retry_after_failure_ms(remote, meta.failures))
        }
        FetchReason::Refresh => {
            let due = meta
                .fetched_ms
                .saturating_add(remote.cache_duration_ms)
                .saturating_sub(refresh_lead_ms(remote));
            meta.version > 0 && now_ms >= due && since_attempt >= remote.refetch_min_interval_ms
        }
        FetchReason::UnknownKid => since_attempt >= remote.refetch_min_interval_ms,
    }
}

/// The outcome of a fetch, for logs and metrics.
pub enum FetchResult {
    Updated {
        keys: usize,
        skipped: Vec<(Option<String>, &'static str)>,
    },
    Failed(&'static str),
}

/// Starts a fetch if the shared meta record allows it; returns the callout token.
pub fn start_fetch(
    host: &mut dyn Host,
    plugin: &str,
    provider: &Provider,
    reason: FetchReason,
) -> Option<u32> {
    let KeySource::Remote(remote) = &provider.keys else {
        return None;
    };
    let now = host.now_millis();
    let key = meta_key(plugin, &provider.name);
    let won = shared::update(host, &key, |current| {
        let mut meta: Meta = current.and_then(Meta::parse).unwrap_or_default();
        if !may_fetch(&meta, remote, reason, now) {
            return None;
        }
        meta.attempt_ms = now;
        meta.fetching_until_ms = now.saturating_add(remote.timeout_ms).saturating_add(1000);
        Some((serde_json::to_vec(&meta).ok()?, ()))
    });
    if won.is_err() {
        return None;
    }
    let headers = [
        (":method", "GET"),
        (":path", remote.path.as_str()),
        (":authority", remote.authority.as_str()),
        ("accept", "application/json"),
    ];
    match host.http_call(
        &remote.cluster,
        &headers,
        None,
        std::time::Duration::from_millis(remote.timeout_ms),
    ) {
        Ok(token) => Some(token),
        Err(e) => {
            let msg = format!(
                "provider {}: cannot call cluster {}: {e:?}",
                provider.name, remote.cluster
            );
            (host as &dyn Host).error(&msg);
            record_failure(host, &key, "dispatch_failed");
            None
        }
    }
}

fn record_failure(host: &mut dyn Host, meta_key: &str, code: &'static str) {
    let _ = shared::update(host, meta_key, |current| {
        let mut meta: Meta = current.and_then(Meta::parse).unwrap_or_default();
        meta.fetching_until_ms = 0;
        meta.failures = meta.failures.saturating_add(1);
        meta.error = Some(code.to_string());
        Some((serde_json::to_vec(&meta).ok()?, ()))
    });
}

/// Completes a fetch: a good key set is stored for every worker and returned; anything else
/// keeps the last good set (stale-if-error) and is recorded.
pub fn complete_fetch(
    host: &mut dyn Host,
    plugin: &str,
    provider: &Provider,
    response: &CalloutResponse,
) -> (FetchResult, Option<(Rc<Jwks>, u64)>) {
    let KeySource::Remote(remote) = &provider.keys else {
        return (FetchResult::Failed("not_remote"), None);
    };
    let meta_k = meta_key(plugin, &provider.name);
    let parsed = match response.status {
        None => Err("unreachable"),
        Some(200) if response.body.len() > remote.max_bytes => Err("too_large"),
        Some(200) => {
            parse_jwks(&response.body, remote_jwks_options(remote.max_bytes)).map_err(|e| e.code())
        }
        Some(_) => Err("http_status"),
    };
    let jwks = match parsed {
        Ok(jwks) => jwks,
        Err(code) => {
            record_failure(host, &meta_k, code);
            return (FetchResult::Failed(code), None);
        }
    };
    if host
        .shared_set(
            &keys_key(plugin, &provider.name),
            jwks.to_json().as_bytes(),
            0,
        )
        .is_err()
    {
        record_failure(host, &meta_k, "shared_data");
        return (FetchResult::Failed("shared_data"), None);
    }
    let now = host.now_millis();
    let version = shared::update(host, &meta_k, |current| {
        let mut meta: Meta = current.and_then(Meta::parse).unwrap_or_default();
        meta.version = meta.version.saturating_add(1);
        meta.fetched_ms = now;
        meta.fetching_until_ms = 0;
        meta.failures = 0;
        meta.error = None;
        let v = meta.version;
        Some((serde_json::to_vec(&meta).ok()?, v))
    });
    let skipped = jwks
        .skipped
        .iter()
        .map(|s| (s.kid.clone(), s.reason))
        .collect();
    let result = FetchResult::Updated {
        keys: jwks.keys.len(),
        skipped,
    };
    match version {
        Ok(v) => (result, Some((Rc::new(jwks), v))),
        Err(_) => (FetchResult::Failed("shared_data"), None),
    }
}

/// Reads the meta record.
pub fn read_meta(host: &dyn Host, plugin: &str, provider: &str) -> Meta {
    host.shared_get(&meta_key(plugin, provider))
        .ok()
        .and_then(|(bytes, _)| bytes)
        .and_then(|b| Meta::parse(&b))
        .unwrap_or_default()
}

/// Loads the key set another worker stored, if its version differs from `have`.
pub fn load_shared(
    host: &dyn Host,
    plugin: &str,
    provider: &Provider,
    have: u64,
) -> Option<(Rc<Jwks>, u64)> {
    let KeySource::Remote(remote) = &provider.keys else {
        return None;
    };
    let meta = read_meta(host, plugin, &provider.name);
    if meta.version == 0 || meta.version == have {
        return None;
    }
    let (bytes, _) = host.shared_get(&keys_key(plugin, &provider.name)).ok()?;
    let jwks = parse_jwks(&bytes?, remote_jwks_options(remote.max_bytes.max(1 << 20))).ok()?;
    Some((Rc::new(jwks), meta.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> RemoteJwks {
        RemoteJwks {
            cluster: "idp".into(),
            authority: "idp".into(),
            path: "/jwks".into(),
            timeout_ms: 2000,
            cache_duration_ms: 600_000,
            refetch_min_interval_ms: 10_000,
            max_bytes: 65536,
        }
    }

    #[test]
    fn meta_records_read_back_what_was_written() {
        let full = Meta {
            version: 7,
            fetched_ms: 1_700_000_000_000,
            attempt_ms: 1_700_000_000_500,
            fetching_until_ms: 1_700_000_002_500,
            failures: 3,
            error: Some("status 503".into()),
        };
        for m in [Meta::default(), full.clone()] {
            assert_eq!(Meta::parse(&serde_json::to_vec(&m).unwrap()), Some(m));
        }
        // Members may be missing (older records) or null (no error).
        assert_eq!(Meta::parse(br#"{"version": 2}"#).unwrap().version, 2);
        assert_eq!(Meta::parse(br#"{"error": null}"#), Some(Meta::default()));
        // Anything else is not a record.
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            br#"{"version": -1}"#,
            br#"{"version": "2"}"#,
            br#"{"failures": 5000000000}"#,
            br#"{"error": 5}"#,
        ] {
            assert_eq!(Meta::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn fetch_rate_limits() {
        let r = remote();
        let fresh = Meta::default();
        assert!(may_fetch(&fresh, &r, FetchReason::Missing, 1_000_000));
        let in_flight = Meta {
            fetching_until_ms: 1_000_500,
            attempt_ms: 999_000,
            ..Default::default()
        };
        for reason in [
            FetchReason::Missing,
            FetchReason::Refresh,
            FetchReason::UnknownKid,
        ] {
            assert!(
                !may_fetch(&in_flight, &r, reason, 1_000_000),
                "{reason:?} while in flight"
            );
        }
        let failed_once = Meta {
            attempt_ms: 1_000_000,
            failures: 1,
            ..Default::default()
        };
        assert!(!may_fetch(
            &failed_once,
            &r,
            FetchReason::Missing,
            1_001_999
        ));
        assert!(may_fetch(&failed_once, &r, FetchReason::Missing, 1_002_000));
        let failed_often = Meta {
            attempt_ms: 1_000_000,
            failures: 30,
            ..Default::default()
        };
        assert!(!may_fetch(
            &failed_often,
            &r,
            FetchReason::Missing,
            1_009_999
        ));
        assert!(may_fetch(
            &failed_often,
            &r,
            FetchReason::Missing,
            1_010_000
        ));

        let have = Meta {
            version: 1,
            fetched_ms: 1_000_000,
            attempt_ms: 1_000_000,
            ..Default::default()
        };
        assert!(
            !may_fetch(&have, &r, FetchReason::Missing, 1_000_001),
            "a key set exists"
        );
        assert!(!may_fetch(&have, &r, FetchReason::UnknownKid, 1_009_999));
        assert!(may_fetch(&have, &r, FetchReason::UnknownKid, 1_010_000));
        assert!(!may_fetch(
            &have,
            &r,
            FetchReason::Refresh,
            1_000_000 + 539_999
        ));
        assert!(
            may_fetch(&have, &r, FetchReason::Refresh, 1_000_000 + 540_000),
            "refresh 60 s before expiry"
        );
    }
}
