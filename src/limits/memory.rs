//! In-process GCRA state: one mutex-guarded map (held for a few hundred nanoseconds per check,
//! never across an await). Idle keys are swept when the map grows, so memory stays bounded by
//! the number of recently active clients.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use async_trait::async_trait;

use super::{gcra, Decision, Quota, RateLimiter};

const SWEEP_ABOVE: usize = 100_000;

pub struct MemoryRateLimiter {
    epoch: Instant,
    state: Mutex<HashMap<String, u64>>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            state: Mutex::new(HashMap::new()),
        }
    }
}

impl MemoryRateLimiter {
    fn check_at(&self, key: &str, quota: Quota, now_us: u64) -> Decision {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.len() > SWEEP_ABOVE {
            // A TAT in the past means the key is back to a full burst: forgetting it is exact.
            state.retain(|_, tat| *tat > now_us);
        }
        let (decision, next) = gcra(state.get(key).copied(), now_us, quota);
        if let Some(next) = next {
            state.insert(key.to_string(), next);
        }
        decision
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> anyhow::Result<Decision> {
        let now_us = self.epoch.elapsed().as_micros() as u64;
        Ok(self.check_at(key, quota, now_us))
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_independent() {
        let limiter = MemoryRateLimiter::default();
        let q = Quota {
            per_second: 1.0,
            burst: 1,
        };
        assert_eq!(limiter.check_at("a", q, 0), Decision::Allowed);
        assert!(matches!(
            limiter.check_at("a", q, 1),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.check_at("b", q, 1), Decision::Allowed);
        assert_eq!(limiter.check_at("a", q, 1_000_000), Decision::Allowed);
    }
}
