//! Per-group settings: chosen by the host at creation, changed later only by the host.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::aggregate::Strategy;

/// A fixed aggregation strategy, or `auto`: the group-aggregation bandit picks one per refresh
/// and learns from which lists members add tracks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Average,
    LeastMisery,
    MostPleasure,
    Fair,
    Auto,
}

impl Aggregation {
    /// The strategy when fixed; `None` for `auto`.
    pub fn fixed(self) -> Option<Strategy> {
        match self {
            Aggregation::Average => Some(Strategy::Average),
            Aggregation::LeastMisery => Some(Strategy::LeastMisery),
            Aggregation::MostPleasure => Some(Strategy::MostPleasure),
            Aggregation::Fair => Some(Strategy::Fair),
            Aggregation::Auto => None,
        }
    }
}

/// Who may come in with the join code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// Anyone with the code joins at once.
    #[default]
    Open,
    /// Anyone with the code asks; the host admits or declines (a declined user stays out).
    Approval,
    /// Nobody new comes in; members stay.
    Locked,
}

/// What plays next among the upcoming entries (pinned entries always come first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    /// The playlist's own order (as added and moved).
    #[default]
    Added,
    /// Highest net votes first; ties keep the playlist's order.
    Votes,
}

pub const DEFAULT_MAX_MEMBERS: u32 = 32;
pub const DEFAULT_NO_REPEAT_WINDOW: u32 = 50;
/// The longest no-repeat window: the played history a room keeps.
pub const MAX_NO_REPEAT_WINDOW: u32 = 500;
pub const DEFAULT_AUTO_FILL_MIN: u32 = 3;
pub const MAX_AUTO_FILL_MIN: u32 = 20;
/// A room can be configured up to this size; larger events belong to a broadcast product.
pub const MEMBERS_LIMIT: u32 = 500;
pub const DEFAULT_SKIP_THRESHOLD: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// Members at most, the host included (2–500).
    pub max_members: u32,
    /// Fraction of the online members whose skip votes skip a track (0 < t ≤ 1), capped at
    /// ⌈2√n⌉ votes so a large room does not need a majority of mostly idle listeners.
    pub skip_threshold: f64,
    /// How members' predicted ratings are combined into the group's recommendations:
    /// `average`, `least_misery`, `most_pleasure`, `fair`, or `auto` (a bandit chooses).
    pub aggregation: Aggregation,
    /// When on, members may add tracks and remove or move their own entries; when off only the
    /// host changes the playlist (everyone can still vote and skip-vote).
    pub guest_controls: bool,
    /// `open` (the code is enough), `approval` (the host admits each newcomer) or `locked`.
    #[serde(default)]
    pub admission: Admission,
    /// When on, `fair` favours the members the playlist so far has served least (see
    /// `GroupState::session_shares`); off, every list is fair on its own.
    #[serde(default = "on")]
    pub session_fairness: bool,
    /// `added` (the playlist's order) or `votes` (highest net votes plays next); the host's
    /// pinned entries come first either way.
    #[serde(default)]
    pub queue_order: QueueOrder,
    /// A track played within the last this many tracks cannot be added again (0: no limit).
    #[serde(default = "default_no_repeat_window")]
    pub no_repeat_window: u32,
    /// When on, the room's own recommendations top up the queue whenever fewer than
    /// `auto_fill_min` tracks are waiting (added by "Chorus").
    #[serde(default)]
    pub auto_fill: bool,
    /// Upcoming tracks auto-fill keeps (1–20).
    #[serde(default = "default_auto_fill_min")]
    pub auto_fill_min: u32,
}

fn on() -> bool {
    true
}

fn default_no_repeat_window() -> u32 {
    DEFAULT_NO_REPEAT_WINDOW
}

fn default_auto_fill_min() -> u32 {
    DEFAULT_AUTO_FILL_MIN
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            max_members: DEFAULT_MAX_MEMBERS,
            skip_threshold: DEFAULT_SKIP_THRESHOLD,
            aggregation: Aggregation::Fair,
            guest_controls: true,
            admission: Admission::Open,
            session_fairness: true,
            queue_order: QueueOrder::Added,
            no_repeat_window: DEFAULT_NO_REPEAT_WINDOW,
            auto_fill: false,
            auto_fill_min: DEFAULT_AUTO_FILL_MIN,
        }
    }
}

/// Settings as sent by a client: every field optional, unknown fields rejected.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub max_members: Option<u32>,
    pub skip_threshold: Option<f64>,
    pub aggregation: Option<Aggregation>,
    pub guest_controls: Option<bool>,
    pub admission: Option<Admission>,
    pub session_fairness: Option<bool>,
    pub queue_order: Option<QueueOrder>,
    pub no_repeat_window: Option<u32>,
    pub auto_fill: Option<bool>,
    pub auto_fill_min: Option<u32>,
}

impl GroupSettings {
    /// These settings with the patch applied, or which field is out of range.
    pub fn patched(&self, patch: &SettingsPatch) -> Result<Self, String> {
        let next = Self {
            max_members: patch.max_members.unwrap_or(self.max_members),
            skip_threshold: patch.skip_threshold.unwrap_or(self.skip_threshold),
            aggregation: patch.aggregation.unwrap_or(self.aggregation),
            guest_controls: patch.guest_controls.unwrap_or(self.guest_controls),
            admission: patch.admission.unwrap_or(self.admission),
            session_fairness: patch.session_fairness.unwrap_or(self.session_fairness),
            queue_order: patch.queue_order.unwrap_or(self.queue_order),
            no_repeat_window: patch.no_repeat_window.unwrap_or(self.no_repeat_window),
            auto_fill: patch.auto_fill.unwrap_or(self.auto_fill),
            auto_fill_min: patch.auto_fill_min.unwrap_or(self.auto_fill_min),
        };
        if !(2..=MEMBERS_LIMIT).contains(&next.max_members) {
            return Err(format!(
                "settings.max_members must be between 2 and {MEMBERS_LIMIT}"
            ));
        }
        if !(next.skip_threshold > 0.0 && next.skip_threshold <= 1.0) {
            return Err("settings.skip_threshold must be above 0 and at most 1".into());
        }
        if next.no_repeat_window > MAX_NO_REPEAT_WINDOW {
            return Err(format!(
                "settings.no_repeat_window must be between 0 and {MAX_NO_REPEAT_WINDOW}"
            ));
        }
        if !(1..=MAX_AUTO_FILL_MIN).contains(&next.auto_fill_min) {
            return Err(format!(
                "settings.auto_fill_min must be between 1 and {MAX_AUTO_FILL_MIN}"
            ));
        }
        Ok(next)
    }
}

/// Skip votes needed to skip a track when `online` members are connected: the threshold's share
/// of the room, but never more than ⌈2√n⌉ (3 members at 0.5 → 2 votes, 200 → 29 rather than 100),
/// and at least one.
pub fn skip_votes_needed(threshold: f64, online: usize) -> u32 {
    let n = online.max(1) as f64;
    let share = (threshold * n).ceil();
    let cap = (2.0 * n.sqrt()).ceil();
    share.min(cap).max(1.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_threshold_scales_for_small_and_large_rooms() {
        assert_eq!(skip_votes_needed(0.5, 1), 1);
        assert_eq!(skip_votes_needed(0.5, 2), 1);
        assert_eq!(skip_votes_needed(0.5, 3), 2);
        assert_eq!(skip_votes_needed(0.5, 5), 3);
        assert_eq!(skip_votes_needed(0.5, 200), 29);
        assert_eq!(skip_votes_needed(1.0, 3), 3);
        assert_eq!(skip_votes_needed(0.1, 200), 20);
        assert_eq!(skip_votes_needed(0.5, 0), 1);
    }

    #[test]
    fn patches_are_validated() {
        let base = GroupSettings::default();
        let ok = base
            .patched(&SettingsPatch {
                guest_controls: Some(false),
                ..Default::default()
            })
            .unwrap();
        assert!(!ok.guest_controls);
        assert_eq!(ok.max_members, DEFAULT_MAX_MEMBERS);
        for bad in [
            SettingsPatch {
                max_members: Some(1),
                ..Default::default()
            },
            SettingsPatch {
                skip_threshold: Some(0.0),
                ..Default::default()
            },
            SettingsPatch {
                skip_threshold: Some(f64::NAN),
                ..Default::default()
            },
        ] {
            assert!(base.patched(&bad).is_err(), "{bad:?}");
        }
    }
}
