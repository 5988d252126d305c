//! Single flight across workers: one introspection per token at a time, whatever worker the
//! requests land on.
//!
//! A bounded table of shared-data slots (`flight/<i>`, the slot picked by the token's key) holds
//! markers `<key hex> <flight id> <state> <until ms>` and, after a newline, a payload. A worker
//! that needs an answer claims the slot by CAS with a pending marker (state `P`, until the
//! callout's timeout plus a margin) and calls the IdP; requests for the same token on any worker
//! find the marker and wait. When the answer comes, the owner replaces the marker with the
//! outcome (`A` with the answer's JSON, `I` inactive, `E` with an error code) for a few seconds,
//! so waiters get the very answer even when it is not cached (`max_ttl_s: 0`, errors). Waiters
//! look again on their worker's tick or when the owner is on their worker and wakes them.
//!
//! A slot held by another token's live pending marker is not waited on: that request calls the
//! IdP without a marker (a collision costs one more introspection, never a wrong answer).

use shieldwall_core::{shared, Host};

use crate::cache::{TokenKey, FILTER};

/// How long an outcome stays readable for waiters on other workers.
pub const OUTCOME_MS: u64 = 5_000;
/// Margin after the callout timeout before a pending marker is considered abandoned.
pub const MARGIN_MS: u64 = 500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Active(String),
    Inactive,
    Error(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub id: String,
    pub flight: u64,
    pub state: State,
    pub until_ms: u64,
}

impl Marker {
    pub fn parse(bytes: &[u8]) -> Option<Marker> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (head, payload) = text.split_once('\n').unwrap_or((text, ""));
        let mut parts = head.split(' ');
        let id = parts.next()?.to_string();
        let flight = parts.next()?.parse().ok()?;
        let state = match parts.next()? {
            "P" => State::Pending,
            "A" => State::Active(payload.to_string()),
            "I" => State::Inactive,
            "E" => State::Error(payload.to_string()),
            _ => return None,
        };
        let until_ms = parts.next()?.parse().ok()?;
        Some(Marker {
            id,
            flight,
            state,
            until_ms,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let (code, payload) = match &self.state {
            State::Pending => ("P", ""),
            State::Active(p) => ("A", p.as_str()),
            State::Inactive => ("I", ""),
            State::Error(p) => ("E", p.as_str()),
        };
        format!(
            "{} {} {} {}\n{}",
            self.id, self.flight, code, self.until_ms, payload
        )
        .into_bytes()
    }

    pub fn is_live_pending(&self, now_ms: u64) -> bool {
        self.state == State::Pending && now_ms < self.until_ms
    }
}

/// What claiming a token's slot gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This request introspects; its marker is in the slot.
    Owner,
    /// Another request introspects this token: wait for flight `.0` until `.1` (ms).
    Wait(u64, u64),
    /// The slot is busy with another token: introspect without a marker.
    Alone,
}

pub fn slot_key(plugin: &str, provider: &str, key: &TokenKey, slots: u64) -> String {
    shared::key(
        FILTER,
        plugin,
        &format!(
            "{provider}/flight/{}",
            key.index.rotate_left(32) % slots.max(1)
        ),
    )
}

pub fn read(host: &dyn Host, slot: &str) -> Option<Marker> {
    match host.shared_get(slot) {
        Ok((Some(bytes), _)) => Marker::parse(&bytes),
        _ => None,
    }
}

/// Claims the slot for flight `flight` until `until_ms`, unless the token is already in flight.
pub fn claim(host: &mut dyn Host, slot: &str, key: &TokenKey, flight: u64, until_ms: u64) -> Claim {
    let now = (host as &dyn Host).now_millis();
    let mut seen = Claim::Alone;
    let won = shared::update(host, slot, |current| {
        if let Some(m) = current.and_then(Marker::parse) {
            if m.is_live_pending(now) {
                seen = if m.id == key.id {
                    Claim::Wait(m.flight, m.until_ms)
                } else {
                    Claim::Alone
                };
                return None;
            }
        }
        let marker = Marker {
            id: key.id.clone(),
            flight,
            state: State::Pending,
            until_ms,
        };
        Some((marker.encode(), ()))
    });
    match won {
        Ok(()) => Claim::Owner,
        Err(shared::UpdateError::Declined) => seen,
        // Contended or failed: no single flight this time, but an answer all the same.
        Err(_) => Claim::Alone,
    }
}

/// Publishes the outcome of flight `flight`, if its marker is still in the slot.
pub fn finish(host: &mut dyn Host, slot: &str, key: &TokenKey, flight: u64, state: State) {
    let now = (host as &dyn Host).now_millis();
    let _ = shared::update(host, slot, |current| {
        let m = current.and_then(Marker::parse)?;
        if m.id != key.id || m.flight != flight {
            return None;
        }
        let done = Marker {
            id: key.id.clone(),
            flight,
            state: state.clone(),
            until_ms: now.saturating_add(OUTCOME_MS),
        };
        Some((done.encode(), ()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use shieldwall_core::testing::MockHost;

    fn key(id: &str) -> TokenKey {
        TokenKey {
            id: id.into(),
            index: 7,
        }
    }

    #[test]
    fn markers_round_trip() {
        for state in [
            State::Pending,
            State::Active("{\"active\":true}".into()),
            State::Inactive,
            State::Error("timeout".into()),
        ] {
            let m = Marker {
                id: "ab".into(),
                flight: 42,
                state,
                until_ms: 9,
            };
            assert_eq!(Marker::parse(&m.encode()), Some(m));
        }
        assert_eq!(Marker::parse(b"ab 1 X 2\n"), None);
        assert_eq!(Marker::parse(b"ab x P 2"), None);
        assert_eq!(Marker::parse(b""), None);
    }

    #[test]
    fn one_owner_others_wait_until_the_outcome() {
        let mut host = MockHost::new();
        let now = (&host as &dyn Host).now_millis();
        let slot = slot_key("test", "idp", &key("aa"), 64);
        assert_eq!(
            claim(&mut host, &slot, &key("aa"), 1, now + 1000),
            Claim::Owner
        );
        assert_eq!(
            claim(&mut host, &slot, &key("aa"), 2, now + 1000),
            Claim::Wait(1, now + 1000)
        );
        assert_eq!(
            claim(&mut host, &slot, &key("bb"), 3, now + 1000),
            Claim::Alone,
            "another token in the same slot goes alone"
        );
        finish(&mut host, &slot, &key("aa"), 1, State::Inactive);
        let m = read(&host, &slot).unwrap();
        assert_eq!((m.flight, m.state), (1, State::Inactive));
        // A finished flight frees the slot for the next claim.
        assert_eq!(
            claim(&mut host, &slot, &key("bb"), 4, now + 1000),
            Claim::Owner
        );
        // A late outcome of an overwritten flight is dropped.
        finish(&mut host, &slot, &key("aa"), 1, State::Error("late".into()));
        assert_eq!(read(&host, &slot).unwrap().flight, 4);
        // An abandoned pending marker expires.
        host.advance_ms(1001);
        assert_eq!(
            claim(&mut host, &slot, &key("aa"), 5, now + 3000),
            Claim::Owner
        );
    }
}
