//! The hybrid ranker's per-candidate features, computed exactly as the training pipeline's
//! `Served.features` computes them (models/train/chorus_train/pipeline.py); a test reproduces the
//! shipped sample's features from its seed tracks.

use ndarray::Array1;

use super::space::{dot, ItemSpace, DIM};

/// How many features `hybrid.onnx` takes per candidate.
pub const FEATURES: usize = 8;
/// Names in `hybrid.onnx`'s input order (`feature_order` in the manifest).
pub const HYBRID_FEATURES: [&str; FEATURES] = [
    "ncf_score",
    "retrieval_score",
    "content_similarity",
    "popularity",
    "freshness",
    "diversity",
    "group_agreement",
    "item_item_score",
];
pub const NCF_SCORE: usize = 0;
pub const CONTENT_SIMILARITY: usize = 2;
pub const GROUP_AGREEMENT: usize = 6;
pub const ITEM_ITEM_SCORE: usize = 7;

/// One candidate's features, in [`HYBRID_FEATURES`] order.
pub type FeatureRow = [f32; FEATURES];

/// A candidate track with the scores its sources gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub item: u32,
    /// Dot product of the listener's vector with the track's.
    pub retrieval: f32,
    /// The listener's item-item score (0 when no liked track points to it).
    pub item_item: f32,
}

/// Who the candidates are for: the vectors the features compare candidates with.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The user (or group) vector in the item space.
    pub vector: Vec<f32>,
    /// Unit-length mean of the liked tracks' unit content embeddings (zero when none).
    pub taste: Vec<f32>,
    /// Liked tracks that diversity is measured against (the most recent ones).
    pub history: Vec<u32>,
    /// Liked tracks and their weights, the item-item neighbours' input (the most recent ones).
    pub seeds: Vec<(u32, f32)>,
}

impl Listener {
    /// A listener whose taste is the given tracks with the given weights (the training pipeline's
    /// user: weighted mean of the history's item vectors).
    pub fn from_history(space: &ItemSpace, history: &[u32], weights: &[f32]) -> Self {
        let total: f32 = weights.iter().sum();
        let mut vector = Array1::<f32>::zeros(DIM);
        for (&item, &w) in history.iter().zip(weights) {
            vector.scaled_add(w / total, &space.vector(item));
        }
        Self {
            vector: vector.to_vec(),
            taste: taste_of(space, history),
            history: history.to_vec(),
            seeds: history
                .iter()
                .copied()
                .zip(weights.iter().copied())
                .filter(|&(_, w)| w > 0.0)
                .collect(),
        }
    }
}

/// Unit-length mean of the tracks' unit content embeddings.
pub fn taste_of(space: &ItemSpace, tracks: &[u32]) -> Vec<f32> {
    let mut taste = Array1::<f32>::zeros(DIM);
    for &t in tracks {
        taste += &space.content_unit(t);
    }
    if !tracks.is_empty() {
        taste /= tracks.len() as f32;
    }
    let n = taste.dot(&taste).sqrt();
    if n > 0.0 {
        taste /= n + 1e-9;
    }
    taste.to_vec()
}

/// Features for each candidate; the NCF slot is left at 0 for the model to fill in.
pub fn candidate_features(
    space: &ItemSpace,
    listener: &Listener,
    candidates: &[Candidate],
) -> Vec<FeatureRow> {
    let user = &listener.vector[..DIM];
    let user_norm = dot(user, user).sqrt() + 1e-9;
    let taste = &listener.taste[..DIM];
    let norms = space.norms();
    let history: Vec<(&[f32], f32)> = listener
        .history
        .iter()
        .map(|&h| (space.vector_slice(h), norms[h as usize] + 1e-9))
        .collect();
    candidates
        .iter()
        .map(|c| {
            let item = c.item;
            let v = space.vector_slice(item);
            let v_norm = norms[item as usize] + 1e-9;
            let diversity = if history.is_empty() {
                1.0
            } else {
                let nearest = history
                    .iter()
                    .map(|&(h, h_norm)| dot(v, h) / (v_norm * h_norm))
                    .fold(f32::NEG_INFINITY, f32::max);
                1.0 - nearest
            };
            // A group's ranking overwrites it with the cosine to the group vector.
            let agreement = dot(v, user) / (v_norm * user_norm);
            [
                0.0,
                c.retrieval,
                dot(space.content_slice(item), taste),
                space.popularity(item),
                space.freshness(item),
                diversity,
                agreement,
                c.item_item,
            ]
        })
        .collect()
}

/// The history track most similar to `item` (what "because you liked …" names).
pub fn nearest_in_history(space: &ItemSpace, history: &[u32], item: u32) -> Option<(u32, f32)> {
    history
        .iter()
        .map(|&h| (h, space.cosine(item, h)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}
