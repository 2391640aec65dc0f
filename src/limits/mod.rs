//! Request rate limits behind one small interface: an in-process limiter by default, a Redis one
//! (shared by every process) when `REDIS_URL` is set. Both implement the same GCRA (generic cell
//! rate algorithm, the one behind "leaky bucket as a meter"): a key may send `burst` requests at
//! once and then `per_second` on average; a refused request learns exactly when to retry.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryRateLimiter;
pub use self::redis::RedisRateLimiter;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub per_second: f64,
    pub burst: u32,
}

impl Quota {
    /// Microseconds between requests at the sustained rate.
    fn emission_interval_us(self) -> u64 {
        (1_000_000.0 / self.per_second).ceil().max(1.0) as u64
    }

    /// How far ahead of now the schedule may run before requests are refused.
    fn tolerance_us(self) -> u64 {
        self.emission_interval_us() * u64::from(self.burst.saturating_sub(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request for `key` against `quota`.
    async fn check(&self, key: &str, quota: Quota) -> anyhow::Result<Decision>;

    /// `in-process` or `redis`, for readiness reports.
    fn backend(&self) -> &'static str;
}

/// One GCRA step. `tat` is the stored "theoretical arrival time" (µs) or `None` for a new key.
/// Returns the decision and, when allowed, the new TAT to store.
pub fn gcra(tat: Option<u64>, now_us: u64, quota: Quota) -> (Decision, Option<u64>) {
    let tat = tat.unwrap_or(now_us).max(now_us);
    let allow_at = tat.saturating_sub(quota.tolerance_us());
    if now_us < allow_at {
        let retry_after = Duration::from_micros(allow_at - now_us);
        return (Decision::Limited { retry_after }, None);
    }
    (Decision::Allowed, Some(tat + quota.emission_interval_us()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        per_second: 10.0,
        burst: 3,
    };

    fn run(times_ms: &[u64]) -> Vec<bool> {
        let mut tat = None;
        times_ms
            .iter()
            .map(|&t| {
                let (decision, next) = gcra(tat, t * 1000, Q);
                if next.is_some() {
                    tat = next;
                }
                decision == Decision::Allowed
            })
            .collect()
    }

    #[test]
    fn allows_the_burst_then_the_rate() {
        assert_eq!(run(&[0, 0, 0, 0]), vec![true, true, true, false]);
        // One slot frees every 100 ms.
        assert_eq!(
            run(&[0, 0, 0, 99, 100, 100]),
            vec![true, true, true, false, true, false]
        );
    }

    #[test]
    fn idle_time_refills_the_burst_but_no_more() {
        assert_eq!(
            run(&[0, 0, 0, 10_000, 10_000, 10_000, 10_000]),
            vec![true, true, true, true, true, true, false]
        );
    }

    #[test]
    fn retry_after_is_when_the_next_slot_opens() {
        let (_, tat) = gcra(None, 0, Q);
        let (_, tat) = gcra(tat, 0, Q);
        let (_, tat) = gcra(tat, 0, Q);
        assert_eq!(
            gcra(tat, 40_000, Q).0,
            Decision::Limited {
                retry_after: Duration::from_millis(60)
            }
        );
    }
}
