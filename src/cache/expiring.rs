//! An in-process map whose entries expire: a mutex-guarded `HashMap`, locked only for the map
//! operation itself. Expired entries are dropped when read and swept when the map reaches
//! `sweep_at` entries; with a `hard_limit`, a map still that full after the sweep is emptied, so
//! it never grows past the limit.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

pub struct ExpiringMap<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    sweep_at: usize,
    hard_limit: Option<usize>,
}

impl<K: Eq + Hash, V: Clone> ExpiringMap<K, V> {
    pub fn new(sweep_at: usize, hard_limit: Option<usize>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            sweep_at,
            hard_limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value, unless absent or expired (an expired entry is removed).
    pub fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((_, expires)) if *expires <= Instant::now() => {
                entries.remove(key);
                None
            }
            Some((value, _)) => Some(value.clone()),
            None => None,
        }
    }

    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.sweep_at {
            entries.retain(|_, (_, expires)| *expires > now);
            if self.hard_limit.is_some_and(|limit| entries.len() >= limit) {
                entries.clear();
            }
        }
        entries.insert(key, (value, now + ttl));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Removes and returns the value if it has not expired.
    pub fn take(&self, key: &K) -> Option<V> {
        self.lock()
            .remove(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(value, _)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_gone_and_the_hard_limit_holds() {
        let map = ExpiringMap::new(2, Some(2));
        map.insert(1, "a", Duration::ZERO);
        assert_eq!(map.get(&1), None);
        map.insert(2, "b", Duration::from_secs(60));
        map.insert(3, "c", Duration::from_secs(60));
        assert_eq!(map.get(&2), Some("b"));
        // Full of live entries: the next insert empties the map first.
        map.insert(4, "d", Duration::from_secs(60));
        assert_eq!(map.get(&2), None);
        assert_eq!(map.take(&4), Some("d"));
        assert_eq!(map.take(&4), None);
    }
}
