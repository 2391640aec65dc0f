//! The WebSocket protocol's frames: JSON objects with a `type` tag. Client frames are parsed
//! strictly (unknown types and fields are errors with the same codes as REST bodies); server
//! frames are serialised once and shared by every socket that receives them.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use super::{
    events::Event,
    settings::SettingsPatch,
    state::{GroupView, PlaybackIssue},
};
use crate::{
    domain::text,
    error::{deserialize_error, ApiError, ErrorCode},
    recommend::ListFrame,
    taste::FeedbackKind,
};

/// Sent in `welcome`; bumped on any incompatible change to the frames.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest accepted `client_msg_id`.
pub const MAX_CLIENT_MSG_ID: usize = 64;

/// Close codes the server uses (besides the standard 1000, 1002 and 1009).
pub mod close {
    /// No frame (not even a pong) within the client timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The client did not read its frames fast enough; its outbox overflowed.
    pub const SLOW_CONSUMER: u16 = 4008;
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Join(JoinFrame),
    Leave(Plain),
    AddTrack(AddTrack),
    RemoveTrack(EntryOp),
    MoveTrack(MoveTrack),
    Vote(Vote),
    SkipVote(EntryOp),
    Kick(UserOp),
    SetHost(UserOp),
    Admit(UserOp),
    Decline(UserOp),
    UpdateSettings(UpdateSettings),
    Play(Play),
    Pause(Plain),
    Next(Plain),
    Seek(Seek),
    Pin(Pin),
    Feedback(Feedback),
    RequestRecommendations(Plain),
    Explain(ExplainFrame),
    Ping(Plain),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinFrame {
    pub group_id: String,
    /// The last seq the client has applied; the server replays what follows.
    pub last_seq: Option<i64>,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plain {
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTrack {
    pub track_id: String,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainFrame {
    pub track_id: String,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryOp {
    pub entry_id: String,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveTrack {
    pub entry_id: String,
    pub to_index: usize,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    pub entry_id: String,
    pub value: i8,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserOp {
    pub user_id: String,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    pub settings: SettingsPatch,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Play {
    /// An upcoming entry to play now; absent: resume, or start the next in play order.
    pub entry_id: Option<String>,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seek {
    pub position_ms: u32,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub entry_id: String,
    pub pinned: bool,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub track_id: String,
    pub kind: FeedbackKind,
    pub request_id: Option<String>,
    pub client_msg_id: Option<String>,
}

impl ClientFrame {
    /// Parses one text frame; every failure is an error the client can act on.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            ApiError::new(
                ErrorCode::MalformedJson,
                format!("the frame is not valid JSON: {e}"),
            )
        })?;
        if let Some(path) = text::find_nul(&value) {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("frame{path}: text must not contain NUL characters"),
            ));
        }
        let Some(object) = value.as_object() else {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "a frame is a JSON object with a `type`",
            ));
        };
        match object.get("type") {
            None => {
                return Err(ApiError::new(
                    ErrorCode::MissingField,
                    "missing field `type`",
                ))
            }
            Some(serde_json::Value::String(kind)) if !CLIENT_TYPES.contains(&kind.as_str()) => {
                return Err(ApiError::new(
                    ErrorCode::UnknownType,
                    format!(
                        "unknown frame type {kind:?}; expected one of: {}",
                        CLIENT_TYPES.join(", ")
                    ),
                ))
            }
            Some(serde_json::Value::String(_)) => {}
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    "`type` must be a string",
                ))
            }
        }
        let frame: ClientFrame =
            serde_json::from_value(value).map_err(|e| deserialize_error(&e))?;
        if let Some(id) = frame.client_msg_id() {
            if id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    format!("client_msg_id must be 1 to {MAX_CLIENT_MSG_ID} characters"),
                ));
            }
            text::check_line("client_msg_id", id)
                .map_err(|e| ApiError::new(ErrorCode::InvalidField, e))?;
        }
        if let ClientFrame::Feedback(Feedback {
            request_id: Some(id),
            ..
        }) = &frame
        {
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    "request_id must be a request_id returned by this server (a UUID)",
                ));
            }
        }
        Ok(frame)
    }

    pub fn client_msg_id(&self) -> Option<&str> {
        match self {
            ClientFrame::Join(f) => f.client_msg_id.as_deref(),
            ClientFrame::Leave(f)
            | ClientFrame::RequestRecommendations(f)
            | ClientFrame::Pause(f)
            | ClientFrame::Next(f)
            | ClientFrame::Ping(f) => f.client_msg_id.as_deref(),
            ClientFrame::Play(f) => f.client_msg_id.as_deref(),
            ClientFrame::Seek(f) => f.client_msg_id.as_deref(),
            ClientFrame::Pin(f) => f.client_msg_id.as_deref(),
            ClientFrame::AddTrack(f) => f.client_msg_id.as_deref(),
            ClientFrame::Explain(f) => f.client_msg_id.as_deref(),
            ClientFrame::RemoveTrack(f) | ClientFrame::SkipVote(f) => f.client_msg_id.as_deref(),
            ClientFrame::MoveTrack(f) => f.client_msg_id.as_deref(),
            ClientFrame::Vote(f) => f.client_msg_id.as_deref(),
            ClientFrame::Kick(f)
            | ClientFrame::SetHost(f)
            | ClientFrame::Admit(f)
            | ClientFrame::Decline(f) => f.client_msg_id.as_deref(),
            ClientFrame::UpdateSettings(f) => f.client_msg_id.as_deref(),
            ClientFrame::Feedback(f) => f.client_msg_id.as_deref(),
        }
    }
}

pub const CLIENT_TYPES: &[&str] = &[
    "join",
    "leave",
    "add_track",
    "remove_track",
    "move_track",
    "vote",
    "skip_vote",
    "kick",
    "set_host",
    "admit",
    "decline",
    "update_settings",
    "play",
    "pause",
    "next",
    "seek",
    "pin",
    "feedback",
    "request_recommendations",
    "explain",
    "ping",
];

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Welcome {
        user_id: &'a str,
        protocol: u32,
        heartbeat_interval_ms: u64,
        client_timeout_ms: u64,
        max_frame_bytes: usize,
    },
    Snapshot {
        group: &'a GroupView,
        seq: i64,
    },
    Event {
        seq: i64,
        event: &'a Event,
    },
    Ack {
        client_msg_id: Option<&'a str>,
        /// The seq of the last event the operation produced, or the group's seq when it
        /// changed nothing; absent for operations outside the log (feedback).
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<i64>,
    },
    /// The room's list, brief tracks and no reasons (see `GroupRecommendations::for_sockets`).
    Recommendations(ListFrame<'a>),
    /// The room's list does not reflect its changes up to `seq` yet; a new one is coming (sent
    /// when a list is a second late, at most once until the next `recommendations`).
    RecommendationsUpdating {
        seq: i64,
    },
    Presence {
        user_id: &'a str,
        online: bool,
        connections: usize,
    },
    /// How the room's Spotify device is doing: `issue` says why it is not following (the room
    /// plays on in listen-along mode), `null` once it follows again.
    PlaybackStatus {
        issue: Option<&'a PlaybackIssue>,
    },
    /// This socket is no longer in the group (it left, or the host removed its user).
    Left {
        group_id: &'a str,
        reason: &'a str,
    },
    Error {
        code: &'static str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
    },
    /// A piece of an explanation as the language model writes it.
    ExplanationDelta {
        track_id: &'a str,
        text: &'a str,
    },
    /// The whole explanation; its text is authoritative (it replaces the deltas, which are
    /// absent for cached and template answers, and superseded when the model's answer was
    /// rejected or cut off).
    ExplanationDone {
        track_id: &'a str,
        text: &'a str,
        source: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<&'a str>,
        cached: bool,
        latency_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
    },
}

impl ServerFrame<'_> {
    pub fn encode(&self) -> ByteString {
        ByteString::from(serde_json::to_string(self).expect("frames serialise"))
    }

    pub fn error(err: &ApiError, client_msg_id: Option<&str>) -> ByteString {
        ServerFrame::Error {
            code: err.code.as_str(),
            message: &err.message,
            client_msg_id,
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        aggregate::Harmony,
        catalog::tests::track,
        groups::events::TrackSummary,
        recommend::{
            GroupRecommendations, GroupRecommended, MemberFit, MemberSatisfaction, Reason,
        },
    };

    #[test]
    fn the_list_frame_is_the_whole_list_with_brief_tracks_and_no_reasons() {
        let item = |id: &str| GroupRecommended {
            track: Arc::new(track(id, "Song", "Artist", "pop", 60)),
            score: 0.7,
            least: 0.4,
            fit: vec![MemberFit {
                user_id: "u1".into(),
                probability: 0.4,
            }],
            reasons: vec![Reason {
                signal: "popularity",
                label: "Popular",
                value: 0.6,
                contribution: 0.1,
            }],
        };
        let list = GroupRecommendations {
            request_id: "r1".into(),
            strategy: "fair".into(),
            items: vec![item("a"), item("b")],
            harmony: Some(Harmony {
                least: 0.4,
                average: 0.6,
            }),
            members: vec![MemberSatisfaction {
                user_id: "u1".into(),
                satisfaction: 0.4,
                picks: 2,
            }],
            members_without_taste: vec!["u2".into()],
            seq: 7,
            computed_at: 1_700_000_000_000,
            candidates_considered: 100,
        };
        let frame: serde_json::Value =
            serde_json::from_str(&ServerFrame::Recommendations(list.for_sockets()).encode())
                .unwrap();
        // Through text, as the frame went: numbers keep their f32 spelling.
        let mut whole: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&list).unwrap()).unwrap();
        for (item, listed) in whole["items"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .zip(&list.items)
        {
            assert!(item.as_object_mut().unwrap().remove("reasons").is_some());
            // A track as a playlist entry shows it.
            item["track"] = serde_json::to_value(TrackSummary::from(&*listed.track)).unwrap();
        }
        let mut expected = serde_json::Map::new();
        expected.insert("type".into(), "recommendations".into());
        expected.extend(whole.as_object().unwrap().clone());
        assert_eq!(
            frame.to_string(),
            serde_json::Value::Object(expected).to_string()
        );
    }

    fn code(text: &str) -> ErrorCode {
        ClientFrame::parse(text).unwrap_err().code
    }

    #[test]
    fn parses_the_documented_frames() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"add_track","track_id":"t","client_msg_id":"c1"}"#)
                .unwrap(),
            ClientFrame::AddTrack(AddTrack {
                track_id: "t".into(),
                client_msg_id: Some("c1".into())
            })
        );
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"ping"}"#).unwrap(),
            ClientFrame::Ping(_)
        ));
        assert_eq!(
            ClientFrame::parse(r#"{"type":"explain","track_id":"t"}"#).unwrap(),
            ClientFrame::Explain(ExplainFrame {
                track_id: "t".into(),
                client_msg_id: None
            })
        );
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"update_settings","settings":{"guest_controls":false}}"#)
                .unwrap(),
            ClientFrame::UpdateSettings(_)
        ));
    }

    #[test]
    fn every_malformation_has_its_code() {
        assert_eq!(code("{nope"), ErrorCode::MalformedJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"track_id":"t"}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"type":"vote","entry_id":"e","value":1,"extra":true}"#),
            ErrorCode::UnknownField
        );
        assert_eq!(
            code(r#"{"type":"vote","entry_id":"e"}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            code(r#"{"type":"vote","entry_id":"e","value":"up"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"move_track","entry_id":"e","to_index":-1}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"ping","client_msg_id":"{}"}}"#,
                "x".repeat(65)
            )),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"update_settings","settings":{"colour":"red"}}"#),
            ErrorCode::UnknownField
        );
    }
}
