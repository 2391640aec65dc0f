//! Property tests for the two places where arbitrary input meets the room model: the socket
//! protocol parser (anything a client can send gets a frame or a catalogued error, never a
//! panic) and the fold (whatever the operations and their order, the state is the fold of the
//! log, from the start or from any snapshot, and the room's invariants hold).

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use serde_json::Value;

use super::{
    commands::{auto_fill, decide, track_ended, Command, Context, MAX_PENDING, MAX_PLAYLIST},
    events::{Event, EventBody, TrackSummary},
    protocol::{ClientFrame, CLIENT_TYPES},
    settings::{Admission, Aggregation, GroupSettings, QueueOrder, SettingsPatch},
    state::GroupState,
};
use crate::error::ErrorCode;

/// What a frame that is not a valid operation may be answered with.
const FRAME_ERRORS: &[ErrorCode] = &[
    ErrorCode::MalformedJson,
    ErrorCode::InvalidField,
    ErrorCode::MissingField,
    ErrorCode::UnknownField,
    ErrorCode::UnknownType,
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec!["\u{0}", "\u{202E}", "e_1", "u_1", "like", "average"])
            .prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects shaped like frames: a real or unknown `type` and a mix of real and made-up fields.
fn frame_like() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "group_id",
        "last_seq",
        "client_msg_id",
        "track_id",
        "entry_id",
        "to_index",
        "value",
        "user_id",
        "settings",
        "kind",
        "request_id",
        "extra",
    ]);
    let kind = prop_oneof![
        prop::sample::select(CLIENT_TYPES.to_vec()).prop_map(Value::from),
        json_leaf(),
    ];
    (
        kind,
        prop::collection::vec((field, json_value()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(kind, fields, typed)| {
            let mut object = serde_json::Map::new();
            if typed {
                object.insert("type".into(), kind);
            }
            for (name, value) in fields {
                object.insert(name.into(), value);
            }
            Value::Object(object)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_text_parses_or_gets_a_catalogued_error(text in ".{0,200}") {
        if let Err(err) = ClientFrame::parse(&text) {
            prop_assert!(FRAME_ERRORS.contains(&err.code), "{:?}: {}", err.code, err.message);
        }
    }

    #[test]
    fn any_json_parses_or_gets_a_catalogued_error(value in prop_oneof![json_value(), frame_like()]) {
        match ClientFrame::parse(&value.to_string()) {
            Ok(frame) => {
                // Whatever parsed carries no NUL and a well-formed client_msg_id.
                prop_assert!(!value.to_string().contains("\\u0000"));
                if let Some(id) = frame.client_msg_id() {
                    prop_assert!(!id.is_empty() && id.chars().count() <= 64);
                }
            }
            Err(err) => prop_assert!(FRAME_ERRORS.contains(&err.code), "{:?}: {}", err.code, err.message),
        }
    }
}

const USERS: [&str; 5] = ["u_a", "u_b", "u_c", "u_d", "u_e"];

fn track(i: u8) -> TrackSummary {
    TrackSummary {
        id: format!("t{i}"),
        title: format!("Track {i}"),
        artist: "Artist".into(),
        album: "Album".into(),
        duration_ms: 1000,
    }
}

/// An operation by one of five people, with references into the room that may or may not
/// exist when it runs (entry ids are "e_<seq>", as the actor makes them).
fn operation() -> impl Strategy<Value = (usize, Command)> {
    // The first user (the room's creator) acts more often, so host-only operations happen.
    let user = prop_oneof![2 => Just(0usize), 3 => 0..USERS.len()];
    let entry = (2i64..60).prop_map(|seq| format!("e_{seq}"));
    let entry_id = entry.clone();
    let someone = (0..USERS.len()).prop_map(|u| USERS[u].to_string());
    let command = prop_oneof![
        3 => Just(Command::Join { display_name: "Someone".into() }),
        1 => Just(Command::Leave),
        4 => (0u8..12).prop_map(|i| Command::AddTrack { track: track(i) }),
        1 => entry.clone().prop_map(|entry_id| Command::RemoveTrack { entry_id }),
        2 => (entry.clone(), 0usize..8).prop_map(|(entry_id, to_index)| Command::MoveTrack { entry_id, to_index }),
        4 => (entry.clone(), -1i8..=1).prop_map(|(entry_id, value)| Command::Vote { entry_id, value }),
        2 => entry_id.prop_map(|entry_id| Command::SkipVote { entry_id }),
        1 => someone.clone().prop_map(|user_id| Command::Kick { user_id }),
        1 => someone.clone().prop_map(|user_id| Command::SetHost { user_id }),
        3 => someone.clone().prop_map(|user_id| Command::Admit { user_id }),
        3 => prop::sample::select(vec![Admission::Open, Admission::Approval, Admission::Locked])
            .prop_map(|admission| Command::UpdateSettings(SettingsPatch { admission: Some(admission), ..Default::default() })),
        1 => someone.prop_map(|user_id| Command::Decline { user_id }),
        2 => prop::option::of(entry.clone()).prop_map(|entry_id| Command::Play { entry_id }),
        1 => Just(Command::Pause),
        2 => Just(Command::Next),
        1 => (0u32..1200).prop_map(|position_ms| Command::Seek { position_ms }),
        1 => (entry.clone(), any::<bool>()).prop_map(|(entry_id, pinned)| Command::Pin { entry_id, pinned }),
        1 => (prop::option::of(prop::sample::select(vec![QueueOrder::Added, QueueOrder::Votes])),
              prop::option::of(0u32..4), prop::option::of(any::<bool>()))
            .prop_map(|(queue_order, no_repeat_window, auto_fill)| {
                Command::UpdateSettings(SettingsPatch { queue_order, no_repeat_window, auto_fill, ..Default::default() })
            }),
        1 => (prop::option::of(2u32..6), prop::option::of(any::<bool>()),
              prop::option::of(prop::sample::select(vec![Admission::Open, Admission::Approval, Admission::Locked])),
              prop::option::of(prop::sample::select(vec![Aggregation::Average, Aggregation::Fair])))
            .prop_map(|(max_members, guest_controls, admission, aggregation)| {
                Command::UpdateSettings(SettingsPatch { max_members, guest_controls, admission, aggregation, ..Default::default() })
            }),
    ];
    (user, command)
}

fn created() -> Event {
    Event {
        seq: 1,
        body: EventBody::GroupCreated {
            name: "Room".into(),
            host: USERS[0].into(),
            host_name: "Host".into(),
            settings: GroupSettings::default(),
        },
        actor: Some(USERS[0].into()),
        client_msg_id: None,
        ts: 1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn the_live_state_is_the_fold_of_its_log_from_any_snapshot(
        ops in prop::collection::vec(operation(), 0..80),
        cut in any::<prop::sample::Index>(),
        online in prop::collection::hash_set(0..USERS.len(), 0..USERS.len()),
    ) {
        let connections: HashMap<String, usize> =
            online.iter().map(|&u| (USERS[u].to_string(), 1)).collect();
        let mut live = GroupState::from_events("g", "ABCDEF", [created()]).unwrap();
        let mut log = vec![created()];
        for (i, (user, command)) in ops.into_iter().enumerate() {
            let ctx = Context {
                actor: USERS[user],
                online_members: live.members.iter().filter(|m| connections.contains_key(&m.user_id)).count(),
                connections: &connections,
                new_entry_id: format!("e_{}", live.seq + 1),
                recommended_for: (user % 2 == 0).then(|| USERS[(user + 1) % USERS.len()].to_string()),
                now: live.seq + 1,
            };
            // Now and then the server's own changes: the track playing ends, auto-fill tops up.
            let server = match i % 9 {
                4 => live.now_playing.as_ref().map(|now| track_ended(&live, &now.entry.entry_id.clone())),
                7 => {
                    let picks: Vec<_> = (0u8..6).map(|t| (track(t), Some(USERS[t as usize % 5].to_string()))).collect();
                    let mut next = live.seq;
                    Some(auto_fill(&live, &picks, || { next += 1; format!("e_{next}") }))
                }
                _ => None,
            };
            let bodies = match server {
                Some(bodies) => bodies,
                None => match decide(&live, &command, &ctx) {
                    Ok(bodies) => bodies,
                    Err(_) => continue,
                },
            };
            for body in bodies {
                let event = Event {
                    seq: live.seq + 1,
                    body,
                    actor: Some(USERS[user].into()),
                    client_msg_id: Some(format!("op{i}")),
                    ts: live.seq + 1,
                };
                live.apply(&event);
                log.push(event);
            }
            // The room's invariants hold after every operation.
            prop_assert!(live.playlist.len() <= MAX_PLAYLIST);
            prop_assert!(live.pending.len() <= MAX_PENDING);
            let playing = live.now_playing.iter().map(|now| &now.entry);
            let tracks: HashSet<&str> = live.playlist.iter().chain(playing).map(|e| e.track.id.as_str()).collect();
            prop_assert_eq!(tracks.len(), live.playlist.len() + live.now_playing.iter().count(), "a track at most once, queued or playing");
            if let Some(now) = &live.now_playing {
                prop_assert!(now.position_ms <= now.entry.track.duration_ms);
            }
            let members: HashSet<&str> = live.members.iter().map(|m| m.user_id.as_str()).collect();
            prop_assert_eq!(members.len(), live.members.len(), "a member at most once");
            prop_assert!(live.members.is_empty() || live.is_member(&live.host), "a room with members has its host among them");
            prop_assert!(live.members.len() <= live.settings.max_members as usize || live.members.len() <= 5);
            for entry in &live.playlist {
                prop_assert!(entry.votes.keys().all(|u| live.is_member(u)), "only members' votes count");
            }
            prop_assert!(live.pending.iter().all(|p| !live.is_member(&p.user_id) && !live.banned.contains(&p.user_id)));
        }
        // Seqs are gap-free.
        for (i, event) in log.iter().enumerate() {
            prop_assert_eq!(event.seq, i as i64 + 1);
        }
        // From the start…
        let replayed = GroupState::from_events("g", "ABCDEF", log.clone()).unwrap();
        prop_assert_eq!(replayed.to_snapshot(), live.to_snapshot());
        // …and from a snapshot taken anywhere, through its JSON.
        let at = cut.index(log.len());
        let prefix = GroupState::from_events("g", "ABCDEF", log[..=at].iter().cloned()).unwrap();
        let json = serde_json::to_string(&prefix.to_snapshot()).unwrap();
        let mut resumed = GroupState::from_snapshot("g", "ABCDEF", serde_json::from_str(&json).unwrap()).unwrap();
        for event in &log[at + 1..] {
            resumed.apply(event);
        }
        prop_assert_eq!(resumed.to_snapshot(), live.to_snapshot());
        let nobody = HashMap::new();
        prop_assert_eq!(
            serde_json::to_value(resumed.view(&nobody, live.seq)).unwrap(),
            serde_json::to_value(live.view(&nobody, live.seq)).unwrap()
        );
    }
}
