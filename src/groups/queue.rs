//! The room's queue: the upcoming entries, the one entry playing now with its position, and the
//! played history. Chorus owns this order (Spotify cannot remove or reorder its own queue); a
//! connected Spotify device only follows it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::{
    events::{AdvanceReason, TrackSummary},
    settings::QueueOrder,
};

/// Played tracks a room remembers (the longest no-repeat window).
pub const HISTORY_KEPT: usize = super::settings::MAX_NO_REPEAT_WINDOW as usize;

/// Who added an entry the server added on its own (auto-fill).
pub const CHORUS: &str = "chorus";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub entry_id: String,
    pub track: TrackSummary,
    pub added_by: String,
    /// The member this entry counts for in the session's fairness: whom it was recommended
    /// for, else who added it.
    #[serde(default)]
    pub for_member: String,
    pub added_at: i64,
    pub votes: BTreeMap<String, i8>,
    pub skip_votes: BTreeSet<String>,
    /// The host pinned it: it plays before unpinned entries whatever the votes say.
    #[serde(default)]
    pub pinned: bool,
}

impl Entry {
    /// Net votes.
    pub fn score(&self) -> i64 {
        self.votes.values().map(|&v| v as i64).sum()
    }
}

/// The entry playing now. Its position is `position_ms` at `since` (ms since the epoch), moving
/// on with the clock while `playing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NowPlaying {
    pub entry: Entry,
    pub playing: bool,
    pub position_ms: u32,
    pub since: i64,
    pub started_at: i64,
}

impl NowPlaying {
    /// The position at `now`, never past the track's end.
    pub fn position_at(&self, now: i64) -> u32 {
        let elapsed = if self.playing {
            (now - self.since).max(0)
        } else {
            0
        };
        (self.position_ms as i64 + elapsed).min(self.entry.track.duration_ms as i64) as u32
    }

    /// When the track ends if nothing changes (None while paused).
    pub fn ends_at(&self) -> Option<i64> {
        self.playing
            .then(|| self.since + self.entry.track.duration_ms as i64 - self.position_ms as i64)
    }
}

/// A track that has been played (or skipped), newest last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Played {
    pub entry_id: String,
    pub track: TrackSummary,
    pub added_by: String,
    pub for_member: String,
    pub started_at: i64,
    pub ended_at: i64,
    /// How it ended: `ended`, `next` (the host moved on) or `skipped` (skip votes).
    pub reason: AdvanceReason,
}

/// The upcoming entries' indices in play order: pinned entries first, then (`votes`) by net
/// votes, highest first; ties and `added` keep the playlist's order.
pub fn play_order(playlist: &[Entry], order: QueueOrder) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..playlist.len()).collect();
    // A stable sort, so equal keys keep the playlist's order.
    indices.sort_by_key(|&i| {
        let entry = &playlist[i];
        let votes = match order {
            QueueOrder::Added => 0,
            QueueOrder::Votes => -entry.score(),
        };
        (!entry.pinned, votes)
    });
    indices
}

/// Whether `track_id` played within the last `window` tracks of `history`.
pub fn recently_played(history: &VecDeque<Played>, track_id: &str, window: u32) -> bool {
    history
        .iter()
        .rev()
        .take(window as usize)
        .any(|p| p.track.id == track_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, votes: &[i8], pinned: bool) -> Entry {
        Entry {
            entry_id: id.into(),
            track: TrackSummary {
                id: format!("t_{id}"),
                title: id.into(),
                artist: "A".into(),
                album: "B".into(),
                duration_ms: 1_000,
            },
            added_by: "u".into(),
            for_member: "u".into(),
            added_at: 0,
            votes: votes
                .iter()
                .enumerate()
                .map(|(i, &v)| (format!("u{i}"), v))
                .collect(),
            skip_votes: BTreeSet::new(),
            pinned,
        }
    }

    #[test]
    fn pinned_entries_play_first_then_votes_or_the_playlist_order() {
        let playlist = vec![
            entry("a", &[], false),
            entry("b", &[1, 1], false),
            entry("c", &[-1], true),
            entry("d", &[1], false),
            entry("e", &[1], false),
        ];
        assert_eq!(
            play_order(&playlist, QueueOrder::Added),
            vec![2, 0, 1, 3, 4]
        );
        // Votes: b (+2), then d and e (+1, playlist order), a (0).
        assert_eq!(
            play_order(&playlist, QueueOrder::Votes),
            vec![2, 1, 3, 4, 0]
        );
    }

    #[test]
    fn the_position_moves_only_while_playing_and_stops_at_the_end() {
        let mut now = NowPlaying {
            entry: entry("a", &[], false),
            playing: true,
            position_ms: 200,
            since: 10_000,
            started_at: 9_800,
        };
        assert_eq!(now.position_at(10_300), 500);
        assert_eq!(
            now.position_at(9_000),
            200,
            "a clock behind `since` does not rewind"
        );
        assert_eq!(now.position_at(99_000), 1_000);
        assert_eq!(now.ends_at(), Some(10_800));
        now.playing = false;
        assert_eq!(now.position_at(10_300), 200);
        assert_eq!(now.ends_at(), None);
    }
}
