//! A group's state as the fold of its event log. Folding is total: an event that no longer makes
//! sense (an entry removed meanwhile) changes nothing, so a log always replays.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::queue::Entry;
use super::{
    events::{AdvanceReason, Event, EventBody, LeaveReason, PlaybackTarget, TrackSummary},
    queue::{play_order, recently_played, NowPlaying, Played, HISTORY_KEPT},
    settings::{skip_votes_needed, GroupSettings},
};

/// Played tracks a view shows, newest last.
pub const HISTORY_SHOWN: usize = 50;

/// Client operation ids remembered per group for de-duplicating retried operations.
const REMEMBERED_OPS: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub display_name: String,
    pub joined_at: i64,
}

#[derive(Debug, Clone)]
pub struct GroupState {
    pub id: String,
    pub join_code: String,
    pub name: String,
    pub host: String,
    pub settings: GroupSettings,
    /// In joining order.
    pub members: Vec<Member>,
    /// Kicked (and declined) users may not join again.
    pub banned: HashSet<String>,
    /// Join requests waiting for the host, oldest first.
    pub pending: Vec<Member>,
    /// The upcoming entries, in the order built (see [`Self::up_next`] for the play order).
    pub playlist: Vec<Entry>,
    pub now_playing: Option<NowPlaying>,
    /// Played entries, oldest first, at most [`HISTORY_KEPT`].
    pub history: VecDeque<Played>,
    /// Where the room plays besides listen-along: a member's Spotify Connect device.
    pub playback_target: Option<PlaybackTarget>,
    pub seq: i64,
    pub created_at: i64,
    recent_ops: HashMap<(String, String), i64>,
    recent_order: VecDeque<(String, String)>,
}

impl GroupState {
    /// The state after `events`, which must start with the group's creation.
    pub fn from_events(
        id: &str,
        join_code: &str,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<Self, String> {
        let mut events = events.into_iter();
        let first = events.next().ok_or("the group has no events")?;
        let EventBody::GroupCreated { .. } = &first.body else {
            return Err(format!(
                "the first event is {:?}, not group_created",
                first.body
            ));
        };
        let mut state = Self {
            id: id.to_string(),
            join_code: join_code.to_string(),
            name: String::new(),
            host: String::new(),
            settings: GroupSettings::default(),
            members: Vec::new(),
            banned: HashSet::new(),
            pending: Vec::new(),
            playlist: Vec::new(),
            now_playing: None,
            history: VecDeque::new(),
            playback_target: None,
            seq: 0,
            created_at: first.ts,
            recent_ops: HashMap::new(),
            recent_order: VecDeque::new(),
        };
        state.apply(&first);
        for event in events {
            state.apply(&event);
        }
        Ok(state)
    }

    /// The state as a stored snapshot: what [`Self::from_snapshot`] needs to carry on folding
    /// exactly as if it had folded the whole log.
    pub fn to_snapshot(&self) -> Snapshot {
        let mut banned: Vec<String> = self.banned.iter().cloned().collect();
        banned.sort();
        Snapshot {
            version: Snapshot::VERSION,
            name: self.name.clone(),
            host: self.host.clone(),
            settings: self.settings.clone(),
            members: self.members.clone(),
            banned,
            pending: self.pending.clone(),
            playlist: self.playlist.clone(),
            now_playing: self.now_playing.clone(),
            history: self.history.iter().cloned().collect(),
            playback_target: self.playback_target.clone(),
            seq: self.seq,
            created_at: self.created_at,
            recent_ops: self
                .recent_order
                .iter()
                .map(|key| (key.0.clone(), key.1.clone(), self.recent_ops[key]))
                .collect(),
        }
    }

    /// The state a snapshot describes (then fold the events after `snapshot.seq`).
    pub fn from_snapshot(id: &str, join_code: &str, snapshot: Snapshot) -> Result<Self, String> {
        if snapshot.version != Snapshot::VERSION {
            return Err(format!(
                "snapshot version {} (this server reads {})",
                snapshot.version,
                Snapshot::VERSION
            ));
        }
        let mut state = Self {
            id: id.to_string(),
            join_code: join_code.to_string(),
            name: snapshot.name,
            host: snapshot.host,
            settings: snapshot.settings,
            members: snapshot.members,
            banned: snapshot.banned.into_iter().collect(),
            pending: snapshot.pending,
            playlist: snapshot
                .playlist
                .into_iter()
                .map(|mut entry| {
                    // Snapshots from before session fairness: the adder, as the fold would say.
                    if entry.for_member.is_empty() {
                        entry.for_member = entry.added_by.clone();
                    }
                    entry
                })
                .collect(),
            now_playing: snapshot.now_playing,
            history: snapshot.history.into(),
            playback_target: snapshot.playback_target,
            seq: snapshot.seq,
            created_at: snapshot.created_at,
            recent_ops: HashMap::new(),
            recent_order: VecDeque::new(),
        };
        for (actor, id, seq) in snapshot.recent_ops {
            state.remember_op(&actor, &id, seq);
        }
        Ok(state)
    }

    pub fn apply(&mut self, event: &Event) {
        self.seq = event.seq;
        if let (Some(actor), Some(id)) = (&event.actor, &event.client_msg_id) {
            self.remember_op(actor, id, event.seq);
        }
        match &event.body {
            EventBody::GroupCreated {
                name,
                host,
                host_name,
                settings,
            } => {
                self.name = name.clone();
                self.host = host.clone();
                self.settings = settings.clone();
                self.add_member(host, host_name, event.ts);
            }
            EventBody::MemberJoined {
                user_id,
                display_name,
            } => {
                self.pending.retain(|p| &p.user_id != user_id);
                self.add_member(user_id, display_name, event.ts)
            }
            EventBody::JoinRequested {
                user_id,
                display_name,
            } => {
                if !self.is_member(user_id) && !self.is_pending(user_id) {
                    self.pending.push(Member {
                        user_id: user_id.clone(),
                        display_name: display_name.clone(),
                        joined_at: event.ts,
                    });
                }
            }
            EventBody::JoinDeclined { user_id } => {
                self.pending.retain(|p| &p.user_id != user_id);
                self.banned.insert(user_id.clone());
            }
            EventBody::MemberLeft { user_id, reason } => {
                self.members.retain(|m| &m.user_id != user_id);
                let playing = self.now_playing.as_mut().map(|now| &mut now.entry);
                for entry in self.playlist.iter_mut().chain(playing) {
                    entry.votes.remove(user_id);
                    entry.skip_votes.remove(user_id);
                }
                if *reason == LeaveReason::Kicked {
                    self.banned.insert(user_id.clone());
                }
                // Their Spotify account no longer plays for the room.
                if self
                    .playback_target
                    .as_ref()
                    .is_some_and(|t| &t.user_id == user_id)
                {
                    self.playback_target = None;
                }
            }
            EventBody::TrackAdded {
                entry_id,
                track,
                added_by,
                recommended_for,
            } => self.playlist.push(Entry {
                entry_id: entry_id.clone(),
                track: track.clone(),
                added_by: added_by.clone(),
                for_member: recommended_for.clone().unwrap_or_else(|| added_by.clone()),
                added_at: event.ts,
                votes: BTreeMap::new(),
                skip_votes: BTreeSet::new(),
                pinned: false,
            }),
            EventBody::TrackRemoved { entry_id } | EventBody::TrackSkipped { entry_id, .. } => {
                self.playlist.retain(|e| &e.entry_id != entry_id);
            }
            EventBody::TrackMoved {
                entry_id, to_index, ..
            } => {
                if let Some(from) = self.entry_index(entry_id) {
                    let entry = self.playlist.remove(from);
                    let to = (*to_index).min(self.playlist.len());
                    self.playlist.insert(to, entry);
                }
            }
            EventBody::VoteCast {
                entry_id,
                user_id,
                value,
            } => {
                if let Some(entry) = self.entry_mut(entry_id) {
                    if *value == 0 {
                        entry.votes.remove(user_id);
                    } else {
                        entry.votes.insert(user_id.clone(), *value);
                    }
                }
            }
            EventBody::SkipVoteCast {
                entry_id, user_id, ..
            } => {
                if let Some(entry) = self.entry_mut(entry_id) {
                    entry.skip_votes.insert(user_id.clone());
                }
            }
            EventBody::HostChanged { user_id } => self.host = user_id.clone(),
            EventBody::PlaybackAdvanced {
                finished,
                started,
                reason,
            } => self.advance(finished.as_deref(), started.as_deref(), *reason, event.ts),
            EventBody::PlaybackPaused { position_ms } => {
                self.set_position(*position_ms, false, event.ts)
            }
            EventBody::PlaybackResumed { position_ms } => {
                self.set_position(*position_ms, true, event.ts)
            }
            EventBody::PlaybackSeeked { position_ms } => {
                if let Some(playing) = self.now_playing.as_ref().map(|now| now.playing) {
                    self.set_position(*position_ms, playing, event.ts);
                }
            }
            EventBody::PlaybackTargetChanged { target } => self.playback_target = target.clone(),
            EventBody::TrackPinned { entry_id, pinned } => {
                if let Some(i) = self.entry_index(entry_id) {
                    self.playlist[i].pinned = *pinned;
                }
            }
            EventBody::SettingsChanged { settings } => self.settings = settings.clone(),
        }
    }

    /// The entry playing goes to the history; `started` (an upcoming entry) plays from 0.
    fn advance(
        &mut self,
        finished: Option<&str>,
        started: Option<&str>,
        reason: AdvanceReason,
        at: i64,
    ) {
        if let Some(now) = self.now_playing.take() {
            if Some(now.entry.entry_id.as_str()) == finished {
                let entry = now.entry;
                self.history.push_back(Played {
                    entry_id: entry.entry_id,
                    track: entry.track,
                    added_by: entry.added_by,
                    for_member: entry.for_member,
                    started_at: now.started_at,
                    ended_at: at,
                    reason,
                });
                if self.history.len() > HISTORY_KEPT {
                    self.history.pop_front();
                }
            } else {
                // Not the entry the event names: it keeps playing.
                self.now_playing = Some(now);
            }
        }
        let Some(index) = started.and_then(|id| self.entry_index(id)) else {
            return;
        };
        if self.now_playing.is_some() {
            return;
        }
        let mut entry = self.playlist.remove(index);
        entry.skip_votes.clear();
        self.now_playing = Some(NowPlaying {
            entry,
            playing: true,
            position_ms: 0,
            since: at,
            started_at: at,
        });
    }

    fn set_position(&mut self, position_ms: u32, playing: bool, at: i64) {
        if let Some(now) = &mut self.now_playing {
            now.position_ms = position_ms.min(now.entry.track.duration_ms);
            now.playing = playing;
            now.since = at;
        }
    }

    /// The upcoming entries in play order.
    pub fn up_next(&self) -> impl Iterator<Item = &Entry> {
        play_order(&self.playlist, self.settings.queue_order)
            .into_iter()
            .map(|i| &self.playlist[i])
    }

    /// The tracks that may not be added or recommended now: queued, playing, or played within
    /// the no-repeat window.
    pub fn taken_tracks(&self) -> impl Iterator<Item = &str> {
        let window = self.settings.no_repeat_window as usize;
        let playing = self
            .now_playing
            .iter()
            .map(|now| now.entry.track.id.as_str());
        let played = self.history.iter().rev().take(window);
        self.playlist
            .iter()
            .map(|e| e.track.id.as_str())
            .chain(playing)
            .chain(played.map(|p| p.track.id.as_str()))
    }

    /// Whether the track is queued, playing, or played within the no-repeat window.
    pub fn has_track(&self, track_id: &str) -> Option<TrackPlace> {
        if self.playlist.iter().any(|e| e.track.id == track_id) {
            Some(TrackPlace::Queued)
        } else if self
            .now_playing
            .as_ref()
            .is_some_and(|now| now.entry.track.id == track_id)
        {
            Some(TrackPlace::Playing)
        } else if recently_played(&self.history, track_id, self.settings.no_repeat_window) {
            Some(TrackPlace::RecentlyPlayed)
        } else {
            None
        }
    }

    fn add_member(&mut self, user_id: &str, display_name: &str, at: i64) {
        if !self.is_member(user_id) {
            self.members.push(Member {
                user_id: user_id.to_string(),
                display_name: display_name.to_string(),
                joined_at: at,
            });
        }
    }

    fn remember_op(&mut self, actor: &str, id: &str, seq: i64) {
        let key = (actor.to_string(), id.to_string());
        if self.recent_ops.insert(key.clone(), seq).is_none() {
            self.recent_order.push_back(key);
            if self.recent_order.len() > REMEMBERED_OPS {
                if let Some(old) = self.recent_order.pop_front() {
                    self.recent_ops.remove(&old);
                }
            }
        }
    }

    /// The seq of the event an earlier operation with this client id produced.
    pub fn applied_op(&self, actor: &str, client_msg_id: &str) -> Option<i64> {
        self.recent_ops
            .get(&(actor.to_string(), client_msg_id.to_string()))
            .copied()
    }

    pub fn is_member(&self, user_id: &str) -> bool {
        self.members.iter().any(|m| m.user_id == user_id)
    }

    /// Each current member's share (0–1) of the session so far: the entries queued, playing and
    /// played that count for them ([`Entry::for_member`]) over all of those. Empty while there
    /// are none.
    pub fn session_shares(&self) -> HashMap<String, f64> {
        let mut counts: HashMap<String, f64> = HashMap::new();
        let playing = self.now_playing.iter().map(|now| &now.entry.for_member);
        let played = self.history.iter().map(|p| &p.for_member);
        let mut total = 0.0;
        for member in self
            .playlist
            .iter()
            .map(|e| &e.for_member)
            .chain(playing)
            .chain(played)
        {
            total += 1.0;
            if self.is_member(member) {
                *counts.entry(member.clone()).or_default() += 1.0;
            }
        }
        counts.values_mut().for_each(|c| *c /= total);
        counts
    }

    pub fn is_pending(&self, user_id: &str) -> bool {
        self.pending.iter().any(|p| p.user_id == user_id)
    }

    pub fn member(&self, user_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.user_id == user_id)
    }

    pub fn entry_index(&self, entry_id: &str) -> Option<usize> {
        self.playlist.iter().position(|e| e.entry_id == entry_id)
    }

    /// An upcoming entry or the one playing.
    pub fn find_entry(&self, entry_id: &str) -> Option<&Entry> {
        let playing = self.now_playing.iter().map(|now| &now.entry);
        self.playlist
            .iter()
            .chain(playing)
            .find(|e| e.entry_id == entry_id)
    }

    pub fn is_playing(&self, entry_id: &str) -> bool {
        self.now_playing
            .as_ref()
            .is_some_and(|now| now.entry.entry_id == entry_id)
    }

    fn entry_mut(&mut self, entry_id: &str) -> Option<&mut Entry> {
        let playing = self.now_playing.as_mut().map(|now| &mut now.entry);
        self.playlist
            .iter_mut()
            .chain(playing)
            .find(|e| e.entry_id == entry_id)
    }

    /// What members see at `at` (ms since the epoch), with presence from the live session
    /// (`online[user] = sockets`).
    pub fn view(&self, online: &HashMap<String, usize>, at: i64) -> GroupView {
        let online_members = self
            .members
            .iter()
            .filter(|m| online.get(&m.user_id).copied().unwrap_or(0) > 0)
            .count();
        let skip_needed = skip_votes_needed(self.settings.skip_threshold, online_members);
        GroupView {
            group_id: self.id.clone(),
            name: self.name.clone(),
            join_code: self.join_code.clone(),
            host: self.host.clone(),
            settings: self.settings.clone(),
            members: self
                .members
                .iter()
                .map(|m| {
                    let sockets = online.get(&m.user_id).copied().unwrap_or(0);
                    MemberView {
                        user_id: m.user_id.clone(),
                        display_name: m.display_name.clone(),
                        role: if m.user_id == self.host {
                            "host"
                        } else {
                            "member"
                        },
                        online: sockets > 0,
                        connections: sockets,
                        joined_at: m.joined_at,
                    }
                })
                .collect(),
            playlist: self
                .playlist
                .iter()
                .map(|e| EntryView::of(e, skip_needed))
                .collect(),
            up_next: self.up_next().map(|e| e.entry_id.clone()).collect(),
            now_playing: self.now_playing.as_ref().map(|now| NowPlayingView {
                entry: EntryView::of(&now.entry, skip_needed),
                playing: now.playing,
                position_ms: now.position_at(at),
                started_at: now.started_at,
            }),
            history: self
                .history
                .iter()
                .skip(self.history.len().saturating_sub(HISTORY_SHOWN))
                .map(|p| PlayedView {
                    entry_id: p.entry_id.clone(),
                    track: p.track.clone(),
                    added_by: p.added_by.clone(),
                    started_at: p.started_at,
                    ended_at: p.ended_at,
                    reason: p.reason,
                })
                .collect(),
            playback_target: self.playback_target.clone(),
            playback_issue: None,
            pending: self
                .pending
                .iter()
                .map(|p| PendingView {
                    user_id: p.user_id.clone(),
                    display_name: p.display_name.clone(),
                    requested_at: p.joined_at,
                })
                .collect(),
            seq: self.seq,
            created_at: self.created_at,
        }
    }
}

/// A group's state at `seq`, stored every so often so that loading a group reads the snapshot
/// and the events after it rather than the whole log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub name: String,
    pub host: String,
    pub settings: GroupSettings,
    pub members: Vec<Member>,
    pub banned: Vec<String>,
    pub pending: Vec<Member>,
    pub playlist: Vec<Entry>,
    #[serde(default)]
    pub now_playing: Option<NowPlaying>,
    #[serde(default)]
    pub history: Vec<Played>,
    #[serde(default)]
    pub playback_target: Option<PlaybackTarget>,
    pub seq: i64,
    pub created_at: i64,
    /// `(actor, client_msg_id, seq)` oldest first: retried operations stay de-duplicated.
    pub recent_ops: Vec<(String, String, i64)>,
}

impl Snapshot {
    pub const VERSION: u32 = 1;
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupView {
    pub group_id: String,
    pub name: String,
    pub join_code: String,
    /// User id of the host.
    pub host: String,
    pub settings: GroupSettings,
    /// In joining order.
    pub members: Vec<MemberView>,
    /// The upcoming entries in the order built (added, moved); `up_next` gives the play order.
    pub playlist: Vec<EntryView>,
    /// The upcoming entries' ids in play order: pinned first, then by the room's `queue_order`.
    pub up_next: Vec<String>,
    /// The entry playing now (absent when nothing plays).
    pub now_playing: Option<NowPlayingView>,
    /// The latest played entries, oldest first (at most 50).
    pub history: Vec<PlayedView>,
    /// The Spotify Connect device the room plays on (absent: listen-along only).
    pub playback_target: Option<PlaybackTarget>,
    /// Why that device is not following the room right now (the room plays on in
    /// listen-along mode meanwhile).
    pub playback_issue: Option<PlaybackIssue>,
    /// People waiting for the host to let them in (admission `approval`), oldest first.
    pub pending: Vec<PendingView>,
    /// The seq of the last event folded into this view.
    pub seq: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingView {
    pub user_id: String,
    pub display_name: String,
    pub requested_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub display_name: String,
    /// `host` or `member`.
    pub role: &'static str,
    pub online: bool,
    /// Open sockets of this member in the group.
    pub connections: usize,
    pub joined_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntryView {
    pub entry_id: String,
    pub track: TrackSummary,
    pub added_by: String,
    pub added_at: i64,
    /// Sum of the votes.
    pub score: i64,
    /// Each voter's vote (1 or −1).
    pub votes: BTreeMap<String, i8>,
    /// Who asked to skip this entry.
    pub skip_votes: Vec<String>,
    /// Skip votes needed with the members online now.
    pub skip_needed: u32,
    /// Pinned by the host: plays before unpinned entries.
    pub pinned: bool,
}

impl EntryView {
    fn of(e: &Entry, skip_needed: u32) -> Self {
        Self {
            entry_id: e.entry_id.clone(),
            track: e.track.clone(),
            added_by: e.added_by.clone(),
            added_at: e.added_at,
            score: e.score(),
            votes: e.votes.clone(),
            skip_votes: e.skip_votes.iter().cloned().collect(),
            skip_needed,
            pinned: e.pinned,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NowPlayingView {
    pub entry: EntryView,
    /// False while paused.
    pub playing: bool,
    /// The position when this view was made; it moves on with the clock while `playing`.
    pub position_ms: u32,
    pub started_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlayedView {
    pub entry_id: String,
    pub track: TrackSummary,
    /// A member's id, or `chorus` for auto-fill.
    pub added_by: String,
    pub started_at: i64,
    pub ended_at: i64,
    pub reason: AdvanceReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlaybackIssue {
    /// An error code: `spotify_no_device`, `spotify_premium_required`, `spotify_reconnect`,
    /// `spotify_unavailable`…
    pub code: &'static str,
    pub message: String,
}

/// Read back from another process's news: the code is one of ours.
impl<'de> serde::Deserialize<'de> for PlaybackIssue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            code: String,
            message: String,
        }
        let wire = Wire::deserialize(deserializer)?;
        let code = crate::error::ErrorCode::parse(&wire.code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown code {:?}", wire.code)))?;
        Ok(PlaybackIssue {
            code: code.as_str(),
            message: wire.message,
        })
    }
}

/// Where a track already is in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackPlace {
    Queued,
    Playing,
    RecentlyPlayed,
}
