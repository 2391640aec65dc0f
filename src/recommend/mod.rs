//! Solo recommendations: the two-stage pipeline for listeners with a taste, a popular-and-diverse
//! start for those without, reasons for every item, and the choice of an informative pair to
//! compare.

mod group;
mod pairs;
mod reasons;

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

/// What a room's ranking keeps for its next (rooms hold it between refreshes).
pub use crate::inference::group::KeptPool;
pub use group::{
    GroupRecommendations, GroupRecommended, GroupRefresh, GroupRequest, ListFrame, MemberFit,
    MemberSatisfaction,
};
pub use pairs::{next_pair, Pair};
pub use reasons::{Reason, SIGNALS};

use crate::{
    catalog::{Catalog, Track},
    domain::UserId,
    error::ApiError,
    inference::{
        engine::{RankBy, RankJob, RankedItem},
        features::nearest_in_history,
        Inference,
    },
    taste::{
        actor::{GetSnapshot, Snapshot},
        directory::UserDirectory,
    },
};

/// A starter track this similar to a disliked one is not offered.
pub(crate) const DISLIKE_SIMILARITY: f32 = 0.6;

pub const STRATEGY_HYBRID: &str = "hybrid";
/// The start for listeners without a taste (whatever strategy was asked for).
pub const STRATEGY_POPULAR: &str = "popular_diverse";

/// How a solo list is ranked: the arms the strategy bandit chooses between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Retrieval, then the hybrid ranker over NCF, content and context features.
    #[default]
    Hybrid,
    /// Retrieval, then the NCF model's score alone.
    Ncf,
    /// Retrieval, then content similarity to the liked tracks alone.
    Content,
    /// Popular tracks spread across the item space, ignoring taste.
    Popularity,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::Hybrid,
        Strategy::Ncf,
        Strategy::Content,
        Strategy::Popularity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Hybrid => STRATEGY_HYBRID,
            Strategy::Ncf => "ncf",
            Strategy::Content => "content",
            Strategy::Popularity => "popularity",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

pub struct Request {
    pub limit: usize,
    pub genre: Option<String>,
    /// Item rows the caller does not want, in any order.
    pub exclude: Vec<u32>,
    pub strategy: Strategy,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Recommended {
    #[schema(value_type = Track)]
    pub track: Arc<Track>,
    /// The ranker's score; higher is better; compare only within one answer.
    pub score: f32,
    /// 0–1: the calibrated probability that the listener likes this track (the ranker's score
    /// through the Platt scaling in `models/manifest.json`, on the same scale as a group
    /// member's `fit`; 0 for cold-start picks, which rest on popularity alone).
    pub confidence: f32,
    /// Each ranking signal's contribution to the score, largest first.
    pub reasons: Vec<Reason>,
    /// The liked track this one is closest to, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because_you_liked: Option<TrackRef>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrackRef {
    pub id: String,
    pub title: String,
    pub artist: String,
    /// Cosine similarity of the two tracks' item vectors.
    pub similarity: f32,
}

impl TrackRef {
    pub fn new(track: &Track, similarity: f32) -> Self {
        Self {
            id: track.id.as_str().to_string(),
            title: track.title.clone(),
            artist: track.artist.clone(),
            similarity,
        }
    }
}

pub struct Recommendations {
    pub strategy: &'static str,
    pub items: Vec<Recommended>,
    /// Candidates the rankers considered (0 for the popular start).
    pub considered: usize,
}

#[derive(Clone)]
pub struct Recommender {
    pub inference: Inference,
    pub users: UserDirectory,
    pub catalog: Arc<Catalog>,
    pub candidates: usize,
}

impl Recommender {
    pub async fn for_user(
        &self,
        user: &UserId,
        request: Request,
    ) -> Result<Recommendations, ApiError> {
        let snapshot = self.snapshot(user).await?;
        self.for_snapshot(&snapshot, request).await
    }

    /// The listener's taste as it is now (what [`Recommender::for_snapshot`] ranks for).
    pub async fn snapshot(&self, user: &UserId) -> Result<Arc<Snapshot>, ApiError> {
        self.users.send(user, GetSnapshot).await
    }

    /// Positive signals in a listener's taste (likes, adds, plays, compared winners): what the
    /// strategy bandit's maturity context counts. 0: the popular start.
    pub fn signals(snapshot: &Snapshot) -> usize {
        // A listener with only comparisons has a taste, hence at least one signal.
        snapshot
            .listener
            .as_ref()
            .map_or(0, |l| l.seeds.len().max(1))
    }

    /// A list for the listener whose taste is `snapshot`.
    pub async fn for_snapshot(
        &self,
        snapshot: &Snapshot,
        request: Request,
    ) -> Result<Recommendations, ApiError> {
        let mut exclude = request.exclude;
        exclude.extend_from_slice(&snapshot.reacted);
        exclude.sort_unstable();
        exclude.dedup();
        let Some(listener) = snapshot.listener.clone() else {
            return Ok(self.popular_start(snapshot, &exclude, &request.genre, request.limit));
        };
        let order = match request.strategy {
            Strategy::Hybrid => RankBy::Hybrid,
            Strategy::Ncf => RankBy::Ncf,
            Strategy::Content => RankBy::Content,
            Strategy::Popularity => {
                let mut list =
                    self.popular_start(snapshot, &exclude, &request.genre, request.limit);
                list.strategy = Strategy::Popularity.as_str();
                return Ok(list);
            }
        };
        // With a genre filter the whole candidate list is ranked, then filtered.
        let top = if request.genre.is_some() {
            self.candidates
        } else {
            request.limit
        };
        let ranked = self
            .inference
            .rank(RankJob {
                listener: Arc::clone(&listener),
                exclude,
                candidates: self.candidates,
                top,
                order,
                focus: None,
            })
            .await?;
        let space = self.inference.space();
        let items = ranked
            .items
            .iter()
            .filter(|r| in_genre(self.catalog.track(r.item), &request.genre))
            .take(request.limit)
            .map(|r| {
                let because = nearest_in_history(space, &listener.history, r.item)
                    .map(|(h, sim)| TrackRef::new(self.catalog.track(h), sim));
                self.recommended(r, because)
            })
            .collect();
        Ok(Recommendations {
            strategy: request.strategy.as_str(),
            items,
            considered: ranked.considered,
        })
    }

    /// The ranker's signal contributions for one track and this listener (whether or not it
    /// would make their list); `None` while they have no taste.
    pub async fn reasons_for(
        &self,
        user: &UserId,
        item: u32,
    ) -> Result<Option<Vec<Reason>>, ApiError> {
        let snapshot = self.users.send(user, GetSnapshot).await?;
        let Some(listener) = snapshot.listener.clone() else {
            return Ok(None);
        };
        let ranked = self
            .inference
            .rank(RankJob {
                listener,
                exclude: Vec::new(),
                candidates: self.candidates,
                top: 1,
                order: RankBy::Hybrid,
                focus: Some(item),
            })
            .await?;
        Ok(ranked
            .items
            .first()
            .map(|r| reasons::from_contributions(&r.features, &r.contributions)))
    }

    fn recommended(&self, r: &RankedItem, because: Option<TrackRef>) -> Recommended {
        Recommended {
            track: self.catalog.shared(r.item),
            score: r.score,
            confidence: self.inference.calibration().probability(r.score),
            reasons: reasons::from_contributions(&r.features, &r.contributions),
            because_you_liked: because,
        }
    }

    /// Popular tracks spread across the item space, minus anything close to a dislike.
    fn popular_start(
        &self,
        snapshot: &Snapshot,
        exclude: &[u32],
        genre: &Option<String>,
        limit: usize,
    ) -> Recommendations {
        let space = self.inference.space();
        let starters = space.starters();
        let items = starters
            .iter()
            .enumerate()
            .filter(|(_, &t)| exclude.binary_search(&t).is_err())
            .filter(|(_, &t)| {
                snapshot
                    .disliked
                    .iter()
                    .all(|&d| space.cosine(t, d) < DISLIKE_SIMILARITY)
            })
            .filter(|(_, &t)| in_genre(self.catalog.track(t), genre))
            .take(limit)
            .map(|(rank, &t)| Recommended {
                track: self.catalog.shared(t),
                score: 1.0 - rank as f32 / starters.len().max(1) as f32,
                confidence: 0.0,
                reasons: reasons::popular_start(space.popularity(t)),
                because_you_liked: None,
            })
            .collect();
        Recommendations {
            strategy: STRATEGY_POPULAR,
            items,
            considered: 0,
        }
    }
}

fn in_genre(track: &Track, genre: &Option<String>) -> bool {
    match genre {
        None => true,
        Some(g) => track.has_genre(g),
    }
}
