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
