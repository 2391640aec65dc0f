//! The queue's rules as a room lives them: play, pause, seek, next, skip votes on the track
//! playing, the listen-along clock, pins and vote order, no repeats, auto-fill.

use std::collections::HashMap;

use super::{
    commands::{
        auto_fill, decide, device_moved_on, device_position, track_ended, Command, Context,
    },
    events::{AdvanceReason, Event, EventBody, TrackSummary},
    queue::CHORUS,
    settings::{GroupSettings, QueueOrder, SettingsPatch},
    state::GroupState,
};
use crate::error::{ApiError, ErrorCode};

const HOST: &str = "u_host";
const GUEST: &str = "u_guest";
const OTHER: &str = "u_other";

fn track(id: &str) -> TrackSummary {
    TrackSummary {
        id: id.into(),
        title: format!("Song {id}"),
        artist: "A".into(),
        album: "B".into(),
        duration_ms: 180_000,
    }
}

/// A room of three with a clock (ms) that stamps the events it applies.
struct Room {
    state: GroupState,
    clock: i64,
    next_id: u32,
}

impl Room {
    fn new() -> Self {
        let created = Event {
            seq: 1,
            body: EventBody::GroupCreated {
                name: "Friday".into(),
                host: HOST.into(),
                host_name: "Host".into(),
                settings: GroupSettings::default(),
            },
            actor: Some(HOST.into()),
            client_msg_id: None,
            ts: 1_000_000,
        };
        let mut room = Self {
            state: GroupState::from_events("g", "ABCDEF", [created]).unwrap(),
            clock: 1_000_000,
            next_id: 0,
        };
        for user in [GUEST, OTHER] {
            room.run(
                user,
                Command::Join {
                    display_name: user.into(),
                },
            );
        }
        room
    }

    fn try_run(&mut self, actor: &str, command: Command) -> Result<Vec<EventBody>, ApiError> {
        self.next_id += 1;
        let connections = HashMap::new();
        let ctx = Context {
            actor,
            online_members: self.state.members.len(),
            connections: &connections,
            new_entry_id: format!("e_{}", self.next_id),
            recommended_for: None,
            now: self.clock,
        };
        let events = decide(&self.state, &command, &ctx)?;
        self.apply(&events);
        Ok(events)
    }

    fn run(&mut self, actor: &str, command: Command) -> Vec<EventBody> {
        self.try_run(actor, command).unwrap()
    }

    fn apply(&mut self, bodies: &[EventBody]) {
        for body in bodies {
            let seq = self.state.seq + 1;
            self.state.apply(&Event {
                seq,
                body: body.clone(),
                actor: None,
                client_msg_id: None,
                ts: self.clock,
            });
        }
    }

    /// Adds a track as the host; its entry id.
    fn add(&mut self, id: &str) -> String {
        self.run(HOST, Command::AddTrack { track: track(id) });
        format!("e_{}", self.next_id)
    }

    fn playing(&self) -> Option<&str> {
        self.state
            .now_playing
            .as_ref()
            .map(|now| now.entry.track.id.as_str())
    }

    fn position(&self) -> u32 {
        self.state
            .now_playing
            .as_ref()
            .unwrap()
            .position_at(self.clock)
    }

    fn settings(&mut self, patch: SettingsPatch) {
        self.run(HOST, Command::UpdateSettings(patch));
    }
}

fn code(result: Result<Vec<EventBody>, ApiError>) -> ErrorCode {
    result.unwrap_err().code
}

#[test]
fn play_runs_through_the_queue_into_the_history() {
    let mut room = Room::new();
    assert_eq!(
        code(room.try_run(HOST, Command::Play { entry_id: None })),
        ErrorCode::NothingToPlay
    );
    let a = room.add("a");
    room.add("b");
    let events = room.run(HOST, Command::Play { entry_id: None });
    assert_eq!(
        events,
        vec![EventBody::PlaybackAdvanced {
            finished: None,
            started: Some(a.clone()),
            reason: AdvanceReason::Started
        }]
    );
    assert_eq!(room.playing(), Some("a"));
    assert_eq!(
        room.state.playlist.len(),
        1,
        "the entry playing left the upcoming list"
    );
    assert!(
        room.run(HOST, Command::Play { entry_id: None }).is_empty(),
        "already playing"
    );

    room.clock += 180_000;
    room.apply(&track_ended(&room.state, &a));
    assert_eq!(room.playing(), Some("b"));
    assert_eq!(room.position(), 0);
    let played = &room.state.history[0];
    assert_eq!(
        (played.track.id.as_str(), played.reason),
        ("a", AdvanceReason::Ended)
    );
    assert_eq!(played.ended_at - played.started_at, 180_000);
    // A stale clock (it fired for `a` after someone moved on) changes nothing.
    assert!(track_ended(&room.state, &a).is_empty());

    room.run(HOST, Command::Next);
    assert_eq!(room.playing(), None, "the queue ran out");
    assert_eq!(room.state.history.len(), 2);
    assert_eq!(room.state.history[1].reason, AdvanceReason::Next);
    assert_eq!(
        code(room.try_run(HOST, Command::Next)),
        ErrorCode::NothingToPlay
    );
}

#[test]
fn pause_resume_and_seek_keep_one_position() {
    let mut room = Room::new();
    room.add("a");
    room.run(HOST, Command::Play { entry_id: None });
    room.clock += 30_000;
    assert_eq!(room.position(), 30_000);
    room.run(HOST, Command::Pause);
    room.clock += 60_000;
    assert_eq!(
        room.position(),
        30_000,
        "paused: the clock does not move it"
    );
    assert!(room.run(HOST, Command::Pause).is_empty(), "already paused");
    assert_eq!(
        room.run(HOST, Command::Play { entry_id: None }),
        vec![EventBody::PlaybackResumed {
            position_ms: 30_000
        }]
    );
    room.clock += 5_000;
    assert_eq!(room.position(), 35_000);
    room.run(
        HOST,
        Command::Seek {
            position_ms: 170_000,
        },
    );
    room.clock += 1_000;
    assert_eq!(room.position(), 171_000);
    let now = room.state.now_playing.as_ref().unwrap();
    assert_eq!(now.ends_at(), Some(room.clock + 9_000));
    assert_eq!(
        code(room.try_run(
            HOST,
            Command::Seek {
                position_ms: 180_000
            }
        )),
        ErrorCode::InvalidField
    );
}

#[test]
fn only_the_host_controls_playback_and_guests_skip_by_vote() {
    let mut room = Room::new();
    let a = room.add("a");
    let b = room.add("b");
    for command in [
        Command::Play { entry_id: None },
        Command::Pause,
        Command::Next,
        Command::Seek { position_ms: 1 },
        Command::Pin {
            entry_id: b.clone(),
            pinned: true,
        },
    ] {
        assert_eq!(code(room.try_run(GUEST, command)), ErrorCode::NotAllowed);
    }
    room.run(HOST, Command::Play { entry_id: None });
    // Three online members at 0.5: two votes skip the track playing.
    let first = room.run(
        GUEST,
        Command::SkipVote {
            entry_id: a.clone(),
        },
    );
    assert_eq!(first.len(), 1);
    assert_eq!(room.playing(), Some("a"));
    let second = room.run(
        OTHER,
        Command::SkipVote {
            entry_id: a.clone(),
        },
    );
    assert!(matches!(second[1], EventBody::TrackSkipped { .. }));
    assert_eq!(
        second[2],
        EventBody::PlaybackAdvanced {
            finished: Some(a),
            started: Some(b.clone()),
            reason: AdvanceReason::Skipped
        }
    );
    assert_eq!(room.playing(), Some("b"));
    assert!(room
        .state
        .now_playing
        .as_ref()
        .unwrap()
        .entry
        .skip_votes
        .is_empty());
    // The entry playing is voted on like any other, but not removed or moved.
    room.run(
        GUEST,
        Command::Vote {
            entry_id: b.clone(),
            value: 1,
        },
    );
    assert_eq!(room.state.now_playing.as_ref().unwrap().entry.score(), 1);
    assert_eq!(
        code(room.try_run(HOST, Command::RemoveTrack { entry_id: b })),
        ErrorCode::InvalidField
    );
}

#[test]
fn pins_come_first_and_votes_order_the_rest_when_set() {
    let mut room = Room::new();
    let a = room.add("a");
    let b = room.add("b");
    let c = room.add("c");
    room.run(
        GUEST,
        Command::Vote {
            entry_id: c.clone(),
            value: 1,
        },
    );
    let order =
        |room: &Room| -> Vec<String> { room.state.up_next().map(|e| e.entry_id.clone()).collect() };
    assert_eq!(
        order(&room),
        vec![a.clone(), b.clone(), c.clone()],
        "added order by default"
    );
    room.settings(SettingsPatch {
        queue_order: Some(QueueOrder::Votes),
        ..Default::default()
    });
    assert_eq!(order(&room), vec![c.clone(), a.clone(), b.clone()]);
    room.run(
        HOST,
        Command::Pin {
            entry_id: b.clone(),
            pinned: true,
        },
    );
    assert_eq!(order(&room), vec![b.clone(), c.clone(), a.clone()]);
    room.run(HOST, Command::Play { entry_id: None });
    assert_eq!(room.playing(), Some("b"));
    room.run(HOST, Command::Next);
    assert_eq!(room.playing(), Some("c"));
    // Playing a chosen entry jumps the queue.
    room.run(HOST, Command::Play { entry_id: Some(a) });
    assert_eq!(room.playing(), Some("a"));
}

#[test]
fn tracks_do_not_repeat_within_the_window() {
    let mut room = Room::new();
    room.settings(SettingsPatch {
        no_repeat_window: Some(2),
        ..Default::default()
    });
    room.add("a");
    room.run(HOST, Command::Play { entry_id: None });
    let again = || Command::AddTrack { track: track("a") };
    assert_eq!(
        code(room.try_run(HOST, again())),
        ErrorCode::DuplicateTrack,
        "playing now"
    );
    room.run(HOST, Command::Next);
    assert_eq!(code(room.try_run(HOST, again())), ErrorCode::RecentlyPlayed);
    for id in ["b", "c", "d"] {
        room.add(id);
        room.run(HOST, Command::Next);
    }
    // History a, b, c with d playing: the last two played are b and c.
    room.run(HOST, again());
}

#[test]
fn auto_fill_tops_up_the_queue_and_restarts_a_room_that_ran_dry() {
    let mut room = Room::new();
    let picks: Vec<(TrackSummary, Option<String>)> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|id| (track(id), Some(GUEST.to_string())))
        .collect();
    let mut ids = 0;
    let mut new_id = || {
        ids += 1;
        format!("fill_{ids}")
    };
    assert!(
        auto_fill(&room.state, &picks, &mut new_id).is_empty(),
        "off by default"
    );
    room.settings(SettingsPatch {
        auto_fill: Some(true),
        auto_fill_min: Some(3),
        ..Default::default()
    });
    room.add("b");
    let filled = auto_fill(&room.state, &picks, &mut new_id);
    room.apply(&filled);
    let added: Vec<(&str, &str)> = room
        .state
        .playlist
        .iter()
        .map(|e| (e.track.id.as_str(), e.added_by.as_str()))
        .collect();
    assert_eq!(
        added,
        vec![("b", HOST), ("a", CHORUS), ("c", CHORUS)],
        "skips what is queued"
    );
    assert_eq!(
        room.state.playlist[1].for_member, GUEST,
        "counts for whom it was picked"
    );
    assert!(
        auto_fill(&room.state, &picks, &mut new_id).is_empty(),
        "full enough"
    );

    // Play everything out: the room ran dry, and auto-fill starts the music again.
    room.run(HOST, Command::Play { entry_id: None });
    for _ in 0..3 {
        room.run(HOST, Command::Next);
    }
    assert_eq!(room.playing(), None);
    let filled = auto_fill(&room.state, &picks, &mut new_id);
    room.apply(&filled);
    assert_eq!(
        room.playing(),
        Some("d"),
        "a, b, c played: d and e are left"
    );
    assert_eq!(room.state.playlist.len(), 1);
}

#[test]
fn the_room_follows_the_spotify_app_and_ignores_stale_reports() {
    let mut room = Room::new();
    let a = room.add("a");
    room.add("b");
    room.run(HOST, Command::Play { entry_id: None });
    room.clock += 10_000;
    // Paused in the app, then seeked there while paused: the room stays paused.
    room.apply(&device_position(&room.state, &a, false, 12_000));
    assert!(!room.state.now_playing.as_ref().unwrap().playing);
    let seeked = device_position(&room.state, &a, false, 60_000);
    assert_eq!(
        seeked,
        vec![EventBody::PlaybackSeeked {
            position_ms: 60_000
        }]
    );
    room.apply(&seeked);
    assert!(!room.state.now_playing.as_ref().unwrap().playing);
    assert_eq!(room.position(), 60_000);
    // Resumed in the app.
    room.apply(&device_position(&room.state, &a, true, 61_000));
    assert!(room.state.now_playing.as_ref().unwrap().playing);
    // Skipped in the app: the room moves on; a second report about `a` is stale.
    room.apply(&device_moved_on(&room.state, &a));
    assert_eq!(room.playing(), Some("b"));
    assert!(device_moved_on(&room.state, &a).is_empty());
    assert!(device_position(&room.state, &a, false, 0).is_empty());
}
