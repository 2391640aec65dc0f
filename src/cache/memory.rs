//! In-process cache: a moka cache, bounded, with each entry's own expiry. Least-recently-used
//! eviction rather than moka's default TinyLFU: TinyLFU refuses new entries a full cache has no
//! history for, and a socket ticket is always new (measured: with TinyLFU none of the latest
//! 10,000 of 300,000 entries were readable, with LRU all; `cargo bench --bench cache`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::{policy::EvictionPolicy, sync::Cache as Moka, Expiry};

use super::Cache;

/// A value and when it stops being served.
#[derive(Clone)]
struct Expiring {
    value: Vec<u8>,
    expires_at: Instant,
}

/// Each entry lives until its own `expires_at`.
struct OwnExpiry;

impl Expiry<String, Expiring> for OwnExpiry {
    fn expire_after_create(&self, _: &String, entry: &Expiring, now: Instant) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Expiring,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(now))
    }
}

pub struct MemoryCache {
    entries: Moka<String, Expiring>,
}

impl MemoryCache {
    /// Entries kept at most.
    pub const CAPACITY: usize = 100_000;

    /// Entries held now (moka counts lazily; this settles pending work first).
    pub fn entries(&self) -> usize {
        self.entries.run_pending_tasks();
        self.entries.entry_count() as usize
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self {
            entries: Moka::builder()
                .max_capacity(Self::CAPACITY as u64)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(OwnExpiry)
                .build(),
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.entries.get(key).map(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        let entry = Expiring {
            value: value.to_vec(),
            expires_at: Instant::now() + ttl,
        };
        self.entries.insert(key.to_string(), entry);
        Ok(())
    }

    async fn take(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        // `remove` is atomic: of several takers one gets the value. It may hand back an entry
        // whose time is up but that was not evicted yet, hence the check.
        Ok(self
            .entries
            .remove(key)
            .filter(|entry| entry.expires_at > Instant::now())
            .map(|entry| entry.value))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn entries_expire_on_their_own_schedule_and_a_full_cache_keeps_recent_ones() {
        let cache = MemoryCache::default();
        cache
            .set("short", b"a", Duration::from_millis(30))
            .await
            .unwrap();
        cache
            .set("long", b"b", Duration::from_secs(60))
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("short").await.unwrap(), None);
        assert_eq!(
            cache.take("short").await.unwrap(),
            None,
            "an expired entry is not taken"
        );
        assert_eq!(
            cache.take("long").await.unwrap().as_deref(),
            Some(&b"b"[..])
        );
        assert_eq!(cache.take("long").await.unwrap(), None, "taken once");
        for i in 0..2 * MemoryCache::CAPACITY {
            cache
                .set(&format!("k{i}"), b"x", Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(cache.entries() <= MemoryCache::CAPACITY);
        // The newest entry (a ticket, say) is always stored.
        let newest = format!("k{}", 2 * MemoryCache::CAPACITY - 1);
        assert!(cache.get(&newest).await.unwrap().is_some());
    }
}
