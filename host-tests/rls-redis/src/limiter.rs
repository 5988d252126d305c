//! The counting: one Redis counter per descriptor and fixed window, incremented and given its
//! expiry in one MULTI/EXEC transaction, so that any number of service replicas (and of gateways
//! behind them) draw from one count. The key names the domain, every entry of the descriptor and
//! the window's start, so a new window is a new key and the old one expires by itself.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use tonic::Status;

use crate::config::{Config, RateLimit};
use crate::proto;

/// The most descriptors one request may carry.
pub const MAX_DESCRIPTORS: usize = 64;
/// The most entries one descriptor may carry.
pub const MAX_ENTRIES: usize = 16;

pub struct Limiter {
    config: Config,
    client: redis::Client,
    /// The shared connection; `None` after an error, so the next request reconnects.
    connection: Mutex<Option<MultiplexedConnection>>,
    prefix: String,
    redis_timeout: Duration,
}

impl Limiter {
    /// `redis_url` like `redis://127.0.0.1:6379`; nothing connects until the first request.
    pub fn new(
        config: Config,
        redis_url: &str,
        prefix: &str,
    ) -> Result<Limiter, redis::RedisError> {
        Ok(Limiter {
            config,
            client: redis::Client::open(redis_url)?,
            connection: Mutex::new(None),
            prefix: prefix.to_string(),
            redis_timeout: Duration::from_millis(500),
        })
    }

    /// How long one Redis round trip (or a connect) may take before the request fails UNAVAILABLE.
    pub fn redis_timeout(mut self, timeout: Duration) -> Limiter {
        self.redis_timeout = timeout;
        self
    }

    async fn connection(&self) -> Result<MultiplexedConnection, Status> {
        if let Some(c) = self.slot().as_ref() {
            return Ok(c.clone());
        }
        let connect = self.client.get_multiplexed_async_connection();
        let c = match tokio::time::timeout(self.redis_timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(Status::unavailable(format!("redis: {e}"))),
            Err(_) => return Err(Status::unavailable("redis: connect timed out")),
        };
        *self.slot() = Some(c.clone());
        Ok(c)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one `ShouldRateLimit` at the current time.
    pub async fn should_rate_limit(
        &self,
        request: &proto::RateLimitRequest,
    ) -> Result<proto::RateLimitResponse, Status> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.should_rate_limit_at(request, now).await
    }

    /// Answers one `ShouldRateLimit` as if it were `now` (seconds since the epoch).
    pub async fn should_rate_limit_at(
        &self,
        request: &proto::RateLimitRequest,
        now: u64,
    ) -> Result<proto::RateLimitResponse, Status> {
        if request.domain.is_empty() {
            return Err(Status::invalid_argument("domain: empty"));
        }
        if request.descriptors.len() > MAX_DESCRIPTORS {
            return Err(Status::invalid_argument(format!(
                "more than {MAX_DESCRIPTORS} descriptors"
            )));
        }
        let hits = u64::from(request.hits_addend.max(1));

        // The limit and counter key of each descriptor that has a limit.
        let mut plan: Vec<Option<(RateLimit, String, u64)>> = Vec::new();
        for d in &request.descriptors {
            if d.entries.len() > MAX_ENTRIES {
                return Err(Status::invalid_argument(format!(
                    "a descriptor has more than {MAX_ENTRIES} entries"
                )));
            }
            let entries: Vec<(&str, &str)> = d
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()))
                .collect();
            let limited = match self.config.limit_for(&request.domain, &entries) {
                Some(limit) if !entries.is_empty() => {
                    let window = limit.unit.seconds();
                    let start = now - now % window;
                    let key = counter_key(&self.prefix, &request.domain, &entries, start);
                    Some((limit, key, start + window - now))
                }
                _ => None,
            };
            plan.push(limited);
        }

        let counts = self.count(&plan, hits).await?;
        let mut counts = counts.into_iter();
        let mut overall = proto::Code::Ok;
        let mut statuses = Vec::with_capacity(plan.len());
        for limited in plan {
            let Some((limit, _, reset)) = limited else {
                statuses.push(proto::DescriptorStatus {
                    code: proto::Code::Ok as i32,
                    current_limit: None,
                    limit_remaining: 0,
                    duration_until_reset: None,
                });
                continue;
            };
            let count = counts
                .next()
                .ok_or_else(|| Status::internal("redis answered fewer counts than asked"))?;
            let allowed = u64::from(limit.requests_per_unit);
            let code = if count > allowed {
                overall = proto::Code::OverLimit;
                proto::Code::OverLimit
            } else {
                proto::Code::Ok
            };
            statuses.push(proto::DescriptorStatus {
                code: code as i32,
                current_limit: Some(proto::RateLimit {
                    requests_per_unit: limit.requests_per_unit,
                    unit: limit.unit.to_proto() as i32,
                    name: String::new(),
                }),
                limit_remaining: u32::try_from(allowed.saturating_sub(count)).unwrap_or(u32::MAX),
                duration_until_reset: Some(proto::Duration {
                    seconds: i64::try_from(reset).unwrap_or(i64::MAX),
                    nanos: 0,
                }),
            });
        }
        Ok(proto::RateLimitResponse {
            overall_code: overall as i32,
            statuses,
        })
    }

    /// One transaction: INCRBY and EXPIRE for every limited descriptor; returns the new counts.
    async fn count(
        &self,
        plan: &[Option<(RateLimit, String, u64)>],
        hits: u64,
    ) -> Result<Vec<u64>, Status> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut any = false;
        for (limit, key, _) in plan.iter().flatten() {
            any = true;
            pipe.cmd("INCRBY").arg(key).arg(hits);
            pipe.cmd("EXPIRE")
                .arg(key)
                .arg(limit.unit.seconds())
                .ignore();
        }
        if !any {
            return Ok(Vec::new());
        }
        let mut connection = self.connection().await?;
        let query = pipe.query_async::<Vec<u64>>(&mut connection);
        match tokio::time::timeout(self.redis_timeout, query).await {
            Ok(Ok(counts)) => Ok(counts),
            Ok(Err(e)) => {
                self.slot().take();
                Err(Status::unavailable(format!("redis: {e}")))
            }
            Err(_) => {
                self.slot().take();
                Err(Status::unavailable("redis: timed out"))
            }
        }
    }
}

/// `<prefix>_<domain>_<key1>_<value1>_…_<window start>`. `%` and `_` inside the parts are
/// percent-escaped, so that two different descriptors can never name the same counter.
pub fn counter_key(
    prefix: &str,
    domain: &str,
    entries: &[(&str, &str)],
    window_start: u64,
) -> String {
    let mut key = String::with_capacity(64);
    escape_into(&mut key, prefix);
    key.push('_');
    escape_into(&mut key, domain);
    for (k, v) in entries {
        key.push('_');
        escape_into(&mut key, k);
        key.push('_');
        escape_into(&mut key, v);
    }
    key.push('_');
    key.push_str(&window_start.to_string());
    key
}

fn escape_into(out: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            '_' => out.push_str("%5F"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keys_are_unambiguous() {
        assert_eq!(
            counter_key(
                "rl",
                "edge",
                &[("rule", "per-client"), ("client_id", "a")],
                60
            ),
            "rl_edge_rule_per-client_client%5Fid_a_60"
        );
        // Without escaping these two would both be `rl_d_a_b_c_0`.
        assert_ne!(
            counter_key("rl", "d", &[("a_b", "c")], 0),
            counter_key("rl", "d", &[("a", "b_c")], 0)
        );
        assert_eq!(
            counter_key("rl", "d", &[("k", "100%")], 0),
            "rl_d_k_100%25_0"
        );
    }
}
