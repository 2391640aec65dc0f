//! The facts an explanation may use, and nothing else: the track's own features and genres, the
//! audience's taste (one listener's, or a group's members' aggregate), the ranker's signal
//! contributions for this track, and the strategy that picked it. The template and the LLM
//! prompt are both built from these, so neither can mention what the server does not know.

use serde::Serialize;

use crate::{
    catalog::{AudioFeatures, Track},
    recommend::Reason,
    taste::profile::{FeatureTaste, GenreShare, Profile},
};

#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub track: TrackFacts,
    pub audience: Audience,
    /// Signals that raised the track's score, largest first (at most three).
    pub signals: Vec<Signal>,
    /// The strategy that picked it, when it came from a list.
    pub strategy: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackFacts {
    pub id: String,
    pub title: String,
    pub artist: String,
    pub genres: Vec<String>,
    /// Words for what stands out in its audio features ("high-energy", "acoustic", ...).
    pub traits: Vec<String>,
    pub tempo_bpm: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Audience {
    /// `listener` or `group`.
    pub kind: &'static str,
    /// Members counted into a group's aggregate (1 for a listener).
    pub size: usize,
    pub top_genres: Vec<String>,
    /// How the audience's liked tracks lean against the catalog ("more danceable", ...).
    pub leanings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Signal {
    pub label: String,
    pub contribution: f32,
}

/// What stands out in a track's audio features, in words.
pub fn traits(features: &AudioFeatures) -> Vec<String> {
    let mut out = Vec::new();
    let mut say = |cond: bool, word: &str| {
        if cond {
            out.push(word.to_string());
        }
    };
    say(features.energy >= 0.75, "high-energy");
    say(features.energy <= 0.35, "calm");
    say(features.danceability >= 0.72, "very danceable");
    say(features.valence >= 0.7, "upbeat");
    say(features.valence <= 0.3, "melancholic");
    say(features.acousticness >= 0.6, "acoustic");
    say(features.instrumentalness >= 0.5, "mostly instrumental");
    say(features.speechiness >= 0.33, "rap-like vocals");
    say(features.liveness >= 0.7, "recorded live");
    out
}

pub fn track_facts(track: &Track) -> TrackFacts {
    TrackFacts {
        id: track.id.as_str().to_string(),
        title: track.title.clone(),
        artist: track.artist.clone(),
        genres: track.genres.clone(),
        traits: traits(&track.audio_features),
        tempo_bpm: track.audio_features.tempo.round().max(0.0) as u32,
    }
}

/// A listener's or a group's taste from profiles (a group's is the members' mean).
pub fn audience(kind: &'static str, profiles: &[Profile]) -> Audience {
    let with_taste: Vec<&Profile> = profiles.iter().filter(|p| !p.cold_start).collect();
    let mut genres: Vec<(String, f32)> = Vec::new();
    for profile in &with_taste {
        for GenreShare { name, share } in &profile.top_genres {
            match genres.iter_mut().find(|(g, _)| g == name) {
                Some((_, total)) => *total += share,
                None => genres.push((name.clone(), *share)),
            }
        }
    }
    genres.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut leanings = Vec::new();
    if let Some(first) = with_taste.first() {
        for (i, feature) in first.audio_features.iter().enumerate() {
            let mean = with_taste
                .iter()
                .filter_map(|p| p.audio_features.get(i))
                .map(|f| f.yours)
                .sum::<f32>()
                / with_taste.len() as f32;
            if let Some(word) = leaning(feature, mean) {
                leanings.push(word);
            }
        }
    }
    Audience {
        kind,
        size: with_taste.len().max(usize::from(kind == "listener")),
        top_genres: genres.into_iter().take(3).map(|(g, _)| g).collect(),
        leanings,
    }
}

/// "more energetic than most music" when the mean liked value differs enough from the catalog.
fn leaning(feature: &FeatureTaste, mean: f32) -> Option<String> {
    let (more, less) = match feature.name {
        "danceability" => ("more danceable", "less danceable"),
        "energy" => ("more energetic", "calmer"),
        "valence" => ("more upbeat", "moodier"),
        "acousticness" => ("more acoustic", "less acoustic"),
        "instrumentalness" => ("more instrumental", "more vocal"),
        _ => return None,
    };
    let gap = mean - feature.catalog;
    if gap >= 0.08 {
        Some(format!("{more} than most music"))
    } else if gap <= -0.08 {
        Some(format!("{less} than most music"))
    } else {
        None
    }
}

/// The reasons that raised the score, largest first.
pub fn signals(reasons: &[Reason]) -> Vec<Signal> {
    let mut helped: Vec<&Reason> = reasons.iter().filter(|r| r.contribution > 0.0).collect();
    helped.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
    helped
        .into_iter()
        .take(3)
        .map(|r| Signal {
            label: r.label.to_string(),
            contribution: r.contribution,
        })
        .collect()
}
