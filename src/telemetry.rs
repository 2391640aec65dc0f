//! Structured logs through `tracing`: human-readable by default, JSON lines with
//! `CHORUS_LOG_FORMAT=json`. Request logs carry the route pattern, never headers or query
//! strings, so tokens and socket tickets cannot reach a log line.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// which lets tests and the CLI share it.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|err| {
        eprintln!(
            "invalid log filter {:?} ({err}); using \"info\"",
            settings.filter
        );
        EnvFilter::new("info")
    });
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// Lets a recurring warning through at most once per interval, counting what it held back, so
/// an outage that fails every request (the rate limiter's store, say) logs a line every few
/// seconds instead of one per request.
pub struct LogThrottle {
    interval_ms: u64,
    /// Milliseconds since `epoch` of the last line let through (0: none yet).
    last_ms: std::sync::atomic::AtomicU64,
    held_back: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

impl LogThrottle {
    pub fn new(interval: std::time::Duration) -> Self {
        Self {
            interval_ms: interval.as_millis() as u64,
            last_ms: std::sync::atomic::AtomicU64::new(0),
            held_back: std::sync::atomic::AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }

    /// `Some(n)`: log now, mentioning the `n` occurrences held back since the last line.
    pub fn admit(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        // +1 so that "no line yet" (0) is never a real timestamp.
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Relaxed);
        if last != 0 && now.saturating_sub(last) < self.interval_ms {
            self.held_back.fetch_add(1, Relaxed);
            return None;
        }
        if self
            .last_ms
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
        {
            self.held_back.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.held_back.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_admits_one_line_per_interval_and_counts_the_rest() {
        let throttle = LogThrottle::new(std::time::Duration::from_millis(50));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(throttle.admit(), Some(2));
        assert_eq!(throttle.admit(), None);
    }
}
