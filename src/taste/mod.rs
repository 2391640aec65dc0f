//! A listener's live taste, learned from feedback without retraining.
//!
//! The user vector has two parts:
//! - the *base*: the weighted mean of the item vectors of the tracks the user reacted to, each
//!   track weighted by the sum of its feedback (like +1, add +1, play +0.25, skip −0.5,
//!   dislike −1.5, clamped to ±2), divided by the sum of absolute weights. With only positive
//!   feedback this is exactly the user representation `ncf.onnx` was trained on; negative
//!   feedback pushes the vector away from what was disliked.
//! - the *comparison offset* δ: the maximum-a-posteriori Bradley–Terry fit of the user's "which
//!   of these two?" answers, P(winner ≻ loser) = σ((base + δ) · (v_winner − v_loser)), with a
//!   Gaussian prior on δ, solved by Newton's method (a 64×64 system; well under a millisecond).
//!
//! Both are pure functions of the stored interactions and comparisons, so a restart rebuilds
//! exactly the state that was live.

pub mod actor;
pub mod directory;
pub mod profile;

use std::collections::{BTreeMap, HashSet};

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use profile::{Profile, ProfileCounts};

use crate::inference::{
    features::{taste_of, Listener},
    space::{ItemSpace, DIM},
};

/// Tracks whose distance to new candidates is measured (the most recent liked ones).
pub const DIVERSITY_HISTORY: usize = 50;
/// Liked tracks whose item-item neighbours become candidates (the most recent ones).
pub const ITEM_ITEM_HISTORY: usize = 200;
/// Comparisons kept in the Bradley–Terry fit (the most recent ones).
pub const MAX_COMPARISONS: usize = 500;
const MAX_TRACK_WEIGHT: f32 = 2.0;
/// Precision of the Gaussian prior on δ: larger keeps comparisons' influence smaller.
const PRIOR_PRECISION: f32 = 1.0;
const NEWTON_STEPS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackKind {
    Like,
    Dislike,
    Skip,
    Play,
    Add,
}

impl FeedbackKind {
    pub const ALL: [FeedbackKind; 5] = [
        FeedbackKind::Like,
        FeedbackKind::Dislike,
        FeedbackKind::Skip,
        FeedbackKind::Play,
        FeedbackKind::Add,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Like => "like",
            FeedbackKind::Dislike => "dislike",
            FeedbackKind::Skip => "skip",
            FeedbackKind::Play => "play",
            FeedbackKind::Add => "add",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What one event adds to the track's weight.
    pub fn weight(self) -> f32 {
        match self {
            FeedbackKind::Like | FeedbackKind::Add => 1.0,
            FeedbackKind::Play => 0.25,
            FeedbackKind::Skip => -0.5,
            FeedbackKind::Dislike => -1.5,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Taste {
    /// Per item row: the clamped sum of its feedback weights. Ordered, so sums are reproducible.
    weights: BTreeMap<u32, f32>,
    /// Items with positive weight, least recently reinforced first.
    recent_positive: Vec<u32>,
    counts: BTreeMap<&'static str, u64>,
    /// (winner, loser), oldest first.
    comparisons: Vec<(u32, u32)>,
    base: Vec<f32>,
    offset: Vec<f32>,
}

impl Taste {
    pub fn record(&mut self, item: u32, kind: FeedbackKind) {
        *self.counts.entry(kind.as_str()).or_default() += 1;
        let w = self.weights.entry(item).or_default();
        *w = (*w + kind.weight()).clamp(-MAX_TRACK_WEIGHT, MAX_TRACK_WEIGHT);
        let positive = *w > 0.0;
        self.recent_positive.retain(|&i| i != item);
        if positive {
            self.recent_positive.push(item);
        }
    }

    pub fn record_comparison(&mut self, winner: u32, loser: u32) {
        self.comparisons.push((winner, loser));
        if self.comparisons.len() > MAX_COMPARISONS {
            let extra = self.comparisons.len() - MAX_COMPARISONS;
            self.comparisons.drain(..extra);
        }
    }

    /// Recomputes the base vector and refits the comparison offset.
    pub fn refresh(&mut self, space: &ItemSpace) {
        let mut base = Array1::<f32>::zeros(DIM);
        let total: f32 = self.weights.values().map(|w| w.abs()).sum();
        if total > 0.0 {
            for (&item, &w) in &self.weights {
                base.scaled_add(w / total, &space.vector(item));
            }
        }
        let diffs: Vec<Array1<f32>> = self
            .comparisons
            .iter()
            .map(|&(w, l)| &space.vector(w) - &space.vector(l))
            .collect();
        self.offset = fit_offset(&base, &diffs).to_vec();
        self.base = base.to_vec();
    }

    /// Whether there is anything to personalise from: a liked track or a comparison.
    pub fn has_signal(&self) -> bool {
        !self.recent_positive.is_empty() || !self.comparisons.is_empty()
    }

    /// The listener for the rankers; `None` before any positive signal (cold start).
    pub fn listener(&self, space: &ItemSpace) -> Option<Listener> {
        if !self.has_signal() || self.base.len() != DIM {
            return None;
        }
        let vector: Vec<f32> = self
            .base
            .iter()
            .zip(&self.offset)
            .map(|(b, d)| b + d)
            .collect();
        let recent =
            |n: usize| &self.recent_positive[self.recent_positive.len().saturating_sub(n)..];
        Some(Listener {
            vector,
            taste: taste_of(space, &self.recent_positive),
            history: recent(DIVERSITY_HISTORY).to_vec(),
            seeds: recent(ITEM_ITEM_HISTORY)
                .iter()
                .map(|&item| (item, self.weights[&item]))
                .collect(),
        })
    }

    /// Every track the user reacted to, sorted: never recommended back.
    pub fn reacted(&self) -> Vec<u32> {
        self.weights.keys().copied().collect()
    }

    /// Tracks with negative weight.
    pub fn disliked(&self) -> Vec<u32> {
        self.weights
            .iter()
            .filter(|(_, &w)| w < 0.0)
            .map(|(&i, _)| i)
            .collect()
    }

    /// Tracks with positive weight and their weights.
    pub fn liked(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.weights
            .iter()
            .filter(|(_, &w)| w > 0.0)
            .map(|(&i, &w)| (i, w))
    }

    pub fn comparisons(&self) -> &[(u32, u32)] {
        &self.comparisons
    }

    /// Pairs already asked, either way round.
    pub fn compared_pairs(&self) -> HashSet<(u32, u32)> {
        self.comparisons
            .iter()
            .map(|&(a, b)| (a.min(b), a.max(b)))
            .collect()
    }

    pub fn count(&self, kind: FeedbackKind) -> u64 {
        self.counts.get(kind.as_str()).copied().unwrap_or(0)
    }
}

/// MAP Bradley–Terry: minimise Σ log(1 + exp(−(base + δ)·d)) + (λ/2)‖δ‖² by Newton's method.
fn fit_offset(base: &Array1<f32>, diffs: &[Array1<f32>]) -> Array1<f32> {
    let mut delta = Array1::<f32>::zeros(base.len());
    if diffs.is_empty() {
        return delta;
    }
    for _ in 0..NEWTON_STEPS {
        let user = base + &delta;
        let mut gradient = &delta * PRIOR_PRECISION;
        let mut hessian = Array2::<f32>::eye(base.len()) * PRIOR_PRECISION;
        for d in diffs {
            let p = sigmoid(user.dot(d));
            gradient.scaled_add(-(1.0 - p), d);
            let curvature = (p * (1.0 - p)).max(1e-6);
            let outer = d
                .view()
                .insert_axis(ndarray::Axis(1))
                .dot(&d.view().insert_axis(ndarray::Axis(0)));
            hessian.scaled_add(curvature, &outer);
        }
        let Some(step) = solve_spd(hessian, gradient) else {
            break;
        };
        delta -= &step;
        if step.dot(&step).sqrt() < 1e-5 {
            break;
        }
    }
    delta
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Solves `a x = b` for symmetric positive-definite `a` by Cholesky factorisation.
fn solve_spd(mut a: Array2<f32>, b: Array1<f32>) -> Option<Array1<f32>> {
    let n = b.len();
    for j in 0..n {
        let mut diag = a[[j, j]];
        for k in 0..j {
            diag -= a[[j, k]] * a[[j, k]];
        }
        if diag <= 0.0 {
            return None;
        }
        let diag = diag.sqrt();
        a[[j, j]] = diag;
        for i in j + 1..n {
            let mut v = a[[i, j]];
            for k in 0..j {
                v -= a[[i, k]] * a[[j, k]];
            }
            a[[i, j]] = v / diag;
        }
    }
    let mut y = b;
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[[i, k]] * y[k];
        }
        y[i] /= a[[i, i]];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[[k, i]] * y[k];
        }
        y[i] /= a[[i, i]];
    }
    Some(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        let a = ndarray::arr2(&[[4.0f32, 2.0], [2.0, 3.0]]);
        let x = solve_spd(a.clone(), ndarray::arr1(&[2.0, 1.0])).unwrap();
        let back = a.dot(&x);
        assert!((back[0] - 2.0).abs() < 1e-5 && (back[1] - 1.0).abs() < 1e-5);
        assert!(solve_spd(ndarray::arr2(&[[0.0f32]]), ndarray::arr1(&[1.0])).is_none());
    }

    #[test]
    fn comparisons_make_the_winner_more_likely() {
        let base = Array1::<f32>::zeros(DIM);
        let mut d = Array1::<f32>::zeros(DIM);
        d[3] = 1.0;
        d[7] = -1.0;
        let one = fit_offset(&base, std::slice::from_ref(&d));
        let three = fit_offset(&base, &[d.clone(), d.clone(), d.clone()]);
        assert!(one.dot(&d) > 0.0);
        assert!(
            three.dot(&d) > one.dot(&d),
            "more evidence, stronger preference"
        );
        // Contradicting answers cancel out.
        let both = fit_offset(&base, &[d.clone(), -&d]);
        assert!(both.dot(&d).abs() < 1e-4);
    }

    #[test]
    fn feedback_weights_accumulate_and_clamp() {
        let mut t = Taste::default();
        t.record(5, FeedbackKind::Like);
        t.record(5, FeedbackKind::Like);
        t.record(5, FeedbackKind::Add);
        assert_eq!(t.weights[&5], MAX_TRACK_WEIGHT);
        t.record(6, FeedbackKind::Dislike);
        assert_eq!(t.disliked(), vec![6]);
        assert_eq!(t.reacted(), vec![5, 6]);
        t.record(5, FeedbackKind::Dislike);
        t.record(5, FeedbackKind::Dislike);
        assert!(
            t.liked().next().is_none(),
            "enough dislikes turn a like around"
        );
        assert!(!t.has_signal());
        assert_eq!(t.count(FeedbackKind::Like), 2);
        assert_eq!(t.count(FeedbackKind::Dislike), 3);
    }

    #[test]
    fn kinds_round_trip() {
        for k in FeedbackKind::ALL {
            assert_eq!(FeedbackKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(FeedbackKind::parse("love"), None);
    }
}
