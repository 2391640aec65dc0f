//! Which two tracks to ask about next. A comparison teaches the most when the model cannot
//! predict its answer and the two tracks differ a lot: among the listener's nearest unheard
//! tracks, pick the unasked pair maximising p(1 − p) · ‖v_a − v_b‖², where p is the current
//! Bradley–Terry probability that `a` wins (the expected curvature the answer adds to the fit).

use serde::Serialize;
use utoipa::ToSchema;

use super::Recommender;
use crate::{
    catalog::Track,
    domain::UserId,
    error::ApiError,
    inference::{engine::SimilarJob, retrieval::RetrievalQuery, space::ItemSpace},
    taste::{actor::GetSnapshot, sigmoid},
};

/// Tracks near the listener's taste that pairs are drawn from.
const POOL: usize = 30;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pair {
    pub a: Track,
    pub b: Track,
    /// The model's current probability that `a` wins.
    pub p_a: f32,
    /// p(1 − p) · ‖v_a − v_b‖²: how much the answer is expected to teach.
    pub information: f32,
}

pub async fn next_pair(recommender: &Recommender, user: &UserId) -> Result<Option<Pair>, ApiError> {
    let snapshot = recommender.users.send(user, GetSnapshot).await?;
    let space = recommender.inference.space();
    let (pool, user_vector): (Vec<u32>, Option<Vec<f32>>) = match &snapshot.listener {
        Some(listener) => {
            let hits = recommender
                .inference
                .similar(SimilarJob {
                    query: RetrievalQuery {
                        vector: listener.vector.clone(),
                        exclude: snapshot.reacted.clone(),
                        k: POOL,
                    },
                })
                .await?;
            (
                hits.into_iter().map(|h| h.item).collect(),
                Some(listener.vector.clone()),
            )
        }
        None => (
            space
                .starters()
                .iter()
                .copied()
                .filter(|t| snapshot.reacted.binary_search(t).is_err())
                .take(POOL)
                .collect(),
            None,
        ),
    };
    Ok(
        best_pair(space, &pool, user_vector.as_deref(), &snapshot.compared).map(
            |(a, b, p, info)| Pair {
                a: recommender.catalog.track(a).clone(),
                b: recommender.catalog.track(b).clone(),
                p_a: p,
                information: info,
            },
        ),
    )
}

fn best_pair(
    space: &ItemSpace,
    pool: &[u32],
    user: Option<&[f32]>,
    asked: &std::collections::HashSet<(u32, u32)>,
) -> Option<(u32, u32, f32, f32)> {
    let mut best: Option<(u32, u32, f32, f32)> = None;
    for (i, &a) in pool.iter().enumerate() {
        for &b in &pool[i + 1..] {
            if asked.contains(&(a.min(b), a.max(b))) {
                continue;
            }
            let diff = &space.vector(a) - &space.vector(b);
            let distance = diff.dot(&diff);
            let p = match user {
                Some(u) => sigmoid(diff.dot(&ndarray::ArrayView1::from(u))),
                None => 0.5,
            };
            let information = p * (1.0 - p) * distance;
            if best.map_or(true, |(_, _, _, x)| information > x) {
                best = Some((a, b, p, information));
            }
        }
    }
    best
}
