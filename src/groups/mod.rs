//! Live group sessions: a shared playlist co-built over WebSockets.
//!
//! [`Groups`] (`service`) is the way in for everything outside this module: it creates rooms,
//! admits members and hands out [`Room`]s; sockets attach through it.
//!
//! - [`events`], [`state`], [`commands`], [`settings`]: the pure model — the event vocabulary,
//!   the state as their fold, and the rules deciding what an operation does.
//! - [`actor`]: the GroupActor that runs one live group, with its [`actor::GroupDeps`];
//!   [`registry`]: this process's live groups and their members.
//! - [`connection`]: the ConnectionActor behind each socket; [`protocol`]: its frames;
//!   [`socket_io`], [`frame_guard`]: the socket's bytes; [`socket_link`]: how a room reaches a
//!   member's socket.

pub mod actor;
pub mod commands;
pub mod connection;
pub mod events;
pub mod frame_guard;
pub mod ids;
pub mod news;
#[cfg(test)]
mod playback_tests;
pub mod player;
#[cfg(test)]
mod properties;
pub mod protocol;
pub mod queue;
pub mod registry;
mod service;
pub mod settings;
pub mod socket_io;
pub mod socket_link;
pub mod state;

pub use service::{CreatedGroup, EventPage, Groups, Joined, Room, MAX_NAME_CHARS};
