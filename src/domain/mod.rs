//! Domain types parsed at the edge: once a value has one of these types it is known to be valid.

mod display_name;
pub mod text;
mod token;
mod track_id;
mod user_id;

pub use display_name::DisplayName;
pub use token::{AccessToken, TokenHash};
pub use track_id::TrackId;
pub use user_id::UserId;

/// Milliseconds since the Unix epoch: the one timestamp format in the store and on the wire.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
