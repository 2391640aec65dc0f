//! Group recommendations: every member's taste scored over the same candidates in one batched
//! inference call, combined by the group's aggregation strategy, with the group's harmony.

use std::sync::Arc;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{reasons, Reason, Recommender, DISLIKE_SIMILARITY, STRATEGY_POPULAR};
use crate::{
    aggregate::{Harmony, Strategy},
    catalog::{Track, TrackBrief},
    domain::{now_ms, UserId},
    error::ApiError,
    inference::group::{GroupPart, GroupRankJob, KeptPool, Utility},
    taste::actor::GetSnapshot,
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupRecommendations {
    /// Identifies this list; feedback that names it is attributed to it.
    pub request_id: String,
    /// The aggregation strategy (`average`, `least_misery`, `most_pleasure`, `fair`), or
    /// `popular_diverse` while no member has a taste yet.
    pub strategy: String,
    pub items: Vec<GroupRecommended>,
    /// Predicted satisfaction of the least and of the average member (absent for the popular
    /// start, which predicts nothing).
    pub harmony: Option<Harmony>,
    /// Satisfaction (0–1) of each member with a taste: the list's predicted value to them over
    /// the value of the list they would have got alone.
    pub members: Vec<MemberSatisfaction>,
    /// Members who have not liked anything yet, so were not scored.
    pub members_without_taste: Vec<String>,
    /// The group's event seq these recommendations reflect.
    pub seq: i64,
    pub computed_at: i64,
    pub candidates_considered: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupRecommended {
    #[schema(value_type = Track)]
    pub track: Arc<Track>,
    /// Mean over the scored members of their predicted probability of liking the track.
    pub score: f32,
    /// The lowest member probability: how the least keen member is expected to feel.
    pub least: f32,
    /// Each scored member's predicted probability of liking it.
    pub fit: Vec<MemberFit>,
    /// The ranking signals' contributions averaged over the members, largest first.
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberFit {
    pub user_id: String,
    pub probability: f32,
}

impl GroupRecommendations {
    /// The list as the room's sockets get it: each item's track as a playlist entry shows it
    /// (id, title, artist, album, duration) and no reasons. Reasons were more than half of the
    /// list's bytes and the rest of each track (genres, audio features, dates) 40–55% of
    /// what was left, sent to every member at every refresh; the room page shows none of it,
    /// and the REST mirror and `explain` have it all.
    pub fn for_sockets(&self) -> ListFrame<'_> {
        ListFrame {
            request_id: &self.request_id,
            strategy: &self.strategy,
            items: self
                .items
                .iter()
                .map(|item| ItemFrame {
                    track: item.track.brief(),
                    score: item.score,
                    least: item.least,
                    fit: &item.fit,
                })
                .collect(),
            harmony: self.harmony.as_ref(),
            members: &self.members,
            members_without_taste: &self.members_without_taste,
            seq: self.seq,
            computed_at: self.computed_at,
            candidates_considered: self.candidates_considered,
        }
    }
}

/// [`GroupRecommendations`] as list frames carry it: field for field, but brief tracks and no
/// reasons (a test holds them together).
#[derive(Debug, Serialize)]
pub struct ListFrame<'a> {
    request_id: &'a str,
    strategy: &'a str,
    items: Vec<ItemFrame<'a>>,
    harmony: Option<&'a Harmony>,
    members: &'a [MemberSatisfaction],
    members_without_taste: &'a [String],
    seq: i64,
    computed_at: i64,
    candidates_considered: usize,
}

#[derive(Debug, Serialize)]
struct ItemFrame<'a> {
    track: TrackBrief<'a>,
    score: f32,
    least: f32,
    fit: &'a [MemberFit],
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberSatisfaction {
    pub user_id: String,
    pub satisfaction: f64,
    /// How many of the list's tracks this member is predicted to like most of everyone in the
    /// room ("3 of these 10 are for you").
    pub picks: usize,
}

/// What a group asks for.
pub struct GroupRequest<'a> {
    pub members: &'a [UserId],
    /// Item rows already in the playlist.
    pub playlist: Vec<u32>,
    pub strategy: Strategy,
    pub limit: usize,
    /// Retrieval candidates scored for every member.
    pub candidates: usize,
    pub seq: i64,
    /// Each member's share of the playlist so far (empty when session fairness is off).
    pub served: std::collections::HashMap<String, f64>,
    /// What the room's previous list left for this one (see [`KeptPool`]).
    pub kept: Option<Arc<KeptPool>>,
}

/// A room's new list, and what it leaves for the next.
pub struct GroupRefresh {
    pub list: GroupRecommendations,
    /// `None` for the popular start (nothing was scored).
    pub kept: Option<Arc<KeptPool>>,
    /// Whether the group's candidates were kept or retrieved, and why (`None` for the popular
    /// start).
    pub pool: Option<GroupPart>,
    /// Members whose own best tracks took a scan of the catalog (see `GroupRanked`).
    pub own_scans: usize,
}

/// The member with the highest utility (the first on a tie).
fn keenest(utilities: &[f32]) -> Option<usize> {
    utilities
        .iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f32)>, (m, &u)| match best {
            Some((_, b)) if b >= u => best,
            _ => Some((m, u)),
        })
        .map(|(m, _)| m)
}

impl Recommender {
    pub async fn for_group(&self, request: GroupRequest<'_>) -> Result<GroupRefresh, ApiError> {
        let snapshots = join_all(
            request
                .members
                .iter()
                .map(|m| self.users.send(m, GetSnapshot)),
        )
        .await;
        let mut exclude = request.playlist;
        let mut disliked = Vec::new();
        let mut scored = Vec::new();
        let mut listeners = Vec::new();
        let mut without_taste = Vec::new();
        for (member, snapshot) in request.members.iter().zip(snapshots) {
            let snapshot = snapshot?;
            disliked.extend_from_slice(&snapshot.disliked);
            match &snapshot.listener {
                Some(listener) => {
                    scored.push(member.as_str().to_string());
                    listeners.push(Arc::clone(listener));
                }
                None => without_taste.push(member.as_str().to_string()),
            }
        }
        // Nobody is offered what a member disliked.
        exclude.extend_from_slice(&disliked);
        exclude.sort_unstable();
        exclude.dedup();
        let request_id = uuid::Uuid::now_v7().to_string();
        if listeners.is_empty() {
            return Ok(GroupRefresh {
                list: GroupRecommendations {
                    request_id,
                    strategy: STRATEGY_POPULAR.to_string(),
                    items: self.popular_for_group(&exclude, &disliked, request.limit),
                    harmony: None,
                    members: Vec::new(),
                    members_without_taste: without_taste,
                    seq: request.seq,
                    computed_at: now_ms(),
                    candidates_considered: 0,
                },
                kept: None,
                pool: None,
                own_scans: 0,
            });
        }
        let ranked = self
            .inference
            .rank_group(GroupRankJob {
                members: listeners,
                exclude,
                candidates: request.candidates,
                strategy: request.strategy,
                top: request.limit,
                utility: Utility::Platt(self.inference.calibration()),
                served: scored
                    .iter()
                    .map(|user| request.served.get(user).copied().unwrap_or(0.0))
                    .collect(),
                own_candidates: true,
                kept: request.kept,
            })
            .await?;
        let items = ranked
            .items
            .iter()
            .map(|item| {
                let n = item.utilities.len().max(1) as f32;
                GroupRecommended {
                    track: self.catalog.shared(item.item),
                    score: item.utilities.iter().sum::<f32>() / n,
                    least: item.utilities.iter().copied().fold(f32::INFINITY, f32::min),
                    fit: scored
                        .iter()
                        .zip(&item.utilities)
                        .map(|(user_id, &probability)| MemberFit {
                            user_id: user_id.clone(),
                            probability,
                        })
                        .collect(),
                    reasons: reasons::for_group(&item.features, &item.contributions),
                }
            })
            .collect();
        let list = GroupRecommendations {
            request_id,
            strategy: request.strategy.name().to_string(),
            items,
            harmony: Some(ranked.harmony),
            members: scored
                .into_iter()
                .zip(ranked.satisfaction)
                .enumerate()
                .map(|(m, (user_id, satisfaction))| MemberSatisfaction {
                    user_id,
                    satisfaction,
                    picks: ranked
                        .items
                        .iter()
                        .filter(|item| keenest(&item.utilities) == Some(m))
                        .count(),
                })
                .collect(),
            members_without_taste: without_taste,
            seq: request.seq,
            computed_at: now_ms(),
            candidates_considered: ranked.considered,
        };
        Ok(GroupRefresh {
            list,
            own_scans: ranked.own_scans,
            kept: Some(ranked.kept),
            pool: Some(ranked.pool),
        })
    }

    /// Popular tracks spread over the item space, minus the playlist and anything close to a
    /// member's dislike.
    fn popular_for_group(
        &self,
        exclude: &[u32],
        disliked: &[u32],
        limit: usize,
    ) -> Vec<GroupRecommended> {
        let space = self.inference.space();
        let starters = space.starters();
        starters
            .iter()
            .enumerate()
            .filter(|(_, &t)| exclude.binary_search(&t).is_err())
            .filter(|(_, &t)| {
                disliked
                    .iter()
                    .all(|&d| space.cosine(t, d) < DISLIKE_SIMILARITY)
            })
            .take(limit)
            .map(|(rank, &t)| GroupRecommended {
                track: self.catalog.shared(t),
                score: 1.0 - rank as f32 / starters.len().max(1) as f32,
                least: 0.0,
                fit: Vec::new(),
                reasons: reasons::popular_start(space.popularity(t)),
            })
            .collect()
    }
}
