use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::TrackId;

/// The audio features' names, in Spotify's order: the CSV column names of every import format
/// and the field names of [`AudioFeatures`].
pub const AUDIO_FEATURE_NAMES: [&str; 11] = [
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
];

/// Spotify audio features (same names and ranges as Spotify's Web API).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AudioFeatures {
    /// 0–1: how suitable for dancing.
    pub danceability: f32,
    /// 0–1: perceived intensity.
    pub energy: f32,
    /// Pitch class 0–11 (C=0); -1 when unknown.
    pub key: i8,
    /// Average loudness in dB, typically -60–0.
    pub loudness: f32,
    /// 1 major, 0 minor.
    pub mode: u8,
    /// 0–1: presence of spoken words.
    pub speechiness: f32,
    /// 0–1: confidence the track is acoustic.
    pub acousticness: f32,
    /// 0–1: likelihood of no vocals.
    pub instrumentalness: f32,
    /// 0–1: likelihood of a live audience.
    pub liveness: f32,
    /// 0–1: musical positiveness.
    pub valence: f32,
    /// Beats per minute.
    pub tempo: f32,
}

impl AudioFeatures {
    /// Checks ranges; the message names the first offending feature.
    pub fn validate(&self) -> Result<(), String> {
        let unit = [
            ("danceability", self.danceability),
            ("energy", self.energy),
            ("speechiness", self.speechiness),
            ("acousticness", self.acousticness),
            ("instrumentalness", self.instrumentalness),
            ("liveness", self.liveness),
            ("valence", self.valence),
        ];
        for (name, value) in unit {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{name} must be between 0 and 1, got {value}"));
            }
        }
        if !(-1..=11).contains(&self.key) {
            return Err(format!("key must be between -1 and 11, got {}", self.key));
        }
        if self.mode > 1 {
            return Err(format!("mode must be 0 or 1, got {}", self.mode));
        }
        if !(-100.0..=10.0).contains(&self.loudness) {
            return Err(format!(
                "loudness must be between -100 and 10 dB, got {}",
                self.loudness
            ));
        }
        if !(0.0..=300.0).contains(&self.tempo) {
            return Err(format!(
                "tempo must be between 0 and 300 BPM, got {}",
                self.tempo
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Track {
    #[schema(value_type = String, example = "6f807x0ima9a1j3VPbc7VN")]
    pub id: TrackId,
    pub title: String,
    pub artist: String,
    pub album: String,
    /// As the source gives it: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub release_date: Option<String>,
    pub release_year: Option<i32>,
    /// Top-level genres (e.g. `pop`, `rock`), most representative first.
    pub genres: Vec<String>,
    /// Finer genres (e.g. `dance pop`).
    pub subgenres: Vec<String>,
    /// 0–100, Spotify's popularity.
    pub popularity: u8,
    pub duration_ms: u32,
    pub audio_features: AudioFeatures,
}

/// What a room's list shows of a track, borrowed: the fields of a playlist entry's
/// `TrackSummary` (the list frames' tracks, sent to every member at every refresh).
#[derive(Debug, Serialize)]
pub struct TrackBrief<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub artist: &'a str,
    pub album: &'a str,
    pub duration_ms: u32,
}

impl Track {
    pub fn brief(&self) -> TrackBrief<'_> {
        TrackBrief {
            id: self.id.as_str(),
            title: &self.title,
            artist: &self.artist,
            album: &self.album,
            duration_ms: self.duration_ms,
        }
    }

    /// Whether `genre` (lower-case) is one of the track's genres or sub-genres.
    pub fn has_genre(&self, genre: &str) -> bool {
        self.genres
            .iter()
            .chain(&self.subgenres)
            .any(|g| g == genre)
    }
}

/// The year of a `YYYY[-MM[-DD]]` date, if it has a plausible one.
pub fn release_year(date: &str) -> Option<i32> {
    let year: i32 = date.get(..4)?.parse().ok()?;
    (1000..=2999).contains(&year).then_some(year)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn features() -> AudioFeatures {
        AudioFeatures {
            danceability: 0.5,
            energy: 0.5,
            key: 5,
            loudness: -6.0,
            mode: 1,
            speechiness: 0.05,
            acousticness: 0.1,
            instrumentalness: 0.0,
            liveness: 0.1,
            valence: 0.5,
            tempo: 120.0,
        }
    }

    #[test]
    fn release_year_handles_partial_dates() {
        assert_eq!(release_year("2019-06-14"), Some(2019));
        assert_eq!(release_year("1999"), Some(1999));
        assert_eq!(release_year("19"), None);
        assert_eq!(release_year("abcd"), None);
    }

    #[test]
    fn validate_names_the_bad_feature() {
        assert!(features().validate().is_ok());
        let bad = AudioFeatures {
            valence: 1.5,
            ..features()
        };
        assert!(bad.validate().unwrap_err().contains("valence"));
        let bad = AudioFeatures {
            key: 12,
            ..features()
        };
        assert!(bad.validate().unwrap_err().contains("key"));
    }
}
