//! Live group sessions: a shared playlist co-built over WebSockets.
//!
//! - [`events`], [`state`], [`commands`], [`settings`]: the pure model — the event vocabulary,
//!   the state as their fold, and the rules deciding what an operation does.
//! - [`actor`]: the GroupActor that runs one live group; [`directory`] finds or loads it.
//! - [`connection`]: the ConnectionActor behind each socket; [`protocol`]: its frames.

pub mod actor;
pub mod commands;
pub mod connection;
pub mod directory;
pub mod events;
pub mod frame_guard;
pub mod ids;
#[cfg(test)]
mod properties;
pub mod protocol;
pub mod settings;
pub mod socket_io;
pub mod state;
