//! `GET /api/v1/me/profile`: what the server has learned about a listener, in words a person can
//! check against their own sense of their taste.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{FeedbackKind, Taste};
use crate::catalog::{AudioFeatures, Catalog};

/// The audio features a taste profile reports (the ones on a 0–1 scale, plus tempo).
const PROFILE_FEATURES: [&str; 8] = [
    "danceability",
    "energy",
    "valence",
    "acousticness",
    "instrumentalness",
    "speechiness",
    "liveness",
    "tempo",
];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfileCounts {
    pub like: u64,
    pub dislike: u64,
    pub skip: u64,
    pub play: u64,
    pub add: u64,
    pub comparisons: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenreShare {
    pub name: String,
    /// Share of the positive feedback weight, 0–1.
    pub share: f32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeatureTaste {
    pub name: &'static str,
    /// Mean over the liked tracks, weighted by feedback.
    pub yours: f32,
    /// Mean over the whole catalog, for comparison.
    pub catalog: f32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Profile {
    pub counts: ProfileCounts,
    pub top_genres: Vec<GenreShare>,
    pub audio_features: Vec<FeatureTaste>,
    /// 0–1: how much evidence the recommendations rest on, `1 − exp(−n/10)` where n counts liked
    /// tracks plus half the comparisons.
    pub confidence: f32,
    /// True while there is no positive signal: recommendations are popular-and-diverse.
    pub cold_start: bool,
}

/// Catalog-wide means of the profile features.
pub fn catalog_means(catalog: &Catalog) -> Vec<f32> {
    let mut sums = vec![0f64; PROFILE_FEATURES.len()];
    for t in catalog.tracks() {
        for (s, v) in sums.iter_mut().zip(values(&t.audio_features)) {
            *s += f64::from(v);
        }
    }
    let n = catalog.len().max(1) as f64;
    sums.into_iter().map(|s| (s / n) as f32).collect()
}

fn values(a: &AudioFeatures) -> [f32; 8] {
    [
        a.danceability,
        a.energy,
        a.valence,
        a.acousticness,
        a.instrumentalness,
        a.speechiness,
        a.liveness,
        a.tempo,
    ]
}

pub fn build(taste: &Taste, catalog: &Catalog, means: &[f32]) -> Profile {
    let liked: Vec<(u32, f32)> = taste.liked().collect();
    let total: f32 = liked.iter().map(|(_, w)| w).sum();
    let mut genres: HashMap<&str, f32> = HashMap::new();
    let mut features = [0f32; 8];
    for &(item, w) in &liked {
        let track = catalog.track(item);
        let share = w / track.genres.len().max(1) as f32;
        for g in &track.genres {
            *genres.entry(g.as_str()).or_default() += share;
        }
        for (f, v) in features.iter_mut().zip(values(&track.audio_features)) {
            *f += w * v;
        }
    }
    let mut top_genres: Vec<GenreShare> = genres
        .into_iter()
        .map(|(name, w)| GenreShare {
            name: name.to_string(),
            share: w / total,
        })
        .collect();
    top_genres.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.name.cmp(&b.name)));
    top_genres.truncate(5);
    let audio_features = if liked.is_empty() {
        Vec::new()
    } else {
        PROFILE_FEATURES
            .iter()
            .zip(features)
            .zip(means)
            .map(|((&name, sum), &catalog)| FeatureTaste {
                name,
                yours: sum / total,
                catalog,
            })
            .collect()
    };
    let evidence = liked.len() as f32 + 0.5 * taste.comparisons().len() as f32;
    Profile {
        counts: ProfileCounts {
            like: taste.count(FeedbackKind::Like),
            dislike: taste.count(FeedbackKind::Dislike),
            skip: taste.count(FeedbackKind::Skip),
            play: taste.count(FeedbackKind::Play),
            add: taste.count(FeedbackKind::Add),
            comparisons: taste.comparisons().len() as u64,
        },
        top_genres,
        audio_features,
        confidence: 1.0 - (-evidence / 10.0).exp(),
        cold_start: !taste.has_signal(),
    }
}
