//! Deciding what a member's operation does to a group: validation against the current state
//! (permissions, ids, duplicates, limits) and the events that record the change. Pure, so every
//! rule is tested without sockets or storage.

use super::{
    events::{AdvanceReason, EventBody, LeaveReason, TrackSummary},
    queue::CHORUS,
    settings::{skip_votes_needed, Admission, SettingsPatch},
    state::{GroupState, TrackPlace},
};
use std::collections::HashMap;

use crate::error::{ApiError, ErrorCode};

/// Playlist entries at most.
pub const MAX_PLAYLIST: usize = 500;
/// Join requests waiting for the host at most.
pub const MAX_PENDING: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Join {
        display_name: String,
    },
    Leave,
    AddTrack {
        track: TrackSummary,
    },
    RemoveTrack {
        entry_id: String,
    },
    MoveTrack {
        entry_id: String,
        to_index: usize,
    },
    Vote {
        entry_id: String,
        value: i8,
    },
    SkipVote {
        entry_id: String,
    },
    Kick {
        user_id: String,
    },
    Admit {
        user_id: String,
    },
    Decline {
        user_id: String,
    },
    SetHost {
        user_id: String,
    },
    UpdateSettings(SettingsPatch),
    /// Start (the given upcoming entry, else the next), or resume when paused.
    Play {
        entry_id: Option<String>,
    },
    Pause,
    /// The entry playing goes to the history and the next one plays.
    Next,
    Seek {
        position_ms: u32,
    },
    Pin {
        entry_id: String,
        pinned: bool,
    },
    /// Play the room on this Spotify Connect device (id, name) of the acting host's account
    /// (checked with Spotify before), or `None`: listen-along only.
    SetPlaybackTarget {
        device: Option<(String, String)>,
    },
}

/// Who is acting, and what of the live session the rules need.
pub struct Context<'a> {
    pub actor: &'a str,
    /// Members with at least one open socket (skip votes are counted against them).
    pub online_members: usize,
    /// Open sockets per user (a leaving host hands over to someone who is here).
    pub connections: &'a HashMap<String, usize>,
    /// A fresh entry id, used if the command adds a track.
    pub new_entry_id: String,
    /// If the command adds a track from the room's current recommendations: the member it was
    /// recommended for.
    pub recommended_for: Option<String>,
    /// Milliseconds since the epoch (the position of the track playing is read at this time).
    pub now: i64,
}

/// The events `command` produces, in order; empty when it changes nothing (a repeated vote).
pub fn decide(
    state: &GroupState,
    command: &Command,
    ctx: &Context<'_>,
) -> Result<Vec<EventBody>, ApiError> {
    let actor = ctx.actor;
    if let Command::Join { display_name } = command {
        return join(state, actor, display_name);
    }
    if !state.is_member(actor) {
        return Err(ApiError::new(
            ErrorCode::NotAMember,
            "you are not a member of this group; join it with its code first",
        ));
    }
    let is_host = state.host == actor;
    match command {
        Command::Join { .. } => unreachable!("handled above"),
        Command::Leave => Ok(leave(state, actor, LeaveReason::Left, ctx.connections)),
        Command::AddTrack { track } => {
            if !is_host && !state.settings.guest_controls {
                return Err(not_allowed(
                    "only the host adds tracks while guest controls are off",
                ));
            }
            match state.has_track(&track.id) {
                Some(TrackPlace::Queued) => {
                    return Err(ApiError::new(
                        ErrorCode::DuplicateTrack,
                        format!("{} is already in the playlist", track.title),
                    ))
                }
                Some(TrackPlace::Playing) => {
                    return Err(ApiError::new(
                        ErrorCode::DuplicateTrack,
                        format!("{} is playing now", track.title),
                    ))
                }
                Some(TrackPlace::RecentlyPlayed) => {
                    return Err(ApiError::new(
                        ErrorCode::RecentlyPlayed,
                        format!(
                            "{} played within the last {} tracks",
                            track.title, state.settings.no_repeat_window
                        ),
                    ))
                }
                None => {}
            }
            if state.playlist.len() >= MAX_PLAYLIST {
                return Err(ApiError::new(
                    ErrorCode::PlaylistFull,
                    format!("the playlist holds at most {MAX_PLAYLIST} entries"),
                ));
            }
            Ok(vec![EventBody::TrackAdded {
                entry_id: ctx.new_entry_id.clone(),
                track: track.clone(),
                added_by: actor.to_string(),
                recommended_for: ctx.recommended_for.clone(),
            }])
        }
        Command::RemoveTrack { entry_id } => {
            may_edit_entry(state, actor, entry_id)?;
            Ok(vec![EventBody::TrackRemoved {
                entry_id: entry_id.clone(),
            }])
        }
        Command::MoveTrack { entry_id, to_index } => {
            let from = may_edit_entry(state, actor, entry_id)?;
            if *to_index >= state.playlist.len() {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    format!(
                        "to_index must be below the playlist's length ({})",
                        state.playlist.len()
                    ),
                ));
            }
            if from == *to_index {
                return Ok(Vec::new());
            }
            Ok(vec![EventBody::TrackMoved {
                entry_id: entry_id.clone(),
                from_index: from,
                to_index: *to_index,
            }])
        }
        Command::Vote { entry_id, value } => {
            if !(-1..=1).contains(value) {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    "value must be 1, 0 or -1",
                ));
            }
            let entry = any_entry(state, entry_id)?;
            let current = entry.votes.get(actor).copied().unwrap_or(0);
            if current == *value {
                return Ok(Vec::new());
            }
            Ok(vec![EventBody::VoteCast {
                entry_id: entry_id.clone(),
                user_id: actor.to_string(),
                value: *value,
            }])
        }
        Command::SkipVote { entry_id } => {
            let entry = any_entry(state, entry_id)?;
            if entry.skip_votes.contains(actor) {
                return Err(ApiError::new(
                    ErrorCode::AlreadyVoted,
                    "you already asked to skip this entry",
                ));
            }
            let votes = entry.skip_votes.len() as u32 + 1;
            let needed = skip_votes_needed(state.settings.skip_threshold, ctx.online_members);
            let mut events = vec![EventBody::SkipVoteCast {
                entry_id: entry_id.clone(),
                user_id: actor.to_string(),
                votes,
                needed,
            }];
            if votes >= needed {
                events.push(EventBody::TrackSkipped {
                    entry_id: entry_id.clone(),
                    votes,
                    needed,
                });
                if state.is_playing(entry_id) {
                    events.push(advance(state, AdvanceReason::Skipped, None));
                }
            }
            Ok(events)
        }
        Command::Admit { user_id } => {
            host_only(is_host, "let people in")?;
            admit(state, user_id, true)
        }
        Command::Decline { user_id } => {
            host_only(is_host, "turn people away")?;
            admit(state, user_id, false)
        }
        Command::Kick { user_id } => {
            host_only(is_host, "kick members")?;
            if user_id == actor {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    "the host cannot kick themselves; hand over host or leave",
                ));
            }
            member(state, user_id)?;
            Ok(leave(state, user_id, LeaveReason::Kicked, ctx.connections))
        }
        Command::SetHost { user_id } => {
            host_only(is_host, "hand over host")?;
            member(state, user_id)?;
            if user_id == actor {
                return Ok(Vec::new());
            }
            Ok(vec![EventBody::HostChanged {
                user_id: user_id.clone(),
            }])
        }
        Command::UpdateSettings(patch) => {
            host_only(is_host, "change settings")?;
            let settings = state
                .settings
                .patched(patch)
                .map_err(|e| ApiError::new(ErrorCode::InvalidField, e))?;
            if (settings.max_members as usize) < state.members.len() {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    format!(
                        "settings.max_members cannot be below the current {} members",
                        state.members.len()
                    ),
                ));
            }
            if settings == state.settings {
                return Ok(Vec::new());
            }
            Ok(vec![EventBody::SettingsChanged { settings }])
        }
        Command::Play { entry_id } => {
            host_only(is_host, "start playback")?;
            play(state, entry_id.as_deref(), ctx.now)
        }
        Command::Pause => {
            host_only(is_host, "pause playback")?;
            let now = playing_now(state)?;
            if !now.playing {
                return Ok(Vec::new());
            }
            Ok(vec![EventBody::PlaybackPaused {
                position_ms: now.position_at(ctx.now),
            }])
        }
        Command::Next => {
            host_only(is_host, "skip to the next track")?;
            if state.now_playing.is_none() && state.playlist.is_empty() {
                return Err(nothing_to_play());
            }
            Ok(vec![advance(state, AdvanceReason::Next, None)])
        }
        Command::Seek { position_ms } => {
            host_only(is_host, "seek")?;
            let now = playing_now(state)?;
            if *position_ms >= now.entry.track.duration_ms {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    format!(
                        "position_ms must be below the track's length ({} ms)",
                        now.entry.track.duration_ms
                    ),
                ));
            }
            Ok(vec![EventBody::PlaybackSeeked {
                position_ms: *position_ms,
            }])
        }
        Command::SetPlaybackTarget { device } => {
            host_only(is_host, "choose where the room plays")?;
            let target = device
                .as_ref()
                .map(|(id, name)| super::events::PlaybackTarget {
                    user_id: actor.to_string(),
                    device_id: id.clone(),
                    device_name: name.clone(),
                });
            if target == state.playback_target {
                return Ok(Vec::new());
            }
            Ok(vec![EventBody::PlaybackTargetChanged { target }])
        }
        Command::Pin { entry_id, pinned } => {
            host_only(is_host, "pin entries")?;
            let index = entry(state, entry_id)?;
            if state.playlist[index].pinned == *pinned {
                return Ok(Vec::new());
            }
            Ok(vec![EventBody::TrackPinned {
                entry_id: entry_id.clone(),
                pinned: *pinned,
            }])
        }
    }
}

/// The track playing reached its end (the listen-along clock, or the host's device). `entry_id`
/// is the entry the caller saw playing: a stale report (it already changed) does nothing.
pub fn track_ended(state: &GroupState, entry_id: &str) -> Vec<EventBody> {
    if !state.is_playing(entry_id) {
        return Vec::new();
    }
    vec![advance(state, AdvanceReason::Ended, None)]
}

/// The host's Spotify app left the room's track (a skip there): the room moves on too. Stale
/// reports (the room moved on already) do nothing.
pub fn device_moved_on(state: &GroupState, entry_id: &str) -> Vec<EventBody> {
    if !state.is_playing(entry_id) {
        return Vec::new();
    }
    vec![advance(state, AdvanceReason::Next, None)]
}

/// The host paused, resumed or seeked in the Spotify app: the room follows.
pub fn device_position(
    state: &GroupState,
    entry_id: &str,
    playing: bool,
    position_ms: u32,
) -> Vec<EventBody> {
    let Some(now) = state
        .now_playing
        .as_ref()
        .filter(|_| state.is_playing(entry_id))
    else {
        return Vec::new();
    };
    let position_ms = position_ms.min(now.entry.track.duration_ms.saturating_sub(1));
    vec![match (now.playing, playing) {
        (true, false) => EventBody::PlaybackPaused { position_ms },
        (false, true) => EventBody::PlaybackResumed { position_ms },
        _ => EventBody::PlaybackSeeked { position_ms },
    }]
}

/// Auto-fill: the room's recommendations (best first, each with the member it is for) that may
/// still be added, as many as the queue is short of `settings.auto_fill_min`. Empty when
/// auto-fill is off or the queue is long enough.
pub fn auto_fill(
    state: &GroupState,
    picks: &[(TrackSummary, Option<String>)],
    mut new_entry_id: impl FnMut() -> String,
) -> Vec<EventBody> {
    let settings = &state.settings;
    if !settings.auto_fill {
        return Vec::new();
    }
    let room = MAX_PLAYLIST.saturating_sub(state.playlist.len());
    let short = (settings.auto_fill_min as usize).saturating_sub(state.playlist.len());
    let mut events: Vec<EventBody> = picks
        .iter()
        .filter(|(track, _)| state.has_track(&track.id).is_none())
        .take(short.min(room))
        .map(|(track, for_member)| EventBody::TrackAdded {
            entry_id: new_entry_id(),
            track: track.clone(),
            added_by: CHORUS.to_string(),
            recommended_for: for_member.clone(),
        })
        .collect();
    // The queue ran dry while playing (something played, nothing plays): keep the music going
    // with the first track added, as the room would have had it been filled in time.
    let ran_dry = state.now_playing.is_none() && !state.history.is_empty();
    if let (true, Some(EventBody::TrackAdded { entry_id, .. })) = (ran_dry, events.first()) {
        // Entries the host queued come before what auto-fill adds.
        let started = state
            .up_next()
            .next()
            .map_or(entry_id.clone(), |e| e.entry_id.clone());
        events.push(EventBody::PlaybackAdvanced {
            finished: None,
            started: Some(started),
            reason: AdvanceReason::Started,
        });
    }
    events
}

/// The entry playing moves to the history and `started` (else the next in play order) plays;
/// with nothing left, nothing plays.
fn advance(state: &GroupState, reason: AdvanceReason, started: Option<&str>) -> EventBody {
    let finished = state
        .now_playing
        .as_ref()
        .map(|now| now.entry.entry_id.clone());
    let started = started
        .map(str::to_string)
        .or_else(|| state.up_next().next().map(|e| e.entry_id.clone()));
    EventBody::PlaybackAdvanced {
        finished,
        started,
        reason,
    }
}

fn play(state: &GroupState, entry_id: Option<&str>, now: i64) -> Result<Vec<EventBody>, ApiError> {
    if let Some(id) = entry_id {
        if !state.is_playing(id) {
            entry(state, id)?;
            let reason = if state.now_playing.is_some() {
                AdvanceReason::Next
            } else {
                AdvanceReason::Started
            };
            return Ok(vec![advance(state, reason, Some(id))]);
        }
    }
    match &state.now_playing {
        Some(playing) if playing.playing => Ok(Vec::new()),
        Some(paused) => Ok(vec![EventBody::PlaybackResumed {
            position_ms: paused.position_at(now),
        }]),
        None if state.playlist.is_empty() => Err(nothing_to_play()),
        None => Ok(vec![advance(state, AdvanceReason::Started, None)]),
    }
}

fn playing_now(state: &GroupState) -> Result<&super::queue::NowPlaying, ApiError> {
    state.now_playing.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NothingToPlay,
            "nothing is playing; start playback first",
        )
    })
}

fn nothing_to_play() -> ApiError {
    ApiError::new(
        ErrorCode::NothingToPlay,
        "nothing is playing and the queue is empty; add a track first",
    )
}

fn join(state: &GroupState, actor: &str, display_name: &str) -> Result<Vec<EventBody>, ApiError> {
    if state.is_member(actor) {
        return Ok(Vec::new());
    }
    if state.banned.contains(actor) {
        return Err(not_allowed("the host removed you from this group"));
    }
    let hostless = !state.is_member(&state.host);
    match state.settings.admission {
        Admission::Locked if !hostless => {
            return Err(not_allowed(
                "the host has locked this room; nobody new can join",
            ))
        }
        // A room nobody runs has nobody to approve: the newcomer comes in (and runs it).
        Admission::Approval if !hostless => {
            if state.is_pending(actor) {
                return Ok(Vec::new());
            }
            if state.pending.len() >= MAX_PENDING {
                return Err(ApiError::new(
                    ErrorCode::GroupFull,
                    format!("{MAX_PENDING} people are already waiting to be let in; try later"),
                ));
            }
            return Ok(vec![EventBody::JoinRequested {
                user_id: actor.to_string(),
                display_name: display_name.to_string(),
            }]);
        }
        _ => {}
    }
    ensure_room_for_one_more(state)?;
    let mut events = vec![EventBody::MemberJoined {
        user_id: actor.to_string(),
        display_name: display_name.to_string(),
    }];
    // The host left an empty room: whoever comes in next runs it (the old host, rejoining,
    // is a member like any other if someone took over meanwhile).
    if hostless {
        events.push(EventBody::HostChanged {
            user_id: actor.to_string(),
        });
    }
    Ok(events)
}

fn ensure_room_for_one_more(state: &GroupState) -> Result<(), ApiError> {
    if state.members.len() >= state.settings.max_members as usize {
        return Err(ApiError::new(
            ErrorCode::GroupFull,
            format!("the group is full ({} members)", state.settings.max_members),
        ));
    }
    Ok(())
}

/// The host lets a waiting user in, or turns them away for good.
fn admit(state: &GroupState, user_id: &str, welcome: bool) -> Result<Vec<EventBody>, ApiError> {
    let Some(request) = state.pending.iter().find(|p| p.user_id == user_id) else {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{user_id} is not waiting to join"),
        ));
    };
    if !welcome {
        return Ok(vec![EventBody::JoinDeclined {
            user_id: user_id.to_string(),
        }]);
    }
    ensure_room_for_one_more(state)?;
    Ok(vec![EventBody::MemberJoined {
        user_id: user_id.to_string(),
        display_name: request.display_name.clone(),
    }])
}

/// A member leaving; if it is the host, the longest-standing member who is online takes over
/// (else the longest-standing member). A host who leaves an empty room leaves it hostless; the
/// next member to join takes over then ([`join`]).
fn leave(
    state: &GroupState,
    user: &str,
    reason: LeaveReason,
    connections: &HashMap<String, usize>,
) -> Vec<EventBody> {
    let mut events = vec![EventBody::MemberLeft {
        user_id: user.to_string(),
        reason,
    }];
    if state.host == user {
        let others = || state.members.iter().filter(|m| m.user_id != user);
        let online =
            |m: &&super::state::Member| connections.get(&m.user_id).is_some_and(|&n| n > 0);
        if let Some(next) = others().find(online).or_else(|| others().next()) {
            events.push(EventBody::HostChanged {
                user_id: next.user_id.clone(),
            });
        }
    }
    events
}

/// An upcoming entry's index.
fn entry(state: &GroupState, entry_id: &str) -> Result<usize, ApiError> {
    if state.is_playing(entry_id) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("entry {entry_id:?} is playing now; move on with next or a skip vote"),
        ));
    }
    state
        .entry_index(entry_id)
        .ok_or_else(|| entry_not_found(entry_id))
}

/// An upcoming entry or the one playing (votes and skip votes count for both).
fn any_entry<'a>(
    state: &'a GroupState,
    entry_id: &str,
) -> Result<&'a super::state::Entry, ApiError> {
    state
        .find_entry(entry_id)
        .ok_or_else(|| entry_not_found(entry_id))
}

fn entry_not_found(entry_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::EntryNotFound,
        format!("the playlist has no entry {entry_id:?}"),
    )
}

/// The entry's index if `actor` may remove or move it: the host always; others their own
/// entries while guest controls are on.
fn may_edit_entry(state: &GroupState, actor: &str, entry_id: &str) -> Result<usize, ApiError> {
    let index = entry(state, entry_id)?;
    if state.host == actor {
        return Ok(index);
    }
    if !state.settings.guest_controls {
        return Err(not_allowed(
            "only the host edits the playlist while guest controls are off",
        ));
    }
    if state.playlist[index].added_by != actor {
        return Err(not_allowed(
            "only the host can remove or move someone else's entry",
        ));
    }
    Ok(index)
}

fn member(state: &GroupState, user_id: &str) -> Result<(), ApiError> {
    if state.is_member(user_id) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("user_id: {user_id:?} is not a member of this group"),
        ))
    }
}

fn host_only(is_host: bool, what: &str) -> Result<(), ApiError> {
    if is_host {
        Ok(())
    } else {
        Err(not_allowed(&format!("only the host may {what}")))
    }
}

fn not_allowed(message: &str) -> ApiError {
    ApiError::new(ErrorCode::NotAllowed, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::{events::Event, settings::GroupSettings};

    const HOST: &str = "u_host";
    const GUEST: &str = "u_guest";
    const OTHER: &str = "u_other";

    fn track(id: &str) -> TrackSummary {
        TrackSummary {
            id: id.into(),
            title: format!("Song {id}"),
            artist: "A".into(),
            album: "B".into(),
            duration_ms: 1,
        }
    }

    /// Applies a command's events as the actor would, failing the test on an error.
    fn run(state: &mut GroupState, actor: &str, command: Command) -> Vec<EventBody> {
        try_run(state, actor, command).unwrap()
    }

    fn try_run(
        state: &mut GroupState,
        actor: &str,
        command: Command,
    ) -> Result<Vec<EventBody>, ApiError> {
        let online = state.members.len();
        let connections = HashMap::new();
        let ctx = Context {
            actor,
            online_members: online,
            connections: &connections,
            new_entry_id: format!("e_{}", state.seq + 1),
            recommended_for: None,
            now: state.seq,
        };
        let events = decide(state, &command, &ctx)?;
        for body in &events {
            let seq = state.seq + 1;
            state.apply(&Event {
                seq,
                body: body.clone(),
                actor: Some(actor.into()),
                client_msg_id: None,
                ts: seq,
            });
        }
        Ok(events)
    }

    fn group() -> GroupState {
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
            ts: 1,
        };
        let mut state = GroupState::from_events("g", "ABCDEF", [created]).unwrap();
        for user in [GUEST, OTHER] {
            run(
                &mut state,
                user,
                Command::Join {
                    display_name: user.into(),
                },
            );
        }
        state
    }

    fn code(result: Result<Vec<EventBody>, ApiError>) -> ErrorCode {
        result.expect_err("the command should fail").code
    }

    #[test]
    fn members_add_and_edit_their_own_entries() {
        let mut g = group();
        run(&mut g, GUEST, Command::AddTrack { track: track("t1") });
        run(&mut g, OTHER, Command::AddTrack { track: track("t2") });
        let guest_entry = g.playlist[0].entry_id.clone();
        let other_entry = g.playlist[1].entry_id.clone();
        assert_eq!(
            code(try_run(
                &mut g,
                GUEST,
                Command::RemoveTrack {
                    entry_id: other_entry.clone()
                }
            )),
            ErrorCode::NotAllowed
        );
        run(
            &mut g,
            GUEST,
            Command::MoveTrack {
                entry_id: guest_entry.clone(),
                to_index: 1,
            },
        );
        assert_eq!(g.playlist[1].entry_id, guest_entry);
        // The host may edit anyone's entry.
        run(
            &mut g,
            HOST,
            Command::RemoveTrack {
                entry_id: other_entry,
            },
        );
        assert_eq!(g.playlist.len(), 1);
    }

    #[test]
    fn duplicates_unknown_entries_and_bad_indices_are_refused() {
        let mut g = group();
        run(&mut g, GUEST, Command::AddTrack { track: track("t1") });
        assert_eq!(
            code(try_run(
                &mut g,
                OTHER,
                Command::AddTrack { track: track("t1") }
            )),
            ErrorCode::DuplicateTrack
        );
        assert_eq!(
            code(try_run(
                &mut g,
                GUEST,
                Command::Vote {
                    entry_id: "e_missing".into(),
                    value: 1
                }
            )),
            ErrorCode::EntryNotFound
        );
        let entry_id = g.playlist[0].entry_id.clone();
        assert_eq!(
            code(try_run(
                &mut g,
                HOST,
                Command::MoveTrack {
                    entry_id: entry_id.clone(),
                    to_index: 5
                }
            )),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(try_run(&mut g, GUEST, Command::Vote { entry_id, value: 2 })),
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn strangers_cannot_act_and_kicked_members_cannot_return() {
        let mut g = group();
        assert_eq!(
            code(try_run(
                &mut g,
                "u_stranger",
                Command::AddTrack { track: track("t") }
            )),
            ErrorCode::NotAMember
        );
        assert_eq!(
            code(try_run(
                &mut g,
                GUEST,
                Command::Kick {
                    user_id: OTHER.into()
                }
            )),
            ErrorCode::NotAllowed
        );
        run(
            &mut g,
            HOST,
            Command::Kick {
                user_id: OTHER.into(),
            },
        );
        assert!(!g.is_member(OTHER));
        assert_eq!(
            code(try_run(
                &mut g,
                OTHER,
                Command::Join {
                    display_name: "again".into()
                }
            )),
            ErrorCode::NotAllowed
        );
    }

    #[test]
    fn guest_controls_off_leaves_only_votes_to_guests() {
        let mut g = group();
        run(&mut g, HOST, Command::AddTrack { track: track("t1") });
        run(
            &mut g,
            HOST,
            Command::UpdateSettings(SettingsPatch {
                guest_controls: Some(false),
                ..Default::default()
            }),
        );
        assert_eq!(
            code(try_run(
                &mut g,
                GUEST,
                Command::AddTrack { track: track("t2") }
            )),
            ErrorCode::NotAllowed
        );
        let entry_id = g.playlist[0].entry_id.clone();
        assert_eq!(
            run(&mut g, GUEST, Command::Vote { entry_id, value: 1 }).len(),
            1
        );
        assert_eq!(
            code(try_run(
                &mut g,
                GUEST,
                Command::UpdateSettings(SettingsPatch::default())
            )),
            ErrorCode::NotAllowed
        );
    }

    #[test]
    fn repeated_votes_change_nothing_and_zero_withdraws() {
        let mut g = group();
        run(&mut g, HOST, Command::AddTrack { track: track("t1") });
        let entry_id = g.playlist[0].entry_id.clone();
        let vote = |value| Command::Vote {
            entry_id: entry_id.clone(),
            value,
        };
        assert_eq!(run(&mut g, GUEST, vote(1)).len(), 1);
        assert!(run(&mut g, GUEST, vote(1)).is_empty());
        assert_eq!(g.playlist[0].votes.get(GUEST), Some(&1));
        run(&mut g, GUEST, vote(0));
        assert!(g.playlist[0].votes.is_empty());
    }

    #[test]
    fn skip_votes_skip_at_the_threshold() {
        let mut g = group();
        run(&mut g, HOST, Command::AddTrack { track: track("t1") });
        let entry_id = g.playlist[0].entry_id.clone();
        let skip = || Command::SkipVote {
            entry_id: entry_id.clone(),
        };
        // Three online members at threshold 0.5 need two votes.
        assert_eq!(run(&mut g, GUEST, skip()).len(), 1);
        assert_eq!(
            code(try_run(&mut g, GUEST, skip())),
            ErrorCode::AlreadyVoted
        );
        let events = run(&mut g, OTHER, skip());
        assert!(matches!(
            events[1],
            EventBody::TrackSkipped {
                votes: 2,
                needed: 2,
                ..
            }
        ));
        assert!(g.playlist.is_empty());
    }

    #[test]
    fn a_leaving_host_hands_over_to_the_longest_member() {
        let mut g = group();
        run(&mut g, HOST, Command::Leave);
        assert_eq!(g.host, GUEST);
        assert!(!g.is_member(HOST));
        assert_eq!(
            code(try_run(
                &mut g,
                GUEST,
                Command::UpdateSettings(SettingsPatch {
                    max_members: Some(1),
                    ..Default::default()
                })
            )),
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn a_leaving_host_prefers_a_member_who_is_online() {
        let g = group();
        // GUEST joined first, but only OTHER is here.
        let connections = HashMap::from([(OTHER.to_string(), 1)]);
        let ctx = Context {
            actor: HOST,
            online_members: 1,
            connections: &connections,
            new_entry_id: "e".into(),
            recommended_for: None,
            now: 0,
        };
        let events = decide(&g, &Command::Leave, &ctx).unwrap();
        assert_eq!(
            events[1],
            EventBody::HostChanged {
                user_id: OTHER.into()
            }
        );
    }

    #[test]
    fn a_room_its_host_left_empty_is_run_by_the_next_to_join() {
        const NEW: &str = "u_new";
        let mut g = group();
        run(&mut g, GUEST, Command::Leave);
        run(&mut g, OTHER, Command::Leave);
        run(&mut g, HOST, Command::Leave);
        assert!(g.members.is_empty());
        let join = |name: &str| Command::Join {
            display_name: name.into(),
        };
        assert_eq!(run(&mut g, NEW, join("New")).len(), 2);
        assert_eq!(g.host, NEW);
        // The old host comes back as a member, not as host.
        assert_eq!(run(&mut g, HOST, join("Host")).len(), 1);
        assert_eq!(g.host, NEW);
        let kick = Command::Kick {
            user_id: NEW.into(),
        };
        assert_eq!(code(try_run(&mut g, HOST, kick)), ErrorCode::NotAllowed);
    }

    /// Runs `command` on both states as the actor would (with a client id), returning nothing.
    fn run_with_id(states: [&mut GroupState; 2], actor: &str, command: Command, id: &str) {
        let ctx_entry = format!("e_{}", states[0].seq + 1);
        let connections = HashMap::new();
        let ctx = Context {
            actor,
            online_members: states[0].members.len(),
            connections: &connections,
            new_entry_id: ctx_entry,
            recommended_for: None,
            now: 0,
        };
        let Ok(events) = decide(states[0], &command, &ctx) else {
            return;
        };
        for state in states {
            for body in &events {
                let seq = state.seq + 1;
                state.apply(&Event {
                    seq,
                    body: body.clone(),
                    actor: Some(actor.into()),
                    client_msg_id: Some(id.into()),
                    ts: seq,
                });
            }
        }
    }

    #[test]
    fn a_snapshot_folds_on_exactly_like_the_whole_log() {
        let mut whole = group();
        run(&mut whole, HOST, Command::AddTrack { track: track("t1") });
        run(
            &mut whole,
            GUEST,
            Command::Vote {
                entry_id: "e_4".into(),
                value: 1,
            },
        );
        run(
            &mut whole,
            HOST,
            Command::Kick {
                user_id: OTHER.into(),
            },
        );
        let json = serde_json::to_string(&whole.to_snapshot()).unwrap();
        let mut resumed =
            GroupState::from_snapshot("g", "ABCDEF", serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(resumed.to_snapshot(), whole.to_snapshot());
        let steps = [
            (GUEST, Command::AddTrack { track: track("t2") }, "a"),
            (
                HOST,
                Command::SkipVote {
                    entry_id: "e_4".into(),
                },
                "b",
            ),
            (GUEST, Command::Leave, "c"),
            (
                OTHER,
                Command::Join {
                    display_name: "Back".into(),
                },
                "d",
            ),
        ];
        for (actor, command, id) in steps {
            run_with_id([&mut whole, &mut resumed], actor, command, id);
        }
        assert_eq!(resumed.to_snapshot(), whole.to_snapshot());
        let online = HashMap::new();
        assert_eq!(
            serde_json::to_value(resumed.view(&online, 0)).unwrap(),
            serde_json::to_value(whole.view(&online, 0)).unwrap()
        );
        assert_eq!(resumed.applied_op(GUEST, "a"), whole.applied_op(GUEST, "a"));
        assert!(resumed.banned.contains(OTHER), "bans survive a snapshot");
        let mut future = whole.to_snapshot();
        future.version = 99;
        assert!(GroupState::from_snapshot("g", "ABCDEF", future).is_err());
    }

    #[test]
    fn admission_approval_and_lock() {
        const NEW: &str = "u_new";
        let join = || Command::Join {
            display_name: "New".into(),
        };
        let set = |admission| {
            Command::UpdateSettings(SettingsPatch {
                admission: Some(admission),
                ..Default::default()
            })
        };
        let mut g = group();
        run(&mut g, HOST, set(Admission::Approval));
        let asked = run(&mut g, NEW, join());
        assert!(matches!(asked[..], [EventBody::JoinRequested { .. }]));
        assert!(g.is_pending(NEW) && !g.is_member(NEW));
        assert!(
            run(&mut g, NEW, join()).is_empty(),
            "asking twice is harmless"
        );
        let admit = Command::Admit {
            user_id: NEW.into(),
        };
        assert_eq!(
            code(try_run(&mut g, GUEST, admit.clone())),
            ErrorCode::NotAllowed
        );
        run(&mut g, HOST, admit.clone());
        assert!(g.is_member(NEW) && g.pending.is_empty());
        assert_eq!(code(try_run(&mut g, HOST, admit)), ErrorCode::InvalidField);

        run(&mut g, NEW, Command::Leave);
        run(&mut g, NEW, join());
        run(
            &mut g,
            HOST,
            Command::Decline {
                user_id: NEW.into(),
            },
        );
        assert_eq!(code(try_run(&mut g, NEW, join())), ErrorCode::NotAllowed);

        let mut g = group();
        run(&mut g, HOST, set(Admission::Locked));
        assert_eq!(code(try_run(&mut g, NEW, join())), ErrorCode::NotAllowed);
        // A room nobody runs lets the next one in, whatever the setting.
        for user in [GUEST, OTHER, HOST] {
            run(&mut g, user, Command::Leave);
        }
        assert_eq!(run(&mut g, NEW, join()).len(), 2);
        assert_eq!(g.host, NEW);
    }

    #[test]
    fn full_groups_and_playlists_refuse_more() {
        let mut g = group();
        run(
            &mut g,
            HOST,
            Command::UpdateSettings(SettingsPatch {
                max_members: Some(3),
                ..Default::default()
            }),
        );
        assert_eq!(
            code(try_run(
                &mut g,
                "u_fourth",
                Command::Join {
                    display_name: "x".into()
                }
            )),
            ErrorCode::GroupFull
        );
        for i in 0..MAX_PLAYLIST {
            run(
                &mut g,
                HOST,
                Command::AddTrack {
                    track: track(&format!("t{i}")),
                },
            );
        }
        assert_eq!(
            code(try_run(
                &mut g,
                HOST,
                Command::AddTrack {
                    track: track("last")
                }
            )),
            ErrorCode::PlaylistFull
        );
    }
}
