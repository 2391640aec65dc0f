//! In-process cache: a mutex-guarded map, locked only for the map operation itself. Expired
//! entries are dropped when read and swept when the map grows past a bound.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::Cache;

const SWEEP_ABOVE: usize = 100_000;

#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
}

impl MemoryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<u8>, Instant)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((_, expires)) if *expires <= Instant::now() => {
                entries.remove(key);
                Ok(None)
            }
            Some((value, _)) => Ok(Some(value.clone())),
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, (_, expires)| *expires > now);
        }
        entries.insert(key.to_string(), (value.to_vec(), now + ttl));
        Ok(())
    }

    async fn take(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self
            .lock()
            .remove(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(value, _)| value))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}
