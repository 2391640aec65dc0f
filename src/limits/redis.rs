//! GCRA in Redis: the same algorithm as [`super::gcra`], run as one Lua script so the
//! read-modify-write is atomic across every Chorus process. The clock is Redis's own (`TIME`),
//! so processes with skewed clocks still agree. Every call is bounded by
//! [`crate::redis_link::CALL_DEADLINE`].

use std::time::Duration;

use async_trait::async_trait;
use redis::{aio::ConnectionManager, Script};

use super::{Decision, Quota, RateLimiter};
use crate::redis_link::within;

const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return allow_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
}

impl RedisRateLimiter {
    /// `prefix` namespaces the keys (tests use a random one).
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            script: Script::new(GCRA_LUA),
            prefix: prefix.into(),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> anyhow::Result<Decision> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("{}rl:{key}", self.prefix));
        invocation
            .arg(quota.emission_interval_us())
            .arg(quota.tolerance_us());
        let wait_us: u64 = within(
            "running the rate-limit script in Redis",
            invocation.invoke_async(&mut connection),
        )
        .await?;
        Ok(if wait_us == 0 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after: Duration::from_micros(wait_us),
            }
        })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
