//! In-process cache: an [`ExpiringMap`] of byte values, swept when it grows past a bound.

use std::time::Duration;

use async_trait::async_trait;

use super::{expiring::ExpiringMap, Cache};

const SWEEP_ABOVE: usize = 100_000;

impl MemoryCache {
    /// Entries kept at most.
    pub const CAPACITY: usize = SWEEP_ABOVE;

    /// Entries held now (expired ones included until they are swept).
    pub fn entries(&self) -> usize {
        self.entries.len()
    }
}

pub struct MemoryCache {
    entries: ExpiringMap<String, Vec<u8>>,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self {
            entries: ExpiringMap::new(SWEEP_ABOVE + 1, None),
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.entries.get(&key.to_string()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        self.entries.insert(key.to_string(), value.to_vec(), ttl);
        Ok(())
    }

    async fn take(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.entries.take(&key.to_string()))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}
