//! The group event log's vocabulary. Every change to a group is one of these, appended to the
//! store with the next `seq` before anyone sees it; [`super::state::GroupState`] is their fold.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::settings::GroupSettings;
use crate::catalog::Track;

/// What a playlist entry shows about its track without a catalog lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackSummary {
    pub id: String,
    pub title: String,
    pub artist: String,
    pub album: String,
    pub duration_ms: u32,
}

impl From<&Track> for TrackSummary {
    fn from(track: &Track) -> Self {
        Self {
            id: track.id.as_str().to_string(),
            title: track.title.clone(),
            artist: track.artist.clone(),
            album: track.album.clone(),
            duration_ms: track.duration_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Kicked,
}

/// Why the track playing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdvanceReason {
    /// Playback started from an idle room (nothing was playing).
    Started,
    /// The track played to its end.
    Ended,
    /// The host moved on (next, or played another entry).
    Next,
    /// Enough skip votes arrived.
    Skipped,
}

/// The Spotify Connect device a room plays on, through one member's Spotify account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlaybackTarget {
    /// The member whose Spotify account plays (the host who chose it).
    pub user_id: String,
    pub device_id: String,
    pub device_name: String,
}

/// `kind` names the change, `payload` holds its data (stored in the log's two columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum EventBody {
    GroupCreated {
        name: String,
        host: String,
        host_name: String,
        settings: GroupSettings,
    },
    MemberJoined {
        user_id: String,
        display_name: String,
    },
    MemberLeft {
        user_id: String,
        reason: LeaveReason,
    },
    /// Someone with the code asked to join a room that needs the host's approval.
    JoinRequested {
        user_id: String,
        display_name: String,
    },
    /// The host turned a request down; that user may not ask again.
    JoinDeclined {
        user_id: String,
    },
    TrackAdded {
        entry_id: String,
        track: TrackSummary,
        added_by: String,
        /// When the track came from the room's recommendations: the member it was for (the one
        /// predicted to like it most). The session's fairness counts it for them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recommended_for: Option<String>,
    },
    TrackRemoved {
        entry_id: String,
    },
    TrackMoved {
        entry_id: String,
        from_index: usize,
        to_index: usize,
    },
    /// `value` 0 withdraws the user's vote.
    VoteCast {
        entry_id: String,
        user_id: String,
        value: i8,
    },
    SkipVoteCast {
        entry_id: String,
        user_id: String,
        votes: u32,
        needed: u32,
    },
    /// Enough skip votes arrived: the entry leaves the playlist.
    TrackSkipped {
        entry_id: String,
        votes: u32,
        needed: u32,
    },
    HostChanged {
        user_id: String,
    },
    /// The track playing changed: `finished` (the entry playing until now, if any) moves to
    /// the history and `started` (an upcoming entry) plays from 0; none started: the queue ran
    /// out and nothing plays.
    PlaybackAdvanced {
        finished: Option<String>,
        started: Option<String>,
        reason: AdvanceReason,
    },
    /// The track playing stopped at `position_ms`.
    PlaybackPaused {
        position_ms: u32,
    },
    /// The track playing goes on from `position_ms`.
    PlaybackResumed {
        position_ms: u32,
    },
    /// The track playing jumped to `position_ms` (playing or paused as before).
    PlaybackSeeked {
        position_ms: u32,
    },
    /// The host chose a Spotify Connect device to play the room on (`None`: back to listen-along).
    PlaybackTargetChanged {
        target: Option<PlaybackTarget>,
    },
    /// The host pinned an upcoming entry (it plays before unpinned ones) or unpinned it.
    TrackPinned {
        entry_id: String,
        pinned: bool,
    },
    SettingsChanged {
        settings: GroupSettings,
    },
}

impl EventBody {
    /// The `kind` and `payload` columns.
    pub fn to_columns(&self) -> (String, String) {
        // serde_json writes an adjacently tagged variant as `{"kind":"…","payload":…}` (kinds
        // are snake_case names, never escaped): one pass to a string, then split (building a
        // `Value` tree first cost 3% of the socket threads on a busy night).
        let json = serde_json::to_string(self).expect("events serialise");
        let (kind, payload) = json
            .strip_prefix(r#"{"kind":""#)
            .and_then(|rest| rest.split_once(r#"","payload":"#))
            .and_then(|(kind, rest)| Some((kind, rest.strip_suffix('}')?)))
            .expect("adjacently tagged");
        (kind.to_string(), payload.to_string())
    }

    pub fn from_columns(kind: &str, payload: &str) -> Result<Self, serde_json::Error> {
        let payload: serde_json::Value = serde_json::from_str(payload)?;
        serde_json::from_value(serde_json::json!({ "kind": kind, "payload": payload }))
    }

    /// Whether the change can alter what the group should be recommended.
    pub fn affects_recommendations(&self) -> bool {
        !matches!(
            self,
            EventBody::HostChanged { .. }
                | EventBody::JoinRequested { .. }
                | EventBody::JoinDeclined { .. }
                | EventBody::PlaybackPaused { .. }
                | EventBody::PlaybackResumed { .. }
                | EventBody::PlaybackSeeked { .. }
                | EventBody::TrackPinned { .. }
                | EventBody::PlaybackTargetChanged { .. }
        )
    }
}

/// One entry of the log as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub seq: i64,
    #[serde(flatten)]
    pub body: EventBody,
    /// Who caused it (absent for changes the server made on its own).
    pub actor: Option<String>,
    /// The id the client gave the operation, so a client that reconnects can tell which of its
    /// unacknowledged operations took effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let body = EventBody::VoteCast {
            entry_id: "e_1".into(),
            user_id: "u_1".into(),
            value: -1,
        };
        let (kind, payload) = body.to_columns();
        assert_eq!(kind, "vote_cast");
        assert_eq!(EventBody::from_columns(&kind, &payload).unwrap(), body);
    }

    #[test]
    fn columns_are_the_tagged_values_halves() {
        let bodies = [
            EventBody::TrackAdded {
                entry_id: "e_1".into(),
                track: TrackSummary {
                    id: "t_1".into(),
                    title: r#"He said "kind","payload":{}"#.into(),
                    artist: "Sigur Rós".into(),
                    album: "}".into(),
                    duration_ms: 1,
                },
                added_by: "u_1".into(),
                recommended_for: Some("u_2".into()),
            },
            EventBody::PlaybackTargetChanged { target: None },
            EventBody::PlaybackAdvanced {
                finished: None,
                started: Some("e_2".into()),
                reason: AdvanceReason::Skipped,
            },
        ];
        for body in bodies {
            let value = serde_json::to_value(&body).unwrap();
            let (kind, payload) = body.to_columns();
            assert_eq!(kind, value["kind"].as_str().unwrap());
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&payload).unwrap(),
                value["payload"]
            );
            assert_eq!(EventBody::from_columns(&kind, &payload).unwrap(), body);
        }
    }

    #[test]
    fn wire_form_is_flat() {
        let event = Event {
            seq: 3,
            body: EventBody::TrackRemoved {
                entry_id: "e_1".into(),
            },
            actor: Some("u_1".into()),
            client_msg_id: None,
            ts: 7,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"seq": 3, "kind": "track_removed", "payload": {"entry_id": "e_1"},
                               "actor": "u_1", "ts": 7})
        );
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    }
}
