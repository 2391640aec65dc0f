//! Redis cache: `SET … PX` for expiry, `GETDEL` (Redis ≥ 6.2) for atomic take. Every call is
//! bounded by [`redis_link::CALL_DEADLINE`].

use std::time::Duration;

use async_trait::async_trait;
use redis::{aio::ConnectionManager, AsyncCommands};

use super::Cache;
use crate::redis_link::within;

pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisCache {
    /// `prefix` namespaces the keys (tests use a random one).
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}cache:{key}", self.prefix)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut c = self.connection.clone();
        within("reading from the Redis cache", c.get(self.key(key))).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        let mut c = self.connection.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        within(
            "writing to the Redis cache",
            c.pset_ex::<_, _, ()>(self.key(key), value, ms),
        )
        .await
    }

    async fn take(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut c = self.connection.clone();
        within("taking from the Redis cache", c.get_del(self.key(key))).await
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let mut c = self.connection.clone();
        within(
            "pinging Redis",
            redis::cmd("PING").query_async::<String>(&mut c),
        )
        .await
        .map(|_| ())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
