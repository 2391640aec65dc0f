//! Reasons: each ranking signal with its value and how much it moved the score, in words.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::inference::features::{FeatureRow, FEATURES, HYBRID_FEATURES};

/// Signal names (the hybrid ranker's features) and what they mean to a listener.
pub const SIGNALS: [(&str, &str); FEATURES] = [
    (
        "ncf_score",
        "listeners with your taste picked it (collaborative model)",
    ),
    ("retrieval_score", "close to your taste in the item space"),
    (
        "content_similarity",
        "sounds like the tracks you like (audio features)",
    ),
    ("popularity", "popular right now"),
    ("freshness", "a recent release"),
    ("diversity", "adds variety to what you already like"),
    ("group_agreement", "matches your overall profile"),
    ("item_item_score", "often played alongside tracks you like"),
];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reason {
    /// One of the ranking signals: ncf_score, retrieval_score, content_similarity, popularity,
    /// freshness, diversity, group_agreement, item_item_score.
    pub signal: &'static str,
    pub label: &'static str,
    /// The signal's value for this track.
    pub value: f32,
    /// Score with the signal as it is, minus the score with the signal at its average over
    /// this request's candidates (occlusion). Positive: the signal helped.
    pub contribution: f32,
}

/// Read back (a list another process computed): the signal and its wording are one of ours.
impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            signal: String,
            label: String,
            value: f32,
            contribution: f32,
        }
        let wire = Wire::deserialize(deserializer)?;
        let popular = popular_start(0.0).remove(0);
        let (signal, label) = SIGNALS
            .iter()
            .chain(&GROUP_SIGNALS)
            .chain(std::iter::once(&(popular.signal, popular.label)))
            .find(|(s, l)| *s == wire.signal && *l == wire.label)
            .copied()
            .ok_or_else(|| serde::de::Error::custom(format!("unknown reason {:?}", wire.signal)))?;
        Ok(Reason {
            signal,
            label,
            value: wire.value,
            contribution: wire.contribution,
        })
    }
}

/// The same signals, worded for a group (values are the members' averages).
pub const GROUP_SIGNALS: [(&str, &str); FEATURES] = [
    (
        "ncf_score",
        "listeners with your group's tastes picked it (collaborative model)",
    ),
    ("retrieval_score", "close to the group's shared taste"),
    (
        "content_similarity",
        "sounds like the tracks the members like (audio features)",
    ),
    ("popularity", "popular right now"),
    ("freshness", "a recent release"),
    ("diversity", "adds variety to what the members already like"),
    ("group_agreement", "sits where the members' tastes overlap"),
    (
        "item_item_score",
        "often played alongside tracks the members like",
    ),
];

pub fn from_contributions(features: &FeatureRow, contributions: &FeatureRow) -> Vec<Reason> {
    labelled(&SIGNALS, features, contributions)
}

pub fn for_group(features: &FeatureRow, contributions: &FeatureRow) -> Vec<Reason> {
    labelled(&GROUP_SIGNALS, features, contributions)
}

fn labelled(
    signals: &[(&'static str, &'static str); FEATURES],
    features: &FeatureRow,
    contributions: &FeatureRow,
) -> Vec<Reason> {
    debug_assert_eq!(signals.map(|s| s.0), HYBRID_FEATURES);
    let mut reasons: Vec<Reason> = signals
        .iter()
        .zip(features.iter().zip(contributions))
        .map(|(&(signal, label), (&value, &contribution))| Reason {
            signal,
            label,
            value,
            contribution,
        })
        .collect();
    reasons.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
    reasons
}

/// The one reason a cold-start pick has.
pub fn popular_start(popularity: f32) -> Vec<Reason> {
    vec![Reason {
        signal: "popularity",
        label: "popular with everyone; like a few tracks to personalise",
        value: popularity,
        contribution: popularity,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_sorted_by_contribution_and_named_like_the_features() {
        let r = from_contributions(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            &[0.1, -0.2, 0.5, 0.0, 0.3, -0.1, 0.2, 0.05],
        );
        let order: Vec<_> = r.iter().map(|x| x.signal).collect();
        assert_eq!(
            order,
            vec![
                "content_similarity",
                "freshness",
                "group_agreement",
                "ncf_score",
                "item_item_score",
                "popularity",
                "diversity",
                "retrieval_score"
            ]
        );
        assert_eq!(r[0].value, 3.0);
        assert_eq!(SIGNALS.map(|s| s.0), HYBRID_FEATURES);
    }
}
