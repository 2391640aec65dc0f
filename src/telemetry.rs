//! Structured logs through `tracing`: human-readable by default, JSON lines with
//! `CHORUS_LOG_FORMAT=json`. Request logs carry the route pattern, never headers or query
//! strings, so tokens and socket tickets cannot reach a log line.

use tracing::{field::Field, Event, Level, Subscriber};
use tracing_subscriber::{
    fmt,
    layer::{Context, Layer, SubscriberExt},
    util::SubscriberInitExt,
    EnvFilter,
};

use crate::config::{LogFormat, LogSettings};

/// Libraries whose logs can carry secrets, whatever filter is configured: rspotify logs each
/// request with its headers (the user's Spotify access token) at info and debug.
const SECRET_BEARING: &[&str] = &["rspotify=warn", "rspotify_http=warn"];

/// `filter` with the libraries that log secrets held at warnings.
pub fn without_secrets(mut filter: EnvFilter) -> EnvFilter {
    for directive in SECRET_BEARING {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    filter
}

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
    let registry = tracing_subscriber::registry()
        .with(QuietClientErrors)
        .with(without_secrets(filter));
    let _ = match settings.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().compact().with_writer(std::io::stderr))
            .try_init(),
    };
}

/// actix-http logs every connection it drops at ERROR ("stream error: …"), including the ones a
/// client caused on purpose: a malformed request line or header, a head over 128 KB, 96+
/// headers, a negative Content-Length, a reset connection, a slow request. Any client could
/// fill the error log with those, so they are logged here at DEBUG (target `chorus::http`)
/// instead; server-side causes (service, body, upgrade, internal errors) stay at ERROR.
pub struct QuietClientErrors;

/// Display prefixes of actix-http's `DispatchError` variants that a client can cause.
const CLIENT_CAUSED: &[&str] = &[
    "stream error: request parse error",
    "stream error: I/O error",
    "stream error: request did not complete within the specified timeout",
    "stream error: connection shutdown timeout",
    "stream error: handler dropped payload before reading EOF",
];

#[derive(Default)]
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

impl<S: Subscriber> Layer<S> for QuietClientErrors {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("actix_http::h1") {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        if !CLIENT_CAUSED.iter().any(|p| message.0.starts_with(p)) {
            return true;
        }
        tracing::debug!(
            target: "chorus::http",
            error = message.0.trim_start_matches("stream error: "),
            "dropped a connection the client broke"
        );
        false
    }
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
