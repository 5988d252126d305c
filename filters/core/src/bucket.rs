//! The token bucket: integer arithmetic only, every operation saturating, so no input (a clock
//! that jumps back, a gap of years, a limit at its maximum) can overflow or trap.
//!
//! Tokens are counted in units of `1 / UNITS_PER_TOKEN` token. `UNITS_PER_TOKEN` is the length of
//! a day in milliseconds, a multiple of every period's length in milliseconds, so the refill of
//! `requests` tokens per period is a whole number of units per millisecond and no fraction is ever
//! rounded away: a bucket refills exactly, however often it is updated.

/// Units per token: 86 400 000 (a day in ms), divisible by the ms of a second, minute and hour.
pub const UNITS_PER_TOKEN: u64 = 86_400_000;

/// The largest `requests` or `burst` a limit may have (checked by the configuration), so that
/// `burst * UNITS_PER_TOKEN` fits in a u64.
pub const MAX_COUNT: u64 = 1_000_000_000;

/// The period of a limit, as configured (`"second"`, `"minute"`, `"hour"`, `"day"`).
#[derive(Debug, serde::Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    Second,
    Minute,
    Hour,
    Day,
}

impl Per {
    /// `per`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<Per, crate::ConfigError> {
        crate::json_config::choice(
            v,
            &[
                ("second", Per::Second),
                ("minute", Per::Minute),
                ("hour", Per::Hour),
                ("day", Per::Day),
            ],
        )
    }

    pub fn millis(self) -> u64 {
        match self {
            Per::Second => 1_000,
            Per::Minute => 60_000,
            Per::Hour => 3_600_000,
            Per::Day => 86_400_000,
        }
    }
}

/// A configured limit, validated: `count` (named `count_field` in errors) per `per`, a bucket of
/// `burst` (default `count`); both between 1 and [`MAX_COUNT`].
pub fn limit_from_config(
    count_field: &str,
    count: u64,
    per: Per,
    burst: Option<u64>,
) -> Result<Limit, crate::ConfigError> {
    let range = format!("must be between 1 and {MAX_COUNT}");
    if count == 0 || count > MAX_COUNT {
        return Err(crate::ConfigError::new(count_field, range));
    }
    let burst = burst.unwrap_or(count);
    if burst == 0 || burst > MAX_COUNT {
        return Err(crate::ConfigError::new("burst", range));
    }
    Ok(Limit {
        requests: count,
        period_ms: per.millis(),
        burst,
    })
}

/// A limit: `requests` per `period_ms`, bucket capacity `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub requests: u64,
    pub period_ms: u64,
    pub burst: u64,
}

impl Limit {
    /// Capacity in units.
    pub fn capacity(&self) -> u64 {
        self.burst.saturating_mul(UNITS_PER_TOKEN)
    }

    /// Units added per millisecond (exact: `period_ms` divides `UNITS_PER_TOKEN`).
    pub fn refill_per_ms(&self) -> u64 {
        let per_ms = UNITS_PER_TOKEN / self.period_ms.max(1);
        self.requests.saturating_mul(per_ms).max(1)
    }

    /// The period in whole seconds (for `w=` of `RateLimit-Policy`).
    pub fn window_s(&self) -> u64 {
        self.period_ms / 1000
    }
}

/// The state of one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Units available.
    pub tokens: u64,
    /// When `tokens` was last brought up to date (ms since the epoch).
    pub last_ms: u64,
}

/// What taking a token decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Milliseconds until one whole token is available (0 when one is).
    pub retry_after_ms: u64,
    /// Milliseconds until the bucket is full again.
    pub full_in_ms: u64,
}

fn ceil_div(a: u64, b: u64) -> u64 {
    let b = b.max(1);
    a / b + u64::from(!a.is_multiple_of(b))
}

impl Bucket {
    /// A new bucket starts full.
    pub fn full(limit: &Limit, now_ms: u64) -> Bucket {
        Bucket {
            tokens: limit.capacity(),
            last_ms: now_ms,
        }
    }

    /// Brings the bucket up to `now_ms`. A clock that went back adds nothing and keeps `last_ms`
    /// where it was, so time that passed is never credited twice when the clock catches up.
    pub fn refill(self, limit: &Limit, now_ms: u64) -> Bucket {
        let capacity = limit.capacity();
        if now_ms <= self.last_ms {
            return Bucket {
                tokens: self.tokens.min(capacity),
                last_ms: self.last_ms,
            };
        }
        let elapsed = now_ms - self.last_ms;
        let added = elapsed.saturating_mul(limit.refill_per_ms());
        Bucket {
            tokens: self.tokens.saturating_add(added).min(capacity),
            last_ms: now_ms,
        }
    }

    /// Refills, then takes one token if there is one.
    pub fn take(self, limit: &Limit, now_ms: u64) -> (Bucket, Decision) {
        let (b, decision, _) = self.take_up_to(limit, now_ms, 1);
        (b, decision)
    }

    /// Refills, then takes as many whole tokens as there are, up to `want` (at least one): a
    /// worker's lease of several tokens in one update. Admitted when one or more were taken;
    /// the decision describes the bucket after all of them left it.
    pub fn take_up_to(self, limit: &Limit, now_ms: u64, want: u64) -> (Bucket, Decision, u64) {
        let mut b = self.refill(limit, now_ms);
        let taken = (b.tokens / UNITS_PER_TOKEN).min(want.max(1));
        b.tokens -= taken * UNITS_PER_TOKEN;
        (b, b.decision(limit, taken > 0), taken)
    }

    /// Gives back a token taken by [`Bucket::take`] (another rule refused the request).
    pub fn give_back(self, limit: &Limit, now_ms: u64) -> Bucket {
        self.returned(limit, now_ms, 1)
    }

    /// Refills, then puts back `tokens` whole tokens taken earlier and not spent (never above
    /// the capacity).
    pub fn returned(self, limit: &Limit, now_ms: u64, tokens: u64) -> Bucket {
        let b = self.refill(limit, now_ms);
        Bucket {
            tokens: b
                .tokens
                .saturating_add(tokens.saturating_mul(UNITS_PER_TOKEN))
                .min(limit.capacity()),
            last_ms: b.last_ms,
        }
    }

    fn decision(&self, limit: &Limit, admitted: bool) -> Decision {
        let rate = limit.refill_per_ms();
        let missing = UNITS_PER_TOKEN.saturating_sub(self.tokens);
        Decision {
            admitted,
            remaining: self.tokens / UNITS_PER_TOKEN,
            retry_after_ms: ceil_div(missing, rate),
            full_in_ms: ceil_div(limit.capacity().saturating_sub(self.tokens), rate),
        }
    }

    /// Whether the bucket would be full at `now_ms` (an idle bucket carries no history).
    pub fn is_full_at(&self, limit: &Limit, now_ms: u64) -> bool {
        self.refill(limit, now_ms).tokens >= limit.capacity()
    }
}

/// One slot of the shared table: whose bucket it is (a 64-bit fingerprint of the key), the
/// bucket, and when that bucket will be full again under its owner's limit (so another key may
/// reclaim the slot once it is idle, whatever limit that other key has).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub fingerprint: u64,
    pub bucket: Bucket,
    pub full_at_ms: u64,
}

/// Encoded size of a [`Slot`]: a version byte and four little-endian u64.
pub const SLOT_BYTES: usize = 33;
const VERSION: u8 = 1;

impl Slot {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SLOT_BYTES);
        out.push(VERSION);
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.bucket.tokens.to_le_bytes());
        out.extend_from_slice(&self.bucket.last_ms.to_le_bytes());
        out.extend_from_slice(&self.full_at_ms.to_le_bytes());
        out
    }

    /// `None` for anything that is not exactly a version-1 slot (then the slot counts as free).
    pub fn decode(bytes: &[u8]) -> Option<Slot> {
        if bytes.len() != SLOT_BYTES || bytes.first() != Some(&VERSION) {
            return None;
        }
        let word = |i: usize| -> Option<u64> {
            let start = 1 + 8 * i;
            let b: [u8; 8] = bytes.get(start..start + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        };
        Some(Slot {
            fingerprint: word(0)?,
            bucket: Bucket {
                tokens: word(1)?,
                last_ms: word(2)?,
            },
            full_at_ms: word(3)?,
        })
    }
}
