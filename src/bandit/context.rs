//! What the bandits condition on: a solo listener's maturity and a room's size. Each (context,
//! arm) has its own Beta posterior, so a listener with thirty likes and one with two no longer
//! share what the bandit learned (the right strategy differs between them).

use crate::{aggregate, recommend};

/// How much a solo listener has told Chorus: positive signals (likes, adds, plays, compared
/// winners) in their taste. A listener with none gets the popular start, outside the bandit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Maturity {
    /// 1–2 signals.
    Cold,
    /// 3–9 signals.
    Few,
    /// 10 or more.
    Many,
}

impl Maturity {
    pub const ALL: [Maturity; 3] = [Maturity::Cold, Maturity::Few, Maturity::Many];

    pub fn of_signals(signals: usize) -> Self {
        match signals {
            0..=2 => Maturity::Cold,
            3..=9 => Maturity::Few,
            _ => Maturity::Many,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Maturity::Cold => "cold",
            Maturity::Few => "few",
            Maturity::Many => "many",
        }
    }

    /// Likes a listener of this maturity typically has (the offline prior evaluation seeds
    /// each held-out playlist with this many).
    pub fn typical_signals(self) -> usize {
        match self {
            Maturity::Cold => 2,
            Maturity::Few => 5,
            Maturity::Many => 15,
        }
    }
}

/// A room's size, counted in members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomSize {
    /// 1–2 members.
    Small,
    /// 3–4.
    Medium,
    /// 5 or more.
    Large,
}

impl RoomSize {
    pub const ALL: [RoomSize; 3] = [RoomSize::Small, RoomSize::Medium, RoomSize::Large];

    pub fn of_members(members: usize) -> Self {
        match members {
            0..=2 => RoomSize::Small,
            3..=4 => RoomSize::Medium,
            _ => RoomSize::Large,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RoomSize::Small => "small",
            RoomSize::Medium => "medium",
            RoomSize::Large => "large",
        }
    }

    /// The group size the offline prior evaluation uses for this context.
    pub fn typical_members(self) -> usize {
        match self {
            RoomSize::Small => 2,
            RoomSize::Medium => 3,
            RoomSize::Large => 5,
        }
    }
}

/// The two bandits, as named in the store and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BanditKind {
    /// Solo lists: hybrid, ncf, content, popularity; context: the listener's maturity.
    SoloStrategy,
    /// Group lists of rooms whose aggregation is `auto`: average, least misery, most
    /// pleasure, fair; context: the room's size.
    GroupAggregation,
}

impl BanditKind {
    pub const ALL: [BanditKind; 2] = [BanditKind::SoloStrategy, BanditKind::GroupAggregation];

    pub fn name(self) -> &'static str {
        match self {
            BanditKind::SoloStrategy => "solo_strategy",
            BanditKind::GroupAggregation => "group_aggregation",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn arms(self) -> Vec<&'static str> {
        match self {
            BanditKind::SoloStrategy => recommend::Strategy::ALL
                .iter()
                .map(|s| s.as_str())
                .collect(),
            BanditKind::GroupAggregation => {
                aggregate::Strategy::ALL.iter().map(|s| s.name()).collect()
            }
        }
    }

    pub fn contexts(self) -> Vec<Context> {
        match self {
            BanditKind::SoloStrategy => Maturity::ALL.map(Context::Solo).to_vec(),
            BanditKind::GroupAggregation => RoomSize::ALL.map(Context::Group).to_vec(),
        }
    }
}

/// One bandit's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    Solo(Maturity),
    Group(RoomSize),
}

impl Context {
    pub fn kind(self) -> BanditKind {
        match self {
            Context::Solo(_) => BanditKind::SoloStrategy,
            Context::Group(_) => BanditKind::GroupAggregation,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Context::Solo(m) => m.name(),
            Context::Group(s) => s.name(),
        }
    }

    pub fn parse(kind: BanditKind, name: &str) -> Option<Self> {
        kind.contexts().into_iter().find(|c| c.name() == name)
    }
}

/// A list shown under one arm in one context: what a reward is credited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pull {
    Solo(Maturity, recommend::Strategy),
    Group(RoomSize, aggregate::Strategy),
}

impl Pull {
    pub fn context(self) -> Context {
        match self {
            Pull::Solo(m, _) => Context::Solo(m),
            Pull::Group(s, _) => Context::Group(s),
        }
    }

    pub fn arm(self) -> &'static str {
        match self {
            Pull::Solo(_, s) => s.as_str(),
            Pull::Group(_, s) => s.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_count() {
        let maturities: Vec<_> = (1..=12).map(Maturity::of_signals).collect();
        assert_eq!(maturities[0], Maturity::Cold);
        assert_eq!(maturities[2], Maturity::Few);
        assert_eq!(maturities[8], Maturity::Few);
        assert_eq!(maturities[9], Maturity::Many);
        assert_eq!(RoomSize::of_members(2), RoomSize::Small);
        assert_eq!(RoomSize::of_members(4), RoomSize::Medium);
        assert_eq!(RoomSize::of_members(9), RoomSize::Large);
        for kind in BanditKind::ALL {
            for context in kind.contexts() {
                assert_eq!(Context::parse(kind, context.name()), Some(context));
            }
        }
        for m in Maturity::ALL {
            assert_eq!(Maturity::of_signals(m.typical_signals()), m);
        }
        for s in RoomSize::ALL {
            assert_eq!(RoomSize::of_members(s.typical_members()), s);
        }
    }
}
