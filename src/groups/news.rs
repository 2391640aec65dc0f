//! What the replicas of one room in different processes tell each other over the fan-out.
//! Every process serving a member of a room runs a replica of it (a GroupActor folding the same
//! log); the store orders the log, and these messages only spare the replicas a read: a replica
//! that misses one reads the range from the store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::state::PlaybackIssue;
use crate::storage::groups::StoredEvent;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum News {
    /// Events the sender just stored, in seq order.
    Events { events: Vec<StoredEvent> },
    /// The room's list, from the replica that runs its duties: the `recommendations` frame
    /// as its sockets got it (the others send it on as it is), and the whole list with its
    /// reasons as JSON (read only when a request needs it).
    Recommendations { frame: String, list: String },
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
    /// Events as the appender stored them: their `(kind, payload)` columns from `first` on,
    /// sharing one actor, client message id and timestamp.
    pub fn stored(
        first: i64,
        at: i64,
        actor: Option<&str>,
        client_msg_id: Option<&str>,
        columns: Vec<(String, String)>,
    ) -> Self {
        News::Events {
            events: columns
                .into_iter()
                .zip(first..)
                .map(|((kind, payload), seq)| StoredEvent {
                    seq,
                    kind,
                    actor_user_id: actor.map(str::to_string),
                    payload,
                    client_msg_id: client_msg_id.map(str::to_string),
                    created_at: at,
                })
                .collect(),
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("room news serialise")
    }
}
