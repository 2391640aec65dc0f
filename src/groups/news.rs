//! What the replicas of one room in different processes tell each other over the fan-out.
//! Every process serving a member of a room runs a replica of it (a GroupActor folding the same
//! log); the store orders the log, and these messages only spare the replicas a read: a replica
//! that misses one reads the range from the store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{events::Event, state::PlaybackIssue};
use crate::storage::groups::StoredEvent;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum News {
    /// Events the sender just stored, in seq order.
    Events { events: Vec<StoredEvent> },
    /// The room's list, from the replica that runs its duties: the `recommendations` frame
    /// as its sockets got it (the others send it on as it is, and read the list from it).
    Recommendations { frame: String },
    /// The sender's open sockets per member (all of them: it replaces the last one), and the
    /// last seq it has: a heartbeat, so a replica that missed events learns it.
    Presence {
        users: HashMap<String, usize>,
        seq: i64,
    },
    /// A replica started (or came back): the others answer with their presence, and the duty
    /// holder with the list and the playback status.
    Hello,
    /// How the room's Spotify device is doing, from the replica that drives it.
    Playback { issue: Option<PlaybackIssue> },
}

impl News {
    pub fn events(events: &[Event]) -> Self {
        News::Events {
            events: events
                .iter()
                .map(|event| {
                    let (kind, payload) = event.body.to_columns();
                    StoredEvent {
                        seq: event.seq,
                        kind,
                        actor_user_id: event.actor.clone(),
                        payload,
                        client_msg_id: event.client_msg_id.clone(),
                        created_at: event.ts,
                    }
                })
                .collect(),
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("room news serialise")
    }
}
