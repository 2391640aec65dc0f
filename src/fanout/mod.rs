//! The fan-out seam: how the processes serving the same rooms tell each other what happened.
//!
//! A [`Fanout`] carries opaque messages on topics (one per room, one for taste changes) to the
//! *other* processes subscribed to them, and holds advisory leases (which process runs a room's
//! timers and recommendations). Nothing here decides order: the store does (a room's events are
//! appended only after the seq their appender saw), so a lost or late message costs a read from
//! the store, never a wrong order.
//!
//! - [`local`]: one process (the embedded default). Rooms have one replica, so there is no one
//!   to tell; leases are always held.
//! - [`redis`]: Redis pub/sub and `SET NX PX` leases, chosen when `REDIS_URL` is set.

pub mod local;
pub mod redis;

use std::{sync::Arc, time::Duration};

use futures_util::future::BoxFuture;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic<'a> {
    /// Everything about one live room.
    Room(&'a str),
    /// A listener's taste changed (the body is their user id).
    Tastes,
}

/// What a subscriber is told.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A message another process published.
    Message { from: Arc<str>, body: Arc<str> },
    /// The subscription is in place: whatever was published before may have been missed.
    Subscribed,
    /// The link to the other processes was down and is back: messages may have been missed.
    Reconnected,
}

/// A subscriber: called on the fan-out's own task, so it must only hand the delivery on.
pub type Subscriber = Arc<dyn Fn(Delivery) + Send + Sync>;

pub trait Fanout: Send + Sync + 'static {
    /// This process's name among those sharing rooms.
    fn node(&self) -> &str;
    /// Whether other processes may serve the same rooms (false: this one is alone).
    fn shared(&self) -> bool;
    /// Sends `body` to the other processes subscribed to `topic`, in publication order.
    /// Never waits; a message that cannot be sent is logged and dropped.
    fn publish(&self, topic: Topic<'_>, body: String);
    /// Calls `subscriber` for every message on `topic` from other processes. Returns the id
    /// [`Fanout::unsubscribe`] takes.
    fn subscribe(&self, topic: Topic<'_>, subscriber: Subscriber) -> u64;
    fn unsubscribe(&self, topic: Topic<'_>, id: u64);
    /// Takes the lease `name` for `ttl`, or extends it when this process holds it. `Ok(false)`:
    /// another process holds it. `Err`: nobody could be asked.
    fn hold(&self, name: &str, ttl: Duration) -> BoxFuture<'static, anyhow::Result<bool>>;
    /// Gives the lease up if this process holds it (in the background).
    fn release(&self, name: &str);
}

/// A node name: unique per process start, readable in logs.
pub fn node_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &tag[..6])
}
