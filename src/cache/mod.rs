//! A small key-value cache with expiry, behind one interface: in-process by default, Redis when
//! `REDIS_URL` is set (then every process sees the same entries, which single-use socket tickets
//! need). Values are bytes; callers choose the encoding.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryCache;
pub use self::redis::RedisCache;

#[async_trait]
pub trait Cache: Send + Sync {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()>;
    /// Atomically reads and deletes: of several concurrent takers, exactly one gets the value.
    async fn take(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    async fn ping(&self) -> anyhow::Result<()>;
    /// `in-process` or `redis`, for readiness reports.
    fn backend(&self) -> &'static str;
}
